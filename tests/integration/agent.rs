//! `ferric-agent` against a running Ferric, without a VM: it looks its node
//! up by MAC address, heartbeats with its callback URL, the token and its
//! auto-TLS certificate (the node records `agent_url`, `agent_verify_ca`),
//! and serves the command API over HTTPS the `direct`
//! deploy drives — deploy steps, `write_image` onto the one of three files
//! standing in for disks that the node's root-device hint picks, with the
//! image served from Ferric's `http_root`, a hint matching no disk, a checksum
//! mismatch as a failed command, a refused token, power off; its inventory;
//! a machine nobody enrolled discovered by it; automated cleaning and a
//! runbook of agent steps on files standing for disks.

use std::time::Duration;

use diesel::prelude::*;
use ferric_common::config::CleaningStepSource;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::process::{agent_binary, blank_disk, disk_prefix};
use crate::helpers::{Backend, spawn_app_with, wait_until};

async fn last_command(client: &reqwest::Client, agent_url: &str, token: &str) -> Value {
    let all: Value = client
        .get(format!("{agent_url}/v1/commands/"))
        .query(&[("agent_token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["commands"].as_array().unwrap().last().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_finds_its_node_heartbeats_and_writes_a_verified_image() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.deploy.http_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let node = app.create_node("agent-vm").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let mac = "52:54:00:aa:bb:01";
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": mac}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);

    // The image, served by Ferric's own http_root server.
    let image: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&image));
    let root = app.settings.boot().http_root;
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::write(root.join("images/disk.raw"), &image).unwrap();
    let files = app.embedded.as_ref().unwrap().boot_files_port.unwrap();
    let image_url = format!("http://127.0.0.1:{files}/images/disk.raw");

    // Three disks as the kernel lists them (`/sys/block/<name>/size`,
    // `serial`) whose device nodes are files: the node's root-device hint
    // picks the one written.
    let work = tempfile::tempdir().unwrap();
    let (sys_block, dev) = (work.path().join("sys-block"), work.path().join("dev"));
    std::fs::create_dir_all(&dev).unwrap();
    for (name, gib, serial) in [
        ("sda", 100_u64, "S-A"),
        ("sdb", 20, "S-B"),
        ("vda", 8, "S-C"),
    ] {
        let dir = sys_block.join(name);
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        std::fs::write(dir.join("size"), format!("{}\n", gib << 21)).unwrap();
        std::fs::write(dir.join("serial"), format!("{serial}\n")).unwrap();
        std::fs::write(dir.join("queue/rotational"), "0\n").unwrap();
        std::fs::write(dev.join(name), format!("untouched {name}")).unwrap();
    }
    let disk = dev.join("sdb");
    blank_disk(&disk, 4 << 20);
    let net = work.path().join("net");
    std::fs::create_dir_all(net.join("eth0")).unwrap();
    std::fs::write(net.join("eth0/address"), format!("{mac}\n")).unwrap();
    let powered_off = work.path().join("powered-off");
    let log = std::fs::File::create(work.path().join("agent.log")).unwrap();

    // As a deploy leaves the node: waiting for its ramdisk, unlocked.
    app.leave_waiting_for_ramdisk(&uuid).await;
    let db = app.embedded.as_ref().unwrap().db.clone();

    let mut agent = tokio::process::Command::new(agent_binary())
        .args(["--api-url", &app.base, "--listen", "127.0.0.1:0"])
        .args(["--advertise-host", "127.0.0.1"])
        .arg("--sys-block")
        .arg(&sys_block)
        .arg("--dev-dir")
        .arg(&dev)
        .arg("--sys-class-net")
        .arg(&net)
        .arg("--power-off-command")
        .arg(format!("touch {}", powered_off.display()))
        .args([
            "--lookup-interval-secs",
            "1",
            "--heartbeat-interval-secs",
            "1",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let agent_url = wait_until(
        Duration::from_secs(30),
        "the agent's heartbeat to be recorded",
        || async {
            let body = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            body["driver_internal_info"]["agent_url"]
                .as_str()
                .map(str::to_owned)
        },
    )
    .await;
    // Auto-TLS, as IPA: an HTTPS callback and the certificate to trust.
    assert!(agent_url.starts_with("https://127.0.0.1:"), "{agent_url}");
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert!(
        internal["agent_version"]
            .as_str()
            .unwrap()
            .starts_with("ferric-agent ")
    );

    // What the conductor holds: the token, kept in driver_internal_info.
    let key = uuid.clone();
    let stored: String = db
        .run(move |conn| {
            use ferric_common::db::schema::nodes;
            Ok(nodes::table
                .filter(nodes::uuid.eq(&key))
                .select(nodes::driver_internal_info)
                .first::<String>(conn)?)
        })
        .await
        .unwrap();
    let token = serde_json::from_str::<Value>(&stored).unwrap()["agent_secret_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = internal["agent_verify_ca"].as_str().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let plain = reqwest::Client::new()
        .get(format!("{agent_url}/v1/status"))
        .send()
        .await;
    assert!(plain.is_err(), "the system's roots do not trust the agent");
    let command = |name: &str, params: Value, wait: bool, token: &str| {
        client
            .post(format!("{agent_url}/v1/commands/"))
            .query(&[
                ("wait", if wait { "true" } else { "false" }),
                ("agent_token", token),
            ])
            .json(&json!({"name": name, "params": params}))
            .send()
    };

    let refused = command("deploy.get_deploy_steps", json!({}), true, "wrong")
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let unlisted = client
        .get(format!("{agent_url}/v1/commands/"))
        .send()
        .await
        .unwrap();
    assert_eq!(unlisted.status(), StatusCode::UNAUTHORIZED);

    let steps: Value = command("deploy.get_deploy_steps", json!({}), true, &token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(steps["command_status"], "SUCCEEDED", "{steps}");
    assert_eq!(
        steps["command_result"]["deploy_steps"]["GenericHardwareManager"][0]["step"],
        "write_image"
    );

    let write_to = |sha: String, hints: Value| {
        json!({
            "step": {"interface": "deploy", "step": "write_image", "priority": 80, "args": {
                "image_info": {"id": "disk.raw", "urls": [image_url], "disk_format": "raw",
                               "os_hash_algo": "sha256", "os_hash_value": sha}}},
            "node": {"uuid": uuid, "instance_info": {}, "properties": {"root_device": hints}},
            "ports": [],
        })
    };
    let write = |sha: String| write_to(sha, json!({"serial": "s-b"}));
    let started: Value = command(
        "deploy.execute_deploy_step",
        write(sha.clone()),
        false,
        &token,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        ["RUNNING", "SUCCEEDED"].contains(&started["command_status"].as_str().unwrap()),
        "{started}"
    );
    let done = wait_until(
        Duration::from_secs(30),
        "the image to be written",
        || async {
            let last = last_command(&client, &agent_url, &token).await;
            (last["command_status"] != "RUNNING").then_some(last)
        },
    )
    .await;
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    assert_eq!(
        disk_prefix(&disk, image.len()),
        image,
        "the disk holds the image"
    );
    for other in ["sda", "vda"] {
        assert_eq!(
            std::fs::read_to_string(dev.join(other)).unwrap(),
            format!("untouched {other}")
        );
    }

    // A hint no disk matches: the step fails as IPA's does, nothing written.
    let missed = command(
        "deploy.execute_deploy_step",
        write_to(sha.clone(), json!({"serial": "S-Z"})),
        true,
        &token,
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(missed["command_status"], "FAILED", "{missed}");
    assert!(
        missed["command_error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No suitable device was found for deployment using these hints"),
        "{missed}"
    );

    let bad = command(
        "deploy.execute_deploy_step",
        write("0".repeat(64)),
        true,
        &token,
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(bad["command_status"], "FAILED", "{bad}");
    let message = bad["command_error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Image failed to verify against checksum.") && message.contains(&sha),
        "{message}"
    );
    assert_eq!(
        disk_prefix(&disk, image.len()),
        image,
        "an image within the first MiB that failed verification never reached the disk"
    );

    let unknown = command("standby.format_everything", json!({}), true, &token)
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    let off: Value = command("standby.power_off", json!({}), true, &token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off["command_status"], "SUCCEEDED", "{off}");
    assert!(powered_off.exists());

    agent.kill().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_posts_an_inventory_of_the_machine_it_runs_on() {
    // The machine: a network namespace with two NICs (real veth devices,
    // with addresses), three disks listed as the kernel lists them.
    let net = crate::helpers::ipa::AgentNet::new();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.host = net.host_ip.clone();
    })
    .await;
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "inspect_interface": "agent"}),
            Some(&net.mac),
        )
        .await;
    app.provision(&uuid, "inspect").await;
    app.wait_for_state(&uuid, "inspect wait").await;

    let work = tempfile::tempdir().unwrap();
    let sys_block = work.path().join("sys-block");
    for (name, gib, serial) in [
        ("sda", 100_u64, "S-A"),
        ("sdb", 20, "S-B"),
        ("nvme0n1", 8, "S-N"),
    ] {
        let dir = sys_block.join(name);
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        std::fs::write(dir.join("size"), format!("{}\n", gib << 21)).unwrap();
        std::fs::write(dir.join("serial"), format!("{serial}\n")).unwrap();
        std::fs::write(
            dir.join("queue/rotational"),
            if name == "sda" { "1\n" } else { "0\n" },
        )
        .unwrap();
    }
    let log = std::fs::File::create(work.path().join("agent.log")).unwrap();
    let mut agent = tokio::process::Command::new("ip")
        .args(["netns", "exec", &net.ns])
        .arg(agent_binary())
        .args(["--api-url", &app.base, "--advertise-host", &net.agent_ip])
        .arg("--inspection-callback-url")
        .arg(format!("{}/v1/continue_inspection", app.base))
        .arg("--sys-block")
        .arg(&sys_block)
        // Its disks' device nodes too are the test's (none here: nothing
        // but the test's own files could ever be opened).
        .arg("--dev-dir")
        .arg(work.path().join("dev"))
        .args(["--power-off-command", "true", "--lookup-timeout-secs", "60"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let node = wait_until(Duration::from_secs(30), "the inspection to end", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        let state = node["provision_state"].as_str().unwrap_or_default();
        (node["reservation"].is_null() && (state == "manageable" || state == "inspect failed"))
            .then_some(node)
    })
    .await;
    let agent_log = std::fs::read_to_string(work.path().join("agent.log")).unwrap();
    assert_eq!(
        node["provision_state"], "manageable",
        "{}\n{agent_log}",
        node["last_error"]
    );
    assert_eq!(node["properties"]["cpu_arch"], std::env::consts::ARCH);
    assert_eq!(
        node["properties"]["local_gb"], 7,
        "the smallest disk of 4 GiB or more, less one"
    );
    let stored = app.get(&format!("/v1/nodes/{uuid}/inventory")).await.json();
    let inventory = &stored["inventory"];
    let disks: Vec<(&str, &str)> = inventory["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = d["name"].as_str().unwrap().rsplit('/').next().unwrap();
            (name, d["serial"].as_str().unwrap())
        })
        .collect();
    assert_eq!(disks, [("nvme0n1", "S-N"), ("sda", "S-A"), ("sdb", "S-B")]);
    assert_eq!(inventory["disks"][1]["rotational"], true);
    let nic = |mac: &str| {
        inventory["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["mac_address"] == mac)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        nic(&net.mac)["ipv4_address"],
        net.agent_ip.as_str(),
        "{inventory}"
    );
    assert_eq!(nic(&net.mac2)["ipv4_address"], "198.18.0.1");
    assert!(inventory["cpu"]["count"].as_u64().unwrap() >= 1);
    assert!(inventory["memory"]["physical_mb"].as_u64().unwrap() > 0);
    assert!(
        stored["plugin_data"]["root_disk"]["name"]
            .as_str()
            .unwrap()
            .ends_with("/nvme0n1")
    );
    // The second NIC, with an address, got its port.
    let ports = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();
    assert_eq!(ports["ports"].as_array().unwrap().len(), 2, "{ports}");
    agent.kill().await.unwrap();
}

/// `[auto_discovery]`: a machine nobody enrolled boots the agent, which
/// posts its inventory; Ferric enrolls a node for it with the configured
/// driver, runs the inspection (hooks, ports, the rules — one picks
/// discovered nodes by `plugin_data[auto_discovered]`), stores the data and
/// leaves the node in `enroll`, as Ironic does. The same machine posting
/// again finds its node (by its port), never a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_nobody_enrolled_is_discovered_inspected_and_left_in_enroll() {
    let net = crate::helpers::ipa::AgentNet::new();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.host = net.host_ip.clone();
        s.auto_discovery.enabled = true;
        s.auto_discovery.driver = Some("manual-management".into());
    })
    .await;
    let rule = app
        .post(
            "/v1/inspection_rules",
            json!({
                "description": "mark discovered machines",
                "conditions": [{"op": "is-true", "args": {"value": "{plugin_data[auto_discovered]}"}}],
                "actions": [{"op": "set-attribute", "args": {"path": "/extra/enrolled_by", "value": "auto-discovery"}}],
            }),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text);
    let work = tempfile::tempdir().unwrap();
    let sys_block = work.path().join("sys-block");
    let disk = sys_block.join("sda");
    std::fs::create_dir_all(disk.join("queue")).unwrap();
    std::fs::write(disk.join("size"), format!("{}\n", 40_u64 << 21)).unwrap();
    std::fs::write(disk.join("queue/rotational"), "0\n").unwrap();
    let log = std::fs::File::create(work.path().join("agent.log")).unwrap();
    let mut agent = tokio::process::Command::new("ip")
        .args(["netns", "exec", &net.ns])
        .arg(agent_binary())
        .args(["--api-url", &app.base, "--advertise-host", &net.agent_ip])
        .arg("--inspection-callback-url")
        .arg(format!("{}/v1/continue_inspection", app.base))
        .arg("--sys-block")
        .arg(&sys_block)
        .arg("--dev-dir")
        .arg(work.path().join("dev"))
        .args(["--power-off-command", "true", "--lookup-timeout-secs", "60"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let node = wait_until(Duration::from_secs(30), "the discovered node", || async {
        let nodes = app.get("/v1/nodes/detail").await.json();
        let node = nodes["nodes"].as_array()?.first()?.clone();
        (node["reservation"].is_null() && node["inspection_finished_at"].is_string())
            .then_some(node)
    })
    .await;
    let agent_log = std::fs::read_to_string(work.path().join("agent.log")).unwrap();
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    assert_eq!(node["provision_state"], "enroll", "{node}\n{agent_log}");
    assert_eq!(node["driver"], "manual-management");
    assert!(node["last_error"].is_null(), "{node}");
    assert_eq!(node["extra"]["enrolled_by"], "auto-discovery", "{node}");
    assert_eq!(node["properties"]["cpu_arch"], std::env::consts::ARCH);
    assert_eq!(node["properties"]["local_gb"], 39);
    let stored = app.get(&format!("/v1/nodes/{uuid}/inventory")).await.json();
    assert_eq!(stored["plugin_data"]["auto_discovered"], true, "{stored}");
    let ports = app
        .get(&format!("/v1/nodes/{uuid}/ports?detail=true"))
        .await
        .json();
    let addresses: Vec<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["address"].as_str())
        .collect();
    assert!(addresses.contains(&net.mac.as_str()), "{ports}");
    agent.kill().await.unwrap();

    // The same machine again: its port names its node, which is not
    // waiting for inspection — refused, and no second node.
    let again = app
        .post(
            "/v1/continue_inspection",
            json!({"inventory": {"interfaces": [{"mac_address": net.mac}]}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
    let nodes = app.get("/v1/nodes").await.json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");
}

/// Two 8 MiB files standing for the disks `sda` and `sdb` (a GPT, then
/// `0x5a` bytes), listed as the kernel lists them, and a NIC with `mac`.
struct FakeDisks {
    work: tempfile::TempDir,
}

impl FakeDisks {
    fn new(mac: &str) -> FakeDisks {
        let disks = FakeDisks {
            work: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(disks.dev()).unwrap();
        std::fs::create_dir_all(disks.net().join("eth0")).unwrap();
        std::fs::write(disks.net().join("eth0/address"), format!("{mac}\n")).unwrap();
        for name in ["sda", "sdb"] {
            let block = disks.sys_block().join(name);
            std::fs::create_dir_all(&block).unwrap();
            std::fs::write(block.join("size"), "16384\n").unwrap();
            std::fs::write(disks.dev().join(name), vec![0x5a; 8 << 20]).unwrap();
            let gpt = std::process::Command::new("sgdisk")
                .args(["--clear", "--new=1:2048:0"])
                .arg(disks.dev().join(name))
                .output()
                .unwrap();
            assert!(
                gpt.status.success(),
                "{}",
                String::from_utf8_lossy(&gpt.stderr)
            );
        }
        disks
    }

    fn sys_block(&self) -> std::path::PathBuf {
        self.work.path().join("sys-block")
    }

    /// Both disks lost their GPT (the primary header at LBA 1 and the
    /// backup in the last sector) and kept the data between.
    fn assert_only_metadata_erased(&self) {
        for name in ["sda", "sdb"] {
            let bytes = std::fs::read(self.dev().join(name)).unwrap();
            assert_ne!(&bytes[512..520], b"EFI PART", "{name}: primary GPT left");
            assert_ne!(
                &bytes[bytes.len() - 512..bytes.len() - 504],
                b"EFI PART",
                "{name}: backup GPT left"
            );
            assert!(
                bytes[4 << 20..(4 << 20) + 4096].iter().all(|b| *b == 0x5a),
                "{name}: more than the metadata was erased"
            );
        }
    }

    fn dev(&self) -> std::path::PathBuf {
        self.work.path().join("dev")
    }

    fn net(&self) -> std::path::PathBuf {
        self.work.path().join("net")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("agent.log")).unwrap_or_default()
    }

    /// `ferric-agent` on these disks, talking to the API at `base`.
    fn agent(&self, base: &str) -> tokio::process::Child {
        let log = std::fs::File::create(self.work.path().join("agent.log")).unwrap();
        tokio::process::Command::new(agent_binary())
            .args(["--api-url", base, "--listen", "127.0.0.1:0"])
            .args(["--advertise-host", "127.0.0.1"])
            .arg("--sys-block")
            .arg(self.sys_block())
            .arg("--dev-dir")
            .arg(self.dev())
            .arg("--sys-class-net")
            .arg(self.net())
            .args(["--power-off-command", "true", "--lookup-interval-secs", "1"])
            .args(["--heartbeat-interval-secs", "1"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }
}

/// An app, a `direct` node with a port of `mac` in `manageable`, and the
/// files its agent will take for disks.
async fn cleanable(mac: &str) -> (crate::helpers::TestApp, String, FakeDisks) {
    cleanable_with(mac, |_| {}).await
}

/// [`cleanable`] with settings of the test's own.
async fn cleanable_with(
    mac: &str,
    adjust: impl FnOnce(&mut ferric_common::config::Settings),
) -> (crate::helpers::TestApp, String, FakeDisks) {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.ramdisk_heartbeat_timeout_secs = 3;
        adjust(s);
    })
    .await;
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "deploy_interface": "direct"}),
            Some(mac),
        )
        .await;
    (app, uuid, FakeDisks::new(mac))
}

/// Once the node waits in `clean wait`, runs the agent on `disks` until the
/// cleaning ends, which must be in `done`; the agent's log.
async fn clean_with_agent(
    app: &crate::helpers::TestApp,
    uuid: &str,
    disks: &FakeDisks,
    done: &str,
) -> String {
    app.wait_for_state(uuid, "clean wait").await;
    let mut agent = disks.agent(&app.base);
    let node = wait_until(Duration::from_secs(30), "the cleaning to end", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        let state = node["provision_state"].as_str().unwrap_or_default();
        (node["reservation"].is_null() && (state == done || state == "clean failed"))
            .then_some(node)
    })
    .await;
    agent.kill().await.unwrap();
    let log = disks.log();
    assert_eq!(
        node["provision_state"], done,
        "{}\n{log}",
        node["last_error"]
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_erases_every_disk_in_an_automated_clean() {
    let (app, uuid, disks) = cleanable("52:54:00:c1:ea:01").await;
    app.provision(&uuid, "provide").await;
    let agent_log = clean_with_agent(&app, &uuid, &disks, "available").await;
    // erase_devices_metadata (99) then erase_devices (10): nothing left.
    for name in ["sda", "sdb"] {
        let bytes = std::fs::read(disks.dev().join(name)).unwrap();
        assert_eq!(bytes.len(), 8 << 20);
        assert!(bytes.iter().all(|b| *b == 0), "{name} still holds data");
    }
    assert!(agent_log.contains("erase_devices_metadata"), "{agent_log}");
}

/// An agent that dies while its clean step runs: no heartbeat comes, the
/// clean times out into `clean failed` naming the step (in Python's
/// notation, as Ironic), and the node goes into maintenance with fault
/// `clean failure`, because a step was running (as Ironic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_dies_mid_clean_fails_the_clean_naming_its_step() {
    let (app, uuid, disks) = cleanable_with("52:54:00:c1:ea:05", |s| {
        s.conductor.check_provision_state_interval_secs = 1;
        s.conductor.deploy_callback_timeout_secs = 4;
    })
    .await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "clean wait").await;
    let mut agent = disks.agent(&app.base);
    let step = wait_until(Duration::from_secs(20), "a clean step to start", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        node["clean_step"]["step"].as_str().map(str::to_owned)
    })
    .await;
    agent.kill().await.unwrap();
    let node = wait_until(Duration::from_secs(20), "the clean to time out", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (node["provision_state"] == "clean failed" && node["reservation"].is_null()).then_some(node)
    })
    .await;
    let error = node["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("Timeout reached while cleaning the node.")
            && error.contains(&format!("'step': '{step}'")),
        "{error}"
    );
    assert_eq!(node["maintenance"], true, "{node}");
    assert_eq!(node["fault"], "clean failure", "{node}");
    assert_eq!(node["maintenance_reason"], error, "{node}");
    assert_eq!(node["clean_step"], json!({}), "{node}");
}

