//! The distributed mode's task queue over RabbitMQ (AMQP 0-9-1, lapin).
//!
//! Topology (DESIGN §5), every name behind an optional prefix so tests and
//! several deployments can share a broker:
//! - `ferric.tasks`: direct exchange; each conductor's durable quorum queue
//!   `ferric.conductor.<host>` is bound with its host name;
//! - `ferric.dlx` (fanout) → `ferric.dead`: what a conductor rejects, with the
//!   reason in the `x-ferric-reason` header.
//!
//! Invariants: a call is answered only after the broker confirmed the
//! publish (publisher confirms); a message no queue takes (`mandatory`)
//! fails at once; a task carries `expiration` = the call timeout, so a task
//! the API gave up on is never run later. Replies use RabbitMQ's direct
//! reply-to. A conductor acknowledges a task only once it has replied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferric_proto::v1::{Task, TaskReply};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::queue::broker::Broker;
use crate::queue::{
    Incoming, PeekedLetter, QueueDepth, QueueError, QueueFuture, QueueOverview, Settle, TaskQueue,
};

/// RabbitMQ's pseudo-queue for direct replies.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Exchange and queue names under a prefix.
#[derive(Debug, Clone)]
pub struct Names {
    pub tasks: String,
    pub dlx: String,
    pub dead: String,
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            tasks: format!("{prefix}ferric.tasks"),
            dlx: format!("{prefix}ferric.dlx"),
            dead: format!("{prefix}ferric.dead"),
            prefix: prefix.to_owned(),
        }
    }

    /// A conductor's task queue.
    pub fn conductor_queue(&self, host: &str) -> String {
        format!("{}ferric.conductor.{host}", self.prefix)
    }
}

pub(crate) fn broker(e: lapin::Error) -> QueueError {
    QueueError::Broker(e.to_string())
}

