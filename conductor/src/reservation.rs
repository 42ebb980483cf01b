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
        let (host, node_id) = (self.host.clone(), self.node_id);
        self.db
            .run(move |conn| Node::release(conn, node_id, &host))
            .await
            .map(|_| ())
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
                let _ = db
                    .run(move |conn| Node::release(conn, node_id, &host))
                    .await;
            });
        }
    }
}
