//! The real ironic-python-agent (PyPI 13.0.0) driven by Ferric, with IPA's
//! defaults (auto-TLS on): a `direct` deploy of a `manual-management` node
//! writes the image onto the agent's only disk, a loop device the test
//! made, and the node goes `active` (a raw image, and a qcow2 one that IPA
//! converts with `qemu-img`, told its format as Ironic tells it); an `agent` inspection stores IPA's
//! inventory, creates the port of its second NIC, sets the properties and
//! applies an inspection rule; automated and manual cleaning erase the
//! disk's partition table through IPA's `erase_devices_metadata`. IPA runs
//! confined (see `helpers::ipa`): its
//! own network, mount and PID namespaces, no other disk's device node, no
//! clock, no power.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::ipa::{AgentNet, Ipa, LoopDisk};
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

/// A whole-disk image IPA accepts (it checks the partition table after
/// writing): an MBR with one Linux partition, and a pattern after it.
fn disk_image(len: usize) -> Vec<u8> {
    let mut image = vec![0u8; len];
    let sectors = u32::try_from(len / 512).unwrap();
    let entry = &mut image[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors - 2048).to_le_bytes());
    image[510] = 0x55;
    image[511] = 0xaa;
    for (i, chunk) in image[1 << 20..].chunks_mut(4096).enumerate() {
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
    }
    image
}

/// Ferric on the host's end of `net`, its boot-file server serving a disk
/// image: (app, image URL, image).
async fn ferric_on(net: &AgentNet) -> (TestApp, String, Vec<u8>) {
    ferric_cleaning(net, false).await
}

/// [`ferric_on`], with automated cleaning on or off; when on, as Metal3
/// configures Ironic: metadata only (`erase_devices_priority` 0).
async fn ferric_cleaning(net: &AgentNet, automated_clean: bool) -> (TestApp, String, Vec<u8>) {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.host = net.host_ip.clone();
        // IPA heartbeats every 0.3–0.6 of this.
        s.api.ramdisk_heartbeat_timeout_secs = 5;
        s.deploy.http_listen = Some(format!("{}:0", net.host_ip));
        s.conductor.automated_clean = automated_clean;
        s.conductor.erase_devices_priority = Some(0);
    })
    .await;
    let image = disk_image(8 << 20);
    let root = app.settings.boot().http_root;
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::write(root.join("images/disk.raw"), &image).unwrap();
    let files = app.embedded.as_ref().unwrap().boot_files_port.unwrap();
    let url = format!("http://{}:{files}/images/disk.raw", net.host_ip);
    (app, url, image)
}

/// A `manual-management` node created with `fields`, its port the
/// agent's first NIC (as an operator enrols the MAC it boots from), in
/// `manageable`.
async fn enroll(app: &TestApp, net: &AgentNet, fields: Value) -> String {
    let mut body = json!({"name": "ipa-node", "driver": "manual-management"});
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    app.manageable_node(body, Some(&net.mac)).await
}

