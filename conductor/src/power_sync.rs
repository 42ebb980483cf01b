//! Periodic power-state sync, as Ironic's `_sync_power_states`: every
//! `sync_power_state_interval_secs` the conductor reads the power state of
//! each unlocked node it owns whose power interface talks to hardware
//! (those whose `syncs_power_state` says so), and on a mismatch either sets the hardware back to the
//! recorded state (`force_power_state_during_sync`, the default) or records
//! what the hardware says. A node whose state cannot be read (or keeps
//! drifting) more than `power_state_sync_max_retries` sweeps in a row goes
//! into maintenance with fault `power failure`, recorded in its history.
//!
//! Invariants: reads need no lock; every change is made under the node's
//! lock, taken without waiting (a busy node is left for the next sweep) and
//! re-checked after it is taken; nodes in `deploy wait`, `clean wait`,
//! `enroll`, `adopt failed` or in maintenance are never changed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferric_common::cluster::ClusterView;
use ferric_common::config::ConductorSettings;
use ferric_common::db::models::history::HistoryEvent;
use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::db::{Db, DbError};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::drivers;
use crate::task::Task;

/// Ironic's `SYNC_EXCLUDED_STATES`.
const SYNC_EXCLUDED_STATES: [&str; 4] = ["wait call-back", "clean wait", "enroll", "adopt failed"];

/// Ironic's fault for a node whose power state cannot be kept in sync.
pub const POWER_FAILURE: &str = "power failure";

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Nodes whose power state was read.
    pub checked: usize,
    /// Nodes whose hardware agreed with the record.
    pub matched: usize,
    /// Hardware set back to the recorded state.
    pub forced: usize,
    /// Records changed to what the hardware says.
    pub recorded: usize,
    /// Nodes whose power state could not be read.
    pub failed: usize,
    /// Nodes put into maintenance.
    pub maintenance: usize,
    /// How long the sweep took.
    pub elapsed: Duration,
}

enum Outcome {
    Matched,
    Forced,
    Recorded,
    Failed,
    Maintenance,
    Skipped,
}

/// The sync loop of one conductor.
pub struct PowerSync {
    ctx: Context,
    db: Db,
    host: String,
    settings: std::sync::Arc<ConductorSettings>,
    /// Failed or drifting sweeps in a row, per node id.
    failures: HashMap<i32, u32>,
}

impl PowerSync {
    pub fn new(ctx: Context) -> Self {
        PowerSync {
            db: ctx.db.clone(),
            host: ctx.host.clone(),
            settings: ctx.settings.clone(),
            ctx,
            failures: HashMap::new(),
        }
    }

