//! How far the image being written has got, for the heartbeat
//! (`deploy_progress`: bytes written, the total when known, seconds since
//! the write started). Shared between the writer and the heartbeat loop.
//!
//! Invariant: `bytes` only grows during one write; [`Progress::start`]
//! resets it for the next.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Progress {
    active: AtomicBool,
    bytes: AtomicU64,
    total: AtomicU64,
    started: Mutex<Option<Instant>>,
}

impl Progress {
    /// A write begins; `total` is 0 while unknown.
    pub fn start(&self, total: u64) {
        self.bytes.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.active.store(true, Ordering::Relaxed);
    }

    /// The total became known (a qcow2's virtual size).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Bytes up to `end` of the disk are written (the highest offset seen).
    pub fn wrote(&self, end: u64) {
        self.bytes.fetch_max(end, Ordering::Relaxed);
    }

    pub fn stop(&self) {
        self.active.store(false, Ordering::Relaxed);
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The heartbeat's `deploy_progress`, while a write runs.
    pub fn report(&self) -> Option<Value> {
        if !self.is_active() {
            return None;
        }
        let started = *self.started.lock().unwrap_or_else(|p| p.into_inner());
        let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let total = self.total.load(Ordering::Relaxed);
        Some(json!({
            "bytes": self.bytes.load(Ordering::Relaxed),
            "total": (total > 0).then_some(total),
            "seconds": (seconds * 10.0).round() / 10.0,
        }))
    }
}
