//! Values the agent needs unique or spread, never secret: command ids and
//! the heartbeat jitter. Made from the clock and a counter, never from the
//! kernel's entropy pool: early in a ramdisk's boot, on a machine without
//! a hardware RNG (QEMU without virtio-rng), `getrandom` blocks until the
//! pool is ready, and a command API blocked there answers nothing while
//! the heartbeats go on — the deploy hangs until its callback timeout.
//! (The agent has no secret of its own to make: its token comes from the
//! conductor.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// A command id in UUID form, unique for the agent's life: the clock when
/// the first one was made, the process, and a counter.
pub fn command_id() -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(now_nanos);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let bits = (u128::from(start) << 64) | (u128::from(std::process::id()) << 32) | u128::from(n);
    uuid::Builder::from_u128(bits).into_uuid().to_string()
}

/// A fraction in [low, high), spread by the clock's nanoseconds.
pub fn jitter(low: f64, high: f64) -> f64 {
    let spread = f64::from(u32::try_from(now_nanos() % 1_000_000).unwrap_or(0)) / 1_000_000.0;
    low + (high - low) * spread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_are_unique_uuids_and_jitter_stays_in_range() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| command_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
        for _ in 0..100 {
            let j = jitter(0.3, 0.6);
            assert!((0.3..0.6).contains(&j), "{j}");
        }
    }
}
