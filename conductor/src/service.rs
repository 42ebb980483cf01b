//! `Conductor::start`: registers, sweeps, heartbeats, runs the periodic
//! passes and consumes tasks until shut down, then drains and deregisters.
//!
//! Shutdown order (kube's graceful shutdown): stop consuming, let running
//! tasks finish within `graceful_shutdown_timeout_secs`, release this host's
//! reservations, deregister.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ferric_common::config::ConductorConfig;
use ferric_common::db::models::conductor::Conductor;
use ferric_common::db::models::node::Node;
use ferric_common::db::{Db, DbError};
use ferric_common::feed::Feed;
use ferric_common::journal::Journal;
use ferric_common::notify::Notifier;
use ferric_common::queue::Incoming;
use ferric_common::queue::amqp::AmqpConsumer;
use ferric_common::queue::broker::Broker;
use ferric_common::queue::local::LocalQueue;
use ferric_common::queue::reroute::Rerouter;
use ferric_common::telemetry;
use ferric_proto::v1::Task;
use futures_util::FutureExt;
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::Context;
use crate::membership;
use crate::periodic::Periodic;
use crate::power_sync::PowerSync;
use crate::tasks;

/// Errors that stop a conductor from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] membership::UnknownHardwareType),
    #[error("conductor start-up: {0}")]
    Db(#[from] DbError),
    #[error("conductor start-up: {0}")]
    Queue(#[from] ferric_common::queue::QueueError),
    #[error("conductor start-up: {0}")]
    Http(#[from] crate::context::HttpClientError),
}

/// Where a conductor's tasks come from, kept to stop it on shutdown.
enum Source {
    Local(LocalQueue),
    Amqp(Box<AmqpConsumer>),
}

impl Source {
    async fn stop(self, host: &str) {
        match self {
            Source::Local(queue) => queue.cancel(host),
            Source::Amqp(consumer) => consumer.close().await,
        }
    }
}

/// A running conductor.
pub struct ConductorHandle {
    host: String,
    journal: Option<Journal>,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl ConductorHandle {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The node journal this conductor writes (its boot-file server records
    /// fetches there too).
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Stops consuming, drains and deregisters; returns when done.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }
}

/// Starts a conductor named `host` consuming from the embedded queue; its
/// notifications go to the node journal and the console's `feed`.
///
/// # Errors
/// When the configuration names an unknown hardware type or the database
/// cannot be written.
pub async fn start_local(
    config: ConductorConfig,
    host: String,
    db: Db,
    queue: LocalQueue,
    feed: Feed,
) -> Result<ConductorHandle, StartError> {
    let incoming = queue.consume(&host);
    let mut notifier = Notifier::new(format!("ferric-conductor.{host}")).with_feed(feed);
    if let Some(keep) = config.journal_retention {
        notifier = notifier.with_journal(Journal::start(db.clone(), keep));
    }
    start(
        config,
        host,
        db,
        incoming,
        Source::Local(queue),
        None,
        notifier,
    )
    .await
}

/// Starts a conductor named `host` consuming its RabbitMQ queue at `broker`
/// (names behind `prefix`).
///
/// # Errors
/// As [`start_local`], or when the broker cannot be reached.
pub async fn start_amqp(
    config: ConductorConfig,
    host: String,
    db: Db,
    broker: Broker,
    prefix: &str,
) -> Result<ConductorHandle, StartError> {
    let prefetch = u16::try_from(config.conductor.max_concurrent_tasks).unwrap_or(u16::MAX);
    let (consumer, incoming) = AmqpConsumer::start(&broker, prefix, &host, prefetch).await?;
    let mut notifier = Notifier::amqp(broker.clone(), prefix, format!("ferric-conductor.{host}"));
    if let Some(keep) = config.journal_retention {
        notifier = notifier.with_journal(Journal::start(db.clone(), keep));
    }
    start(
        config,
        host,
        db,
        incoming,
        Source::Amqp(Box::new(consumer)),
        Some(Rerouter::new(broker, prefix)),
        notifier,
    )
    .await
}

async fn start(
    config: ConductorConfig,
    host: String,
    db: Db,
    deliveries: mpsc::Receiver<Incoming>,
    source: Source,
    rerouter: Option<Rerouter>,
    notifier: Notifier,
) -> Result<ConductorHandle, StartError> {
    let settings = config.conductor.clone();
    let registration = membership::registration(
        &host,
        &settings.conductor_group,
        &settings.enabled_hardware_types,
    )?;
    membership::sweep_after_restart(&db, &host).await?;
    db.run(move |conn| Conductor::register(conn, &registration))
        .await?;
    tracing::info!(conductor.hostname = %host, hardware_types = ?settings.enabled_hardware_types, "conductor registered");

    let stop = CancellationToken::new();
    let journal = notifier.journal().cloned();
    let ctx = Context::new(&config, db.clone(), host.clone(), notifier)?;
    let tracker = ctx.tracker.clone();
    let heartbeat = tokio::spawn(membership::heartbeat(
        db.clone(),
        host.clone(),
        settings.heartbeat_interval(),
        stop.clone(),
    ));
    let periodic = Periodic {
        db: db.clone(),
        host: host.clone(),
        interval: settings.check_provision_state_interval(),
        heartbeat_timeout: settings.heartbeat_timeout(),
        rerouter,
        boot: Arc::new(config.boot.clone()),
        tasks: ctx.clone(),
    };
    let periodic = tokio::spawn(periodic.run(stop.clone()));
    let power_sync = PowerSync::new(ctx.clone());
    let power_sync = tokio::spawn(power_sync.run(stop.clone()));
    let stop2 = stop.clone();
    let host2 = host.clone();
    let done = tokio::spawn(async move {
        consume(&ctx, deliveries, stop2.clone()).await;
        source.stop(&host2).await;
        tracker.close();
        let grace = settings.graceful_shutdown_timeout();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("tasks still running after the graceful shutdown timeout");
        }
        let _ = heartbeat.await;
        let _ = periodic.await;
        let _ = power_sync.await;
        let h = host2.clone();
        let result = db
            .run(move |conn| {
                Node::release_all_for(conn, &h)?;
                Conductor::unregister(conn, &h)
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not deregister cleanly");
        }
        tracing::info!(conductor.hostname = %host2, "conductor stopped");
    });
    Ok(ConductorHandle {
        host,
        journal,
        stop,
        done,
    })
}

/// Takes deliveries until `stop`; each runs in its own task, at most
/// `max_concurrent_tasks` at once; a bad message, an unknown task kind or a
/// panic is dead-lettered.
async fn consume(ctx: &Context, mut deliveries: mpsc::Receiver<Incoming>, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(ctx.settings.max_concurrent_tasks));
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => return,
            d = deliveries.recv() => match d {
                Some(d) => d,
                None => return,
            },
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let ctx = ctx.clone();
        ctx.tracker.clone().spawn(async move {
            let _permit = permit;
            let Incoming {
                payload,
                trace,
                settle,
            } = delivery;
            if settle.is_expired() {
                tracing::warn!("task expired before it could run; discarded");
                return;
            }
            let task = match Task::decode(payload.as_slice()) {
                Ok(task) if task.kind.is_some() => task,
                Ok(_) => return settle.dead_letter("unknown task kind".into()).await,
                Err(e) => return settle.dead_letter(format!("undecodable task: {e}")).await,
            };
            let span = tracing::info_span!(
                "conductor.task",
                task.id = %task.task_id,
                node.uuid = %task.node_uuid,
                request_id = %task.request_id,
                trace_id = tracing::field::Empty,
            );
            telemetry::set_remote_parent(&span, |key| trace.get(key).cloned());
            let outcome = AssertUnwindSafe(tasks::handle(&ctx, task).instrument(span))
                .catch_unwind()
                .await;
            match outcome {
                Ok(reply) => settle.reply(reply).await,
                Err(_) => settle.dead_letter("task handler panicked".into()).await,
            }
        });
    }
}