/// Waits (at most 90 s) until the node is unlocked in one of `states`.
async fn settled_in(app: &TestApp, uuid: &str, states: &[&str]) -> Value {
    wait_until(Duration::from_secs(90), "the node to settle", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        let state = node["provision_state"].as_str().unwrap_or_default();
        (node["reservation"].is_null() && states.contains(&state)).then_some(node)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ironic_python_agent_deploys_an_image_over_auto_tls() {
    let net = AgentNet::new();
    let disk = LoopDisk::new(64 << 20);
    let (app, image_url, image) = ferric_on(&net).await;
    let uuid = enroll(
        &app,
        &net,
        json!({"deploy_interface": "direct",
               "driver_info": {"deploy_forces_oob_reboot": true},
               // Declared, as operators and Metal3 do: IPA 13 given no format
               // inspects a GPT image as "gpt" and hands that to qemu-img,
               // which has no such driver (with Ironic 39 alike).
               "instance_info": {"image_source": image_url, "image_disk_format": "raw",
                                 "image_os_hash_algo": "sha256",
                                 "image_os_hash_value": hex::encode(Sha256::digest(&image))}}),
    )
    .await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    app.provision(&uuid, "active").await;
    app.wait_for_state(&uuid, "wait call-back").await;

    // The machine "boots" its ramdisk.
    let ipa = Ipa::start(&net, &disk, &app.base, &[]);

    // Its heartbeat: an HTTPS callback and the certificate to trust.
    let internal = wait_until(
        Duration::from_secs(90),
        "IPA's heartbeat to be recorded",
        || async {
            let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            let internal = node["driver_internal_info"].clone();
            internal["agent_url"].is_string().then_some(internal)
        },
    )
    .await;
    assert_eq!(
        internal["agent_url"],
        format!("https://{}:9999", net.agent_ip),
        "{}",
        ipa.log()
    );
    assert!(
        internal["agent_verify_ca"]
            .as_str()
            .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")),
        "{internal}"
    );
    assert!(internal["agent_version"] == "13.0.0", "{internal}");

    let node = settled_in(&app, &uuid, &["active", "deploy failed"]).await;
    let log = ipa.log();
    assert_eq!(
        node["provision_state"], "active",
        "{}\n--- IPA ---\n{log}",
        node["last_error"]
    );
    assert!(node["last_error"].is_null(), "{}", node["last_error"]);
    // IPA served its command API over TLS, and wrote the verified image.
    assert!(log.contains("Started API service with TLS"), "{log}");
    assert!(
        log.contains(&format!("written to device {}", disk.device)),
        "{log}"
    );
    assert!(log.contains("Synchronous command sync completed"), "{log}");
    assert!(
        disk.read(image.len()) == image,
        "the disk does not hold the image"
    );
    // The agent's keys (its certificate with them) are gone with the deploy.
    assert!(node["driver_internal_info"]["agent_verify_ca"].is_null());
    assert!(node["driver_internal_info"]["agent_url"].is_null());
}

/// Ironic hands the real IPA the image's declared format; for qcow2 IPA
/// checks it with its format inspector and converts it with `qemu-img`
/// onto the disk (ferric-agent streams it instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ironic_python_agent_converts_a_qcow2_image_declared_so() {
    let net = AgentNet::new();
    let disk = LoopDisk::new(64 << 20);
    let (app, raw_url, image) = ferric_on(&net).await;
    let images = app.settings.boot().http_root.join("images");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(images.join("disk.raw"))
        .arg(images.join("disk.qcow2"))
        .status()
        .unwrap();
    assert!(status.success(), "qemu-img convert");
    let qcow2 = std::fs::read(images.join("disk.qcow2")).unwrap();
    assert!(qcow2.starts_with(b"QFI\xfb"));
    let uuid = enroll(
        &app,
        &net,
        json!({"deploy_interface": "direct",
               "driver_info": {"deploy_forces_oob_reboot": true},
               "instance_info": {"image_source": raw_url.replace("disk.raw", "disk.qcow2"),
                                 "image_disk_format": "qcow2",
                                 "image_os_hash_algo": "sha256",
                                 "image_os_hash_value": hex::encode(Sha256::digest(&qcow2))}}),
    )
    .await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    app.provision(&uuid, "active").await;
    app.wait_for_state(&uuid, "wait call-back").await;
    let ipa = Ipa::start(&net, &disk, &app.base, &[]);
    let node = settled_in(&app, &uuid, &["active", "deploy failed"]).await;
    let log = ipa.log();
    assert_eq!(
        node["provision_state"], "active",
        "{}\n--- IPA ---\n{log}",
        node["last_error"]
    );
    assert!(
        log.contains("qemu-img"),
        "IPA converted with qemu-img: {log}"
    );
    assert!(
        disk.read(image.len()) == image,
        "the disk holds the raw image the qcow2 was made from"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ironic_python_agent_inspects_a_node() {
    let net = AgentNet::new();
    let disk = LoopDisk::new(64 << 20);
    let (app, _, _) = ferric_on(&net).await;
    let rule = app
        .post(
            "/v1/inspection_rules",
            json!({"description": "x86 machines with a second NIC",
                   "conditions": [
                       {"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}},
                       {"op": "contains", "args": {"value": "{plugin_data[macs]}", "regex": net.mac2}}],
                   "actions": [{"op": "add-trait", "args": {"name": "CUSTOM_TWO_NICS"}},
                               {"op": "set-attribute", "args": {"path": "/extra/inspected_by",
                                                                "value": "{inventory[hostname]}"}}]}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text);
    let uuid = enroll(&app, &net, json!({"inspect_interface": "agent"})).await;
    app.provision(&uuid, "inspect").await;
    app.wait_for_state(&uuid, "inspect wait").await;

    // The ramdisk boots with the callback URL on its command line.
    let callback = format!(
        "inspection_callback_url = {}/v1/continue_inspection",
        app.base
    );
    let ipa = Ipa::start(&net, &disk, &app.base, &[&callback]);
    let node = settled_in(&app, &uuid, &["manageable", "inspect failed"]).await;
    let log = ipa.log();
    assert_eq!(
        node["provision_state"], "manageable",
        "{}\n--- IPA ---\n{log}",
        node["last_error"]
    );
    assert!(log.contains("inspection finished successfully"), "{log}");
    assert!(node["last_error"].is_null());
    assert!(node["inspection_finished_at"].is_string(), "{node}");
    assert_eq!(node["properties"]["cpu_arch"], "x86_64");
    assert!(node["properties"]["memory_mb"].as_u64().unwrap() > 0);
    assert!(node["properties"]["cpus"].as_u64().unwrap() > 0);
    assert_eq!(node["traits"], json!(["CUSTOM_TWO_NICS"]));
    assert!(node["extra"]["inspected_by"].is_string(), "{node}");

    // What IPA found, as Ironic stores it.
    let stored = app.get(&format!("/v1/nodes/{uuid}/inventory")).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    let stored = stored.json();
    let macs: Vec<&str> = stored["inventory"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["mac_address"].as_str())
        .collect();
    assert!(
        macs.contains(&net.mac.as_str()) && macs.contains(&net.mac2.as_str()),
        "{macs:?}"
    );
    assert_eq!(stored["inventory"]["disks"][0]["name"], disk.device);
    assert_eq!(stored["inventory"]["disks"][0]["size"], 64 << 20);
    assert_eq!(stored["plugin_data"]["macs"].as_array().unwrap().len(), 2);

    // Its second NIC got a port; the first kept its own.
    let ports = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();
    let mut addresses: Vec<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap())
        .collect();
    addresses.sort_unstable();
    let mut expected = vec![net.mac.as_str(), net.mac2.as_str()];
    expected.sort_unstable();
    assert_eq!(addresses, expected);
}

/// `[auto_discovery]` with the real agent: a machine no node matches boots
/// IPA with the inspection callback; Ferric enrolls a node for it, inspects
/// it with IPA's data (a rule picking discovered machines applied) and
/// leaves it in `enroll` with its ports, as Ironic does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ironic_python_agent_is_auto_discovered() {
    let net = AgentNet::new();
    let disk = LoopDisk::new(64 << 20);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.host = net.host_ip.clone();
        s.api.ramdisk_heartbeat_timeout_secs = 5;
        s.auto_discovery.enabled = true;
        s.auto_discovery.driver = Some("manual-management".into());
    })
    .await;
    let rule = app
        .post(
            "/v1/inspection_rules",
            json!({"conditions": [{"op": "is-true", "args": {"value": "{plugin_data[auto_discovered]}"}}],
                   "actions": [{"op": "set-attribute", "args": {"path": "/extra/enrolled_by",
                                                                "value": "auto-discovery"}}]}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text);
    let callback = format!(
        "inspection_callback_url = {}/v1/continue_inspection",
        app.base
    );
    let ipa = Ipa::start(&net, &disk, &app.base, &[&callback]);
    let node = wait_until(Duration::from_secs(120), "the discovered node", || async {
        let nodes = app.get("/v1/nodes/detail").await.json();
        let node = nodes["nodes"].as_array()?.first()?.clone();
        (node["reservation"].is_null() && node["inspection_finished_at"].is_string())
            .then_some(node)
    })
    .await;
    let log = ipa.log();
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        node["provision_state"], "enroll",
        "{node}\n--- IPA ---\n{log}"
    );
    assert_eq!(node["driver"], "manual-management");
    assert!(node["last_error"].is_null(), "{node}");
    assert_eq!(node["extra"]["enrolled_by"], "auto-discovery", "{node}");
    assert_eq!(node["properties"]["cpu_arch"], "x86_64");
    let stored = app.get(&format!("/v1/nodes/{uuid}/inventory")).await.json();
    assert_eq!(stored["plugin_data"]["auto_discovered"], true);
    assert_eq!(stored["inventory"]["disks"][0]["name"], disk.device);
    let ports = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();
    let addresses: Vec<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["address"].as_str())
        .collect();
    assert!(addresses.contains(&net.mac.as_str()), "{ports}");
    let nodes = app.get("/v1/nodes").await.json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");
}

