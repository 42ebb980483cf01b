//! [`Task`]: one piece of work on one node, as Ironic's `TaskManager`. It
//! owns the node as last read, the node's composed [`Driver`] and, for an
//! exclusive task, the node's lock; it is the only writer of provision
//! states (`transition`, `move_to`, `fail`) and carries work on in the
//! background after the conductor has answered (`spawn_after`).
//!
//! Invariants: an exclusive task holds the `reservation` lock from
//! `exclusive`/`try_exclusive` until `release` (a task dropped without
//! releasing clears the lock in the background); every write goes through
//! the lock and fails with [`TaskError::LockLost`] when another host holds
//! it, and so does every `reload` (the fence before each flow step); interface implementations receive a `Task` and never lock or move
//! provision states on their own.

use std::future::Future;

use ferric_common::db::DbError;
use ferric_common::db::models::inventory::InspectionRecord;
use ferric_common::db::models::node::{AlsoWritten, Node, StateChange};
use ferric_common::db::models::node_json::CorruptColumn;
use ferric_common::notify;
use ferric_common::states::{Event, ProvisionState};
use serde_json::{Map, Value};

use crate::context::Context;
use crate::drivers::Driver;
use crate::reservation::NodeLock;

/// Why a task could not read or write its node.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A write found the node no longer reserved by this conductor.
    #[error("lost the lock on node {0}")]
    LockLost(String),
    /// The node was deleted while the task held it.
    #[error("node {0} vanished")]
    NodeGone(String),
    /// The node's provision state is not one of Ironic's.
    #[error("Node {node} is in an unknown state {state}.")]
    UnknownState { node: String, state: String },
    /// The state machine has no such transition.
    #[error("no {event} transition from {from} for node {node}")]
    NoTransition {
        node: String,
        from: ProvisionState,
        event: &'static str,
    },
    /// A JSON column of the node does not hold an object.
    #[error(transparent)]
    Corrupt(#[from] CorruptColumn),
}

/// The outcome of asking for a node's lock.
pub enum Acquired {
    Locked(Box<Task>),
    /// No such node.
    NotFound,
    /// Another host holds the lock (its name, or `unknown`).
    HeldBy(String),
}

/// One unit of work on one node.
pub struct Task {
    ctx: Context,
    /// The node as last read (or written) by this task.
    pub node: Node,
    /// The node's interfaces, composed from its hardware type and its
    /// `*_interface` fields.
    pub driver: Driver,
    lock: Option<NodeLock>,
    /// An inspection's findings, written with the next state move only
    /// (see [`Task::finish_inspection`]).
    inspection: Option<InspectionRecord>,
}

impl Task {
    fn new(ctx: &Context, node: Node, lock: Option<NodeLock>) -> Task {
        Task {
            ctx: ctx.clone(),
            driver: Driver::for_node(&node),
            node,
            lock,
            inspection: None,
        }
    }

    /// A shared (read-only) task over a node already read: no lock.
    pub fn shared_of(ctx: &Context, node: Node) -> Task {
        Task::new(ctx, node, None)
    }

