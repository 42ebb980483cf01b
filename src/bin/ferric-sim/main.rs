//! `ferric-sim`: a fleet of simulated machines in one process, for tests,
//! benchmarks and operators' rehearsals — thousands of BMCs speaking
//! Redfish (HTTP) or IPMI 2.0 (RMCP+ over UDP, cipher suite 3), each on its
//! own loopback address and port, with its own credentials, power state,
//! boot override and virtual CD, and faults on demand (latency, an error
//! rate, hanging), steered through a small control API. With
//! `--agents-api`, a machine that boots from the network runs a simulated
//! deploy agent against that Ironic-compatible API ([`agents`]).
//!
//! Invariants: it listens on loopback addresses only (checked before any
//! socket is opened) and connects only to loopback addresses (the agents'
//! API and image URLs); the manifest it writes lists every BMC it serves,
//! and only once all of them listen.

mod agents;
mod control;
mod fleet;
mod ipmi;
mod redfish;
mod rmcp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::json;

use crate::fleet::{Bmc, Faults};

#[derive(Parser)]
#[command(
    name = "ferric-sim",
    about = "Simulated machines' BMCs on loopback (Redfish, IPMI), for tests and rehearsals"
)]
struct Cli {
    /// How many Redfish BMCs.
    #[arg(long, default_value_t = 0)]
    redfish: usize,
    /// How many IPMI BMCs (UDP; `ipmitool -I lanplus -C 3`).
    #[arg(long, default_value_t = 0)]
    ipmi: usize,
    /// The first IPMI BMC's port; IPMI BMC n listens on port + n (with
    /// `--spread`: 127.2.x.y, every one on this port).
    #[arg(long, default_value_t = 30000)]
    ipmi_first_port: u16,
    /// The loopback address the BMCs listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    /// The first BMC's port; BMC n listens on port + n.
    #[arg(long, default_value_t = 20000)]
    first_port: u16,
    /// Give each BMC its own loopback address (127.1.x.y, every one on
    /// `--first-port`) instead of its own port.
    #[arg(long)]
    spread: bool,
    /// Every BMC's user name.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Every BMC's password.
    #[arg(long, default_value = "password")]
    password: String,
    /// Latency every BMC adds to each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// The share of requests every BMC answers with a 500 (0–1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Where the control API listens (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Writes the BMCs (address, credentials) as JSON here once they listen.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Worker threads serving the BMCs.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Number the BMCs from here (and, with `--spread`, address them so):
    /// several simulators then make one fleet without overlapping, each
    /// within its own open-file limit.
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// The Ironic-compatible API simulated agents look their nodes up at
    /// and heartbeat to (loopback only); without it, no agents run.
    #[arg(long)]
    agents_api: Option<String>,
    /// Seconds from a network boot to its agent's first lookup.
    #[arg(long, default_value_t = 1.0)]
    agent_boot_secs: f64,
    /// The shortest time a `write_image` takes, in seconds.
    #[arg(long, default_value_t = 30.0)]
    agent_write_secs: f64,
    /// Seconds each clean step takes.
    #[arg(long, default_value_t = 1.0)]
    agent_clean_step_secs: f64,
    /// Seconds between heartbeats (default: the API's heartbeat timeout ×
    /// 0.3–0.6, as ironic-python-agent).
    #[arg(long)]
    agent_heartbeat_secs: Option<f64>,
    /// Seconds between lookups while no node waits for the machine.
    #[arg(long, default_value_t = 1.0)]
    agent_lookup_interval_secs: f64,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("--{name} must be a number of seconds ≥ 0, not {value}"))
}

/// The agents' timing from the command line.
fn timing(cli: &Cli) -> anyhow::Result<agents::Timing> {
    Ok(agents::Timing {
        boot: seconds("agent-boot-secs", cli.agent_boot_secs)?,
        write: seconds("agent-write-secs", cli.agent_write_secs)?,
        clean_step: seconds("agent-clean-step-secs", cli.agent_clean_step_secs)?,
        lookup_interval: seconds("agent-lookup-interval-secs", cli.agent_lookup_interval_secs)?,
        heartbeat: cli
            .agent_heartbeat_secs
            .map(|s| seconds("agent-heartbeat-secs", s))
            .transpose()?,
    })
}

/// The address of the `index`th BMC of a kind: with `spread`, its own
/// 127.`net`.x.y on `first_port`, else `address` on `first_port + index`.
fn address_of(cli: &Cli, net: u8, first_port: u16, index: usize) -> anyhow::Result<SocketAddr> {
    if cli.spread {
        // 127.net.0.1 … 127.net.0.250, 127.net.1.1 …: never .0 or .255.
        let (high, low) = (index / 250, index % 250 + 1);
        let high = u8::try_from(high).context("--spread serves at most 64,000 BMCs of a kind")?;
        #[allow(clippy::cast_possible_truncation)]
        let ip = Ipv4Addr::new(127, net, high, low as u8);
        return Ok(SocketAddr::new(IpAddr::V4(ip), first_port));
    }
    let port = u16::try_from(usize::from(first_port) + index)
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| {
            format!("BMCs from port {first_port} run past port 65535 (use --spread)")
        })?;
    Ok(SocketAddr::new(cli.address, port))
}

