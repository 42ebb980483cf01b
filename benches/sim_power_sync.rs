//! Power-state sync over N machines, each with a BMC of its own: starts
//! `ferric-sim` with N Redfish BMCs (127.1.x.y) or N IPMI BMCs (127.2.x.y,
//! RMCP+ cipher suite 3), one loopback address each, enrolls N `redfish` or
//! `ipmi` nodes in an embedded Ferric and times one power-sync sweep with
//! nothing open yet (cold: a session opened at each BMC, every node's
//! first power state recorded) and one reusing them (warm: a GET of each
//! ComputerSystem, a Get Chassis Status in each IPMI session). Unlike
//! `redfish_sync` and `power_sync`, the BMCs are not the bottleneck.
//!
//! `cargo bench --bench sim_power_sync` (N = 1000 and 10000, both kinds;
//! `BENCH_NODES=100,500` and `BENCH_KINDS=ipmi` to choose).
// A bench unwraps freely, prints its figures and reads its own variables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferric::embedded::Embedded;
use ferric_common::config::Settings;
use ferric_common::db::Db;
use ferric_common::notify::Notifier;
use ferric_conductor::context::Context;
use ferric_conductor::power_sync::PowerSync;
use serde_json::{Value, json};

/// BMCs per simulator process.
const SHARD: usize = 5000;

async fn run(kind: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // One simulator per 5,000 BMCs: each keeps a listener and a connection
    // per Redfish BMC within an open-file limit of 20,000.
    let started = Instant::now();
    let mut sims = Vec::new();
    let mut bmcs: Vec<Value> = Vec::new();
    for (shard, first) in (0..n).step_by(SHARD).enumerate() {
        let count = SHARD.min(n - first);
        let manifest = dir.path().join(format!("bmcs-{shard}.json"));
        let mut sim = Command::new(env!("CARGO_BIN_EXE_ferric-sim"))
            .args([format!("--{kind}"), count.to_string(), "--spread".into()])
            .args(["--first-index", &first.to_string()])
            .args(["--first-port", &port.to_string()])
            .args(["--ipmi-first-port", &port.to_string()])
            .arg("--manifest")
            .arg(&manifest)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(sim.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        let listed: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        bmcs.extend(listed);
        sims.push(sim);
    }
    let up = started.elapsed();

    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: data.path().to_path_buf(),
        ..Settings::default()
    };
    settings.api.port = 0;
    settings.conductor.host = Some("bench-conductor".into());
    settings.conductor.enabled_hardware_types = vec![kind.into()];
    settings.ipmi.min_command_interval_ms = 0;
    settings.conductor.sync_power_state_interval_secs = 0;
    let app = Embedded::start(settings.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", app.port);
    let enrolled = Instant::now();
    for bmc in &bmcs {
        let driver_info = if kind == "ipmi" {
            json!({"ipmi_address": bmc["address"], "ipmi_port": bmc["port"],
                   "ipmi_username": bmc["username"], "ipmi_password": bmc["password"]})
        } else {
            json!({"redfish_address": bmc["address"],
                   "redfish_username": bmc["username"], "redfish_password": bmc["password"]})
        };
        let created = client
            .post(format!("{base}/v1/nodes"))
            .json(&json!({"driver": kind, "driver_info": driver_info}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    }
    let enrolled = enrolled.elapsed();
    let db = Db::connect(&settings.database_url(), 8, Duration::from_secs(10)).unwrap();
    let ctx = Context::new(
        &settings.conductor_config(),
        db,
        "bench-conductor".into(),
        Notifier::disabled(),
    )
    .unwrap();
    let mut sync = PowerSync::new(ctx);
    let cold = sync.sweep().await.unwrap();
    let warm = sync.sweep().await.unwrap();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{kind} power sync, {n} nodes on {n} ferric-sim BMCs in {} process(es) (up in {:.2} s, enrolled in {:.1} s): \
         cold sweep {:.2} s ({:.0} nodes/s; {} checked, {} recorded, {} failed), \
         warm sweep {:.2} s ({:.0} nodes/s; {} matched, {} failed)",
        sims.len(),
        up.as_secs_f64(),
        enrolled.as_secs_f64(),
        cold.elapsed.as_secs_f64(),
        rate(cold.elapsed),
        cold.checked,
        cold.recorded,
        cold.failed,
        warm.elapsed.as_secs_f64(),
        rate(warm.elapsed),
        warm.matched,
        warm.failed,
    );
    app.shutdown().await;
    for mut sim in sims {
        let _ = sim.kill();
        let _ = sim.wait();
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_NODES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let kinds = std::env::var("BENCH_KINDS").unwrap_or_else(|_| "redfish,ipmi".into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for n in sizes {
        for kind in kinds.split(',').map(str::trim) {
            runtime.block_on(run(kind, n));
        }
    }
}
