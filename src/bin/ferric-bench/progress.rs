//! A progress line on stderr during long phases: redrawn in place on a
//! terminal, one line every five seconds otherwise (CI logs).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts finished units of a phase while a task reports them.
pub struct Progress {
    done: Arc<AtomicU64>,
    reporter: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting `label: done/total`.
    pub fn start(label: &str, total: u64) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let counter = done.clone();
        let label = label.to_owned();
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let reporter = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = counter.load(Ordering::Relaxed);
                let line = format!(
                    "  {label}: {n}/{total} ({:.0} s)",
                    start.elapsed().as_secs_f64()
                );
                #[allow(clippy::print_stderr)]
                if terminal {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Progress { done, reporter }
    }

    /// A handle the workers bump.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }

    /// Stops reporting and clears the line.
    pub fn finish(self) {
        self.reporter.abort();
        #[allow(clippy::print_stderr)]
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[K");
        }
    }
}
