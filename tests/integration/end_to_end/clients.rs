//! The real `baremetal` CLI (python-ironicclient 6.3.0) and openstacksdk,
//! from PyPI, drive Ferric exactly as an operator would drive Ironic.
//!
//! The clients live in a virtualenv at `$TEST_FERRIC_VENV` (default
//! `<repo>/.venv`); the test creates it when it is missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{spawn_app, wait_until};

const IRONICCLIENT: &str = "python-ironicclient==6.3.0";

pub(crate) fn venv() -> PathBuf {
    std::env::var("TEST_FERRIC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

pub(crate) async fn ensure_venv(venv: &Path) {
    if venv.join("bin/baremetal").exists() {
        return;
    }
    let status = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "python3 -m venv failed");
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", IRONICCLIENT, "openstacksdk"])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "pip install of the clients failed");
}

pub(crate) struct Cli {
    pub(crate) bin: PathBuf,
    pub(crate) endpoint: String,
}

impl Cli {
    /// Runs `baremetal <args>` and returns stdout; panics with stderr on failure.
    pub(crate) async fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .env("OS_AUTH_TYPE", "none")
            .env("OS_ENDPOINT", &self.endpoint)
            .env_remove("OS_CLOUD")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "baremetal {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        serde_json::from_str(&self.run(&args).await).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baremetal_cli_and_openstacksdk_drive_a_node_through_its_life() {
    let venv = venv();
    ensure_venv(&venv).await;
    let app = spawn_app().await;
    let cli = Cli {
        bin: venv.join("bin/baremetal"),
        endpoint: app.base.clone(),
    };
    let host = app.settings.conductor.host.clone().unwrap();

    let root = reqwest::get(format!("{}/", app.base))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(root["default_version"]["version"], "1.115");
    let drivers = cli.json(&["driver", "list"]).await;
    assert!(
        drivers
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "fake-hardware" && d["hosts"].to_string().contains(&host)),
        "{drivers}"
    );
    let created = cli
        .json(&[
            "node",
            "create",
            "--driver",
            "fake-hardware",
            "--name",
            "n1",
        ])
        .await;
    assert_eq!(created["provision_state"], "enroll");
    cli.run(&["node", "manage", "n1", "--wait", "30"]).await;
    cli.run(&["node", "provide", "n1", "--wait", "30"]).await;
    cli.run(&["node", "deploy", "n1", "--wait", "30"]).await;
    let shown = cli.json(&["node", "show", "n1"]).await;
    assert_eq!(shown["provision_state"], "active");
    cli.run(&["node", "power", "on", "n1"]).await;
    wait_until(Duration::from_secs(20), "power on via the CLI", || async {
        (cli.json(&["node", "show", "n1"]).await["power_state"] == "power on").then_some(())
    })
    .await;
    cli.run(&["node", "power", "off", "n1"]).await;
    cli.run(&["node", "undeploy", "n1", "--wait", "30"]).await;
    let listed = cli.json(&["node", "list"]).await;
    assert_eq!(listed[0]["provision_state"], "available", "{listed}");
    let uuid = shown["uuid"].as_str().unwrap();
    let port = cli
        .json(&["port", "create", "--node", uuid, "52:54:00:12:34:56"])
        .await;
    assert_eq!(port["address"], "52:54:00:12:34:56");
    let chassis = cli
        .json(&["chassis", "create", "--description", "rack"])
        .await;
    cli.run(&["chassis", "delete", chassis["uuid"].as_str().unwrap()])
        .await;

    let sdk = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(
            r#"
import json, sys, openstack
conn = openstack.connection.Connection(auth_type="none", auth={"endpoint": sys.argv[1]}, baremetal_endpoint_override=sys.argv[1])
node = conn.baremetal.create_node(driver="fake-hardware", name="sdk-node")
conn.baremetal.set_node_provision_state(node, "manage", wait=True, timeout=30)
conn.baremetal.set_node_provision_state(node, "provide", wait=True, timeout=30)
nodes = {n.name: n.provision_state for n in conn.baremetal.nodes()}
print(json.dumps(nodes))
"#,
        )
        .arg(&app.base)
        .output()
        .await
        .unwrap();
    assert!(
        sdk.status.success(),
        "openstacksdk failed: {}",
        String::from_utf8_lossy(&sdk.stderr)
    );
    let states: Value = serde_json::from_slice(&sdk.stdout).unwrap();
    assert_eq!(states["sdk-node"], "available", "{states}");
    assert_eq!(states["n1"], "available");
    app.stop().await;
}