fn check(cli: &Cli) -> anyhow::Result<()> {
    if !cli.address.is_loopback() || !cli.control.ip().is_loopback() {
        bail!("ferric-sim listens on loopback addresses only");
    }
    if !(0.0..=1.0).contains(&cli.error_rate) {
        bail!("--error-rate must be between 0 and 1");
    }
    if cli.redfish + cli.ipmi == 0 {
        bail!("no BMCs: give --redfish N and/or --ipmi N");
    }
    if let Some(api) = &cli.agents_api
        && !agents::is_loopback_url(api)
    {
        bail!("--agents-api must be an http URL with a loopback IP address, not {api}");
    }
    timing(cli)?;
    Ok(())
}

/// Raises the open-file limit to what `bmcs` listeners and a connection
/// to each need (root may raise the hard limit too); what it is after.
fn raise_file_limit(bmcs: usize) -> u64 {
    let wanted = (bmcs as u64).saturating_mul(2).saturating_add(1024);
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return 0;
    };
    if soft >= wanted {
        return soft;
    }
    if rlimit::Resource::NOFILE
        .set(wanted, hard.max(wanted))
        .is_ok()
    {
        return wanted;
    }
    rlimit::increase_nofile_limit(wanted).unwrap_or(soft)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    check(&cli)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.workers.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // A Redfish BMC holds a listener and a client's connection.
    let needed = (cli.redfish as u64 * 2).saturating_add(cli.ipmi as u64 + 64);
    let files = raise_file_limit(cli.redfish + cli.ipmi);
    if files < needed {
        #[expect(clippy::print_stderr, reason = "a warning before anything serves")]
        {
            eprintln!(
                "ferric-sim: the open-file limit ({files}) is below the {needed} files these BMCs need: \
                 connections will wait (split the fleet with --first-index)"
            );
        }
    }
    let faults = Faults {
        latency_ms: cli.latency_ms,
        error_rate: cli.error_rate,
        hang: false,
    };
    // Redfish BMCs first, then IPMI ones; one index across both.
    let mut bmcs = Vec::with_capacity(cli.redfish + cli.ipmi);
    for n in 0..cli.redfish + cli.ipmi {
        let address = if n < cli.redfish {
            address_of(&cli, 1, cli.first_port, cli.first_index + n)?
        } else {
            address_of(
                &cli,
                2,
                cli.ipmi_first_port,
                cli.first_index + n - cli.redfish,
            )?
        };
        let bmc = Bmc::new(cli.first_index + n, address, &cli.username, &cli.password);
        bmc.with(|s| s.faults = faults.clone());
        bmcs.push(Arc::new(bmc));
    }
    let (redfish_bmcs, ipmi_bmcs) = bmcs.split_at(cli.redfish);
    // Every socket is bound before the manifest and the ready line.
    for bmc in redfish_bmcs {
        let listener = tokio::net::TcpListener::bind(bmc.address)
            .await
            .with_context(|| format!("BMC {} cannot listen on {}", bmc.index, bmc.address))?;
        tokio::spawn(redfish::serve(bmc.clone(), listener));
    }
    for bmc in ipmi_bmcs {
        let socket = tokio::net::UdpSocket::bind(bmc.address)
            .await
            .with_context(|| format!("BMC {} cannot listen on udp {}", bmc.index, bmc.address))?;
        tokio::spawn(ipmi::serve(bmc.clone(), socket));
    }
    let control = tokio::net::TcpListener::bind(cli.control)
        .await
        .with_context(|| format!("the control API cannot listen on {}", cli.control))?;
    let control_addr = control.local_addr()?;
    if let Some(path) = &cli.manifest {
        let manifest: Vec<_> = bmcs
            .iter()
            .map(|b| {
                let (protocol, address) = if b.index < cli.first_index + cli.redfish {
                    ("redfish", format!("http://{}", b.address))
                } else {
                    ("ipmi", b.address.ip().to_string())
                };
                json!({
                    "index": b.index,
                    "mac": b.mac,
                    "protocol": protocol,
                    "address": address,
                    "port": b.address.port(),
                    "username": b.username,
                    "password": b.password,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let ready = json!({
        "control": format!("http://{control_addr}"),
        "redfish": cli.redfish,
        "ipmi": cli.ipmi,
    });
    #[expect(clippy::print_stdout, reason = "the line a caller waits for")]
    {
        println!("{ready}");
    }
    let agents = match &cli.agents_api {
        Some(api) => {
            let agents = agents::Agents::new(
                api,
                control_addr,
                bmcs.clone(),
                cli.first_index,
                timing(&cli)?,
            )?;
            let (to, boots) = tokio::sync::mpsc::unbounded_channel();
            for bmc in &bmcs {
                bmc.announce_pxe_boots(to.clone());
            }
            tokio::spawn(agents.clone().run(boots));
            Some(agents)
        }
        None => None,
    };
    control::serve(bmcs, cli.first_index, agents, control).await;
    Ok(())
}