/// What `wipefs` finds on the device (empty: no signature at all).
fn signatures(device: &str) -> String {
    let out = std::process::Command::new("wipefs")
        .args(["--no-act", "--all", device])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Gives the test's own disk a GPT with one partition.
fn partition(device: &str) {
    let out = std::process::Command::new("sgdisk")
        .args(["--clear", "--new=1:2048:0", device])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(signatures(device).contains("gpt"), "{}", signatures(device));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ironic_python_agent_cleans_a_node_automatically_and_by_hand() {
    let net = AgentNet::new();
    let disk = LoopDisk::new(64 << 20);
    let (app, _, _) = ferric_cleaning(&net, true).await;
    let uuid = enroll(&app, &net, json!({"deploy_interface": "direct"})).await;

    // Automated cleaning on provide.
    partition(&disk.device);
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "clean wait").await;
    let ipa = Ipa::start(&net, &disk, &app.base, &[]);
    let node = settled_in(&app, &uuid, &["available", "clean failed"]).await;
    let log = ipa.log();
    assert_eq!(
        node["provision_state"], "available",
        "{}\n--- IPA ---\n{log}",
        node["last_error"]
    );
    assert!(
        node["maintenance"] == false && node["clean_step"] == json!({}),
        "{node}"
    );
    assert!(log.contains("erase_devices_metadata"), "{log}");
    assert_eq!(signatures(&disk.device), "", "{log}");
    assert!(
        node["driver_internal_info"]["clean_steps"].is_null(),
        "{node}"
    );
    assert!(
        node["driver_internal_info"]["agent_url"].is_null(),
        "{node}"
    );
    drop(ipa);

    // A manual clean naming the step, with the machine's next boot.
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    partition(&disk.device);
    let clean = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "clean",
                   "clean_steps": [{"interface": "deploy", "step": "erase_devices_metadata"}]}),
        )
        .await;
    assert_eq!(clean.status, StatusCode::ACCEPTED, "{}", clean.text);
    app.wait_for_state(&uuid, "clean wait").await;
    let ipa = Ipa::start(&net, &disk, &app.base, &[]);
    let node = settled_in(&app, &uuid, &["manageable", "clean failed"]).await;
    assert_eq!(
        node["provision_state"],
        "manageable",
        "{}\n--- IPA ---\n{}",
        node["last_error"],
        ipa.log()
    );
    assert_eq!(signatures(&disk.device), "");
}
