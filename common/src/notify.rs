//! Ironic's versioned notifications, published to the `ferric.notifications`
//! topic exchange (routing key = event type) in the distributed mode.
//!
//! A message is the `oslo.message` Ironic would send (`message_id`,
//! `publisher_id`, `event_type`, `priority`, `timestamp`, and the payload as
//! an `ironic_object` primitive), as plain JSON rather than wrapped in the
//! `oslo.version` envelope.
//!
//! The same messages feed the console's live view ([`crate::feed`]) and the
//! node journal ([`crate::journal`]), in both modes.
//!
//! Invariants: sending never blocks and never fails the work that caused
//! it — a full buffer or a broker that is down drops the notification (with
//! a warning); payloads never carry `driver_info`, `driver_internal_info` or
//! `instance_info` (Ironic's `NodePayload` leaves them out too).

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::db::models::node::Node;
use crate::feed::Feed;
use crate::journal::Journal;
use crate::queue::QueueError;
use crate::queue::amqp;
use crate::queue::broker::Broker;
use crate::states::ProvisionState;

/// Notifications waiting to be published before new ones are dropped.
const BUFFER: usize = 4096;

/// One notification, before it gets its publisher and id.
#[derive(Debug, Clone)]
pub struct Notification {
    /// `baremetal.<object>.<action>.<status>`.
    pub event_type: String,
    /// `INFO`, or `ERROR` for an `.error` status.
    pub priority: &'static str,
    /// The payload class, e.g. `NodeSetProvisionStatePayload`.
    pub payload_name: &'static str,
    pub payload_version: &'static str,
    pub data: Map<String, Value>,
}

impl Notification {
    fn new(
        event_type: String,
        payload_name: &'static str,
        payload_version: &'static str,
        data: Map<String, Value>,
    ) -> Notification {
        let priority = if event_type.ends_with(".error") {
            "ERROR"
        } else {
            "INFO"
        };
        Notification {
            event_type,
            priority,
            payload_name,
            payload_version,
            data,
        }
    }

    /// The message on the wire.
    pub fn message(&self, publisher_id: &str) -> Value {
        json!({
            "message_id": uuid::Uuid::new_v4().to_string(),
            "publisher_id": publisher_id,
            "event_type": self.event_type,
            "priority": self.priority,
            "timestamp": chrono::Utc::now().naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            "payload": {
                "ironic_object.name": self.payload_name,
                "ironic_object.namespace": "ironic",
                "ironic_object.version": self.payload_version,
                "ironic_object.data": self.data,
            },
        })
    }
}

fn time(at: Option<chrono::NaiveDateTime>) -> Value {
    at.map_or(Value::Null, |at| {
        Value::String(format!("{}+00:00", at.format("%Y-%m-%dT%H:%M:%S%.6f")))
    })
}

