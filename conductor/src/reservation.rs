//! The node lock (Ironic's `reservation` column) as an owned guard.
//!
//! Invariant: a [`NodeLock`] exists only while this conductor holds the row's
//! reservation; [`NodeLock::release`] clears it. A lock that is dropped
//! without release (a panic) is cleared in the background, so no reservation
//! leaks while the process lives; a crash leaves it to the start-up and
//! takeover sweeps.

use ferric_common::db::models::node::Node;
use ferric_common::db::{Db, DbError};

/// An exclusive lock on one node.
pub struct NodeLock {
    db: Db,
    host: String,
    node_id: i32,
    released: bool,
}

impl NodeLock {
    /// Tries to lock `node_id` for `host` up to `attempts` times, `interval`
    /// apart (Ironic's `node_locked_retry_*`); `Ok(None)` when someone else
    /// still holds it.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn acquire_patiently(
        db: &Db,
        host: &str,
        node_id: i32,
        attempts: u32,
        interval: std::time::Duration,
    ) -> Result<Option<NodeLock>, DbError> {
        for attempt in 1..=attempts.max(1) {
            if let Some(lock) = NodeLock::acquire(db, host, node_id).await? {
                return Ok(Some(lock));
            }
            if attempt < attempts {
                tokio::time::sleep(interval).await;
            }
        }
        Ok(None)
    }

    /// Tries to lock `node_id` for `host`; `Ok(None)` when someone else holds it.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn acquire(db: &Db, host: &str, node_id: i32) -> Result<Option<NodeLock>, DbError> {
        let owned_host = host.to_owned();
        let acquired = db
            .run(move |conn| Node::try_reserve(conn, node_id, &owned_host))
            .await?;
        Ok(acquired.then(|| NodeLock {
            db: db.clone(),
            host: host.to_owned(),
            node_id,
            released: false,
        }))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Releases the lock.
    ///
    /// # Errors
    /// On a database failure (the lock is then cleared by the next sweep).
    pub async fn release(mut self) -> Result<(), DbError> {
        self.released = true;
        release_lock(&self.db, &self.host, self.node_id).await
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (db, host, node_id) = (self.db.clone(), self.host.clone(), self.node_id);
        tracing::warn!(
            node.id = node_id,
            "node lock dropped without release; releasing"
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = release_lock(&db, &host, node_id).await;
            });
        }
    }
}

/// Clears the reservation. A conductor's handle rides a database outage out
/// (`Db::riding_out`), so only a longer outage leaves the node locked, for
/// the sweeps (takeover, the start-up sweep) to clear.
async fn release_lock(db: &Db, host: &str, node_id: i32) -> Result<(), DbError> {
    let h = host.to_owned();
    match db.run(move |conn| Node::release(conn, node_id, &h)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(node.id = node_id, error = %e, "could not release node lock");
            Err(e)
        }
    }
}
