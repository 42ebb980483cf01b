//! `Conductor::start`: registers, sweeps, heartbeats and consumes tasks until
//! shut down, then drains and deregisters.
//!
//! Shutdown order (kube's graceful shutdown): stop consuming, let running
//! tasks finish within `graceful_shutdown_timeout_secs`, release this host's
//! reservations, deregister.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use ferric_common::config::ConductorSettings;
use ferric_common::db::models::conductor::Conductor;
use ferric_common::db::models::node::Node;
use ferric_common::db::{Db, DbError};
use ferric_common::queue::local::{Delivery, LocalQueue};
use ferric_proto::v1::Task;
use futures_util::FutureExt;
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::membership;
use crate::tasks::{self, Context};

/// Errors that stop a conductor from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] membership::UnknownHardwareType),
    #[error("conductor start-up: {0}")]
    Db(#[from] DbError),
}

/// A running conductor.
pub struct ConductorHandle {
    host: String,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl ConductorHandle {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Stops consuming, drains and deregisters; returns when done.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }
}

/// Starts a conductor named `host` consuming from the embedded queue.
///
/// # Errors
/// When the configuration names an unknown hardware type or the database
/// cannot be written.
pub async fn start_local(
    settings: ConductorSettings,
    host: String,
    db: Db,
    queue: LocalQueue,
) -> Result<ConductorHandle, StartError> {
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
    let tracker = TaskTracker::new();
    let ctx = Context {
        db: db.clone(),
        host: host.clone(),
        settings: settings.clone(),
        tracker: tracker.clone(),
    };
    let deliveries = queue.consume(&host);
    let heartbeat = tokio::spawn(membership::heartbeat(
        db.clone(),
        host.clone(),
        Duration::from_secs(settings.heartbeat_interval_secs),
        stop.clone(),
    ));
    let stop2 = stop.clone();
    let host2 = host.clone();
    let done = tokio::spawn(async move {
        consume(&ctx, &queue, deliveries, stop2.clone()).await;
        queue.cancel(&host2);
        tracker.close();
        let grace = Duration::from_secs(settings.graceful_shutdown_timeout_secs);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("tasks still running after the graceful shutdown timeout");
        }
        let _ = heartbeat.await;
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
    Ok(ConductorHandle { host, stop, done })
}

/// Takes deliveries until `stop`; each runs in its own task, at most
/// `max_concurrent_tasks` at once; a panic or a bad message is dead-lettered.
async fn consume(
    ctx: &Context,
    queue: &LocalQueue,
    mut deliveries: mpsc::Receiver<Delivery>,
    stop: CancellationToken,
) {
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
        let queue = queue.clone();
        ctx.tracker.clone().spawn(async move {
            let _permit = permit;
            if delivery.is_expired() {
                tracing::warn!("task expired before it could run; discarded");
                return;
            }
            let task = match Task::decode(delivery.payload.as_slice()) {
                Ok(task) => task,
                Err(e) => {
                    let payload = delivery.payload.clone();
                    queue.dead_letter(&ctx.host, format!("undecodable task: {e}"), payload);
                    return;
                }
            };
            let span = tracing::info_span!(
                "conductor.task",
                task.id = %task.task_id,
                node.uuid = %task.node_uuid,
                request_id = %task.request_id
            );
            let payload = delivery.payload.clone();
            let outcome = AssertUnwindSafe(tasks::handle(&ctx, task))
                .catch_unwind()
                .await;
            let _enter = span.enter();
            match outcome {
                Ok(reply) => delivery.reply(reply),
                Err(_) => queue.dead_letter(&ctx.host, "task handler panicked".into(), payload),
            }
        });
    }
}
