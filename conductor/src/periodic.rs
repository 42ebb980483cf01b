//! The conductor's periodic work, one pass every
//! `check_provision_state_interval_secs` until shutdown:
//! - takeover of nodes locked by dead conductors ([`crate::takeover`]);
//! - in the distributed mode, the tasks left in the queues of conductors
//!   that died (or stopped) recently move to the nodes' new owners
//!   ([`Rerouter`]), so their callers, still waiting, get an answer;
//!   neither this nor takeover within a heartbeat timeout of a database
//!   outage (when every conductor's heartbeat is old, not only a dead one's);
//! - task receipts past their retention are pruned;
//! - `direct` deploys whose agent has not called back within
//!   `deploy_callback_timeout_secs` fail, and agent inspections with no data
//!   within `inspect_wait_timeout_secs`;
//! - allocations left `allocating` by a conductor that died (or never
//!   answered) are filled by the live conductor their UUID picks;
//! - boot files of nodes that no longer exist (deleted while deployed, in
//!   maintenance) are removed from this host's `http_root` and `tftp_root`.
//!
//! - nodes whose outcome or lock a database outage longer than
//!   `[database] outage_tolerance_secs` kept from being written get it
//!   written ([`crate::unsettled`]);
//!
//! Invariant: a pass acts only on what this conductor owns by the ring
//! (takeover) or on messages whose callers still wait (re-routing); a failed
//! pass changes nothing half-way and the next one retries.

use std::sync::Arc;
use std::time::Duration;

use ferric_common::cluster::ClusterView;
use ferric_common::config::BootConfig;
use ferric_common::db::models::allocation::Allocation;
use ferric_common::db::models::conductor::Conductor;
use ferric_common::db::models::node::Node;
use ferric_common::db::models::receipt::TaskReceipt;
use ferric_common::db::{Db, DbError};
use ferric_common::queue::reroute::Rerouter;
use ferric_common::states::ProvisionState;
use ferric_proto::v1::Task as TaskMessage;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::drivers;
use crate::takeover;
use crate::task::Task;

/// How long after its last heartbeat a dead conductor's queue is still
/// drained: far past any task's expiration.
const DRAIN_WINDOW: Duration = Duration::from_secs(600);

/// What a pass needs.
pub struct Periodic {
    pub db: Db,
    pub host: String,
    pub interval: Duration,
    pub heartbeat_timeout: Duration,
    /// `None` in the embedded mode (no other conductor's queue to drain).
    pub rerouter: Option<Rerouter>,
    pub boot: Arc<BootConfig>,
    /// What task handlers get: the allocation sweep runs their code.
    pub tasks: Context,
}

