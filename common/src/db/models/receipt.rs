//! Task receipts: the ids of tasks a conductor has accepted. RabbitMQ
//! delivers at least once (a conductor that dies or loses the broker between
//! its commit and its ack sees the task again), so the commit that starts a
//! task's action also records its id, and a task whose id is already here is
//! answered without acting twice.
//!
//! Invariant: a receipt is written in the same transaction as the node's
//! in-progress state, under the node's lock; receipts older than
//! [`RECEIPT_RETENTION`] are pruned (a task expires long before that).

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::task_receipts;
use crate::db::{AnyConnection, DbError, now};

use super::node::{Node, StateChange};

/// How long a receipt is kept: far past any task's expiration.
pub const RECEIPT_RETENTION: Duration = Duration::from_secs(3600);

pub struct TaskReceipt;

impl TaskReceipt {
    /// Whether the task `task_id` was already accepted.
    pub fn exists(conn: &mut AnyConnection, task_id: &str) -> Result<bool, DbError> {
        Ok(diesel::select(diesel::dsl::exists(
            task_receipts::table.filter(task_receipts::task_id.eq(task_id)),
        ))
        .get_result(conn)?)
    }

    /// Commits `change` to node `id` (which `host` must hold) and records
    /// `task_id` as accepted, in one transaction. Returns false, changing
    /// nothing, when `host` no longer holds the node.
    pub fn commit_start(
        conn: &mut AnyConnection,
        id: i32,
        host: &str,
        change: &StateChange,
        task_id: &str,
    ) -> Result<bool, DbError> {
        conn.transaction(|conn| {
            let written = Node::write_state(conn, id, host, change)?;
            if written && !task_id.is_empty() {
                diesel::insert_into(task_receipts::table)
                    .values((
                        task_receipts::task_id.eq(task_id),
                        task_receipts::node_id.eq(id),
                        task_receipts::conductor.eq(host),
                        task_receipts::created_at.eq(now()),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, DbError>(written)
        })
    }

    /// Deletes receipts older than [`RECEIPT_RETENTION`]; returns how many.
    pub fn prune(conn: &mut AnyConnection) -> Result<usize, DbError> {
        let retention = chrono::Duration::from_std(RECEIPT_RETENTION).unwrap_or_default();
        let cutoff: NaiveDateTime = now() - retention;
        Ok(
            diesel::delete(task_receipts::table.filter(task_receipts::created_at.lt(cutoff)))
                .execute(conn)?,
        )
    }
}