/// A runbook (1.92) whose one step is the agent's: manual cleaning with it
/// boots the ramdisk, and the agent runs exactly that step — the partition
/// tables go, the data between them stays — then the node is manageable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_of_agent_steps_runs_them_and_only_them() {
    let (app, uuid, disks) = cleanable("52:54:00:c1:ea:02").await;
    wipe_metadata_runbook(&app).await;
    // A runbook runs only on a node sharing one of its traits (Ironic).
    let states = format!("/v1/nodes/{uuid}/states/provision");
    let clean = json!({"target": "clean", "runbook": "CUSTOM_WIPE_METADATA"});
    let refused = app.put(&states, clean.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    let traited = app
        .put(
            &format!("/v1/nodes/{uuid}/traits/CUSTOM_WIPE_METADATA"),
            json!(null),
        )
        .await;
    assert_eq!(traited.status, StatusCode::NO_CONTENT, "{}", traited.text);
    let cleaning = app.put(&states, clean).await;
    assert_eq!(cleaning.status, StatusCode::ACCEPTED, "{}", cleaning.text);
    let agent_log = clean_with_agent(&app, &uuid, &disks, "manageable").await;
    disks.assert_only_metadata_erased();
    assert!(agent_log.contains("erase_devices_metadata"), "{agent_log}");
}