/// Connects and declares the shared topology on a fresh channel.
pub(crate) async fn open(
    broker_at: &Broker,
    names: &Names,
) -> Result<(Connection, Channel), QueueError> {
    let conn = broker_at.connect().await?;
    let channel = conn.create_channel().await.map_err(broker)?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            names.tasks.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    channel
        .exchange_declare(
            names.dlx.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    channel
        .queue_declare(
            names.dead.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    channel
        .queue_bind(
            names.dead.as_str().into(),
            names.dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    Ok((conn, channel))
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<TaskReply>>>>;

/// How long the API waits to (re)connect before answering 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One live connection of the API: a confirm-mode channel that also
/// consumes direct replies, and the calls waiting for a reply on it. When
/// the connection dies its waiting calls fail at once (never hang until
/// their timeout): the replies they wait for can no longer arrive.
struct Link {
    conn: Connection,
    channel: Channel,
    pending: Pending,
    /// Set, before `pending` is emptied, once replies can no longer arrive.
    closed: Arc<AtomicBool>,
}

/// The API side: publishes tasks and waits for replies. It connects lazily
/// and reconnects after a broker failure; while the broker is unreachable a
/// call fails at once with [`QueueError::Broker`] (the API's 503).
pub struct AmqpQueue {
    broker: Broker,
    names: Names,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
}

impl AmqpQueue {
    /// Connects, declares the topology and starts listening for replies.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn connect(broker: Broker, prefix: &str) -> Result<AmqpQueue, QueueError> {
        let queue = AmqpQueue {
            broker,
            names: Names::new(prefix),
            link: tokio::sync::Mutex::new(None),
        };
        queue.link().await?;
        Ok(queue)
    }

    /// The live link, (re)connecting when there is none.
    async fn link(&self) -> Result<Arc<Link>, QueueError> {
        let mut guard = self.link.lock().await;
        if let Some(link) = guard.as_ref()
            && link.channel.status().connected()
            && !link.closed.load(Ordering::SeqCst)
        {
            return Ok(link.clone());
        }
        *guard = None;
        let link = tokio::time::timeout(CONNECT_TIMEOUT, self.open_link())
            .await
            .map_err(|_| QueueError::Broker("timed out connecting to the broker".into()))??;
        let link = Arc::new(link);
        *guard = Some(link.clone());
        Ok(link)
    }

    async fn open_link(&self) -> Result<Link, QueueError> {
        let (conn, channel) = open(&self.broker, &self.names).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        let mut replies = channel
            .basic_consume(
                REPLY_TO.into(),
                "ferric-api-replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        let pending = Pending::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (waiting, reader_closed) = (pending.clone(), closed.clone());
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = replies.next().await {
                let Some(id) = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.to_string())
                else {
                    continue;
                };
                match TaskReply::decode(delivery.data.as_slice()) {
                    Ok(reply) => {
                        let sender = waiting.lock().ok().and_then(|mut p| p.remove(&id));
                        if let Some(sender) = sender {
                            let _ = sender.send(reply);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable task reply dropped"),
                }
            }
            // The channel is gone: fail every call still waiting on it.
            reader_closed.store(true, Ordering::SeqCst);
            if let Ok(mut waiting) = waiting.lock() {
                waiting.clear();
            }
        });
        Ok(Link {
            conn,
            channel,
            pending,
            closed,
        })
    }

    /// Forgets a link that failed, so the next call reconnects.
    async fn drop_link(&self, failed: &Arc<Link>) {
        let mut guard = self.link.lock().await;
        if guard.as_ref().is_some_and(|l| Arc::ptr_eq(l, failed)) {
            *guard = None;
        }
    }

    async fn publish_and_wait(
        &self,
        link: &Arc<Link>,
        conductor: &str,
        task: Task,
        timeout: Duration,
    ) -> Result<TaskReply, QueueError> {
        let (tx, rx) = oneshot::channel();
        let id = task.task_id.clone();
        if let Ok(mut pending) = link.pending.lock() {
            pending.insert(id.clone(), tx);
        }
        if link.closed.load(Ordering::SeqCst) {
            self.drop_link(link).await;
            return Err(lost_connection());
        }
        let properties = BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type(task_type(&task).into())
            .with_message_id(id.as_str().into())
            .with_correlation_id(id.as_str().into())
            .with_reply_to(REPLY_TO.into())
            .with_expiration(timeout.as_millis().to_string().as_str().into())
            .with_delivery_mode(2)
            .with_headers(trace_headers());
        let published = async {
            link.channel
                .basic_publish(
                    self.names.tasks.as_str().into(),
                    conductor.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &task.encode_to_vec(),
                    properties,
                )
                .await?
                .await
        }
        .await;
        let metrics = crate::metrics::global();
        let confirm = match published {
            Ok(confirm) => confirm,
            Err(e) => {
                metrics.publish("failed");
                self.drop_link(link).await;
                return Err(broker(e));
            }
        };
        match confirm {
            Confirmation::Ack(None) => metrics.publish("confirmed"),
            Confirmation::Ack(Some(_)) | Confirmation::NotRequested => {
                metrics.publish("unroutable");
                return Err(QueueError::NoConsumer(conductor.to_owned()));
            }
            Confirmation::Nack(_) => {
                metrics.publish("nacked");
                return Err(QueueError::Broker("the broker refused the task".into()));
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(QueueError::Timeout(conductor.to_owned(), timeout)),
            Ok(Err(_)) if link.closed.load(Ordering::SeqCst) => {
                self.drop_link(link).await;
                Err(lost_connection())
            }
            Ok(Err(_)) => Err(QueueError::Dropped(conductor.to_owned())),
            Ok(Ok(reply)) => Ok(reply),
        }
    }
}

/// The current span's trace context as AMQP headers.
fn trace_headers() -> FieldTable {
    let mut headers = FieldTable::default();
    for (key, value) in crate::telemetry::trace_context() {
        headers.insert(key.as_str().into(), AMQPValue::LongString(value.into()));
    }
    headers
}

/// The trace context a publisher put in a delivery's headers.
fn trace_of(properties: &BasicProperties) -> std::collections::HashMap<String, String> {
    let mut trace = std::collections::HashMap::new();
    if let Some(headers) = properties.headers() {
        for key in ["traceparent", "tracestate"] {
            let value = match headers.inner().get(key) {
                Some(AMQPValue::LongString(s)) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
                _ => continue,
            };
            trace.insert(key.to_owned(), value);
        }
    }
    trace
}

fn lost_connection() -> QueueError {
    QueueError::Broker("lost the connection to the broker".into())
}

/// The message `type` property: the task kind's name.
fn task_type(task: &Task) -> &'static str {
    use ferric_proto::v1::task::Kind;
    match task.kind {
        Some(Kind::Provision(_)) => "ProvisionAction",
        Some(Kind::Power(_)) => "PowerAction",
        Some(Kind::SetBootDevice(_)) => "SetBootDevice",
        Some(Kind::GetBootDevice(_)) => "GetBootDevice",
        Some(Kind::Validate(_)) => "ValidateInterfaces",
        Some(Kind::GetSupportedBootDevices(_)) => "GetSupportedBootDevices",
        Some(Kind::InjectNmi(_)) => "InjectNmi",
        Some(Kind::Allocate(_)) => "Allocate",
        Some(Kind::DestroyAllocation(_)) => "DestroyAllocation",
        Some(Kind::SetBootMode(_)) => "SetBootMode",
        Some(Kind::SetSecureBoot(_)) => "SetSecureBoot",
        Some(Kind::AgentLookup(_)) => "AgentLookup",
        Some(Kind::AgentHeartbeat(_)) => "AgentHeartbeat",
        Some(Kind::AttachVirtualMedia(_)) => "AttachVirtualMedia",
        Some(Kind::DetachVirtualMedia(_)) => "DetachVirtualMedia",
        Some(Kind::GetVirtualMedia(_)) => "GetVirtualMedia",
        Some(Kind::ContinueInspection(_)) => "ContinueInspection",
        None => "Task",
    }
}

impl TaskQueue for AmqpQueue {
    /// The link is live, or could be (re)opened within the connect timeout.
    fn ready(&self) -> QueueFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { self.link().await.map(|_| ()) })
    }

    fn call<'a>(
        &'a self,
        conductor: &'a str,
        task: Task,
        timeout: Duration,
    ) -> QueueFuture<'a, Result<TaskReply, QueueError>> {
        Box::pin(async move {
            let id = task.task_id.clone();
            let link = self.link().await?;
            let result = self.publish_and_wait(&link, conductor, task, timeout).await;
            if result.is_err()
                && let Ok(mut pending) = link.pending.lock()
            {
                pending.remove(&id);
            }
            result
        })
    }

    /// Passive declarations (a missing queue is left out) and `basic_get`
    /// without acknowledgement on a channel of its own, closed at the end:
    /// the peeked dead letters go back to their queue unchanged.
    fn overview<'a>(
        &'a self,
        conductors: &'a [String],
        peek: usize,
    ) -> QueueFuture<'a, Result<QueueOverview, QueueError>> {
        Box::pin(async move {
            let link = self.link().await?;
            let mut queues = Vec::new();
            for host in conductors {
                let name = self.names.conductor_queue(host);
                // A passive declaration of a missing queue closes its channel.
                let channel = link.conn.create_channel().await.map_err(broker)?;
                if let Ok(queue) = passive(&channel, &name).await {
                    queues.push(QueueDepth {
                        name,
                        messages: queue.message_count(),
                        consumers: queue.consumer_count(),
                    });
                    let _ = channel.close(200, "".into()).await;
                }
            }
            let channel = link.conn.create_channel().await.map_err(broker)?;
            let dead = passive(&channel, &self.names.dead).await?;
            let mut dead_letters = Vec::new();
            while dead_letters.len() < peek {
                let got = channel
                    .basic_get(
                        self.names.dead.as_str().into(),
                        lapin::options::BasicGetOptions { no_ack: false },
                    )
                    .await
                    .map_err(broker)?;
                let Some(message) = got else { break };
                let delivery = &message.delivery;
                let headers = delivery.properties.headers().clone().unwrap_or_default();
                let reason = match headers.inner().get("x-ferric-reason") {
                    Some(AMQPValue::LongString(reason)) => reason.to_string(),
                    _ => "(no reason recorded)".to_owned(),
                };
                dead_letters.push(PeekedLetter {
                    conductor: delivery.routing_key.to_string(),
                    reason,
                    task_type: delivery.properties.kind().as_ref().map(|t| t.to_string()),
                    bytes: delivery.data.len(),
                });
            }
            // Unacknowledged, they return to the queue as the channel closes.
            let _ = channel.close(200, "".into()).await;
            Ok(QueueOverview {
                queues,
                dead: QueueDepth {
                    name: self.names.dead.clone(),
                    messages: dead.message_count(),
                    consumers: dead.consumer_count(),
                },
                dead_letters,
            })
        })
    }
}

