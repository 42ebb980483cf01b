//! The embedded (standalone) mode: API + one conductor in one process, the
//! database of `[database] url` (SQLite by default), the in-process queue.
//!
//! Shutdown order: stop the API (in-flight requests finish), then the
//! conductor (drains its tasks, releases locks, deregisters).

use std::sync::Arc;

use anyhow::Context;
use ferric_api::startup::Application;
use ferric_api::state::AppState;
use ferric_common::config::Settings;
use ferric_common::db::Db;
use ferric_common::feed::Feed;
use ferric_common::notify::Notifier;
use ferric_common::queue::local::LocalQueue;
use ferric_conductor::service::{self, ConductorHandle};
use tokio_util::sync::CancellationToken;

/// A running embedded Ferric.
pub struct Embedded {
    /// The port the API listens on.
    pub port: u16,
    pub db: Db,
    pub queue: LocalQueue,
    /// The port `http_root` is served on, when `[deploy] http_listen` is set.
    pub boot_files_port: Option<u16>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    boot_files: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    conductor: ConductorHandle,
}

/// The pool connections the conductor may hold at once: all but a quarter
/// (at least one), which stay for the API — a burst of conductor work
/// (10,000 deploys at once) would otherwise queue every connection ahead
/// of the API's reads.
fn conductor_connections(pool_size: u32) -> usize {
    let pool = pool_size as usize;
    pool.saturating_sub((pool / 4).max(1)).max(1)
}

impl Embedded {
    /// Migrates the database, starts the conductor, binds the API.
    ///
    /// # Errors
    /// When the database, the conductor or the listener cannot start.
    pub async fn start(settings: Settings) -> anyhow::Result<Embedded> {
        let url = settings.database_url();
        let db = Db::connect_with_tls(
            &url,
            settings.database.pool_size,
            std::time::Duration::from_millis(settings.database.busy_timeout_ms),
            settings.database.tls_ca_file.as_deref(),
        )
        .context("opening the database")?;
        let applied = db.migrate().await.context("migrating the database")?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "database migrated");
        }
        let queue = LocalQueue::new();
        // The console's live feed: both the conductor's and the API's
        // notifications go to it.
        let feed = Feed::new();
        let conductor_config = settings.conductor_config();
        let own_listeners = conductor_config.own_listeners.clone();
        let conductor = service::start_local(
            conductor_config,
            settings.conductor_host(),
            db.clone()
                .with_checkout_timeout(settings.database.connection_timeout())
                .riding_out(settings.database.outage_tolerance())
                .sharing_at_most(conductor_connections(settings.database.pool_size)),
            queue.clone(),
            feed.clone(),
        )
        .await
        .context("starting the conductor")?;
        let stop = CancellationToken::new();
        let (boot_files_port, boot_files) =
            match crate::serve_boot_files(&settings, &stop, conductor.journal())? {
                Some((port, task)) => (Some(port), Some(task)),
                None => (None, None),
            };
        let settings_api_host = settings.api.host.clone();
        let boot_files_listen = settings.deploy.http_listen.clone();
        let api_db = db
            .clone()
            .with_checkout_timeout(settings.database.connection_timeout());
        let notifier = Notifier::new(format!("ferric-api.{}", settings.conductor_host()))
            .with_feed(feed.clone());
        let state = AppState::new(api_db, Arc::new(queue.clone()), settings)
            .with_notifier(notifier)
            .with_feed(feed)
            .with_auth_from_settings()
            .context("reading the auth user file")?;
        let app = Application::build(state).context("binding the API listener")?;
        let port = app.port();
        // The ports bound now (port 0 in the settings picks any) are no
        // place for an image fetch either.
        own_listeners.add_host(&settings_api_host, port);
        if let (Some(files), Some((host, _))) = (
            boot_files_port,
            boot_files_listen
                .as_deref()
                .and_then(|l| l.rsplit_once(':')),
        ) {
            own_listeners.add_host(host, files);
        }
        let stopped = stop.clone();
        let server = tokio::spawn(app.run_until(async move { stopped.cancelled().await }));
        Ok(Embedded {
            port,
            db,
            queue,
            boot_files_port,
            stop,
            server,
            boot_files,
            conductor,
        })
    }

    /// The conductor's host name.
    pub fn conductor_host(&self) -> &str {
        self.conductor.host()
    }

    /// Stops the API, then the conductor.
    pub async fn shutdown(self) {
        self.stop.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "API server failed"),
            Err(e) => tracing::error!(error = %e, "API server task failed"),
        }
        if let Some(files) = self.boot_files {
            let _ = files.await;
        }
        self.conductor.shutdown().await;
    }

    /// Serves until the server task ends on its own or `shutdown` fires.
    pub async fn run_until(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::select! {
            result = &mut self.server => {
                tracing::error!(?result, "API server stopped unexpectedly");
            }
            () = shutdown => {}
        }
        self.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::conductor_connections;

    #[test]
    fn the_conductor_leaves_a_quarter_of_the_pool_to_the_api() {
        assert_eq!(conductor_connections(8), 6);
        assert_eq!(conductor_connections(4), 3);
        assert_eq!(conductor_connections(2), 1);
        // A pool of one is shared: the conductor still gets its connection.
        assert_eq!(conductor_connections(1), 1);
        assert_eq!(conductor_connections(32), 24);
    }
}