/// The runbook `CUSTOM_WIPE_METADATA` (trait alike): the agent's
/// `erase_devices_metadata` alone.
async fn wipe_metadata_runbook(app: &crate::helpers::TestApp) {
    let runbook = app
        .post(
            "/v1/runbooks",
            json!({"name": "CUSTOM_WIPE_METADATA", "steps": [
                {"interface": "deploy", "step": "erase_devices_metadata", "args": {}, "order": 1}]}),
        )
        .await;
    assert_eq!(runbook.status, StatusCode::CREATED, "{}", runbook.text);
    let traits = app
        .put(
            "/v1/runbooks/CUSTOM_WIPE_METADATA/traits",
            json!({"traits": ["CUSTOM_WIPE_METADATA"]}),
        )
        .await;
    assert!(traits.status.is_success(), "{}", traits.text);
}

/// `[conductor] automated_cleaning_step_source = "runbook"` with a runbook
/// for the node's resource class: `provide` runs that runbook's one step
/// instead of the agent's priorities (which would have erased every byte
/// with `erase_devices`), and the node is `available`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_cleaning_by_runbook_runs_its_steps_instead_of_the_priorities() {
    let (app, uuid, disks) = cleanable_with("52:54:00:c1:ea:03", |s| {
        s.conductor.automated_cleaning_step_source = CleaningStepSource::Runbook;
        s.conductor.automated_cleaning_runbook_by_resource_class =
            [("metal-small".to_owned(), "CUSTOM_WIPE_METADATA".to_owned())].into();
    })
    .await;
    wipe_metadata_runbook(&app).await;
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/resource_class", "value": "metal-small"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let traited = app
        .put(
            &format!("/v1/nodes/{uuid}/traits/CUSTOM_WIPE_METADATA"),
            json!(null),
        )
        .await;
    assert_eq!(traited.status, StatusCode::NO_CONTENT, "{}", traited.text);
    app.provision(&uuid, "provide").await;
    clean_with_agent(&app, &uuid, &disks, "available").await;
    disks.assert_only_metadata_erased();
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    let internal = &node["driver_internal_info"];
    assert!(
        internal.get("declarative_cleaning").is_none() && internal.get("clean_steps").is_none(),
        "{internal}"
    );
}

