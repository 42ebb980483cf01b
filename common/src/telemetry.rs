//! Logging set-up and the one sanctioned way to run blocking work.
//!
//! Invariant: blocking work (diesel queries, later IPMI) runs through
//! [`spawn_blocking`], which re-enters the caller's span so logs and traces
//! stay attached to the request that caused them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber: human-readable logs on stderr, filtered by
/// `RUST_LOG` (default `info`). Called once, from `main`.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours for a terminal only, never in a file or a pipe.
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init();
}

/// Runs `f` on tokio's blocking pool inside the current span.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the wrapper that keeps the span"
    )]
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
