//! Metal3's baremetal-operator enrolling and provisioning an IPMI host, as
//! its Ironic provisioner (`pkg/provisioner/ironic/`) calls the API, at the
//! microversion it picks: create with its interface set, the boot MAC's
//! port, manage, the `configureNode` PATCH, inspect (after the inventory's
//! 404), provide with metadata-only cleaning, the deploy PATCH, validate
//! and `active` with a JSON config drive — through to `active`, the image
//! and the config drive (built by Ferric, written by IPA) on the disk.
//!
//! The host is real to Ferric: an `ipmi_sim` BMC whose chassis control
//! network-boots the real ironic-python-agent (13.0.0, PyPI) with the
//! kernel command line of the iPXE configuration Ferric wrote for the
//! host's MAC, confined to a loop device (`helpers::ipa::IpaMachine`).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::http::FileServer;
use crate::helpers::ipa::{AgentNet, IpaMachine, LoopDisk};
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

/// The microversion baremetal-operator settles on against an Ironic that
/// offers 1.110 or later.
const METAL3_VERSION: &str = "1.110";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let reply = app
        .request(method, path, Some(METAL3_VERSION), body.as_ref())
        .await;
    let value = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
    (reply.status, value)
}

async fn provision(app: &TestApp, uuid: &str, body: Value) {
    let (status, answer) = call(
        app,
        Method::PUT,
        &format!("/v1/nodes/{uuid}/states/provision"),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

/// Polls as the operator does until the node is unlocked in one of
/// `states`.
async fn reached(app: &TestApp, uuid: &str, states: &[&str], machine: &IpaMachine) -> Value {
    let node = wait_until(Duration::from_secs(120), "the host to settle", || async {
        let (_, node) = call(app, Method::GET, &format!("/v1/nodes/{uuid}"), None).await;
        let state = node["provision_state"].as_str().unwrap_or_default();
        (node["reservation"].is_null() && states.contains(&state)).then_some(node)
    })
    .await;
    assert_eq!(
        node["provision_state"],
        states[0],
        "{}\n{}",
        node["last_error"],
        machine.log()
    );
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metal3_enrolls_inspects_cleans_and_provisions_an_ipmi_host() {
    let net = AgentNet::new();
    // Room for the image and IPA's 64 MiB config drive partition.
    let disk = LoopDisk::new(256 << 20);
    // The API's address goes into the kernel command line: a fixed port.
    let port = std::net::TcpListener::bind((net.host_ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.host = net.host_ip.clone();
        s.api.port = port;
        s.api.ramdisk_heartbeat_timeout_secs = 5;
        s.deploy.http_listen = Some(format!("{}:0", net.host_ip));
        s.conductor.sync_power_state_interval_secs = 0;
        // Metal3's cleaning mode "metadata".
        s.conductor.erase_devices_priority = Some(0);
        s.ipmi.min_command_interval_ms = 0;
    })
    .await;
    let http_root = app.settings.boot().http_root;
    let machine = IpaMachine::start(&net, &disk, &http_root).await;
    // The deploy kernel and ramdisk Metal3's PreprovisioningImage names
    // (the conductor fetches them; IPA "boots" from them).
    let ramdisk_files = FileServer::start(HashMap::from([
        ("/ipa.kernel".to_owned(), b"kernel".to_vec()),
        ("/ipa.initramfs".to_owned(), b"initramfs".to_vec()),
    ]))
    .await;
    let image: Vec<u8> = {
        let mut image = vec![0u8; 8 << 20];
        // An MBR with one partition (IPA checks the table after writing).
        image[446 + 4] = 0x83;
        image[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        image[446 + 12..446 + 16].copy_from_slice(&(16384u32 - 2048).to_le_bytes());
        image[510] = 0x55;
        image[511] = 0xaa;
        image[1 << 20..(1 << 20) + 16].copy_from_slice(b"metal3-host-disk");
        image
    };
    std::fs::create_dir_all(http_root.join("images")).unwrap();
    std::fs::write(http_root.join("images/host.raw"), &image).unwrap();
    let files = app.embedded.as_ref().unwrap().boot_files_port.unwrap();

    // Registration: lookups by name and MAC find nothing, then create.
    let (status, _) = call(&app, Method::GET, "/v1/nodes/metal3~host-0", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ports) = call(
        &app,
        Method::GET,
        &format!(
            "/v1/ports?address={}&fields=node_uuid,uuid,address",
            net.mac
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ports["ports"], json!([]));
    let mut driver_info = machine.bmc.driver_info();
    driver_info["ipmi_port"] = json!(machine.bmc.port.to_string());
    driver_info["ipmi_priv_level"] = json!("ADMINISTRATOR");
    let (status, node) = call(
        &app,
        Method::POST,
        "/v1/nodes",
        Some(json!({
            "driver": "ipmi", "boot_interface": "ipxe", "raid_interface": "no-raid",
            "inspect_interface": "agent", "name": "metal3~host-0", "disable_power_off": false,
            "properties": {"capabilities": "boot_mode:uefi", "cpu_arch": "x86_64"},
            "driver_info": driver_info,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    assert_eq!(node["deploy_interface"], "direct");
    let (status, port) = call(
        &app,
        Method::POST,
        "/v1/ports",
        Some(json!({"node_uuid": uuid, "address": net.mac, "pxe_enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{port}");

    provision(&app, &uuid, json!({"target": "manage"})).await;
    reached(&app, &uuid, &["manageable", "enroll"], &machine).await;

    // configureNode.
    let (status, patched) = call(
        &app,
        Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([
            {"op": "add", "path": "/driver_info/deploy_kernel", "value": ramdisk_files.url("/ipa.kernel")},
            {"op": "add", "path": "/driver_info/deploy_ramdisk", "value": ramdisk_files.url("/ipa.initramfs")},
            {"op": "add", "path": "/automated_clean", "value": true},
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");

    // Inspection, after the inventory's 404.
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, patched) = call(
        &app,
        Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([{"op": "add", "path": "/inspect_interface", "value": "agent"}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    provision(&app, &uuid, json!({"target": "inspect"})).await;
    reached(&app, &uuid, &["manageable", "inspect failed"], &machine).await;
    let (status, inventory) = call(
        &app,
        Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // What the operator copies into HardwareDetails.
    assert_eq!(inventory["inventory"]["cpu"]["architecture"], "x86_64");
    assert!(
        inventory["inventory"]["memory"]["physical_mb"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(inventory["inventory"]["disks"][0]["name"], disk.device);
    assert!(inventory["plugin_data"]["all_interfaces"][&net.nic]["pxe_enabled"].is_boolean());

    // Provide: automated cleaning, metadata only.
    provision(&app, &uuid, json!({"target": "provide"})).await;
    reached(&app, &uuid, &["available", "clean failed"], &machine).await;

    // Deploy.
    let (status, patched) = call(
        &app,
        Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([
            {"op": "add", "path": "/instance_uuid", "value": "5b0c9d1e-0a7f-4f43-9d55-7a3f3e2b9c11"},
            {"op": "add", "path": "/instance_info/capabilities", "value": {}},
            {"op": "add", "path": "/instance_info/image_source",
             "value": format!("http://{}:{files}/images/host.raw", net.host_ip)},
            {"op": "add", "path": "/instance_info/image_disk_format", "value": "raw"},
            {"op": "add", "path": "/instance_info/image_os_hash_algo", "value": "sha256"},
            {"op": "add", "path": "/instance_info/image_os_hash_value",
             "value": hex::encode(Sha256::digest(&image))},
            {"op": "add", "path": "/driver_info/force_persistent_boot_device", "value": "Default"},
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, validation) = call(
        &app,
        Method::GET,
        &format!("/v1/nodes/{uuid}/validate"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(validation["boot"]["result"], true, "{validation}");
    assert_eq!(validation["deploy"]["result"], true, "{validation}");
    provision(
        &app,
        &uuid,
        json!({"target": "active", "configdrive": {
            "meta_data": {"uuid": "5b0c9d1e-0a7f-4f43-9d55-7a3f3e2b9c11", "metal3-namespace": "metal3",
                          "metal3-name": "host-0", "local-hostname": "host-0",
                          "local_hostname": "host-0", "name": "host-0"},
            "user_data": "#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAA metal3]\n",
            "network_data": {"links": [], "networks": [], "services": []}}}),
    )
    .await;
    let node = reached(&app, &uuid, &["active", "deploy failed"], &machine).await;
    assert_eq!(node["power_state"], "power on");
    let written = disk.read(256 << 20);
    // The image, but for the partition entry IPA added to its MBR.
    assert!(
        written[446..462] == image[446..462] && written[512..image.len()] == image[512..],
        "the host's disk does not hold the image"
    );
    // IPA wrote the config drive Ferric built into a new partition: an ISO
    // labelled config-2 holding the operator's metadata.
    // MBR: the second partition entry's type and first sector.
    let entry = &written[462..478];
    assert_ne!(entry[4], 0, "no second partition\n{}", machine.log());
    let first = u32::from_le_bytes(entry[8..12].try_into().unwrap());
    let start = usize::try_from(first).unwrap() * 512;
    let iso = &written[start..];
    assert_eq!(&iso[32768 + 40..32768 + 48], b"config-2");
    let text = String::from_utf8_lossy(iso);
    assert!(
        text.contains("metal3-name"),
        "no meta_data in the config drive"
    );
    assert!(
        text.contains("ssh-ed25519 AAAA metal3"),
        "no user_data in the config drive"
    );
    // Three network boots (inspect, clean, deploy), then the disk.
    assert_eq!(machine.boots(), 3, "{}", machine.log());
    assert_eq!(
        machine.bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );
}
