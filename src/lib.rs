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
use ferric_api::startup::SideServer;
use ferric_common::config::Settings;
use tokio_util::sync::CancellationToken;

/// Serves `http_root` when `[deploy] http_listen` is set, until `stop`,
/// recording nodes' fetches in `journal`; returns the bound port and the
/// server task.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve_boot_files(
    settings: &Settings,
    stop: &CancellationToken,
    journal: Option<&ferric_common::journal::Journal>,
) -> anyhow::Result<Option<(u16, tokio::task::JoinHandle<std::io::Result<()>>)>> {
    let Some(listen) = &settings.deploy.http_listen else {
        return Ok(None);
    };
    let root = settings.boot().http_root;
    let recorder = journal.map(|journal| ferric_api::boot_files::FetchRecorder {
        journal: journal.clone(),
        publisher: format!("ferric-boot-files.{}", settings.conductor_host()),
    });
    let server = ferric_api::boot_files::bind(root.clone(), listen, recorder)
        .with_context(|| format!("serving {} on {listen}", root.display()))?;
    tracing::info!(port = server.port(), root = %root.display(), "serving http_root");
    Ok(Some(spawn(server, stop)))
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
    let server = ferric_api::metrics::bind(listen)
        .with_context(|| format!("serving metrics on {listen}"))?;
    tracing::info!(port = server.port(), "serving /metrics");
    Ok(Some(spawn(server, stop)))
}

/// Runs `server` until `stop`; its port and task.
fn spawn(
    server: SideServer,
    stop: &CancellationToken,
) -> (u16, tokio::task::JoinHandle<std::io::Result<()>>) {
    let port = server.port();
    let stopped = stop.clone();
    let task = tokio::spawn(server.run_until(async move { stopped.cancelled().await }));
    (port, task)
}