/// The issue's proof: `baremetal node create --driver ipmi …; baremetal node
/// power on …` and ipmitool reports the chassis on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baremetal_cli_powers_on_an_ipmi_node_that_ipmitool_sees_on() {
    use crate::helpers::bmc::{PASSWORD, SimBmc, USER};
    let venv = venv();
    ensure_venv(&venv).await;
    let bmc = SimBmc::start().await;
    let app = spawn_app().await;
    let cli = Cli {
        bin: venv.join("bin/baremetal"),
        endpoint: app.base.clone(),
    };
    let port = bmc.port.to_string();
    let created = cli
        .json(&[
            "node",
            "create",
            "--driver",
            "ipmi",
            "--name",
            "bmc-node",
            "--driver-info",
            "ipmi_address=127.0.0.1",
            "--driver-info",
            &format!("ipmi_port={port}"),
            "--driver-info",
            &format!("ipmi_username={USER}"),
            "--driver-info",
            &format!("ipmi_password={PASSWORD}"),
        ])
        .await;
    let before = bmc.ipmitool(&["chassis", "power", "status"]);
    cli.run(&["node", "power", "on", "bmc-node"]).await;
    let shown = wait_until(Duration::from_secs(30), "power on", || async {
        let node = cli.json(&["node", "show", "bmc-node"]).await;
        (node["power_state"] == "power on").then_some(node)
    })
    .await;
    let after = bmc.ipmitool(&["chassis", "power", "status"]);

    assert_eq!(created["driver_info"]["ipmi_password"], "******");
    assert_eq!(created["power_interface"], "ipmitool");
    assert_eq!(before, "Chassis Power is off");
    assert_eq!(after, "Chassis Power is on");
    assert!(shown["last_error"].is_null(), "{shown}");
    app.stop().await;
}

/// The README's recipe for `[auth] strategy = http_basic`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baremetal_cli_works_with_http_basic_auth() {
    let venv = venv();
    ensure_venv(&venv).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(
        &file,
        format!("admin:{}\n", bcrypt::hash("s3cret", 4).unwrap()),
    )
    .unwrap();
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
        s.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
        s.auth.http_basic_auth_user_file = file;
    })
    .await;
    let run = |auth: &'static [(&'static str, &'static str)]| {
        let bin = venv.join("bin/baremetal");
        let endpoint = app.base.clone();
        async move {
            let mut command = Command::new(bin);
            command
                .args(["node", "create", "--driver", "fake-hardware", "-f", "json"])
                .env("OS_ENDPOINT", endpoint)
                .env_remove("OS_CLOUD");
            for (k, v) in auth {
                command.env(k, v);
            }
            command.output().await.unwrap()
        }
    };

    let with = run(&[
        ("OS_AUTH_TYPE", "http_basic"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "s3cret"),
    ])
    .await;
    let without = run(&[("OS_AUTH_TYPE", "none")]).await;

    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    let node: Value = serde_json::from_slice(&with.stdout).unwrap();
    assert_eq!(node["driver"], "fake-hardware");
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baremetal_cli_drives_a_redfish_node_that_the_bmc_sees() {
    use crate::helpers::redfish::Emulator;
    let venv = venv();
    ensure_venv(&venv).await;
    let bmc = Emulator::start(1).await;
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
        s.conductor.sync_power_state_interval_secs = 0;
    })
    .await;
    let cli = Cli {
        bin: venv.join("bin/baremetal"),
        endpoint: app.base.clone(),
    };
    let info = bmc.driver_info(0);
    let mut args = vec!["node", "create", "--driver", "redfish", "--name", "rf-cli"];
    let pairs: Vec<String> = info
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    for pair in &pairs {
        args.extend(["--driver-info", pair.as_str()]);
    }
    let created = cli.json(&args).await;
    let validate = cli.json(&["node", "validate", "rf-cli"]).await;
    let power = validate
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Interface"] == "power")
        .cloned()
        .unwrap();
    cli.run(&["node", "power", "on", "rf-cli"]).await;
    let on = wait_until(Duration::from_secs(60), "power on", || async {
        let node = cli.json(&["node", "show", "rf-cli"]).await;
        (node["power_state"] == "power on" && node["target_power_state"].is_null()).then_some(node)
    })
    .await;
    let seen_on = bmc.curl(&bmc.system(0))["PowerState"].clone();
    cli.run(&[
        "node",
        "boot",
        "device",
        "set",
        "rf-cli",
        "cdrom",
        "--persistent",
    ])
    .await;
    let device = cli
        .json(&["node", "boot", "device", "show", "rf-cli"])
        .await;
    cli.run(&["node", "power", "off", "rf-cli"]).await;
    wait_until(Duration::from_secs(60), "power off", || async {
        let node = cli.json(&["node", "show", "rf-cli"]).await;
        (node["power_state"] == "power off" && node["target_power_state"].is_null()).then_some(())
    })
    .await;

    assert_eq!(created["driver_info"]["redfish_password"], "******");
    assert_eq!(created["power_interface"], "redfish");
    assert_eq!(power["Result"], true, "{validate}");
    assert!(on["last_error"].is_null(), "{on}");
    assert_eq!(seen_on, "On");
    assert_eq!(device["boot_device"], "cdrom");
    assert_eq!(
        bmc.curl(&bmc.system(0))["Boot"]["BootSourceOverrideTarget"],
        "Cd"
    );
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "Off");
    app.stop().await;
}
