//! The report of one run: the machine, the server, and one [`Figure`] per
//! measured thing, printable as a table and serialisable as JSON (the input
//! of `ferric-bench compare`). A figure's `key` is stable across runs and
//! servers; its `headline` names the number compared.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Latency;

/// Everything one `ferric-bench run` measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub label: String,
    pub url: String,
    /// The `Server` header and the maximum microversion the server announced.
    pub server: String,
    pub machine: Machine,
    /// Seconds since the Unix epoch when the run started.
    pub started_at: u64,
    pub figures: Vec<Figure>,
    /// Why the run stopped early, if it did (the figures before it stand).
    #[serde(default)]
    pub failed: Option<String>,
}

/// Where the run happened.
#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
}

/// The number a figure is judged by.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Headline {
    WallS,
    RatePerS,
    P50Ms,
    RssMib,
}

/// One measured thing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Stable name across runs, e.g. `create_1000`, `get_c16`.
    pub key: String,
    /// What was done, for people.
    pub what: String,
    pub headline: Headline,
    /// Requests sent (or nodes, for the deploy pipeline).
    pub count: u64,
    pub wall_s: Option<f64>,
    pub rate_per_s: Option<f64>,
    pub latency: Option<Latency>,
    pub errors: u64,
    pub resets: u64,
    /// Bytes of one response (lists) — the size of what was listed.
    pub response_bytes: Option<u64>,
    /// CPU seconds the server used during this figure.
    pub server_cpu_s: Option<f64>,
    pub rss_mib: Option<f64>,
    pub pss_mib: Option<f64>,
    /// Anything else worth reading (per-step times, the first error …).
    pub note: Option<String>,
}

impl Figure {
    pub fn new(key: impl Into<String>, what: impl Into<String>, headline: Headline) -> Figure {
        Figure {
            key: key.into(),
            what: what.into(),
            headline,
            count: 0,
            wall_s: None,
            rate_per_s: None,
            latency: None,
            errors: 0,
            resets: 0,
            response_bytes: None,
            server_cpu_s: None,
            rss_mib: None,
            pss_mib: None,
            note: None,
        }
    }

    /// The headline number and whether more is better.
    pub fn headline_value(&self) -> Option<(f64, bool)> {
        match self.headline {
            Headline::WallS => self.wall_s.map(|v| (v, false)),
            Headline::RatePerS => self.rate_per_s.map(|v| (v, true)),
            Headline::P50Ms => self.latency.as_ref().map(|l| (l.p50_ms, false)),
            Headline::RssMib => self.rss_mib.map(|v| (v, false)),
        }
    }

    /// The headline with its unit, e.g. `1.234 s`.
    pub fn headline_text(&self) -> String {
        match (self.headline, self.headline_value()) {
            (_, None) => "-".to_owned(),
            (Headline::WallS, Some((v, _))) => format!("{v:.3} s"),
            (Headline::RatePerS, Some((v, _))) => format!("{v:.0}/s"),
            (Headline::P50Ms, Some((v, _))) => format!("{v:.2} ms p50"),
            (Headline::RssMib, Some((v, _))) => format!("{v:.1} MiB"),
        }
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

impl Report {
    /// A fixed-width table of every figure.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ferric-bench: {} at {} ({}) — {} CPUs ({}), {} MiB, Linux {}",
            self.label,
            self.url,
            self.server,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.mem_total_mib,
            self.machine.kernel
        );
        let _ = writeln!(
            out,
            "{:<66} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>6} {:>9} {:>8} {:>8}",
            "what",
            "count",
            "wall s",
            "rate/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "err",
            "resets",
            "KB/resp",
            "srv CPU",
            "RSS MiB"
        );
        for f in &self.figures {
            let l = f.latency.as_ref();
            let _ = writeln!(
                out,
                "{:<66} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>6} {:>9} {:>8} {:>8}",
                f.what,
                f.count,
                opt(f.wall_s, 3),
                opt(f.rate_per_s, 0),
                opt(l.map(|l| l.p50_ms), 2),
                opt(l.map(|l| l.p99_ms), 2),
                opt(l.map(|l| l.p999_ms), 2),
                f.errors,
                f.resets,
                opt(f.response_bytes.map(|b| b as f64 / 1000.0), 1),
                opt(f.server_cpu_s, 2),
                opt(f.rss_mib, 1),
            );
        }
        for f in self.figures.iter().filter(|f| f.note.is_some()) {
            let _ = writeln!(out, "  {}: {}", f.key, f.note.as_deref().unwrap_or(""));
        }
        if let Some(failed) = &self.failed {
            let _ = writeln!(out, "RUN FAILED: {failed}");
        }
        out
    }
}

impl Machine {
    /// Reads `/proc` for the CPU model, memory and kernel.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_mib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model,
            mem_total_mib,
            kernel,
        }
    }
}