impl Periodic {
    /// Runs a pass every `interval` until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.pass().await;
        }
    }

    async fn pass(&mut self) {
        let owed = &self.tasks.unsettled;
        match owed
            .settle(&self.db, &self.host, &self.tasks.notifier)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "settled nodes a database outage left locked"),
            Err(e) => {
                tracing::warn!(error = %e, "could not settle nodes a database outage left locked; will retry")
            }
        }
        match takeover::take_over_orphans(&self.db, &self.host, self.heartbeat_timeout).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "took over nodes of dead conductors"),
            Err(e) => tracing::warn!(error = %e, "takeover check failed; will retry"),
        }
        if let Err(e) = self.reroute().await {
            tracing::warn!(error = %e, "re-routing check failed; will retry");
        }
        if let Err(e) = self.remove_orphan_boot_files().await {
            tracing::warn!(error = %e, "could not look for orphaned boot files");
        }
        if let Err(e) = self.time_out_waits().await {
            tracing::warn!(error = %e, "could not look for deploys waiting too long");
        }
        if let Err(e) = self.sweep_allocations().await {
            tracing::warn!(error = %e, "could not look for abandoned allocations");
        }
        match self.db.run(TaskReceipt::prune).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(count = n, "pruned task receipts"),
            Err(e) => tracing::warn!(error = %e, "could not prune task receipts"),
        }
    }

    /// Fails the deploys and inspections of nodes this conductor owns that
    /// waited longer than `deploy_callback_timeout_secs` /
    /// `inspect_wait_timeout_secs` for their agent.
    async fn time_out_waits(&self) -> Result<(), DbError> {
        let timeout = self.heartbeat_timeout;
        let settings = &self.tasks.settings;
        let since = |limit: Duration| {
            ferric_common::db::now() - chrono::Duration::from_std(limit).unwrap_or_default()
        };
        let (deploys, inspections) = (
            since(settings.deploy_callback_timeout()),
            since(settings.inspect_wait_timeout()),
        );
        let (view, waiting) = self
            .db
            .run(move |conn| {
                let mut waiting =
                    Node::waiting_since(conn, ProvisionState::DeployWait.as_str(), deploys)?;
                waiting.extend(Node::waiting_since(
                    conn,
                    ProvisionState::CleanWait.as_str(),
                    deploys,
                )?);
                waiting.extend(Node::waiting_since(
                    conn,
                    ProvisionState::InspectWait.as_str(),
                    inspections,
                )?);
                Ok((ClusterView::load(conn, timeout)?, waiting))
            })
            .await?;
        for node in waiting {
            let mine = view.owner(&node.conductor_group, &node.driver, &node.uuid)
                == Some(self.host.as_str());
            if mine {
                tracing::warn!(node.uuid = %node.uuid, state = %node.provision_state, "timed out waiting for the agent");
                time_out_wait(&self.tasks, &node).await;
            }
        }
        Ok(())
    }

    /// Fills allocations still `allocating` a heartbeat timeout after they
    /// were made whose conductor is gone (or was never recorded); each is
    /// taken by one live conductor, the one its UUID picks.
    async fn sweep_allocations(&self) -> Result<(), DbError> {
        let timeout = self.heartbeat_timeout;
        let before =
            ferric_common::db::now() - chrono::Duration::from_std(timeout).unwrap_or_default();
        let (view, stale) = self
            .db
            .run(move |conn| {
                Ok((
                    ClusterView::load(conn, timeout)?,
                    Allocation::stale_allocating(conn, before)?,
                ))
            })
            .await?;
        for alloc in stale {
            let handler_alive = alloc.conductor_affinity.is_some_and(|id| {
                view.conductors()
                    .iter()
                    .any(|c| c.id == id && view.is_alive(&c.hostname))
            });
            if handler_alive || view.any_alive(&alloc.uuid) != Some(self.host.as_str()) {
                continue;
            }
            let (host, id) = (self.host.clone(), alloc.id);
            let recorded = self
                .db
                .run(move |conn| match Conductor::by_hostname(conn, &host)? {
                    Some(me) => Allocation::set_affinity(conn, id, me.id).map(|()| true),
                    None => Ok(false),
                })
                .await?;
            if !recorded {
                // Not registered (shutting down): another conductor takes it.
                continue;
            }
            tracing::warn!(allocation.uuid = %alloc.uuid, "taking over an abandoned allocation");
            let ctx = self.tasks.clone();
            self.tasks.tracker.spawn(async move {
                crate::tasks::allocation::resume(&ctx, alloc).await;
            });
        }
        Ok(())
    }

    async fn remove_orphan_boot_files(&self) -> Result<(), DbError> {
        let boot = self.boot.clone();
        let dirs =
            ferric_common::telemetry::spawn_blocking(move || drivers::nodes_with_boot_files(&boot))
                .await
                .unwrap_or_default();
        if dirs.is_empty() {
            return Ok(());
        }
        let candidates = dirs.clone();
        let existing = self
            .db
            .run(move |conn| Node::existing_uuids(conn, &candidates))
            .await?;
        let orphans: Vec<String> = dirs.into_iter().filter(|u| !existing.contains(u)).collect();
        let boot = self.boot.clone();
        let _ = ferric_common::telemetry::spawn_blocking(move || {
            for uuid in orphans {
                if drivers::remove_boot_files_of(&boot, &uuid) {
                    tracing::info!(node.uuid = %uuid, "removed the boot files of a deleted node");
                }
            }
        })
        .await;
        Ok(())
    }

    /// Drains the queues of conductors that stopped heartbeating within
    /// [`DRAIN_WINDOW`].
    async fn reroute(&mut self) -> Result<(), DbError> {
        let Some(rerouter) = self.rerouter.as_mut() else {
            return Ok(());
        };
        let timeout = self.heartbeat_timeout;
        let clock = self.db.outage_clock();
        let view = self
            .db
            .run(move |conn| {
                // Every heartbeat is old right after an outage (takeover's rule).
                if clock.reachable_for() < timeout {
                    return Ok(None);
                }
                ClusterView::load(conn, timeout).map(Some)
            })
            .await?;
        let Some(view) = view else {
            return Ok(());
        };
        let window = chrono::Duration::from_std(DRAIN_WINDOW + timeout).unwrap_or_default();
        let since = ferric_common::db::now() - window;
        let dead: Vec<String> = view
            .conductors()
            .iter()
            .filter(|c| !view.is_alive(&c.hostname) && c.updated_at.is_some_and(|t| t > since))
            .map(|c| c.hostname.clone())
            .collect();
        let view = Arc::new(view);
        for host in dead {
            let owner_of = |task: &TaskMessage| {
                owner_of(self.db.clone(), view.clone(), task.node_uuid.clone())
            };
            match rerouter.drain(&host, owner_of).await {
                Ok(done) if done.moved + done.expired + done.dead_lettered > 0 => {
                    tracing::warn!(dead = %host, moved = done.moved, expired = done.expired, dead_lettered = done.dead_lettered, left = done.left, "drained a dead conductor's queue");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(dead = %host, error = %e, "could not drain a dead conductor's queue")
                }
            }
        }
        Ok(())
    }
}