async fn passive(channel: &Channel, name: &str) -> Result<lapin::Queue, QueueError> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(broker)
}

/// The conductor side: consumes `ferric.conductor.<host>`, reconnecting with
/// backoff when the broker goes away (unacknowledged tasks are redelivered).
pub struct AmqpConsumer {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Connects, declares this conductor's queue and starts consuming it.
async fn subscribe(
    broker_at: &Broker,
    names: &Names,
    host: &str,
    prefetch: u16,
) -> Result<(Connection, Channel, lapin::Consumer), QueueError> {
    let (conn, channel) = open(broker_at, names).await?;
    let queue = names.conductor_queue(host);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(names.dlx.as_str().into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map_err(broker)?;
    channel
        .queue_bind(
            queue.as_str().into(),
            names.tasks.as_str().into(),
            host.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(broker)?;
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            format!("ferric-conductor-{host}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    Ok((conn, channel, consumer))
}

impl AmqpConsumer {
    /// Declares the conductor's queue, binds it and starts consuming with
    /// at most `prefetch` unacknowledged tasks.
    ///
    /// # Errors
    /// When the broker cannot be reached at start.
    pub async fn start(
        broker_at: &Broker,
        prefix: &str,
        host: &str,
        prefetch: u16,
    ) -> Result<(AmqpConsumer, mpsc::Receiver<Incoming>), QueueError> {
        let names = Names::new(prefix);
        let first = subscribe(broker_at, &names, host, prefetch).await?;
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let (broker_at, host) = (broker_at.clone(), host.to_owned());
        let task = tokio::spawn(async move {
            let mut link = Some(first);
            let mut backoff = Duration::from_millis(500);
            loop {
                let (conn, channel, mut consumer) = match link.take() {
                    Some(link) => link,
                    None => match subscribe(&broker_at, &names, &host, prefetch).await {
                        Ok(link) => {
                            tracing::info!(conductor.hostname = %host, "reconnected to the broker");
                            backoff = Duration::from_millis(500);
                            link
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "broker unreachable; retrying");
                            tokio::select! {
                                () = stopped.cancelled() => return,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                    },
                };
                loop {
                    let delivery = tokio::select! {
                        () = stopped.cancelled() => {
                            let _ = channel.close(200, "conductor stopping".into()).await;
                            let _ = conn.close(200, "conductor stopping".into()).await;
                            return;
                        }
                        d = consumer.next() => d,
                    };
                    let Some(Ok(delivery)) = delivery else {
                        tracing::warn!(conductor.hostname = %host, "lost the broker; reconnecting");
                        break;
                    };
                    let incoming = Incoming {
                        payload: delivery.data.clone(),
                        trace: trace_of(&delivery.properties),
                        settle: Box::new(AmqpSettle {
                            channel: channel.clone(),
                            dlx: names.dlx.clone(),
                            delivery,
                        }),
                    };
                    if tx.send(incoming).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok((AmqpConsumer { stop, task }, rx))
    }

    /// Stops consuming; unacknowledged tasks return to the queue.
    pub async fn close(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Settles one AMQP delivery.
struct AmqpSettle {
    channel: Channel,
    dlx: String,
    delivery: lapin::message::Delivery,
}

impl Settle for AmqpSettle {
    fn is_expired(&self) -> bool {
        // The broker drops tasks past their `expiration` before delivery.
        false
    }

    fn reply(self: Box<Self>, reply: TaskReply) -> QueueFuture<'static, ()> {
        Box::pin(async move {
            let props = &self.delivery.properties;
            if let (Some(reply_to), Some(id)) =
                (props.reply_to().clone(), props.correlation_id().clone())
            {
                let published = self
                    .channel
                    .basic_publish(
                        ShortString::from(""),
                        reply_to,
                        BasicPublishOptions::default(),
                        &reply.encode_to_vec(),
                        BasicProperties::default()
                            .with_content_type("application/x-protobuf".into())
                            .with_correlation_id(id),
                    )
                    .await;
                match published {
                    Ok(_) => crate::metrics::global().message_sent("reply"),
                    Err(e) => tracing::warn!(error = %e, "could not send a task reply"),
                }
            }
            if let Err(e) = self.delivery.acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %e, "could not acknowledge a task");
            }
        })
    }

    fn dead_letter(self: Box<Self>, reason: String) -> QueueFuture<'static, ()> {
        Box::pin(async move {
            tracing::warn!(%reason, "task dead-lettered");
            dead_letter(&self.channel, &self.dlx, &self.delivery, &reason).await;
        })
    }
}

/// Republishes `delivery` to the dead-letter exchange `dlx` with `reason`
/// in the `x-ferric-reason` header, then acknowledges it.
pub(crate) async fn dead_letter(
    channel: &Channel,
    dlx: &str,
    delivery: &lapin::message::Delivery,
    reason: &str,
) {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-ferric-reason".into(),
        AMQPValue::LongString(reason.into()),
    );
    let published = channel
        .basic_publish(
            dlx.into(),
            delivery.routing_key.clone(),
            BasicPublishOptions::default(),
            &delivery.data,
            delivery.properties.clone().with_headers(headers),
        )
        .await;
    if let Err(e) = published {
        tracing::warn!(error = %e, "could not dead-letter a task");
    }
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        tracing::warn!(error = %e, "could not acknowledge a task");
    }
}