    /// Sweeps every `sync_power_state_interval_secs` until `stop` (never
    /// when the interval is 0).
    pub async fn run(mut self, stop: CancellationToken) {
        if self.settings.sync_power_state_interval_secs == 0 {
            return;
        }
        let mut ticker = tokio::time::interval(Duration::from_secs(
            self.settings.sync_power_state_interval_secs,
        ));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.sweep().await {
                Ok(report) if report.checked > 0 => tracing::debug!(?report, "power state sync"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "power state sync failed; will retry"),
            }
        }
    }

    /// One sweep over the nodes this conductor owns.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn sweep(&mut self) -> Result<SweepReport, DbError> {
        let started = Instant::now();
        let timeout = self.settings.heartbeat_timeout();
        let host = self.host.clone();
        let synced = drivers::synced_power_interfaces();
        let nodes = self
            .db
            .run(move |conn| {
                let view = ClusterView::load(conn, timeout)?;
                Ok(Node::unreserved_with_power_interfaces(conn, &synced)?
                    .into_iter()
                    .filter(|n| {
                        view.owner(&n.conductor_group, &n.driver, &n.uuid) == Some(host.as_str())
                    })
                    .collect::<Vec<Node>>())
            })
            .await?;
        let this = &*self;
        let outcomes: Vec<(i32, Outcome)> = futures_util::stream::iter(nodes)
            .map(|node| async move {
                let count = this.failures.get(&node.id).copied().unwrap_or(0);
                let id = node.id;
                (id, this.sync_node(node, count).await)
            })
            .buffer_unordered(self.settings.sync_power_state_workers)
            .collect()
            .await;
        let mut report = SweepReport::default();
        for (id, outcome) in outcomes {
            let count = self.failures.get(&id).copied().unwrap_or(0);
            let next = match outcome {
                Outcome::Matched => {
                    report.matched += 1;
                    0
                }
                Outcome::Skipped => 0,
                Outcome::Forced => {
                    report.forced += 1;
                    count + 1
                }
                Outcome::Recorded => {
                    report.recorded += 1;
                    count + 1
                }
                Outcome::Failed => {
                    report.failed += 1;
                    count + 1
                }
                Outcome::Maintenance => {
                    report.maintenance += 1;
                    0
                }
            };
            if !matches!(outcome, Outcome::Skipped) {
                report.checked += 1;
            }
            if next == 0 {
                self.failures.remove(&id);
            } else {
                self.failures.insert(id, next);
            }
        }
        report.elapsed = started.elapsed();
        ferric_common::metrics::global().power_sync_sweep(report.checked, report.elapsed);
        Ok(report)
    }

    /// Syncs one node; `count` is how many sweeps in a row failed for it.
    async fn sync_node(&self, node: Node, count: u32) -> Outcome {
        let task = Task::shared_of(&self.ctx, node);
        if task.driver.power.validate(&task).is_err() {
            // Unusable driver_info: Ironic skips such nodes.
            return Outcome::Skipped;
        }
        let node = &task.node;
        let max = self.settings.power_state_sync_max_retries;
        let actual = match task.driver.power.get_power_state(&task).await {
            Ok(Some(state)) => state,
            Ok(None) => return Outcome::Skipped,
            Err(e) => {
                if count + 1 > max {
                    return self.give_up(node, None, Some(&e.to_string())).await;
                }
                tracing::warn!(node.uuid = %node.uuid, attempt = count + 1, retries = max, error = %e,
                    "During sync_power_state, could not get power state");
                return Outcome::Failed;
            }
        };
        if node.power_state.as_deref() == Some(actual) {
            if node.last_error.is_some() {
                let _ = self
                    .under_lock(node, |conn, id, host| {
                        let change = StateChange {
                            last_error: Some(None),
                            ..StateChange::default()
                        };
                        Node::write_state(conn, id, host, &change)
                    })
                    .await;
            }
            return Outcome::Matched;
        }
        // A mismatch: look again under the lock.
        let Ok(Some(node)) = self.lock_and_reload(node).await else {
            return Outcome::Skipped;
        };
        let outcome = self.correct(&node, actual, count).await;
        self.release(&node).await;
        outcome
    }

    /// Settles a mismatch on a node this conductor now holds.
    async fn correct(&self, node: &Node, actual: &'static str, count: u32) -> Outcome {
        if node.power_state.as_deref() == Some(actual) {
            return Outcome::Matched;
        }
        if SYNC_EXCLUDED_STATES.contains(&node.provision_state.as_str()) || node.maintenance {
            return Outcome::Skipped;
        }
        let Some(recorded) = node.power_state.clone() else {
            tracing::info!(node.uuid = %node.uuid, state = actual,
                "During sync_power_state, node has no previous known state; recording it");
            return match self.record(node, actual).await {
                Ok(()) => Outcome::Recorded,
                Err(_) => Outcome::Failed,
            };
        };
        if count + 1 > self.settings.power_state_sync_max_retries {
            return self.give_up_locked(node, Some(actual), None).await;
        }
        if self.settings.force_power_state_during_sync {
            tracing::warn!(node.uuid = %node.uuid, actual, state = %recorded,
                "During sync_power_state, node state does not match expected state; changing hardware state");
            let task = Task::shared_of(&self.ctx, node.clone());
            let timeout = self.settings.power_state_change_timeout();
            if let Err(e) = task
                .driver
                .power
                .set_power_state(&task, &recorded, timeout)
                .await
            {
                tracing::error!(node.uuid = %node.uuid, error = %e, state = %recorded,
                    "Failed to change power state of node during sync");
            }
            Outcome::Forced
        } else {
            tracing::warn!(node.uuid = %node.uuid, actual, state = %recorded,
                "During sync_power_state, node state does not match expected state; updating recorded state");
            match self.record(node, actual).await {
                Ok(()) => Outcome::Recorded,
                Err(_) => Outcome::Failed,
            }
        }
    }

    async fn record(&self, node: &Node, actual: &'static str) -> Result<(), DbError> {
        let (id, host) = (node.id, self.host.clone());
        let change = StateChange {
            power_state: Some(Some(actual.to_owned())),
            ..StateChange::default()
        };
        self.db
            .run(move |conn| Node::write_state(conn, id, &host, &change))
            .await
            .map(|_| ())
    }

    /// Max retries exceeded (Ironic's
    /// `handle_sync_power_state_max_retries_exceeded`) on an unlocked node.
    async fn give_up(&self, node: &Node, actual: Option<&str>, error: Option<&str>) -> Outcome {
        let Ok(Some(node)) = self.lock_and_reload(node).await else {
            return Outcome::Skipped;
        };
        let outcome = self.give_up_locked(&node, actual, error).await;
        self.release(&node).await;
        outcome
    }

    async fn give_up_locked(
        &self,
        node: &Node,
        actual: Option<&str>,
        error: Option<&str>,
    ) -> Outcome {
        let mut message = format!(
            "During sync_power_state, max retries exceeded for node {}, node state {} does not match expected state '{}'. Updating DB state to '{}' Switching node to maintenance mode.",
            node.uuid,
            actual.unwrap_or("None"),
            node.power_state.as_deref().unwrap_or("None"),
            actual.unwrap_or("None"),
        );
        if let Some(error) = error {
            message.push_str(&format!(" Error: {error}"));
        }
        tracing::error!(node.uuid = %node.uuid, "{message}");
        let (id, host, state) = (node.id, self.host.clone(), node.provision_state.clone());
        let actual = actual.map(str::to_owned);
        let written = self
            .db
            .run(move |conn| {
                let change = StateChange {
                    power_state: Some(actual.clone()),
                    ..StateChange::default()
                };
                Node::write_state(conn, id, &host, &change)?;
                HistoryEvent {
                    node_id: id,
                    conductor: &host,
                    event_type: "monitoring",
                    severity: "ERROR",
                    event: &message,
                    state: &state,
                }
                .record(conn)?;
                Node::enter_maintenance(conn, id, &host, &message, POWER_FAILURE)
            })
            .await;
        match written {
            Ok(_) => Outcome::Maintenance,
            Err(_) => Outcome::Failed,
        }
    }

    /// Takes the node's lock without waiting and re-reads it; `None` when
    /// someone else holds it.
    async fn lock_and_reload(&self, node: &Node) -> Result<Option<Node>, DbError> {
        let (id, host) = (node.id, self.host.clone());
        self.db
            .run(move |conn| {
                if !Node::try_reserve(conn, id, &host)? {
                    return Ok(None);
                }
                Node::by_id(conn, id)
            })
            .await
    }

    async fn release(&self, node: &Node) {
        let (id, host) = (node.id, self.host.clone());
        if let Err(e) = self
            .db
            .run(move |conn| Node::release(conn, id, &host))
            .await
        {
            tracing::error!(node.uuid = %node.uuid, error = %e, "could not release node lock after power sync");
        }
    }

    async fn under_lock<F>(&self, node: &Node, f: F) -> Result<(), DbError>
    where
        F: Fn(&mut ferric_common::db::AnyConnection, i32, &str) -> Result<bool, DbError>
            + Send
            + Sync
            + 'static,
    {
        let Some(node) = self.lock_and_reload(node).await? else {
            return Ok(());
        };
        let (id, host) = (node.id, self.host.clone());
        let result = self.db.run(move |conn| f(conn, id, &host)).await;
        self.release(&node).await;
        result.map(|_| ())
    }
}