/// Fails a deploy or an inspection that waited too long for its agent
/// (Ironic's `cleanup_after_timeout` and inspect-wait timeout): the deploy
/// or inspect interface undoes what it started, the node goes to `deploy
/// failed` / `inspect failed`. A node taken meanwhile, or one that moved on
/// since it was read, is left alone.
async fn time_out_wait(ctx: &Context, seen: &Node) {
    let mut task = match Task::try_exclusive(ctx, seen).await {
        Ok(Some(task)) => task,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(node.uuid = %seen.uuid, error = %e, "could not take a timed-out node");
            return;
        }
    };
    let unchanged = task.node.provision_state == seen.provision_state
        && task.node.provision_updated_at == seen.provision_updated_at;
    let outcome = if !unchanged {
        None
    } else if seen.provision_state == ProvisionState::CleanWait.as_str() {
        // As Ironic: the step in Python's notation, and a node whose step
        // was running goes into maintenance with fault `clean failure`.
        let step: serde_json::Value =
            serde_json::from_str(&task.node.clean_step).unwrap_or_default();
        let running = step.as_object().is_some_and(|s| !s.is_empty());
        let reason = format!(
            "Timeout reached while cleaning the node. Please check if the ramdisk responsible for the cleaning is running on the node. Failed on step {}.",
            ferric_common::py::py_repr(&step)
        );
        let mut change = task.driver.deploy.clean_up(&task).await;
        if running {
            change.maintenance = Some(true);
            change.fault = Some(Some("clean failure".into()));
            if task.node.maintenance_reason.is_none() {
                change.maintenance_reason = Some(Some(reason.clone()));
            }
        }
        Some(task.fail(reason, change).await)
    } else if seen.provision_state == ProvisionState::DeployWait.as_str() {
        let reason = format!(
            "Timeout reached while waiting for callback for node {}",
            task.node.uuid
        );
        let change = task.driver.deploy.clean_up(&task).await;
        Some(task.fail(reason, change).await)
    } else if seen.provision_state == ProvisionState::InspectWait.as_str() {
        let change = task.driver.inspect.clean_up(&task).await;
        Some(
            task.fail("Timeout reached while inspecting the node".into(), change)
                .await,
        )
    } else {
        None
    };
    if let Some(Err(e)) = outcome {
        tracing::error!(node.uuid = %task.node.uuid, error = %e, "could not fail a timed-out node");
    }
    task.release().await;
}

/// The live owner of the task's node; a task for a node that no longer
/// exists goes to any live conductor, which refuses it as Ironic would.
async fn owner_of(db: Db, view: Arc<ClusterView>, uuid: String) -> Option<String> {
    let node = db.run(move |conn| Node::by_uuid(conn, &uuid)).await.ok()?;
    match node {
        Some(node) => view
            .owner(&node.conductor_group, &node.driver, &node.uuid)
            .map(str::to_owned),
        None => view
            .conductors()
            .iter()
            .find(|c| view.is_alive(&c.hostname))
            .map(|c| c.hostname.clone()),
    }
}
