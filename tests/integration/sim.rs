//! `ferric-sim`'s simulated BMCs, judged by the real clients — sushy
//! (Ironic's own Redfish library, from PyPI) and `ipmitool` — and driven by
//! Ferric's `redfish` and `ipmi` hardware types: power, boot devices and
//! the faults the simulator injects.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::sim::Sim;
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var("TEST_FERRIC_VENV").map_or_else(
        |_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"),
        std::path::PathBuf::from,
    );
    venv.join("bin/python")
}

/// sushy logs in (a session), reads, powers on and off, sets a one-time
/// PXE boot, inserts and ejects a virtual CD on each of five BMCs, and the
/// control API shows each BMC holding what sushy set; a wrong password is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_drives_every_simulated_bmc() {
    let sim = Sim::start(5);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sim_sushy.py");
    let out = tokio::process::Command::new(venv_python())
        .arg(script)
        .arg(&sim.manifest)
        .arg(&sim.control)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bmcs = report["bmcs"].as_array().unwrap();
    assert_eq!(bmcs.len(), 5, "{report}");
    for (i, bmc) in bmcs.iter().enumerate() {
        assert_eq!(bmc["power_changes"], 2, "{bmc}");
        assert_eq!(bmc["uuid"], format!("5f2c1d3e-0000-4000-8001-{i:012x}"));
    }
    assert_eq!(sim.stats().await["powered_on"], 0);
}

async fn redfish_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["redfish".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.redfish.connection_attempts = 1;
        s.redfish.read_timeout_secs = 2;
        s.redfish.server_side_retries = 1;
        s.redfish.server_side_retries_delay_secs = 1;
    })
    .await
}

async fn enroll(app: &TestApp, sim: &Sim, i: usize) -> String {
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "name": format!("sim{i}"), "driver_info": sim.driver_info(i)}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.json()["uuid"].as_str().unwrap().to_owned()
}

/// Powers every node on at once through the API and waits until all are
/// on without an error; the simulator then has every BMC on.
async fn power_on_all(app: &TestApp, sim: &Sim, nodes: &[String]) {
    let paths: Vec<String> = nodes
        .iter()
        .map(|uuid| format!("/v1/nodes/{uuid}/states/power"))
        .collect();
    let accepted = join_all(
        paths
            .iter()
            .map(|path| app.put(path, json!({"target": "power on"}))),
    )
    .await;
    assert!(accepted.iter().all(|r| r.status == StatusCode::ACCEPTED));
    wait_until(Duration::from_secs(60), "every node on", || async {
        let list = app
            .get("/v1/nodes?fields=power_state,target_power_state,last_error&limit=100")
            .await
            .json();
        let nodes = list["nodes"].as_array().cloned().unwrap_or_default();
        let failed: Vec<&Value> = nodes
            .iter()
            .filter(|n| !n["last_error"].is_null())
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        nodes
            .iter()
            .all(|n| n["power_state"] == "power on" && n["target_power_state"].is_null())
            .then_some(())
    })
    .await;
    assert_eq!(sim.stats().await["powered_on"], nodes.len());
}

/// Sets `node`'s boot device to PXE through the API; BMC 0 then boots PXE
/// `enabled` (`Once` or `Continuous`).
async fn boot_pxe_lands(app: &TestApp, sim: &Sim, node: &str, persistent: bool, enabled: &str) {
    let set = app
        .put(
            &format!("/v1/nodes/{node}/management/boot_device"),
            json!({"boot_device": "pxe", "persistent": persistent}),
        )
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    let state = sim.state(0).await;
    assert_eq!(
        (
            state["boot_target"].as_str(),
            state["boot_enabled"].as_str()
        ),
        (Some("Pxe"), Some(enabled)),
        "{state}"
    );
}

/// Fifty simulated machines powered on at once through Ferric, every BMC
/// on; a boot device lands on its BMC; a BMC that fails every request and
/// one that hangs each give their node a clear `last_error` and change
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferric_powers_a_simulated_fleet_and_reports_its_faults() {
    const N: usize = 50;
    let sim = Sim::start(N);
    let app = redfish_app().await;
    let mut nodes = Vec::new();
    for i in 0..N {
        nodes.push(enroll(&app, &sim, i).await);
    }
    power_on_all(&app, &sim, &nodes).await;

    boot_pxe_lands(&app, &sim, &nodes[0], false, "Once").await;

    // A BMC answering 500 to everything.
    sim.set(1, json!({"error_rate": 1.0})).await;
    let failed = app.power(&nodes[1], "power off", 30).await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(
            "Failed to change power state to 'power off': Redfish exception occurred."
        ) && error.contains("returned code 500")
            && error.contains("ferric-sim: injected failure"),
        "{error}"
    );
    assert_eq!(sim.state(1).await["power_on"], true);

    // A BMC that never answers: the read timeout ends the wait.
    sim.set(2, json!({"hang": true})).await;
    let started = std::time::Instant::now();
    let failed = app.power(&nodes[2], "power off", 30).await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Redfish connection failed for node"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.state(2).await["power_on"], true);
    app.stop().await;
}

