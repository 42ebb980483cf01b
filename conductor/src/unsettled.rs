//! What a database outage left unwritten. A conductor rides an outage out
//! for `[database] outage_tolerance_secs`; when it lasts longer, a task can
//! neither record how its node's work ended nor release the node's lock,
//! and the node would stay locked in a transitional state for as long as
//! its conductor lives (no takeover: the conductor is alive). Such nodes
//! are remembered here with the failure to record, and every periodic pass
//! writes what is owed once the database answers: the node moves to its
//! failed state with that reason (Ironic's `last_error`), and the lock goes.
//!
//! Invariants: a settlement writes only under this conductor's own
//! reservation, in one transaction — a node another conductor took over
//! meanwhile is forgotten, never touched; while this conductor holds the
//! lock no other task of its own can start on the node, so settling never
//! races one. What is remembered lives in memory: a conductor that dies
//! first leaves the node to the takeover and restart sweeps, as any crash.

use std::collections::HashMap;
use std::sync::Mutex;

use ferric_common::db::models::node::{Node, Settled};
use ferric_common::db::{Db, DbError};
use ferric_common::notify::{self, Notifier};

/// What is owed for one node.
#[derive(Debug, Clone)]
struct Owed {
    uuid: String,
    /// Why the work failed, when it did (else only the lock is owed).
    failure: Option<String>,
}

/// The nodes this conductor owes a write.
#[derive(Debug, Default)]
pub struct Unsettled(Mutex<HashMap<i32, Owed>>);

impl Unsettled {
    /// Remembers node `id`: its lock to release and, when given, why its
    /// work failed (a failure is never replaced by "lock only").
    pub fn remember(&self, id: i32, uuid: &str, failure: Option<String>) {
        let mut owed = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = owed.entry(id).or_insert_with(|| Owed {
            uuid: uuid.to_owned(),
            failure: None,
        });
        if failure.is_some() {
            entry.failure = failure;
        }
        tracing::warn!(node.uuid = %uuid, "the database is unreachable: the node's outcome and lock are written once it is back");
    }

    fn snapshot(&self) -> Vec<(i32, Owed)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, owed)| (*id, owed.clone()))
            .collect()
    }

    fn forget(&self, id: i32) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }

    /// Writes what is owed; returns how many nodes were settled. A node
    /// whose write fails again stays remembered for the next pass.
    ///
    /// # Errors
    /// The first database failure (the rest wait for the next pass).
    pub async fn settle(&self, db: &Db, host: &str, notifier: &Notifier) -> Result<usize, DbError> {
        let mut settled = 0;
        for (id, owed) in self.snapshot() {
            let host = host.to_owned();
            let failure = owed.failure.clone();
            let outcome = db
                .run(move |conn| Node::settle_for(conn, id, &host, failure.as_deref()))
                .await?;
            self.forget(id);
            settled += 1;
            match outcome {
                Settled::Failed(node, failed, reason) => {
                    tracing::warn!(node.uuid = %owed.uuid, to = %failed, "recorded the failure a database outage held back");
                    notifier.send(notify::provision_set(&node, "fail", failed, Some(&reason)));
                }
                Settled::Released => {
                    tracing::info!(node.uuid = %owed.uuid, "released the lock a database outage held back");
                }
                Settled::NotHeld => {}
            }
        }
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_to_record_is_never_replaced_by_a_bare_release() {
        let owed = Unsettled::default();
        owed.remember(
            7,
            "n-7",
            Some("deploying failed: database unavailable".into()),
        );
        owed.remember(7, "n-7", None);
        owed.remember(8, "n-8", None);
        let mut all = owed.snapshot();
        all.sort_by_key(|(id, _)| *id);
        assert_eq!(
            all[0].1.failure.as_deref(),
            Some("deploying failed: database unavailable")
        );
        assert!(all[1].1.failure.is_none());
        owed.forget(7);
        assert_eq!(owed.snapshot().len(), 1);
    }
}
