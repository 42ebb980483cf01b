//! The real ironic-python-agent (PyPI 13.0.0) driven by Ferric, with IPA's
//! defaults (auto-TLS on): a `direct` deploy of a `manual-management` node
//! writes the image onto the agent's only disk, a loop device the test
//! made, and the node goes `active`. IPA runs confined (see
//! `helpers::ipa`): its own network, mount and PID namespaces, no other
//! disk's device node, no clock, no power.

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

/// Ferric on the host's end of `net`, its boot-file server serving the
/// image, and an available `manual-management` + `direct` node whose port
/// is the agent's NIC: (app, node uuid, image).
async fn ferric_for(net: &AgentNet, driver_info: Value) -> (TestApp, String, Vec<u8>) {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.host = net.host_ip.clone();
        // IPA heartbeats every 0.3–0.6 of this.
        s.api.ramdisk_heartbeat_timeout_secs = 5;
        s.deploy.http_listen = Some(format!("{}:0", net.host_ip));
        s.conductor.automated_clean = false;
    })
    .await;
    let image = disk_image(8 << 20);
    let root = app.settings.boot().http_root;
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::write(root.join("images/disk.raw"), &image).unwrap();
    let files = app.embedded.as_ref().unwrap().boot_files_port.unwrap();

    let created = app
        .post(
            "/v1/nodes",
            json!({"name": "ipa-node", "driver": "manual-management",
                   "deploy_interface": "direct", "driver_info": driver_info}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": net.mac}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([
                {"op": "add", "path": "/instance_info/image_source",
                 "value": format!("http://{}:{files}/images/disk.raw", net.host_ip)},
                {"op": "add", "path": "/instance_info/image_os_hash_algo", "value": "sha256"},
                {"op": "add", "path": "/instance_info/image_os_hash_value",
                 "value": hex::encode(Sha256::digest(&image))},
            ]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    (app, uuid, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ironic_python_agent_deploys_an_image_over_auto_tls() {
    let net = AgentNet::new();
    let disk = LoopDisk::new(64 << 20);
    let (app, uuid, image) = ferric_for(&net, json!({"deploy_forces_oob_reboot": true})).await;
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

    let node = wait_until(Duration::from_secs(90), "the deploy to end", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        let state = node["provision_state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (node["reservation"].is_null() && (state == "active" || state == "deploy failed"))
            .then_some(node)
    })
    .await;
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
