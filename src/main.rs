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

/// Raises the soft open-file limit to the hard one: a conductor keeps a
/// connection to every Redfish BMC it syncs (10,000 BMCs, 10,000 sockets),
/// and the usual soft limit of 1,024 would refuse them long before.
fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
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
    raise_file_limit();
    let settings = Settings::load(cli.config.as_deref())?;
    // The serving commands listen for signals before their start-up, so a
    // SIGTERM in the middle of it still shuts down cleanly.
    match cli.command.unwrap_or(Command::Standalone) {
        Command::Standalone => {
            let stop = shutdown_signal();
            let embedded = Embedded::start(settings).await?;
            tracing::info!(port = embedded.port, "Ferric is serving the Ironic API");
            embedded.run_until(stop).await;
            Ok(())
        }
        Command::Api => {
            let stop = shutdown_signal();
            let api = ApiProcess::start(settings).await?;
            tracing::info!(port = api.port, "Ferric API is serving (distributed mode)");
            stop.await;
            api.shutdown().await;
            Ok(())
        }
        Command::Conductor => {
            let stop = shutdown_signal();
            let stop_files = tokio_util::sync::CancellationToken::new();
            let metrics = ferric::serve_metrics(&settings, &stop_files)?;
            let conductor = start_conductor(settings.clone()).await?;
            let files = match ferric::serve_boot_files(&settings, &stop_files, conductor.journal())
            {
                Ok(files) => files,
                Err(e) => {
                    conductor.shutdown().await;
                    return Err(e);
                }
            };
            tracing::info!(
                conductor.hostname = conductor.host(),
                "Ferric conductor is running"
            );
            stop.await;
            conductor.shutdown().await;
            stop_files.cancel();
            for (_, task) in files.into_iter().chain(metrics) {
                let _ = task.await;
            }
            Ok(())
        }
        Command::Watch { node, event, json } => {
            let filter = ferric::watch::Filter { node, event, json };
            ferric::watch::run(
                &ferric_common::queue::broker::Broker::from_settings(&settings.amqp)?,
                &settings.amqp.prefix,
                filter,
                shutdown_signal(),
            )
            .await
        }
        Command::Db { command } => {
            let db = Db::connect_with_tls(
                &settings.database_url(),
                1,
                std::time::Duration::from_secs(10),
                settings.database.tls_ca_file.as_deref(),
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

/// Listens for SIGINT and SIGTERM from the call on (a signal that arrives
/// during start-up is kept and acted on once start-up is done, never the
/// default action's abrupt exit); the future completes at the first, and a
/// second one exits at once.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listening = signal(SignalKind::interrupt()).and_then(|interrupt| {
        signal(SignalKind::terminate()).map(|terminate| (interrupt, terminate))
    });
    async move {
        let (mut interrupt, mut terminate) = match listening {
            Ok(streams) => streams,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGINT and SIGTERM");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down (a second signal exits at once)");
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            std::process::exit(130);
        });
    }
}
