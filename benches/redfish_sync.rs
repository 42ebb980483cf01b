//! Power-state sync over N Redfish nodes on one real Redfish BMC emulator:
//! starts OpenStack's `sushy-emulator` (fake systems, basic auth, from the
//! clients' virtualenv) on loopback with N systems, enrolls N `redfish`
//! nodes in an embedded Ferric, and times one power-sync sweep with no
//! connection open yet (cold: every node's first power state recorded) and
//! one with the connections reused (warm: a GET of each ComputerSystem).
//! The emulator is a threaded Python dev server on the same two cores, so
//! it, not Ferric, bounds the rate; the figure is what one conductor gets
//! out of such a BMC, with `[redfish] max_parallel_per_bmc` requests in
//! flight.
//!
//! `cargo bench --bench redfish_sync` (N = 100 and 1000; `BENCH_NODES=10,50`
//! to choose). Needs `sushy-tools` in `$TEST_FERRIC_VENV` (default `.venv`;
//! `scripts/test` installs it).
// A bench unwraps freely, prints its figures and reads its own variables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::path::PathBuf;
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

struct Emulator {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv() -> PathBuf {
    std::env::var("TEST_FERRIC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

/// Starts an emulator with `n` systems and waits until it lists them.
async fn start_emulator(n: usize) -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hash = Command::new(venv().join("bin/python"))
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=4)).decode())",
            PASSWORD,
        ])
        .output()
        .expect("sushy-tools in the venv (pip install sushy-tools)");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{USER}:{}", String::from_utf8_lossy(&hash.stdout)),
    )
    .unwrap();
    let config = dir.path().join("emulator.conf");
    std::fs::write(
        &config,
        format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_AUTH_FILE = '{}'\n\
             SUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '00000000-0000-4000-8000-%012d' % i, \
             'name': 'fake-%d' % i, 'power_state': 'Off', 'external_notifier': False, \
             'nics': [{{'mac': '52:54:00:00:%02x:%02x' % (i // 256, i % 256), 'ip': '127.0.0.2'}}]}} \
             for i in range({n})]\n",
            htpasswd.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let child = Command::new(venv().join("bin/sushy-emulator"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sushy-emulator runs");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = client
            .get(format!("http://127.0.0.1:{port}/redfish/v1/Systems"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await;
        if let Ok(reply) = listed
            && reply.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "sushy-emulator did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Emulator {
        child,
        port,
        _dir: dir,
    }
}

async fn run(n: usize) {
    let started = Instant::now();
    let emulator = start_emulator(n).await;
    let up = started.elapsed();
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: data.path().to_path_buf(),
        ..Settings::default()
    };
    settings.api.port = 0;
    settings.conductor.host = Some("bench-conductor".into());
    settings.conductor.enabled_hardware_types = vec!["redfish".into()];
    settings.conductor.sync_power_state_interval_secs = 0;
    let app = Embedded::start(settings.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", app.port);
    for i in 0..n {
        let created = client
            .post(format!("{base}/v1/nodes"))
            .json(&json!({"driver": "redfish", "driver_info": {
                "redfish_address": format!("http://127.0.0.1:{}", emulator.port),
                "redfish_system_id": format!("/redfish/v1/Systems/00000000-0000-4000-8000-{i:012}"),
                "redfish_username": USER, "redfish_password": PASSWORD,
                "redfish_auth_type": "basic"}}))
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
        "redfish power sync, {n} nodes on one sushy-emulator (up in {:.1} s): cold sweep {:.2} s ({:.0} nodes/s; \
         {} checked, {} recorded, {} failed), warm sweep {:.2} s ({:.0} nodes/s; {} matched, {} failed)",
        up.as_secs_f64(),
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
    drop(emulator);
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_NODES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for n in sizes {
        runtime.block_on(run(n));
    }
}
