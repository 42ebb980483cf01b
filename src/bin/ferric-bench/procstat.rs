//! The server's memory and CPU time, read from `/proc` for the given pids
//! and all their descendants (Ironic's combined command forks workers).
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat` in USER_HZ ticks, which
//! Linux fixes at 100 per second for `/proc`. Processes that exit between
//! two reads are skipped, never an error.

use serde::{Deserialize, Serialize};

/// One reading over a process tree.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Resident set size, summed.
    pub rss_mib: f64,
    /// Proportional set size (shared pages split between processes), summed.
    pub pss_mib: f64,
    /// User + system CPU seconds used so far, summed.
    pub cpu_s: f64,
    /// Processes read.
    pub processes: usize,
}

const TICKS_PER_SEC: f64 = 100.0;

/// Reads the tree under `roots`; `None` when no pid was given.
pub fn sample(roots: &[u32]) -> Option<Usage> {
    if roots.is_empty() {
        return None;
    }
    let mut pids = Vec::new();
    for &root in roots {
        collect(root, &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    let mut usage = Usage::default();
    for pid in pids {
        let Some(rss_kib) = status_kib(pid, "VmRSS:") else {
            continue;
        };
        usage.processes += 1;
        usage.rss_mib += rss_kib / 1024.0;
        usage.pss_mib += smaps_pss_kib(pid).unwrap_or(rss_kib) / 1024.0;
        usage.cpu_s += cpu_ticks(pid).unwrap_or(0.0) / TICKS_PER_SEC;
    }
    Some(usage)
}

fn collect(pid: u32, out: &mut Vec<u32>) {
    if out.contains(&pid) || out.len() > 4096 {
        return;
    }
    out.push(pid);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            collect(child, out);
        }
    }
}

fn status_kib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_kib(&status, key)
}

fn smaps_pss_kib(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    field_kib(&rollup, "Pss:")
}

/// `Key:   1234 kB` → 1234.
fn field_kib(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime: fields 14 and 15, counted after the `)` that ends the
/// command name (which may itself hold spaces).
fn cpu_ticks(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let usage = sample(&[std::process::id()]).unwrap();
        assert!(usage.processes >= 1);
        assert!(usage.rss_mib > 0.0);
        assert!(usage.pss_mib > 0.0);
    }

    #[test]
    fn parses_fields() {
        assert_eq!(
            field_kib("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048.0)
        );
        assert_eq!(field_kib("Name:\tx\n", "VmRSS:"), None);
    }

    #[test]
    fn no_pid_no_sample() {
        assert!(sample(&[]).is_none());
    }
}
