//! The `ferric` binary's wiring: the only place the API and the conductor
//! meet. [`embedded`] runs both in one process over SQLite and the
//! in-process queue (Ironic's combined `ironic` command); [`distributed`]
//! runs either one over PostgreSQL and RabbitMQ.
//!
//! Invariant: no behaviour lives here, only construction and shutdown order.

pub mod distributed;
pub mod embedded;
pub mod watch;

use anyhow::Context;
use ferric_common::config::Settings;
use tokio_util::sync::CancellationToken;

/// Serves `http_root` when `[deploy] http_listen` is set, until `stop`;
/// returns the bound port and the server task.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve_boot_files(
    settings: &Settings,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(u16, tokio::task::JoinHandle<std::io::Result<()>>)>> {
    let Some(listen) = &settings.deploy.http_listen else {
        return Ok(None);
    };
    let root = settings.boot().http_root;
    let server = ferric_api::boot_files::BootFileServer::bind(root.clone(), listen)
        .with_context(|| format!("serving {} on {listen}", root.display()))?;
    let port = server.port();
    tracing::info!(port, root = %root.display(), "serving http_root");
    let stopped = stop.clone();
    let task = tokio::spawn(server.run_until(async move { stopped.cancelled().await }));
    Ok(Some((port, task)))
}

/// Serves this conductor's `/metrics` when `[conductor] metrics_listen` is
/// set, until `stop`; returns the bound port and the server task.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve_metrics(
    settings: &Settings,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(u16, tokio::task::JoinHandle<std::io::Result<()>>)>> {
    let Some(listen) = &settings.conductor.metrics_listen else {
        return Ok(None);
    };
    let server = ferric_api::metrics::MetricsServer::bind(listen)
        .with_context(|| format!("serving metrics on {listen}"))?;
    let port = server.port();
    tracing::info!(port, "serving /metrics");
    let stopped = stop.clone();
    let task = tokio::spawn(server.run_until(async move { stopped.cancelled().await }));
    Ok(Some((port, task)))
}