fn column(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

/// Ironic's `NodePayload` fields of `node`.
pub fn node_payload(node: &Node) -> Map<String, Value> {
    let mut data = Map::new();
    let mut put = |key: &str, value: Value| {
        data.insert(key.to_owned(), value);
    };
    put("uuid", json!(node.uuid));
    put("name", json!(node.name));
    put("driver", json!(node.driver));
    put("conductor_group", json!(node.conductor_group));
    put("console_enabled", json!(node.console_enabled));
    put("created_at", time(Some(node.created_at)));
    put("updated_at", time(node.updated_at));
    put("description", json!(node.description));
    put("extra", column(&node.extra));
    put("properties", column(&node.properties));
    put("clean_step", column(&node.clean_step));
    put("deploy_step", column(&node.deploy_step));
    put("fault", json!(node.fault));
    put("instance_uuid", json!(node.instance_uuid));
    put("inspection_started_at", time(node.inspection_started_at));
    put("inspection_finished_at", time(node.inspection_finished_at));
    put("last_error", json!(node.last_error));
    put("lessee", json!(node.lessee));
    put("owner", json!(node.owner));
    put("maintenance", json!(node.maintenance));
    put("maintenance_reason", json!(node.maintenance_reason));
    put("parent_node", json!(node.parent_node));
    put("power_state", json!(node.power_state));
    put("protected", json!(node.protected));
    put("protected_reason", json!(node.protected_reason));
    put("provision_state", json!(node.provision_state));
    put("provision_updated_at", time(node.provision_updated_at));
    put("resource_class", json!(node.resource_class));
    put("retired", json!(node.retired));
    put("retired_reason", json!(node.retired_reason));
    put("shard", json!(node.shard));
    put("target_power_state", json!(node.target_power_state));
    put("target_provision_state", json!(node.target_provision_state));
    for (key, value) in [
        ("bios_interface", &node.bios_interface),
        ("boot_interface", &node.boot_interface),
        ("console_interface", &node.console_interface),
        ("deploy_interface", &node.deploy_interface),
        ("firmware_interface", &node.firmware_interface),
        ("inspect_interface", &node.inspect_interface),
        ("management_interface", &node.management_interface),
        ("network_interface", &node.network_interface),
        ("power_interface", &node.power_interface),
        ("raid_interface", &node.raid_interface),
        ("rescue_interface", &node.rescue_interface),
        ("storage_interface", &node.storage_interface),
        ("vendor_interface", &node.vendor_interface),
    ] {
        put(key, json!(value));
    }
    data
}

/// A provision state transition, `baremetal.node.provision_set.<status>`:
/// `error` for a failure, `start` when it leaves a stable state, `end` when
/// it reaches one, `success` otherwise (Ironic's `task_manager` rules).
/// `node` is the row before the change.
pub fn provision_set(
    node: &Node,
    event: &str,
    to: ProvisionState,
    last_error: Option<&str>,
) -> Notification {
    let from_stable = node
        .provision_state
        .parse::<ProvisionState>()
        .is_ok_and(|s| s.is_stable());
    let status = if event == "fail" || event == "error" {
        "error"
    } else if from_stable && !to.is_stable() {
        "start"
    } else if !from_stable && to.is_stable() {
        "end"
    } else {
        "success"
    };
    let mut data = node_payload(node);
    data.insert("event".into(), json!(event));
    data.insert(
        "previous_provision_state".into(),
        json!(node.provision_state),
    );
    data.insert(
        "previous_target_provision_state".into(),
        json!(node.target_provision_state),
    );
    data.insert("provision_state".into(), json!(to.as_str()));
    data.insert(
        "target_provision_state".into(),
        json!(to.target().map(|t| t.as_str())),
    );
    if let Some(error) = last_error {
        data.insert("last_error".into(), json!(error));
    }
    Notification::new(
        format!("baremetal.node.provision_set.{status}"),
        "NodeSetProvisionStatePayload",
        "1.18",
        data,
    )
}

/// A power action, `baremetal.node.power_set.<status>` (`start`, `end` or
/// `error`); `node` is the row as the action leaves it.
pub fn power_set(node: &Node, to_power: &str, status: &str) -> Notification {
    let mut data = node_payload(node);
    data.insert("to_power".into(), json!(to_power));
    Notification::new(
        format!("baremetal.node.power_set.{status}"),
        "NodeSetPowerStatePayload",
        "1.17",
        data,
    )
}

/// `baremetal.node.<create|update|delete>.end` from the API.
pub fn node_crud(node: &Node, action: &str, chassis_uuid: Option<&str>) -> Notification {
    let mut data = node_payload(node);
    data.insert("chassis_uuid".into(), json!(chassis_uuid));
    Notification::new(
        format!("baremetal.node.{action}.end"),
        "NodeCRUDPayload",
        "1.15",
        data,
    )
}

/// Where notifications go: the AMQP exchange (distributed mode), the
/// console's live feed, the node journal — any of them. Cloning is shallow;
/// the default sends nowhere.
#[derive(Clone, Default)]
pub struct Notifier {
    publisher_id: String,
    amqp: Option<mpsc::Sender<Value>>,
    feed: Option<Feed>,
    journal: Option<Journal>,
}

impl Notifier {
    /// A notifier that drops everything.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// A notifier for `publisher_id` (e.g. `ferric-conductor.<host>`),
    /// sending nowhere until given a destination.
    pub fn new(publisher_id: String) -> Notifier {
        Notifier {
            publisher_id,
            ..Notifier::default()
        }
    }

    /// Whether notifications go anywhere (callers skip building them if not).
    pub fn is_enabled(&self) -> bool {
        self.amqp.is_some() || self.feed.is_some() || self.journal.is_some()
    }

    /// Hands `notification` to every destination; never waits.
    pub fn send(&self, notification: Notification) {
        if !self.is_enabled() {
            return;
        }
        let message = notification.message(&self.publisher_id);
        if let Some(journal) = &self.journal {
            journal.record(&message);
        }
        if let Some(feed) = &self.feed {
            feed.publish(&message);
        }
        if let Some(tx) = &self.amqp
            && tx.try_send(message).is_err()
        {
            tracing::warn!(
                event_type = %notification.event_type,
                "notification dropped: the publisher is behind or stopped"
            );
        }
    }

    /// Publishes to `<prefix>ferric.notifications` at `url` from a
    /// background task that reconnects (backing off up to 30 s) whenever the
    /// broker goes away. `publisher_id` is e.g. `ferric-conductor.<host>`.
    pub fn amqp(broker: Broker, prefix: &str, publisher_id: String) -> Notifier {
        Notifier::new(publisher_id).with_amqp(broker, prefix)
    }

    /// Also publishes to the notifications exchange (see [`Notifier::amqp`]).
    #[must_use]
    pub fn with_amqp(mut self, broker: Broker, prefix: &str) -> Notifier {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(publish_loop(broker, exchange_name(prefix), rx));
        self.amqp = Some(tx);
        self
    }

    /// Also broadcasts to the console's live `feed` (the embedded mode's
    /// pages; a distributed API follows the exchange instead).
    #[must_use]
    pub fn with_feed(mut self, feed: Feed) -> Notifier {
        self.feed = Some(feed);
        self
    }

    /// The node journal it records into, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Also records provision and power changes in the node `journal`.
    #[must_use]
    pub fn with_journal(mut self, journal: Journal) -> Notifier {
        self.journal = Some(journal);
        self
    }
}

/// The topic exchange notifications go to.
pub fn exchange_name(prefix: &str) -> String {
    format!("{prefix}ferric.notifications")
}

async fn publish_loop(broker: Broker, exchange: String, mut rx: mpsc::Receiver<Value>) {
    let mut backoff = Duration::from_millis(500);
    'connect: loop {
        // The connection lives as long as its channel is used.
        let (_connection, channel) = match open(&broker, &exchange).await {
            Ok(opened) => {
                backoff = Duration::from_millis(500);
                opened
            }
            Err(e) => {
                tracing::warn!(error = %e, "notifications: cannot reach the broker; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        while let Some(message) = rx.recv().await {
            let routing_key = message["event_type"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned();
            let body = message.to_string().into_bytes();
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_type(routing_key.as_str().into());
            let published = channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await;
            if let Err(e) = published {
                tracing::warn!(error = %e, %routing_key, "notification lost: the broker went away");
                continue 'connect;
            }
            crate::metrics::global().message_sent("notification");
        }
        return;
    }
}

/// Follows `<prefix>ferric.notifications` from a queue of the caller's own
/// (server-named, exclusive, gone when it disconnects) bound with
/// `binding_key`; the connection must be kept as long as the consumer.
///
/// # Errors
/// When the broker cannot be reached or the queue cannot be set up.
pub async fn subscribe(
    broker: &Broker,
    prefix: &str,
    binding_key: &str,
    consumer_tag: &str,
) -> Result<(Connection, lapin::Consumer), QueueError> {
    let exchange = exchange_name(prefix);
    let (conn, channel) = open(broker, &exchange).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp::broker)?;
    channel
        .queue_bind(
            queue.name().as_str().into(),
            exchange.as_str().into(),
            binding_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp::broker)?;
    let consumer = channel
        .basic_consume(
            queue.name().as_str().into(),
            consumer_tag.into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp::broker)?;
    Ok((conn, consumer))
}

async fn open(broker: &Broker, exchange: &str) -> Result<(Connection, lapin::Channel), QueueError> {
    let conn = broker.connect().await?;
    let channel = conn.create_channel().await.map_err(amqp::broker)?;
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp::broker)?;
    Ok((conn, channel))
}