/// Automated cleaning that must run a runbook and cannot: none configured,
/// one that does not exist, one the node shares no trait with. Each ends
/// in `clean failed` with Ironic's reason, before any ramdisk is booted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_cleaning_without_a_usable_runbook_fails_with_the_reason() {
    let (app, uuid, _disks) = cleanable_with("52:54:00:c1:ea:04", |s| {
        s.conductor.automated_cleaning_step_source = CleaningStepSource::Runbook;
        s.conductor.automated_cleaning_runbook_from_node = true;
    })
    .await;
    wipe_metadata_runbook(&app).await;
    let failed_with = |driver_info: Value| {
        let (app, uuid) = (&app, &uuid);
        async move {
            let patched = app
                .patch(
                    &format!("/v1/nodes/{uuid}"),
                    json!([{"op": "add", "path": "/driver_info", "value": driver_info}]),
                )
                .await;
            assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
            app.provision(uuid, "provide").await;
            let node = app.wait_for_state(uuid, "clean failed").await;
            assert_eq!(node["maintenance"], false, "{node}");
            assert!(
                node["driver_internal_info"].get("agent_url").is_none(),
                "{node}"
            );
            app.provision(uuid, "manage").await;
            app.wait_for_state(uuid, "manageable").await;
            node["last_error"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(
        failed_with(json!({})).await,
        format!(
            "Unable to perform cleaning for node {uuid}: configuration requires runbook for automated cleaning and none was configured."
        )
    );
    assert_eq!(
        failed_with(json!({"cleaning_runbook": "CUSTOM_NOPE"})).await,
        "Runbook CUSTOM_NOPE could not be found."
    );
    assert_eq!(
        failed_with(json!({"cleaning_runbook": "CUSTOM_WIPE_METADATA"})).await,
        format!(
            "Automated cleaning runbook CUSTOM_WIPE_METADATA is not valid for node {uuid}. None of the runbook's traits ['CUSTOM_WIPE_METADATA'] match a node trait."
        )
    );
}
