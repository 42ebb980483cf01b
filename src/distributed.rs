//! The distributed mode: `ferric api` (REST API publishing tasks to
//! RabbitMQ) and `ferric conductor` (one conductor consuming its queue),
//! both over PostgreSQL.
//!
//! Invariant: both refuse to start on SQLite, which one process owns.

use std::sync::Arc;

use anyhow::{Context, bail};
use ferric_api::startup::Application;
use ferric_api::state::AppState;
use ferric_common::config::Settings;
use ferric_common::db::{Backend, Db};
use ferric_common::feed::Feed;
use ferric_common::notify::Notifier;
use ferric_common::queue::amqp::AmqpQueue;
use ferric_common::queue::broker::Broker;
use ferric_conductor::service::{self, ConductorHandle};
use tokio_util::sync::CancellationToken;

/// Opens the PostgreSQL pool and applies pending migrations.
async fn postgres(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url();
    if Backend::from_url(&url).is_sqlite() {
        bail!(
            "configuration: invalid value for database.url: the distributed mode needs PostgreSQL (postgres://…)"
        );
    }
    let db = Db::connect_with_tls(
        &url,
        settings.database.pool_size,
        std::time::Duration::from_millis(settings.database.busy_timeout_ms),
        settings.database.tls_ca_file.as_deref(),
    )
    .context("opening the database")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

/// A running `ferric api`.
pub struct ApiProcess {
    pub port: u16,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiProcess {
    /// Connects to PostgreSQL and RabbitMQ and binds the API.
    ///
    /// # Errors
    /// When a dependency cannot be reached or the port cannot be bound.
    pub async fn start(settings: Settings) -> anyhow::Result<ApiProcess> {
        let db = postgres(&settings)
            .await?
            .with_checkout_timeout(settings.database.connection_timeout());
        let broker = Broker::from_settings(&settings.amqp)?;
        let queue = AmqpQueue::connect(broker.clone(), &settings.amqp.prefix)
            .await
            .context("connecting to RabbitMQ")?;
        let notifier = Notifier::amqp(
            broker.clone(),
            &settings.amqp.prefix,
            format!("ferric-api.{}", settings.conductor_host()),
        );
        // The console's pages see every process's notifications through
        // the exchange (the API's own included).
        let stop = CancellationToken::new();
        let feed = if settings.console.enabled {
            Feed::follow_amqp(broker, &settings.amqp.prefix, stop.clone())
        } else {
            Feed::new()
        };
        let state = AppState::new(db, Arc::new(queue), settings)
            .with_notifier(notifier)
            .with_feed(feed)
            .with_auth_from_settings()
            .context("reading the auth user file")?;
        let app = Application::build(state).context("binding the API listener")?;
        let port = app.port();
        let stopped = stop.clone();
        let server = tokio::spawn(app.run_until(async move { stopped.cancelled().await }));
        Ok(ApiProcess { port, stop, server })
    }

    /// Stops serving; in-flight requests finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Ok(Err(e)) = self.server.await {
            tracing::error!(error = %e, "API server failed");
        }
    }
}

/// Starts `ferric conductor`.
///
/// # Errors
/// When a dependency cannot be reached or the configuration is invalid.
pub async fn start_conductor(settings: Settings) -> anyhow::Result<ConductorHandle> {
    let db = postgres(&settings)
        .await?
        .with_checkout_timeout(settings.database.connection_timeout())
        .riding_out(settings.database.outage_tolerance());
    service::start_amqp(
        settings.conductor_config(),
        settings.conductor_host(),
        db,
        Broker::from_settings(&settings.amqp)?,
        &settings.amqp.prefix,
    )
    .await
    .context("starting the conductor")
}
