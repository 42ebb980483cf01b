//! `ferric-agent`: the deploy-ramdisk agent. It serves Ironic's agent
//! command API (IPA's `/v1/commands/`), looks its node up by the machine's
//! MAC addresses, then heartbeats to the API with its callback URL and the
//! agent token until it is powered off.
//!
//! With an inspection callback (`ipa-inspection-callback-url=`), it first
//! posts the machine's inventory there, as IPA does.
//!
//! Settings come from flags, else the kernel command line as IPA reads it
//! (`ipa-api-url=`, `ipa-advertise-host=`, `ipa-inspection-callback-url=`,
//! `ferric-root-device=`).

mod commands;
mod configdrive;
mod disks;
mod erase;
mod ids;
mod image;
mod inventory;
mod ironic;
mod progress;
mod secure_erase;
mod server;
mod system;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about = "Ferric's deploy-ramdisk agent (Ironic's agent API)")]
struct Args {
    /// The Ironic-compatible API (default: `ipa-api-url=` on the kernel command line).
    #[arg(long)]
    api_url: Option<String>,
    /// Where the command API listens.
    #[arg(long, default_value = "0.0.0.0:9999")]
    listen: SocketAddr,
    /// The host (address) the conductor reaches this agent at (default:
    /// `ipa-advertise-host=`, else the local address towards the API).
    #[arg(long)]
    advertise_host: Option<String>,
    /// The disk images are written to (default: `ferric-root-device=`, else
    /// the disk the node's root-device hints pick, or without hints the
    /// smallest of at least 4 GiB, as ironic-python-agent).
    #[arg(long)]
    root_device: Option<PathBuf>,
    /// Serve the command API over plain HTTP, without a certificate
    /// (default: auto-TLS, as IPA, unless `ipa-enable-auto-tls=0`).
    #[arg(long)]
    no_auto_tls: bool,
    /// How long auto-TLS waits for the entropy to make its key before
    /// serving plain HTTP.
    #[arg(long, default_value_t = 30)]
    auto_tls_entropy_wait_secs: u64,
    /// Where to post the inspection data before looking the node up
    /// (default: `ipa-inspection-callback-url=`; none: no inspection).
    #[arg(long)]
    inspection_callback_url: Option<String>,
    /// Where the disks are listed.
    #[arg(long, default_value = "/sys/block")]
    sys_block: PathBuf,
    /// Where the disks' device nodes are.
    #[arg(long, default_value = "/dev")]
    dev_dir: PathBuf,
    /// The command `standby.power_off` runs.
    #[arg(long, default_value = "poweroff -f")]
    power_off_command: String,
    /// Where the NICs are listed.
    #[arg(long, default_value = "/sys/class/net")]
    sys_class_net: PathBuf,
    /// How long to keep looking the node up.
    #[arg(long, default_value_t = 300)]
    lookup_timeout_secs: u64,
    /// Seconds between lookups.
    #[arg(long, default_value_t = 5)]
    lookup_interval_secs: u64,
    /// Seconds between heartbeats (default: 30–60 % of the API's heartbeat timeout, as IPA).
    #[arg(long)]
    heartbeat_interval_secs: Option<u64>,
}

/// How often a heartbeat carries the progress of an image being written.
const PROGRESS_HEARTBEAT: Duration = Duration::from_secs(5);

fn kernel_option(key: &str) -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    system::cmdline_option(&cmdline, key)
}

