//! Power-state sync over a fleet of real simulated BMCs: starts N
//! `ipmi_sim` processes on loopback (one per node, the same fixture the
//! tests use), enrolls N `ipmi` nodes in an embedded Ferric, and times one
//! power-sync sweep with no session open yet (cold: every BMC's RMCP+
//! session is opened and every node's first power state recorded) and one
//! with the sessions reused (warm: a Get Chassis Status per node).
//!
//! `cargo bench --bench power_sync` (N = 100 and 1000; `BENCH_BMCS=10,50`
//! to choose). Needs `ipmi_sim` (Debian `openipmi`); about 3.6 MB of memory
//! per simulated BMC and one file descriptor per BMC session.
// A bench unwraps freely, prints its figures and reads its own BENCH_* variable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferric::embedded::Embedded;
use ferric_common::config::Settings;
use ferric_common::db::Db;
use ferric_common::notify::Notifier;
use ferric_conductor::context::Context;
use ferric_conductor::power_sync::PowerSync;
use serde_json::json;

const USER: &str = "admin";
const PASSWORD: &str = "bench-pw";

struct Fleet {
    children: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

fn port_in_use(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// Starts `n` BMCs on free ports from 30000 up and waits until each has
/// bound its port.
fn start_fleet(n: usize) -> Fleet {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ipmi-sim");
    let template = std::fs::read_to_string(fixtures.join("lan.conf.in")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    let mut ports = Vec::new();
    let mut port = 30000u16;
    while ports.len() < n {
        port += 1;
        if port_in_use(port) {
            continue;
        }
        let state: PathBuf = dir.path().join(port.to_string());
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("power"), "0\n").unwrap();
        std::fs::write(state.join("boot"), "default\n").unwrap();
        let conf = template
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", fixtures.to_str().unwrap())
            .replace("@STATE@", state.to_str().unwrap())
            .replace("@USER@", USER)
            .replace("@PASS@", PASSWORD);
        std::fs::write(state.join("lan.conf"), conf).unwrap();
        let child = Command::new("ipmi_sim")
            .arg("-n")
            .arg("-c")
            .arg(state.join("lan.conf"))
            .arg("-f")
            .arg(fixtures.join("sim.emu"))
            .arg("-s")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ipmi_sim runs (apt-get install openipmi)");
        children.push(child);
        ports.push(port);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for port in &ports {
        while !port_in_use(*port) {
            assert!(
                Instant::now() < deadline,
                "BMC on port {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Fleet {
        children,
        ports,
        _dir: dir,
    }
}

async fn run(n: usize) {
    let started = Instant::now();
    let fleet = start_fleet(n);
    let fleet_up = started.elapsed();
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: data.path().to_path_buf(),
        ..Settings::default()
    };
    settings.api.port = 0;
    settings.conductor.host = Some("bench-conductor".into());
    settings.conductor.enabled_hardware_types = vec!["ipmi".into()];
    settings.conductor.sync_power_state_interval_secs = 0;
    settings.ipmi.min_command_interval_ms = 0;
    let app = Embedded::start(settings.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", app.port);
    for port in &fleet.ports {
        let created = client
            .post(format!("{base}/v1/nodes"))
            .json(&json!({"driver": "ipmi", "driver_info": {
                "ipmi_address": "127.0.0.1", "ipmi_port": port,
                "ipmi_username": USER, "ipmi_password": PASSWORD}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    }
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
        "power sync, {n} BMCs (fleet up in {:.1} s): cold sweep {:.2} s ({:.0} nodes/s; {} checked, {} recorded, {} failed), \
         warm sweep {:.2} s ({:.0} nodes/s; {} matched, {} failed)",
        fleet_up.as_secs_f64(),
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
    drop(fleet);
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_BMCS")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for n in sizes {
        runtime.block_on(run(n));
    }
}
