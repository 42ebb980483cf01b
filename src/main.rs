//! `ferric`: the command line. Parses arguments, loads settings, installs
//! logging and signal handling, and hands over to the wiring in the library.
//! No logic lives here.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferric::distributed::{ApiProcess, start_conductor};
use ferric::embedded::Embedded;
use ferric_common::config::Settings;
use ferric_common::db::Db;
use ferric_common::telemetry::LogFormat;

/// Bare-metal provisioning that speaks the OpenStack Ironic API.
#[derive(Parser)]
#[command(name = "ferric", version)]
struct Cli {
    /// TOML configuration file (sections like ironic.conf: [api], [database], [conductor]).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log lines as readable text (default) or JSON, one object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// API and one conductor in one process (the default).
    Standalone,
    /// The REST API only (distributed mode).
    Api,
    /// One conductor (distributed mode).
    Conductor,
    /// Tail the notifications (distributed mode), one line per event.
    Watch {
        /// Only this node's events (UUID or name).
        #[arg(long)]
        node: Option<String>,
        /// Only event types matching this glob, e.g. 'baremetal.node.provision_set.*'.
        #[arg(long)]
        event: Option<String>,
        /// Print each message as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Database schema management.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply every pending migration (idempotent).
    Upgrade,
    /// Print the newest applied migration.
    Version,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    let service = match cli.command {
        Some(Command::Api) => "ferric-api",
        Some(Command::Conductor) => "ferric-conductor",
        _ => "ferric",
    };
    // Flushes the span exporter when main returns.
    let _telemetry = ferric_common::telemetry::init("info", format, service);
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Standalone) {
        Command::Standalone => {
            let embedded = Embedded::start(settings).await?;
            tracing::info!(port = embedded.port, "Ferric is serving the Ironic API");
            embedded.run_until(shutdown_signal()).await;
            Ok(())
        }
        Command::Api => {
            let api = ApiProcess::start(settings).await?;
            tracing::info!(port = api.port, "Ferric API is serving (distributed mode)");
            shutdown_signal().await;
            api.shutdown().await;
            Ok(())
        }
        Command::Conductor => {
            let stop_files = tokio_util::sync::CancellationToken::new();
            let files = ferric::serve_boot_files(&settings, &stop_files)?;
            let metrics = ferric::serve_metrics(&settings, &stop_files)?;
            let conductor = start_conductor(settings).await?;
            tracing::info!(
                conductor.hostname = conductor.host(),
                "Ferric conductor is running"
            );
            shutdown_signal().await;
            conductor.shutdown().await;
            stop_files.cancel();
            for (_, task) in files.into_iter().chain(metrics) {
                let _ = task.await;
            }
            Ok(())
        }
        Command::Watch { node, event, json } => {
            use secrecy::ExposeSecret as _;
            let filter = ferric::watch::Filter { node, event, json };
            ferric::watch::run(
                settings.amqp.url.expose_secret(),
                &settings.amqp.prefix,
                filter,
                shutdown_signal(),
            )
            .await
        }
        Command::Db { command } => {
            let db = Db::connect(
                &settings.database_url(),
                1,
                std::time::Duration::from_secs(10),
            )
            .context("opening the database")?;
            let report = match command {
                DbCommand::Upgrade => {
                    let applied = db.migrate().await?;
                    format!("applied {} migration(s): {applied:?}", applied.len())
                }
                DbCommand::Version => db
                    .version()
                    .await?
                    .unwrap_or_else(|| "no migrations applied".into()),
            };
            #[expect(clippy::print_stdout, reason = "the command's output")]
            {
                println!("{report}");
            }
            Ok(())
        }
    }
}

/// Completes on SIGINT or SIGTERM; a second signal exits at once.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down (a second signal exits at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
}
