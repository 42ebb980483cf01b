//! `ferric-sim`: a fleet of simulated machines in one process, for tests,
//! benchmarks and operators' rehearsals — thousands of Redfish BMCs, each
//! on its own loopback address and port, with its own credentials, power
//! state, boot override and virtual CD, and faults on demand (latency, an
//! error rate, hanging), steered through a small control API.
//!
//! Invariants: it listens on loopback addresses only (checked before any
//! socket is opened) and never connects anywhere; the manifest it writes
//! lists every BMC it serves, and only once all of them listen.

mod control;
mod fleet;
mod redfish;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::json;

use crate::fleet::{Bmc, Faults};

#[derive(Parser)]
#[command(
    name = "ferric-sim",
    about = "Simulated machines' BMCs on loopback (Redfish), for tests and rehearsals"
)]
struct Cli {
    /// How many Redfish BMCs.
    #[arg(long, default_value_t = 1)]
    redfish: usize,
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
}

/// BMC `index`'s address.
fn address_of(cli: &Cli, index: usize) -> anyhow::Result<SocketAddr> {
    if cli.spread {
        // 127.1.0.1 … 127.1.0.250, 127.1.1.1 …: never .0 or .255.
        let (high, low) = (index / 250, index % 250 + 1);
        let high = u8::try_from(high).context("--spread serves at most 64,000 BMCs")?;
        #[allow(clippy::cast_possible_truncation)]
        let ip = Ipv4Addr::new(127, 1, high, low as u8);
        return Ok(SocketAddr::new(IpAddr::V4(ip), cli.first_port));
    }
    let port = u16::try_from(usize::from(cli.first_port) + index)
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| {
            format!(
                "{} BMCs from port {} run past port 65535 (use --spread)",
                cli.redfish, cli.first_port
            )
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
    if cli.redfish == 0 {
        bail!("--redfish must be at least 1");
    }
    Ok(())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    check(&cli)?;
    let faults = Faults {
        latency_ms: cli.latency_ms,
        error_rate: cli.error_rate,
        hang: false,
    };
    let mut bmcs = Vec::with_capacity(cli.redfish);
    for index in 0..cli.redfish {
        let bmc = Bmc::new(
            index,
            address_of(&cli, index)?,
            &cli.username,
            &cli.password,
        );
        bmc.with(|s| s.faults = faults.clone());
        bmcs.push(Arc::new(bmc));
    }
    let fleet = web::Data::new(redfish::Fleet::new(&bmcs));
    let mut server = HttpServer::new({
        let fleet = fleet.clone();
        move || {
            App::new()
                .app_data(fleet.clone())
                .configure(redfish::routes)
        }
    })
    .workers(cli.workers.max(1))
    .backlog(1024);
    for bmc in &bmcs {
        server = server
            .bind(bmc.address)
            .with_context(|| format!("BMC {} cannot listen on {}", bmc.index, bmc.address))?;
    }
    let control = web::Data::new(control::Control { bmcs: bmcs.clone() });
    let control_server = HttpServer::new(move || {
        App::new()
            .app_data(control.clone())
            .configure(control::routes)
    })
    .workers(1)
    .bind(cli.control)
    .with_context(|| format!("the control API cannot listen on {}", cli.control))?;
    let control_addr = control_server
        .addrs()
        .first()
        .copied()
        .context("the control API has no address")?;
    let bmcs_server = server.run();
    let control_server = control_server.run();
    if let Some(path) = &cli.manifest {
        let manifest: Vec<_> = bmcs
            .iter()
            .map(|b| {
                json!({
                    "index": b.index,
                    "protocol": "redfish",
                    "address": format!("http://{}", b.address),
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
        "redfish": bmcs.len(),
        "first": bmcs.first().map(|b| b.address.to_string()),
    });
    #[expect(clippy::print_stdout, reason = "the line a caller waits for")]
    {
        println!("{ready}");
    }
    let (served, controlled) = futures_util::future::join(bmcs_server, control_server).await;
    served?;
    controlled?;
    Ok(())
}
