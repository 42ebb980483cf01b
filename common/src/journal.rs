//! Writes the node journal (`db::models::journal`) from the notifications a
//! process sends, in the background and in batches, so a state change never
//! waits for it; prunes rows older than the retention once an hour.
//!
//! Invariants: recording never blocks nor fails the work that caused it (a
//! full buffer drops the entry with a warning); entries are written in the
//! order they were recorded.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::db::Db;
use crate::db::models::journal::{JournalEntry, JournalRow};

/// Entries waiting to be written before new ones are dropped.
const BUFFER: usize = 8192;
/// Most entries written in one transaction.
const BATCH: usize = 256;
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The journal's writer. Cloning is shallow.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<JournalEntry>,
}

impl Journal {
    /// Starts the writer on `db`, keeping rows for `keep`.
    pub fn start(db: Db, keep: Duration) -> Journal {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(write_loop(db, keep, rx));
        Journal { tx }
    }

    /// Records the change a notification `message` describes, if the
    /// journal keeps its kind.
    pub fn record(&self, message: &Value) {
        let trace_id = crate::telemetry::current_trace_id();
        if let Some(entry) = JournalEntry::from_message(message, trace_id, crate::db::now()) {
            self.append(entry);
        }
    }

    /// Records `entry` as it is.
    pub fn append(&self, entry: JournalEntry) {
        if self.tx.try_send(entry).is_err() {
            tracing::warn!("node journal entry dropped: the writer is behind or stopped");
        }
    }
}

async fn write_loop(db: Db, keep: Duration, mut rx: mpsc::Receiver<JournalEntry>) {
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let entries = std::mem::take(&mut batch);
        if let Err(e) = db
            .run(move |conn| JournalEntry::append(conn, &entries))
            .await
        {
            tracing::warn!(error = %e, "node journal entries lost: the database refused them");
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let before = crate::db::now()
                - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(30));
            match db.run(move |conn| JournalRow::prune(conn, before)).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "node journal pruned"),
                Err(e) => tracing::warn!(error = %e, "node journal not pruned"),
            }
        }
    }
}