/// The local address a packet to `api_url` would leave from (no packet is
/// sent: a UDP socket is only connected).
fn local_address_towards(api_url: &str) -> Option<String> {
    let rest = api_url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let target = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: log files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let api_url = args
        .api_url
        .clone()
        .or_else(|| kernel_option("ipa-api-url"))
        .ok_or_else(|| {
            anyhow::anyhow!("no API URL: pass --api-url or ipa-api-url= on the kernel command line")
        })?;
    let root_device = args
        .root_device
        .clone()
        .or_else(|| kernel_option("ferric-root-device").map(PathBuf::from));
    let host = args
        .advertise_host
        .clone()
        .or_else(|| kernel_option("ipa-advertise-host"))
        .or_else(|| local_address_towards(&api_url))
        .ok_or_else(|| {
            anyhow::anyhow!("cannot tell the address to advertise; pass --advertise-host")
        })?;
    let macs = system::mac_addresses(&args.sys_class_net);
    if macs.is_empty() {
        anyhow::bail!(
            "no network interface with a MAC address under {}",
            args.sys_class_net.display()
        );
    }

    let agent = server::Agent {
        commands: commands::Commands::default(),
        machine: commands::Machine {
            root_device,
            sys_block: args.sys_block.clone(),
            dev_dir: args.dev_dir.clone(),
            power_off: args
                .power_off_command
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            image_policy: Arc::new(RwLock::new(image::format::Policy::default())),
            progress: Arc::new(progress::Progress::default()),
        },
        token: Arc::new(RwLock::new(None)),
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    };
    let data = actix_web::web::Data::new(agent.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .configure(server::configure)
    })
    .workers(1);
    let auto_tls = !args.no_auto_tls
        && !matches!(
            kernel_option("ipa-enable-auto-tls").as_deref(),
            Some("0" | "false" | "False" | "no")
        );
    let tls = if auto_tls {
        tls::generate(&host, Duration::from_secs(args.auto_tls_entropy_wait_secs))
    } else {
        None
    };
    let (server, scheme, verify_ca) = match tls {
        Some(tls) => (
            server.bind_rustls_0_23(args.listen, tls.config)?,
            "https",
            Some(tls.pem),
        ),
        None => (server.bind(args.listen)?, "http", None),
    };
    let port = server
        .addrs()
        .first()
        .map_or(args.listen.port(), SocketAddr::port);
    let callback_url = format!("{scheme}://{host}:{port}");
    let server = server.run();
    let handle = server.handle();
    tracing::info!(%api_url, %callback_url, ?macs, "ferric-agent started");

    let api = ironic::Api::new(&api_url)?;
    let inspection = args
        .inspection_callback_url
        .clone()
        .or_else(|| kernel_option("ipa-inspection-callback-url"));
    if let Some(url) = inspection {
        let sources = inventory::Sources {
            sys_class_net: args.sys_class_net.clone(),
            sys_block: args.sys_block.clone(),
            dev_dir: args.dev_dir.clone(),
            proc_dir: PathBuf::from("/proc"),
            dmi: PathBuf::from("/sys/class/dmi/id"),
            efi: PathBuf::from("/sys/firmware/efi"),
            cmdline: std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
        };
        let data = inventory::collect(&sources);
        // As IPA: a failed inspection is logged and the lookup goes on.
        match api.post_inspection(&url, &data).await {
            Ok(uuid) => tracing::info!(node.uuid = %uuid, "inspection data posted"),
            Err(e) => tracing::error!(error = %e, "could not post the inspection data"),
        }
    }
    let beats = tokio::spawn(look_up_and_heartbeat(
        api,
        macs,
        (callback_url, verify_ca),
        args,
        agent,
    ));
    tokio::select! {
        served = server => served?,
        looked = beats => {
            handle.stop(false).await;
            looked??;
        }
    }
    Ok(())
}

/// Looks the node up, hands the token to the command API, then heartbeats
/// forever (at once whenever an asynchronous command ends); returns only
/// when lookup gives up.
async fn look_up_and_heartbeat(
    api: ironic::Api,
    macs: Vec<String>,
    (callback_url, verify_ca): (String, Option<String>),
    args: Args,
    agent: server::Agent,
) -> anyhow::Result<()> {
    let found = api
        .lookup_until(
            &macs,
            Duration::from_secs(args.lookup_interval_secs),
            Duration::from_secs(args.lookup_timeout_secs),
        )
        .await?;
    tracing::info!(node.uuid = %found.node_uuid, "node found");
    *agent
        .token
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found.token.clone());
    *agent
        .machine
        .image_policy
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = found.image_policy.clone();
    let progress = agent.machine.progress.clone();
    let ended = agent.commands.ended();
    loop {
        match api
            .heartbeat(
                &found,
                &callback_url,
                verify_ca.as_deref(),
                progress.report(),
            )
            .await
        {
            Ok(()) => tracing::info!(node.uuid = %found.node_uuid, "heartbeat sent"),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        let interval = match args.heartbeat_interval_secs {
            Some(secs) => Duration::from_secs(secs),
            None => found.heartbeat_timeout.mul_f64(ids::jitter(0.3, 0.6)),
        };
        // While an image is written, the progress goes out more often; a
        // command that ended goes out at once (as IPA's force_heartbeat).
        let next = tokio::time::Instant::now() + interval;
        let mut waited = Duration::ZERO;
        while tokio::time::Instant::now() < next {
            let step = (next - tokio::time::Instant::now()).min(Duration::from_secs(1));
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = ended.notified() => break,
            }
            waited += step;
            if progress.is_active() && waited >= PROGRESS_HEARTBEAT {
                break;
            }
        }
    }
}