/// The simulator refuses any address but loopback before it listens.
#[tokio::test]
async fn the_simulator_listens_on_loopback_only() {
    for args in [["--address", "192.0.2.1"], ["--control", "0.0.0.0:0"]] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric-sim"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("loopback addresses only"), "{stderr}");
    }
}

/// `ipmitool -I lanplus -C 3` against three simulated IPMI BMCs: power on
/// and status, a one-time PXE boot in UEFI mode, the boot flags read back,
/// `mc info`; each BMC holds what ipmitool set. A wrong password and
/// cipher suite 17 open no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_drives_every_simulated_ipmi_bmc() {
    let sim = Sim::start_with(0, 3);
    for i in 0..3 {
        let run = |args: &'static [&'static str]| sim.ipmitool(i, "3", "password", args);
        assert_eq!(
            run(&["chassis", "power", "status"]).await,
            (true, "Chassis Power is off".into())
        );
        assert_eq!(
            run(&["chassis", "power", "on"]).await,
            (true, "Chassis Power Control: Up/On".into())
        );
        assert_eq!(
            run(&["chassis", "power", "status"]).await,
            (true, "Chassis Power is on".into())
        );
        let (ok, set) = run(&["chassis", "bootdev", "pxe", "options=efiboot"]).await;
        assert!(ok && set.contains("Set Boot Device to pxe"), "{set}");
        let (ok, flags) = run(&["chassis", "bootparam", "get", "5"]).await;
        assert!(
            ok && flags.contains("Force PXE") && flags.contains("BIOS EFI boot"),
            "{flags}"
        );
        let (ok, info) = run(&["mc", "info"]).await;
        assert!(
            ok && info.contains("IPMI Version              : 2.0"),
            "{info}"
        );
        let state = sim.state(i).await;
        assert_eq!(state["power_on"], true, "{state}");
        assert_eq!(
            (
                state["boot_target"].as_str(),
                state["boot_enabled"].as_str(),
                state["boot_mode"].as_str()
            ),
            (Some("Pxe"), Some("Once"), Some("UEFI")),
            "{state}"
        );
    }
    let (ok, refused) = sim
        .ipmitool(0, "3", "not-the-password", &["chassis", "power", "off"])
        .await;
    assert!(!ok, "{refused}");
    let (ok, refused) = sim
        .ipmitool(0, "17", "password", &["chassis", "power", "off"])
        .await;
    assert!(
        !ok && refused.contains("invalid confidentiality algorithm"),
        "{refused}"
    );
    assert_eq!(
        sim.state(0).await["power_on"],
        true,
        "a refused session changed nothing"
    );
}

/// Ferric's `ipmi` hardware type (ipmi-rs, RMCP+) on twenty simulated
/// machines: all powered on at once, a boot device set, and a BMC that
/// drops every datagram fails its node's power action clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferric_powers_simulated_ipmi_machines() {
    const N: usize = 20;
    let sim = Sim::start_with(0, N);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["ipmi".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.ipmi.command_retry_timeout_secs = 2;
        s.ipmi.reply_timeout_ms = 500;
        s.ipmi.min_command_interval_ms = 0;
    })
    .await;
    let mut nodes = Vec::new();
    for i in 0..N {
        let created = app
            .post(
                "/v1/nodes",
                json!({"driver": "ipmi", "driver_info": sim.driver_info(i)}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        nodes.push(created.json()["uuid"].as_str().unwrap().to_owned());
    }
    power_on_all(&app, &sim, &nodes).await;

    boot_pxe_lands(&app, &sim, &nodes[0], true, "Continuous").await;

    sim.set(1, json!({"error_rate": 1.0})).await;
    let failed = app.power(&nodes[1], "power off", 30).await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Failed to change power state to 'power off'"),
        "{error}"
    );
    assert_eq!(sim.state(1).await["power_on"], true);
    app.stop().await;
}

/// A conductor keeps a connection per Redfish BMC: started with a soft
/// open-file limit of 256 (`prlimit`), the real binary raises it to the
/// hard limit before it serves.
#[tokio::test]
async fn the_ferric_binary_raises_its_open_file_limit_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::process::free_port();
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap();
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=256:")
        .arg(env!("CARGO_BIN_EXE_ferric"))
        .env_clear()
        .env("FERRIC_DATA_DIR", dir.path())
        .env("FERRIC_API__PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "ferric to answer", || {
        let request = client.get(format!("http://127.0.0.1:{port}/v1")).send();
        async move { request.await.ok().map(|_| ()) }
    })
    .await;
    // prlimit execs the binary: the same process.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id().unwrap())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (fields[3], fields[4]),
        (hard.as_str(), hard.as_str()),
        "{line}"
    );
    child.kill().await.unwrap();
}