    /// A shared (read-only) task: no lock; `None` when there is no such node.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn shared(ctx: &Context, node_uuid: &str) -> Result<Option<Task>, TaskError> {
        Ok(load(ctx, node_uuid)
            .await?
            .map(|node| Task::shared_of(ctx, node)))
    }

    /// An exclusive task: the node's lock, tried
    /// `node_locked_retry_attempts` times `node_locked_retry_interval_ms`
    /// apart (Ironic's), and the node read again under it.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn exclusive(ctx: &Context, node_uuid: &str) -> Result<Acquired, TaskError> {
        let Some(node) = load(ctx, node_uuid).await? else {
            return Ok(Acquired::NotFound);
        };
        let lock = NodeLock::acquire_patiently(
            &ctx.db,
            &ctx.host,
            node.id,
            ctx.settings.node_locked_retry_attempts,
            ctx.settings.node_locked_retry_interval(),
        )
        .await?;
        let Some(lock) = lock else {
            let holder = load(ctx, node_uuid)
                .await?
                .and_then(|n| n.reservation)
                .unwrap_or_else(|| "unknown".into());
            return Ok(Acquired::HeldBy(holder));
        };
        Task::reread_under(ctx, node_uuid, lock).await
    }

    /// An exclusive task without waiting (periodic work, heartbeats): `None`
    /// when another host holds the node or it is gone.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn try_exclusive(ctx: &Context, node: &Node) -> Result<Option<Task>, TaskError> {
        let Some(lock) = NodeLock::acquire(&ctx.db, &ctx.host, node.id).await? else {
            return Ok(None);
        };
        match Task::reread_under(ctx, &node.uuid, lock).await? {
            Acquired::Locked(task) => Ok(Some(*task)),
            Acquired::NotFound | Acquired::HeldBy(_) => Ok(None),
        }
    }

    async fn reread_under(
        ctx: &Context,
        node_uuid: &str,
        lock: NodeLock,
    ) -> Result<Acquired, TaskError> {
        match load(ctx, node_uuid).await {
            Ok(Some(node)) => Ok(Acquired::Locked(Box::new(Task::new(ctx, node, Some(lock))))),
            Ok(None) => {
                let _ = lock.release().await;
                Ok(Acquired::NotFound)
            }
            Err(e) => {
                let _ = lock.release().await;
                Err(e.into())
            }
        }
    }

    /// The conductor's shared services.
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// Reads the node again (what others wrote meanwhile: an agent's token).
    /// An exclusive task checks that it still holds the lock: every flow
    /// step reloads before it acts, so a task whose node was taken over
    /// (this conductor was cut off past its heartbeat timeout) stops before
    /// it touches the machine again.
    ///
    /// # Errors
    /// On a database failure, [`TaskError::NodeGone`], or
    /// [`TaskError::LockLost`] when another host (or none) holds the lock.
    pub async fn reload(&mut self) -> Result<(), TaskError> {
        match load(&self.ctx, &self.node.uuid).await? {
            Some(node)
                if self
                    .lock
                    .as_ref()
                    .is_some_and(|lock| node.reservation.as_deref() != Some(lock.host())) =>
            {
                tracing::warn!(
                    node.uuid = %node.uuid,
                    holder = node.reservation.as_deref().unwrap_or("nobody"),
                    "fenced: the node's lock was taken while this task held it; stopping without acting"
                );
                Err(TaskError::LockLost(node.uuid))
            }
            Some(node) => {
                self.driver = Driver::for_node(&node);
                self.node = node;
                Ok(())
            }
            None => Err(TaskError::NodeGone(self.node.uuid.clone())),
        }
    }

    /// Whether the node's cleaning runs a runbook's steps in order, as a
    /// manual clean's (`driver_internal_info` `declarative_cleaning`, set by
    /// automated cleaning by runbook).
    pub fn cleaning_by_runbook(&self) -> bool {
        self.node
            .driver_internal_info_map()
            .is_ok_and(|info| info.get("declarative_cleaning") == Some(&Value::Bool(true)))
    }

    /// The node's provision state.
    ///
    /// # Errors
    /// [`TaskError::UnknownState`] for a state that is not Ironic's.
    pub fn provision_state(&self) -> Result<ProvisionState, TaskError> {
        self.node
            .provision_state
            .parse()
            .map_err(|_| TaskError::UnknownState {
                node: self.node.uuid.clone(),
                state: self.node.provision_state.clone(),
            })
    }

    /// Writes `change` (no provision state of its own) under the lock.
    ///
    /// # Errors
    /// [`TaskError::LockLost`] when the node is no longer reserved by this
    /// host.
    pub async fn write(&self, change: StateChange) -> Result<(), TaskError> {
        let (host, id) = (self.ctx.host.clone(), self.node.id);
        let written = self
            .ctx
            .db
            .run(move |conn| Node::write_state(conn, id, &host, &change))
            .await?;
        if written {
            Ok(())
        } else {
            Err(TaskError::LockLost(self.node.uuid.clone()))
        }
    }

    /// Merges `entries` into `driver_internal_info` under the lock, keeping
    /// every other key as it is in the database.
    ///
    /// # Errors
    /// [`TaskError::LockLost`] when the node is no longer this host's.
    pub async fn merge_internal_info(&self, entries: Map<String, Value>) -> Result<(), TaskError> {
        use ferric_common::db::models::node::{InternalInfoMerge, MergeGuard};
        let (host, id) = (self.ctx.host.clone(), self.node.id);
        let merged = self
            .ctx
            .db
            .run(move |conn| Node::merge_internal_info(conn, id, &host, &entries, MergeGuard::None))
            .await?;
        match merged {
            InternalInfoMerge::Merged
            | InternalInfoMerge::AlreadyPresent
            | InternalInfoMerge::Differs(_) => Ok(()),
            InternalInfoMerge::NotFound => Err(TaskError::NodeGone(self.node.uuid.clone())),
            InternalInfoMerge::Locked(_) | InternalInfoMerge::Contended => {
                Err(TaskError::LockLost(self.node.uuid.clone()))
            }
        }
    }

    /// Fires `event` from the node's state: writes the state it leads to
    /// with `change`, notifies, and returns the new state.
    ///
    /// # Errors
    /// [`TaskError::NoTransition`], or the write's failure.
    pub async fn transition(
        &mut self,
        event: Event,
        change: StateChange,
    ) -> Result<ProvisionState, TaskError> {
        let current = self.provision_state()?;
        let next = current.next(event).ok_or_else(|| TaskError::NoTransition {
            node: self.node.uuid.clone(),
            from: current,
            event: event.as_str(),
        })?;
        self.move_to(event, next, change).await?;
        Ok(next)
    }

    /// Writes the move to `next` (fired by `event`) with `change`, under the
    /// lock, `driver_internal_info` merged over what others wrote since the
    /// node was read; a `target_provision_state` already in `change` is
    /// kept. Tear-down's end (`deleting` --clean-->) ends the node's
    /// allocation in the same transaction, as Ironic does.
    ///
    /// # Errors
    /// [`TaskError::LockLost`] when the node is no longer this host's.
    pub async fn move_to(
        &mut self,
        event: Event,
        next: ProvisionState,
        mut change: StateChange,
    ) -> Result<(), TaskError> {
        let current = self.provision_state()?;
        let base = StateChange::provision(next);
        change.provision_state = base.provision_state;
        if change.target_provision_state.is_none() {
            change.target_provision_state = base.target_provision_state;
        }
        change.provision_updated_at = base.provision_updated_at;
        let error_text = change.last_error.clone().flatten();
        let destroy_allocation = self
            .node
            .allocation_id
            .filter(|_| current == ProvisionState::Deleting && event == Event::Clean);
        let inspection = self.inspection.take();
        let (host, id) = (self.ctx.host.clone(), self.node.id);
        let seen = self.node.driver_internal_info.clone();
        let written = self
            .ctx
            .db
            .run(move |conn| {
                let also = match (&inspection, destroy_allocation) {
                    (Some(record), _) => AlsoWritten::Inspection(record),
                    (None, Some(allocation)) => AlsoWritten::AllocationDestroyed(allocation),
                    (None, None) => AlsoWritten::Nothing,
                };
                Node::write_flow_state(conn, id, &host, &change, &seen, also)
            })
            .await?;
        if !written {
            return Err(TaskError::LockLost(self.node.uuid.clone()));
        }
        self.ctx.notifier.send(notify::provision_set(
            &self.node,
            event.as_str(),
            next,
            error_text.as_deref(),
        ));
        tracing::info!(node.uuid = %self.node.uuid, from = %current, event = event.as_str(), to = %next, "provision state changed");
        // What the next step reads: the state moved.
        self.node.provision_state = next.as_str().to_owned();
        Ok(())
    }

    /// Records an inspection's outcome without a state change (an
    /// auto-discovered node stays in `enroll`, as in Ironic): `change` with
    /// `record` (ports, traits, the stored inventory) in one transaction.
    ///
    /// # Errors
    /// [`TaskError::LockLost`] when the node is no longer this host's.
    pub async fn record_inspection(
        &mut self,
        change: StateChange,
        record: InspectionRecord,
    ) -> Result<(), TaskError> {
        let (host, id) = (self.ctx.host.clone(), self.node.id);
        let seen = self.node.driver_internal_info.clone();
        let written = self
            .ctx
            .db
            .run(move |conn| {
                Node::write_flow_state(
                    conn,
                    id,
                    &host,
                    &change,
                    &seen,
                    AlsoWritten::Inspection(&record),
                )
            })
            .await?;
        if written {
            Ok(())
        } else {
            Err(TaskError::LockLost(self.node.uuid.clone()))
        }
    }

    /// Ends an inspection: fires `event` with `change`, writing `record`
    /// (ports, traits, the stored inventory) in the same transaction.
    ///
    /// # Errors
    /// As [`Task::transition`]; nothing of `record` is written then.
    pub async fn finish_inspection(
        &mut self,
        event: Event,
        change: StateChange,
        record: InspectionRecord,
    ) -> Result<ProvisionState, TaskError> {
        self.inspection = Some(record);
        let moved = self.transition(event, change).await;
        self.inspection = None;
        moved
    }

    /// Fails the node from its state with `reason` as `last_error` (and
    /// `change`), so it never stays in a transient state unlocked.
    ///
    /// # Errors
    /// [`TaskError::NoTransition`] from a state without a failure, or the
    /// write's failure.
    pub async fn fail(&mut self, reason: String, mut change: StateChange) -> Result<(), TaskError> {
        change.last_error = Some(Some(reason));
        self.transition(Event::Fail, change).await.map(|_| ())
    }

    /// Carries `work` on after the conductor has answered, holding the
    /// lock; the lock is released when `work` ends (a panic releases it in
    /// the background). Shutdown waits for it.
    pub fn spawn_after<W, F>(self, work: W)
    where
        W: FnOnce(Task) -> F + Send + 'static,
        F: Future<Output = Task> + Send + 'static,
    {
        let tracker = self.ctx.tracker.clone();
        tracker.spawn(async move {
            let task = work(self).await;
            task.release().await;
        });
    }

    /// Releases the lock (nothing for a shared task); a lock the database
    /// did not take back is remembered, and released by the periodic pass
    /// once it answers ([`crate::unsettled`]).
    pub async fn release(self) {
        let Task {
            node, lock, ctx, ..
        } = self;
        if let Some(lock) = lock
            && let Err(e) = lock.release().await
        {
            tracing::error!(node.uuid = %node.uuid, error = %e, "could not release node lock");
            ctx.unsettled.remember(node.id, &node.uuid, None);
        }
    }
}

/// Loads a node by UUID.
///
/// # Errors
/// On a database failure.
pub async fn load(ctx: &Context, node_uuid: &str) -> Result<Option<Node>, DbError> {
    let uuid = node_uuid.to_owned();
    ctx.db.run(move |conn| Node::by_uuid(conn, &uuid)).await
}
