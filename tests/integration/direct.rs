//! The `direct` deploy interface end to end without a VM: an `ipmi_sim`
//! BMC stands for the machine's BMC, `ferric-agent` (started by the test
//! once the BMC has been told to network-boot, as the deploy ramdisk would
//! start) for its ramdisk, a file for its disk. The node boots the ramdisk
//! over IPMI, waits in `wait call-back`, the agent's heartbeats drive the
//! image write, then the node boots from disk and is `active`; a checksum
//! mismatch and a silent agent end in `deploy failed`. Over Redfish virtual
//! media, `sushy-emulator` is the BMC and the deploy ISO goes into its CD.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::helpers::bmc::SimBmc;
use crate::helpers::http::FileServer;
use crate::helpers::process::{agent_binary, blank_disk, disk_prefix};
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

const MAC: &str = "52:54:00:de:0c:01";
/// The size of the disks the agent writes to (room for a config drive).
const DISK_SIZE: u64 = 128 << 20;

async fn direct_app(callback_timeout_secs: u64) -> TestApp {
    direct_app_with(callback_timeout_secs, |_| {}).await
}

/// [`direct_app`] with more settings.
async fn direct_app_with(
    callback_timeout_secs: u64,
    adjust: impl FnOnce(&mut ferric_common::config::Settings),
) -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["ipmi".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.conductor.check_provision_state_interval_secs = 1;
        s.conductor.deploy_callback_timeout_secs = callback_timeout_secs;
        // The deploys are the subject; cleaning through an agent is ipa.rs.
        s.conductor.automated_clean = false;
        s.dhcp.dhcp_provider = ferric_common::config::DhcpProvider::Dnsmasq;
        s.ipmi.min_command_interval_ms = 0;
        s.ipmi.command_retry_timeout_secs = 3;
        adjust(s);
    })
    .await
}

/// An available `ipmi` + `ipxe` + `direct` node deploying `image_url`.
async fn direct_node(
    app: &TestApp,
    bmc: &SimBmc,
    server: &FileServer,
    image_sha256: &str,
) -> String {
    let mut driver_info = bmc.driver_info();
    driver_info["deploy_kernel"] = json!(server.url("/deploy_kernel"));
    driver_info["deploy_ramdisk"] = json!(server.url("/deploy_ramdisk"));
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "ipmi", "driver_info": driver_info,
                   "boot_interface": "ipxe", "deploy_interface": "direct",
                   "instance_info": {"image_source": server.url("/disk.raw"),
                                     "image_os_hash_algo": "sha256",
                                     "image_os_hash_value": image_sha256}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": MAC}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    uuid
}

/// Waits until the node is in `state` and unlocked.
async fn wait_unlocked_in(app: &TestApp, uuid: &str, states: &[&str]) -> Value {
    wait_until(Duration::from_secs(60), "the node to settle", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (states.contains(&node["provision_state"].as_str().unwrap_or(""))
            && node["reservation"].is_null())
        .then_some(node)
    })
    .await
}

/// The deploy ramdisk coming up: the agent on this machine's loopback; its
/// power off goes through the BMC, as a real machine's would be seen there.
fn start_agent(app: &TestApp, bmc: &SimBmc, work: &Path, disk: &Path) -> tokio::process::Child {
    let power_off = format!(
        "ipmitool -I lanplus -C 3 -H 127.0.0.1 -p {} -U {} -P {} chassis power off",
        bmc.port,
        crate::helpers::bmc::USER,
        crate::helpers::bmc::PASSWORD
    );
    start_agent_with(app, &power_off, work, disk)
}

/// The agent, powering its machine off with `power_off`.
fn start_agent_with(
    app: &TestApp,
    power_off: &str,
    work: &Path,
    disk: &Path,
) -> tokio::process::Child {
    let net = work.join("net");
    std::fs::create_dir_all(net.join("eth0")).unwrap();
    std::fs::write(net.join("eth0/address"), format!("{MAC}\n")).unwrap();
    let log = std::fs::File::create(work.join("agent.log")).unwrap();
    tokio::process::Command::new(agent_binary())
        .args(["--api-url", &app.base, "--listen", "127.0.0.1:0"])
        .args(["--advertise-host", "127.0.0.1", "--power-off-command"])
        .arg(power_off)
        .arg("--root-device")
        .arg(disk)
        .arg("--sys-class-net")
        .arg(&net)
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
        .unwrap()
}

/// A 2 MiB whole-disk image: an MBR with one Linux partition, then data.
fn partitioned_image() -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(2 << 20).unwrap();
    let mut sfdisk = std::process::Command::new("sfdisk")
        .arg("-q")
        .arg(file.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        sfdisk.stdin.as_mut().unwrap(),
        b"label: dos\nstart=2048, size=2048, type=L\n",
    )
    .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let mut image = std::fs::read(file.path()).unwrap();
    for (i, b) in image[1 << 20..].iter_mut().enumerate() {
        *b = (i * 13 % 241) as u8;
    }
    image
}

fn files(image: &[u8]) -> HashMap<String, Vec<u8>> {
    HashMap::from([
        ("/deploy_kernel".to_owned(), b"deploy kernel".to_vec()),
        ("/deploy_ramdisk".to_owned(), b"deploy ramdisk".to_vec()),
        ("/disk.raw".to_owned(), image.to_vec()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_deploy_boots_the_agent_writes_the_image_and_boots_from_disk() {
    let image = partitioned_image();
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let server = FileServer::start(files(&image)).await;
    let bmc = SimBmc::start().await;
    let app = direct_app(1800).await;
    let boot = app.settings.boot();
    let uuid = direct_node(&app, &bmc, &server, &sha).await;

    // With a config drive given as JSON (1.56): Ferric builds it and the
    // write_image step carries it to the agent.
    let deploy = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "active",
                   "configdrive": {"meta_data": {"hostname": "web-1"}, "user_data": "#cloud-config\n"}}),
        )
        .await;
    assert_eq!(deploy.status, StatusCode::ACCEPTED, "{}", deploy.text);
    let waiting = wait_unlocked_in(&app, &uuid, &["wait call-back", "deploy failed"]).await;
    assert_eq!(waiting["provision_state"], "wait call-back", "{waiting}");
    let config = std::fs::read_to_string(boot.http_root.join(&uuid).join("config")).unwrap();
    assert!(config.contains("ipa-api-url="), "{config}");
    assert_eq!(
        std::fs::read(boot.http_root.join(&uuid).join("ramdisk")).unwrap(),
        b"deploy ramdisk"
    );
    assert!(
        bmc.ipmitool(&["chassis", "bootparam", "get", "5"])
            .contains("Force PXE")
    );
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );

    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    blank_disk(&disk, DISK_SIZE);
    let mut agent = start_agent(&app, &bmc, work.path(), &disk);
    let active = wait_unlocked_in(&app, &uuid, &["active", "deploy failed"]).await;
    let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();
    assert_eq!(active["provision_state"], "active", "{active}\n{log}");
    assert!(active["last_error"].is_null(), "{active}");
    assert!(
        !log.contains("web-1"),
        "the config drive is never logged: {log}"
    );
    // The drive went into a new partition at the disk's end, after the
    // image's own: an ISO labelled config-2 with the meta_data given.
    let dump = String::from_utf8(
        std::process::Command::new("sfdisk")
            .arg("--dump")
            .arg(&disk)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let starts: Vec<u64> = dump
        .lines()
        .filter_map(|l| l.split("start=").nth(1))
        .map(|rest| rest.split(',').next().unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 2, "{dump}");
    let drive_at = starts[1] * 512;
    assert_eq!(drive_at, DISK_SIZE - (64 << 20), "{dump}");
    let written = std::fs::read(&disk).unwrap();
    let drive = &written[drive_at as usize..];
    assert_eq!(&drive[32769..32774], b"CD001");
    assert_eq!(
        std::str::from_utf8(&drive[32808..32840])
            .unwrap()
            .trim_end(),
        "config-2"
    );
    assert!(
        drive.windows(18).any(|w| w == br#""hostname":"web-1""#),
        "meta_data in the drive"
    );
    assert!(
        disk_prefix(&disk, image.len())[512..] == image[512..],
        "the disk holds the image (its MBR gained the config drive's partition)"
    );
    assert!(
        bmc.ipmitool(&["chassis", "bootparam", "get", "5"])
            .contains("Hard-Drive"),
        "boots from disk"
    );
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );
    assert!(
        !boot.http_root.join(&uuid).exists(),
        "the ramdisk's boot files are gone"
    );
    assert!(active["driver_internal_info"]["agent_url"].is_null());
    assert_eq!(active["deploy_step"], json!({}));
    agent.kill().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_image_fails_the_deploy_and_powers_the_node_off() {
    let image = vec![7u8; 64 * 1024];
    let server = FileServer::start(files(&image)).await;
    let bmc = SimBmc::start().await;
    let app = direct_app(1800).await;
    let wrong = "0".repeat(64);
    let uuid = direct_node(&app, &bmc, &server, &wrong).await;
    app.provision(&uuid, "active").await;
    wait_unlocked_in(&app, &uuid, &["wait call-back"]).await;

    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    blank_disk(&disk, DISK_SIZE);
    let mut agent = start_agent(&app, &bmc, work.path(), &disk);
    let failed = wait_unlocked_in(&app, &uuid, &["active", "deploy failed"]).await;
    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "Deploy step deploy.write_image failed on node {uuid}. Image failed to verify against checksum."
        )) && error.contains(&wrong),
        "{error}"
    );
    assert_eq!(failed["power_state"], "power off");
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    agent.kill().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_agent_never_calls_back_times_out() {
    let image = vec![1u8; 1024];
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let server = FileServer::start(files(&image)).await;
    let bmc = SimBmc::start().await;
    let app = direct_app(2).await;
    let uuid = direct_node(&app, &bmc, &server, &sha).await;
    app.provision(&uuid, "active").await;
    let failed = wait_unlocked_in(&app, &uuid, &["deploy failed", "active"]).await;
    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    assert_eq!(
        failed["last_error"],
        format!("Timeout reached while waiting for callback for node {uuid}")
    );
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_image_is_refused_before_the_node_is_touched() {
    let image = vec![1u8; 1024];
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let server = FileServer::start(files(&image)).await;
    let bmc = SimBmc::start().await;
    let app = direct_app(60).await;
    let uuid = direct_node(&app, &bmc, &server, &sha).await;
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/instance_info/image_type", "value": "partition"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.provision(&uuid, "active").await;
    let failed = wait_unlocked_in(&app, &uuid, &["deploy failed", "active"]).await;
    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("deploys whole-disk images only"),
        "{failed}"
    );
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    app.stop().await;
}

/// A direct deploy over Redfish virtual media, up to `wait call-back`:
/// `sushy-emulator` as the BMC, the deploy ISO in its CD (checked).
struct VmediaDeploy {
    bmc: crate::helpers::redfish::Emulator,
    _server: FileServer,
    app: TestApp,
    uuid: String,
    image: Vec<u8>,
    /// Where Ferric publishes the deploy ISO.
    published: String,
    cd_path: String,
}

/// `built`: the deploy ISO is built by Ferric from `deploy_kernel` and
/// `deploy_ramdisk` (BIOS), not given as `deploy_iso`.
async fn vmedia_deploy_waiting(built: bool) -> VmediaDeploy {
    use crate::helpers::redfish::Emulator;
    let image: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 17 % 239) as u8).collect();
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let server = FileServer::start(HashMap::from([
        ("/deploy.iso".to_owned(), b"a deploy ISO".to_vec()),
        ("/deploy_kernel".to_owned(), b"deploy kernel".to_vec()),
        ("/deploy_ramdisk".to_owned(), b"deploy ramdisk".to_vec()),
        ("/disk.raw".to_owned(), image.clone()),
    ]))
    .await;
    let bmc = Emulator::start(1).await;
    let port = crate::helpers::process::free_port();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["redfish".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.conductor.automated_clean = false;
        s.deploy.http_listen = Some(format!("127.0.0.1:{port}"));
        s.deploy.http_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let mut driver_info = bmc.driver_info(0);
    let mut instance_info = json!({"image_source": server.url("/disk.raw"),
                                   "image_os_hash_algo": "sha256", "image_os_hash_value": sha});
    if built {
        driver_info["deploy_kernel"] = json!(server.url("/deploy_kernel"));
        driver_info["deploy_ramdisk"] = json!(server.url("/deploy_ramdisk"));
        instance_info["deploy_boot_mode"] = json!("bios");
    } else {
        driver_info["deploy_iso"] = json!(server.url("/deploy.iso"));
    }
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "driver_info": driver_info,
                   "boot_interface": "redfish-virtual-media", "deploy_interface": "direct",
                                      "instance_info": instance_info}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let port_reply = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": MAC}))
        .await;
    assert_eq!(
        port_reply.status,
        StatusCode::CREATED,
        "{}",
        port_reply.text
    );
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        app.provision(&uuid, verb).await;
        wait_unlocked_in(&app, &uuid, &[state]).await;
    }

    app.provision(&uuid, "active").await;
    let waiting = wait_unlocked_in(&app, &uuid, &["wait call-back", "deploy failed"]).await;
    assert_eq!(waiting["provision_state"], "wait call-back", "{waiting}");
    let published = format!("http://127.0.0.1:{port}/redfish/boot-{uuid}.iso");
    let cd_path = format!("{}/VirtualMedia/Cd", bmc.system(0));
    let cd = bmc.curl(&cd_path);
    assert_eq!(
        (&cd["Inserted"], &cd["Image"]),
        (&json!(true), &json!(published))
    );
    let system = bmc.curl(&bmc.system(0));
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Cd");
    assert_eq!(system["PowerState"], "On");
    VmediaDeploy {
        bmc,
        _server: server,
        app,
        uuid,
        image,
        published,
        cd_path,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_deploy_over_redfish_virtual_media_boots_the_deploy_iso_and_ejects_it() {
    use crate::helpers::redfish::{PASSWORD, USER};
    let VmediaDeploy {
        bmc,
        _server,
        app,
        uuid,
        image,
        published,
        cd_path,
    } = vmedia_deploy_waiting(false).await;

    // The deploy ISO's agent comes up; it powers off through the BMC.
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    blank_disk(&disk, DISK_SIZE);
    let script = work.path().join("poweroff.sh");
    std::fs::write(
        &script,
        format!(
            "curl -s -u {USER}:{PASSWORD} -H 'Content-Type: application/json' -d '{{\"ResetType\": \"ForceOff\"}}' {}\n",
            bmc.url(&format!("{}/Actions/ComputerSystem.Reset", bmc.system(0)))
        ),
    )
    .unwrap();
    let power_off = format!("sh {}", script.display());
    let mut agent = start_agent_with(&app, &power_off, work.path(), &disk);
    let active = wait_until(Duration::from_secs(120), "the deploy to end", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (["active", "deploy failed"].contains(&node["provision_state"].as_str().unwrap_or(""))
            && node["reservation"].is_null())
        .then_some(node)
    })
    .await;
    let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();
    assert_eq!(active["provision_state"], "active", "{active}\n{log}");
    assert_eq!(
        disk_prefix(&disk, image.len()),
        image,
        "the disk holds the image"
    );
    let system = bmc.curl(&bmc.system(0));
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Hdd");
    assert_eq!(system["PowerState"], "On");
    assert_eq!(
        bmc.curl(&cd_path)["Inserted"],
        false,
        "the deploy ISO is ejected"
    );
    let gone = reqwest::get(&published).await.unwrap().status();
    assert_eq!(gone, StatusCode::NOT_FOUND, "and withdrawn");
    agent.kill().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_iso_built_for_virtual_media_is_ejected_when_the_waiting_deploy_is_undone() {
    let deploy = vmedia_deploy_waiting(true).await;
    let (app, bmc, uuid) = (&deploy.app, &deploy.bmc, &deploy.uuid);
    // The deploy ISO Ferric built tells the agent where the API is.
    let iso = reqwest::get(&deploy.published)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let iso = String::from_utf8_lossy(&iso);
    assert!(iso.contains("deploy kernel") && iso.contains("deploy ramdisk"));
    assert!(
        iso.contains("APPEND initrd=/initrd ipa-api-url=http://"),
        "the ISO's isolinux.cfg"
    );
    app.provision(uuid, "deleted").await;
    let node = wait_unlocked_in(app, uuid, &["available", "error"]).await;
    assert_eq!(node["provision_state"], "available", "{node}");
    assert_eq!(bmc.curl(&deploy.cd_path)["Inserted"], false);
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "Off");
    let gone = reqwest::get(&deploy.published).await.unwrap().status();
    assert_eq!(gone, StatusCode::NOT_FOUND, "the deploy ISO is withdrawn");
    assert!(node["driver_internal_info"]["agent_url"].is_null());
    deploy.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automated_clean_whose_agent_never_calls_back_fails_and_is_powered_off() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.check_provision_state_interval_secs = 1;
        s.conductor.deploy_callback_timeout_secs = 1;
    })
    .await;
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "deploy_interface": "direct"}),
            None,
        )
        .await;
    app.provision(&uuid, "provide").await;
    // Cleaning boots the ramdisk and waits for its agent, which never comes.
    let node = wait_until(
        Duration::from_secs(20),
        "the cleaning to time out",
        || async {
            let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            (node["provision_state"] == "clean failed" && node["reservation"].is_null())
                .then_some(node)
        },
    )
    .await;
    assert!(
        node["last_error"]
            .as_str()
            .unwrap()
            .starts_with("Timeout reached while cleaning the node."),
        "{}",
        node["last_error"]
    );
    assert_eq!(node["power_state"], "power off");
    // No step was running: not put into maintenance (as Ironic).
    assert_eq!(node["maintenance"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_clean_wait_is_powered_off_and_forgets_its_agent() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "deploy_interface": "direct"}),
            None,
        )
        .await;
    app.provision(&uuid, "provide").await;
    let waiting = app.wait_for_state(&uuid, "clean wait").await;
    assert_eq!(waiting["power_state"], "power on", "the ramdisk was booted");
    app.provision(&uuid, "abort").await;
    let node = wait_until(Duration::from_secs(20), "the abort's clean-up", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (node["provision_state"] == "clean failed" && node["reservation"].is_null()).then_some(node)
    })
    .await;
    assert_eq!(node["power_state"], "power off");
    assert_eq!(node["clean_step"], json!({}));
    assert!(
        node["driver_internal_info"]["agent_secret_token"].is_null(),
        "{node}"
    );
}

/// `qemu-img convert` of the raw image `raw` to `qcow2`, with compressed
/// clusters when `compress`.
fn to_qcow2(raw: &str, qcow2: &str, compress: bool) {
    let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
    if compress {
        args.push("-c");
    }
    run("qemu-img", &[&args[..], &[raw, qcow2]].concat());
}

/// Runs `program` with `args`, which must succeed.
fn run(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// What one deploy of a test image did: the node at rest, the agent's log
/// and the disk (0xAA bytes before the agent came: 16 MiB, or
/// [`DISK_SIZE`] with a config drive).
struct Deployed {
    node: Value,
    log: String,
    disk: Vec<u8>,
}

/// Deploys `/name` of `served` (its sha256, or `sha256` when given;
/// declared as `declared`), with `configdrive` when given, to a fresh disk
/// of 0xAA bytes; undeploys it again.
async fn deploy_image(
    (app, bmc, server, uuid): (&TestApp, &SimBmc, &FileServer, &str),
    served: &HashMap<String, Vec<u8>>,
    name: &str,
    declared: Option<&str>,
    sha256: Option<&str>,
    configdrive: Option<Value>,
) -> Deployed {
    let sha = sha256.map_or_else(
        || hex::encode(sha2::Sha256::digest(&served[&format!("/{name}")])),
        str::to_owned,
    );
    let mut info = json!({"image_source": server.url(&format!("/{name}")),
                          "image_os_hash_algo": "sha256", "image_os_hash_value": sha});
    if let Some(format) = declared {
        info["image_disk_format"] = json!(format);
    }
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/instance_info", "value": info}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let mut body = json!({"target": "active"});
    let with_drive = configdrive.is_some();
    if let Some(drive) = configdrive {
        body["configdrive"] = drive;
    }
    let asked = app
        .put(&format!("/v1/nodes/{uuid}/states/provision"), body)
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text);
    wait_unlocked_in(app, uuid, &["wait call-back"]).await;
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    let size = if with_drive {
        DISK_SIZE as usize
    } else {
        16 << 20
    };
    std::fs::write(&disk, vec![0xaa_u8; size]).unwrap();
    let mut agent = start_agent(app, bmc, work.path(), &disk);
    let node = wait_unlocked_in(app, uuid, &["active", "deploy failed"]).await;
    agent.kill().await.unwrap();
    let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap();
    let disk = std::fs::read(&disk).unwrap();
    app.provision(uuid, "deleted").await;
    wait_unlocked_in(app, uuid, &["available"]).await;
    Deployed { node, log, disk }
}

/// The deploy failed saying `why`, and the 16 MiB disk's first and last
/// MiB are zeroes: no partition table claims what was half written.
fn failed_and_wiped(node: &Value, log: &str, disk: &[u8], why: &str) {
    assert_eq!(node["provision_state"], "deploy failed", "{node}\n{log}");
    let error = node["last_error"].as_str().unwrap();
    assert!(error.contains(why), "{error}");
    assert!(
        disk[..1 << 20].iter().all(|b| *b == 0),
        "the first MiB wiped"
    );
    assert!(
        disk[15 << 20..].iter().all(|b| *b == 0),
        "the last MiB wiped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_and_compressed_images_stream_onto_the_disk_and_bad_ones_leave_it_wiped() {
    // A raw disk: 1 MiB of data, a 2 MiB hole, 5 MiB of data; then the
    // same as qcow2 (plain, with compressed clusters, xz'd) and zstd'd.
    let dir = tempfile::tempdir().unwrap();
    let mut raw: Vec<u8> = (0..8 << 20_u32).map(|i| (i * 31 % 253) as u8 | 1).collect();
    raw[1 << 20..3 << 20].fill(0);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("disk.raw"), &raw).unwrap();
    to_qcow2(&path("disk.raw"), &path("disk.qcow2"), false);
    to_qcow2(&path("disk.raw"), &path("disk-c.qcow2"), true);
    run(
        "zstd",
        &["-q", &path("disk.raw"), "-o", &path("disk.raw.zst")],
    );
    run("xz", &["-k", &path("disk-c.qcow2")]);
    run("gzip", &["-k", &path("disk.raw")]);
    let qcow2 = std::fs::read(path("disk.qcow2")).unwrap();
    let mut served = files(&raw);
    for name in [
        "disk.qcow2",
        "disk-c.qcow2",
        "disk.raw.zst",
        "disk-c.qcow2.xz",
        "disk.raw.gz",
    ] {
        served.insert(format!("/{name}"), std::fs::read(path(name)).unwrap());
    }
    // Cut within the last clusters: those before the cut get written.
    served.insert(
        "/truncated.qcow2".into(),
        qcow2[..qcow2.len() * 9 / 10].to_vec(),
    );
    let server = FileServer::start(served.clone()).await;
    let bmc = SimBmc::start().await;
    let app = direct_app(1800).await;
    let uuid = direct_node(&app, &bmc, &server, &"0".repeat(64)).await;
    let at = (&app, &bmc, &server, uuid.as_str());

    for (name, declared, format, compression) in [
        ("disk.qcow2", Some("qcow2"), "qcow2", "none"),
        ("disk-c.qcow2", None, "qcow2", "none"),
        ("disk.raw.zst", Some("raw"), "raw", "zstd"),
        ("disk-c.qcow2.xz", Some("qcow2"), "qcow2", "xz"),
        ("disk.raw.gz", None, "raw", "gzip"),
    ] {
        let Deployed { node, log, disk } =
            deploy_image(at, &served, name, declared, None, None).await;
        assert_eq!(node["provision_state"], "active", "{name}: {node}\n{log}");
        assert!(
            log.contains(&format!(
                "format=\"{format}\" compression=\"{compression}\""
            )),
            "{name}: {log}"
        );
        assert!(disk[..1 << 20] == raw[..1 << 20], "{name}: the first MiB");
        assert!(
            disk[3 << 20..8 << 20] == raw[3 << 20..],
            "{name}: the last 5 MiB"
        );
        let hole = &disk[1 << 20..3 << 20];
        if format == "qcow2" {
            assert!(
                hole.iter().all(|b| *b == 0xaa),
                "{name}: unallocated clusters are not written"
            );
        } else {
            assert!(
                hole.iter().all(|b| *b == 0),
                "{name}: a raw image is written whole"
            );
        }
        assert!(
            disk[8 << 20..].iter().all(|b| *b == 0xaa),
            "{name}: nothing past the image"
        );
    }
    // The plain qcow2 on a server answering Range requests: its tables
    // were read ahead.
    assert!(
        server.hits("/disk.qcow2") > 2,
        "Range requests for the tables"
    );

    // Refused before a byte is written: the disk as the agent found it.
    let Deployed { node, log, disk } =
        deploy_image(at, &served, "disk.qcow2", Some("raw"), None, None).await;
    assert_eq!(node["provision_state"], "deploy failed", "{node}\n{log}");
    let error = node["last_error"].as_str().unwrap();
    assert!(
        error.contains(
            "Invalid image: Security: Expected format was raw, but image was actually qcow2"
        ),
        "{error}"
    );
    assert!(disk.iter().all(|b| *b == 0xaa), "untouched");

    // A config drive that is no ISO: refused before the disk is touched.
    let not_an_iso = base64::engine::general_purpose::STANDARD.encode(b"not an ISO 9660 image");
    let Deployed { node, log, disk } = deploy_image(
        at,
        &served,
        "disk.qcow2",
        Some("qcow2"),
        None,
        Some(json!(not_an_iso)),
    )
    .await;
    assert_eq!(node["provision_state"], "deploy failed", "{node}\n{log}");
    let error = node["last_error"].as_str().unwrap();
    assert!(
        error.contains("Invalid config drive: the config drive is not an ISO 9660 image"),
        "{error}"
    );
    assert!(disk.iter().all(|b| *b == 0xaa), "untouched");

    // A checksum that does not match, found at the end of 8 MiB, most of
    // them on the disk by then: the image's first MiB was held back and
    // both ends are wiped, so no partition table claims the disk.
    let Deployed { node, log, disk } = deploy_image(
        at,
        &served,
        "disk.raw.zst",
        Some("raw"),
        Some(&"ab".repeat(32)),
        None,
    )
    .await;
    failed_and_wiped(
        &node,
        &log,
        &disk,
        "Image failed to verify against checksum",
    );
    assert!(
        disk[3 << 20..6 << 20] == raw[3 << 20..6 << 20],
        "most of the rest had been written when the checksum was known"
    );

    // Truncated after some clusters were written: wiped at both ends.
    let Deployed { node, log, disk } =
        deploy_image(at, &served, "truncated.qcow2", None, None, None).await;
    failed_and_wiped(
        &node,
        &log,
        &disk,
        "qcow2 image is truncated: its tables point past its end",
    );
    assert!(
        disk[3 << 20..(3 << 20) + 4096] == raw[3 << 20..(3 << 20) + 4096],
        "clusters before the cut had been written when the end was found"
    );
    app.stop().await;
}

/// A config drive given as a URL (what Nova and Metal3 may pass): the
/// agent downloads it (base64 of a gzipped ISO, as Ironic stores one) and
/// writes it into a new partition after the image's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_drive_given_as_a_url_is_fetched_and_written_by_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content/openstack/latest");
    std::fs::create_dir_all(&content).unwrap();
    let meta_data = r#"{"hostname":"from-a-url"}"#;
    std::fs::write(content.join("meta_data.json"), meta_data).unwrap();
    let iso = dir.path().join("drive.iso");
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            "config-2",
            "-r",
            "-J",
            "-o",
            iso.to_str().unwrap(),
            dir.path().join("content").to_str().unwrap(),
        ],
    );
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(gzipped(&std::fs::read(&iso).unwrap()));
    let image = partitioned_image();
    let mut served = files(&image);
    served.insert("/drive".into(), encoded.into_bytes());
    let server = FileServer::start(served.clone()).await;
    let bmc = SimBmc::start().await;
    let app = direct_app(1800).await;
    let uuid = direct_node(&app, &bmc, &server, &"0".repeat(64)).await;
    let at = (&app, &bmc, &server, uuid.as_str());
    let Deployed { node, log, disk } = deploy_image(
        at,
        &served,
        "disk.raw",
        Some("raw"),
        None,
        Some(json!(server.url("/drive"))),
    )
    .await;
    assert_eq!(node["provision_state"], "active", "{node}\n{log}");
    assert!(server.hits("/drive") >= 1, "the agent fetched the drive");
    // The image's MBR gained a second partition: the drive, at the end.
    assert_eq!(disk[446 + 16 + 4], 0x83, "a Linux partition entry");
    let start = u32::from_le_bytes(disk[446 + 16 + 8..446 + 16 + 12].try_into().unwrap()) as usize;
    let drive = &disk[start * 512..];
    assert_eq!(&drive[32769..32774], b"CD001");
    assert_eq!(&drive[32808..32816], b"config-2");
    assert!(
        drive
            .windows(meta_data.len())
            .any(|w| w == meta_data.as_bytes()),
        "the drive's meta_data"
    );
    app.stop().await;
}

/// `bytes` gzipped (`gzip -c`).
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `[conductor] permitted_image_formats`, told to the agent at lookup: a
/// format the operator did not list is refused before the disk is touched,
/// in ironic-python-agent's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_format_the_operator_does_not_permit_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<u8> = (0..2 << 20_u32).map(|i| (i % 251) as u8).collect();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("disk.raw"), &raw).unwrap();
    to_qcow2(&path("disk.raw"), &path("disk.qcow2"), false);
    let mut served = files(&raw);
    served.insert(
        "/disk.qcow2".into(),
        std::fs::read(path("disk.qcow2")).unwrap(),
    );
    let server = FileServer::start(served.clone()).await;
    let bmc = SimBmc::start().await;
    let app = direct_app_with(1800, |s| {
        s.conductor.permitted_image_formats = vec!["raw".into()];
    })
    .await;
    let uuid = direct_node(&app, &bmc, &server, &"0".repeat(64)).await;
    let at = (&app, &bmc, &server, uuid.as_str());

    let Deployed { node, log, disk } =
        deploy_image(at, &served, "disk.qcow2", Some("qcow2"), None, None).await;
    assert_eq!(node["provision_state"], "deploy failed", "{node}\n{log}");
    let error = node["last_error"].as_str().unwrap();
    assert!(
        error.contains("Security: Detected image format was qcow2, but only raw are allowed"),
        "{error}"
    );
    assert!(disk.iter().all(|b| *b == 0xaa), "untouched");

    // The permitted format deploys.
    let Deployed { node, log, disk } =
        deploy_image(at, &served, "disk.raw", Some("raw"), None, None).await;
    assert_eq!(node["provision_state"], "active", "{node}\n{log}");
    assert!(disk[..2 << 20] == raw[..], "written");
    app.stop().await;
}

/// The agent's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A 1 GiB qcow2 (1 GiB of data) written in bounded memory: the agent's
/// peak RSS, read from /proc when the deploy is done, stays under 64 MiB;
/// its throughput is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "prints the figures the README quotes")]
async fn a_1_gib_qcow2_is_written_in_bounded_memory() {
    let app = direct_app_with(1800, |s| {
        s.deploy.http_listen = Some("127.0.0.1:0".into());
    })
    .await;
    // The image on Ferric's own file server (it streams files from disk).
    let images = app.settings.boot().http_root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let raw = images.join("big.raw");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&raw).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut block = vec![0_u8; 1 << 20];
        for _ in 0..1024 {
            for word in block.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            std::io::Write::write_all(&mut out, &block).unwrap();
        }
    }
    let qcow2 = images.join("big.qcow2");
    to_qcow2(raw.to_str().unwrap(), qcow2.to_str().unwrap(), false);
    std::fs::remove_file(&raw).unwrap();
    let sha = {
        let mut hasher = sha2::Sha256::new();
        let mut file = std::fs::File::open(&qcow2).unwrap();
        let mut buf = vec![0_u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hex::encode(hasher.finalize())
    };
    let files = app.embedded.as_ref().unwrap().boot_files_port.unwrap();
    let server = FileServer::start(files_without_image()).await;
    let bmc = SimBmc::start().await;
    let uuid = direct_node(&app, &bmc, &server, &sha).await;
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "replace", "path": "/instance_info/image_source",
                    "value": format!("http://127.0.0.1:{files}/images/big.qcow2")},
                   {"op": "add", "path": "/instance_info/image_disk_format", "value": "qcow2"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.provision(&uuid, "active").await;
    wait_unlocked_in(&app, &uuid, &["wait call-back"]).await;
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    blank_disk(&disk, 1100 << 20);
    let agent = start_agent(&app, &bmc, work.path(), &disk);
    let pid = agent.id().unwrap();
    // While it writes, its heartbeats' progress shows on the node.
    let progress = std::sync::Mutex::new(Vec::new());
    let done = wait_until(Duration::from_secs(300), "the 1 GiB deploy", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        let seen = &node["driver_internal_info"]["deploy_progress"];
        if !seen.is_null() {
            progress.lock().unwrap().push(seen.clone());
        }
        (["active", "deploy failed"].contains(&node["provision_state"].as_str().unwrap_or(""))
            && node["reservation"].is_null())
        .then_some(node)
    })
    .await;
    let progress = progress.into_inner().unwrap();
    assert!(
        progress.iter().any(|p| p["total"] == 1_u64 << 30
            && p["bytes"].as_u64().is_some_and(|b| b > 0 && b <= 1 << 30)
            && p["mb_per_s"].as_f64().is_some_and(|r| r > 0.0)),
        "deploy_progress while writing: {progress:?}"
    );
    assert!(
        done["driver_internal_info"]["deploy_progress"].is_null(),
        "gone with the agent's other keys"
    );
    let peak = peak_rss_kib(pid);
    let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap();
    assert_eq!(done["provision_state"], "active", "{done}\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("image written and verified"))
        .unwrap();
    eprintln!(
        "1 GiB qcow2: the agent's peak RSS {} MiB; {line}",
        peak / 1024
    );
    assert!(
        line.contains("format=\"qcow2\"") && line.contains("virtual_size=1073741824"),
        "{line}"
    );
    assert!(peak < 64 * 1024, "the agent's peak RSS was {peak} KiB");
    // The disk holds the data: spot checks at both ends.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    let written = std::fs::File::open(&disk).unwrap();
    let mut first = [0_u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&written, &mut first, 0).unwrap();
    assert_eq!(first, state.to_le_bytes());
    let mut tail = [0_u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&written, &mut tail, (1 << 30) - 4096).unwrap();
    assert!(tail.iter().any(|b| *b != 0));
    drop(agent);
    app.stop().await;
}

/// The deploy ramdisk's files only (the image comes from elsewhere).
fn files_without_image() -> HashMap<String, Vec<u8>> {
    let mut files = files(&[]);
    files.remove("/disk.raw");
    files
}

/// `image_download_source: local`: the conductor fetches and verifies the
/// image into its cache when the deploy starts and serves it from
/// `[deploy] http_url`; the agent never needs the image server, which is
/// gone before the agent comes up. Nothing is left served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_download_source_serves_the_image_from_the_conductor() {
    let port = crate::helpers::process::free_port();
    let app = direct_app_with(1800, |s| {
        s.deploy.http_listen = Some(format!("127.0.0.1:{port}"));
        s.agent.image_download_source = ferric_common::config::ImageDownloadSource::Local;
    })
    .await;
    let image = partitioned_image();
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let server = FileServer::start(files(&image)).await;
    // The checksum as a checksum file, on another server: the conductor
    // reads it and hands the agent the value.
    let sums = FileServer::start(HashMap::from([(
        "/SHA256SUMS".to_owned(),
        format!("{sha}  disk.raw\n").into_bytes(),
    )]))
    .await;
    let bmc = SimBmc::start().await;
    let uuid = direct_node(&app, &bmc, &server, &sha).await;
    let by_file = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "remove", "path": "/instance_info/image_os_hash_algo"},
                   {"op": "remove", "path": "/instance_info/image_os_hash_value"},
                   {"op": "add", "path": "/instance_info/image_checksum", "value": sums.url("/SHA256SUMS")}]),
        )
        .await;
    assert_eq!(by_file.status, StatusCode::OK, "{}", by_file.text);
    app.provision(&uuid, "active").await;
    wait_unlocked_in(&app, &uuid, &["wait call-back"]).await;
    let served = app
        .settings
        .boot()
        .http_root
        .join("agent_images")
        .join(&uuid);
    assert!(
        std::fs::read(&served).unwrap() == image,
        "served from http_root"
    );
    assert_eq!(
        server.hits("/disk.raw"),
        1,
        "fetched once, by the conductor"
    );
    // The image store goes away: only the conductor's copy is left.
    let image_store = server.url("/disk.raw");
    drop(server);
    assert!(reqwest::get(&image_store).await.is_err());

    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    blank_disk(&disk, DISK_SIZE);
    let mut agent = start_agent(&app, &bmc, work.path(), &disk);
    let done = wait_unlocked_in(&app, &uuid, &["active", "deploy failed"]).await;
    let log = std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();
    assert_eq!(done["provision_state"], "active", "{done}\n{log}");
    assert!(
        disk_prefix(&disk, image.len()) == image,
        "the disk holds the image"
    );
    assert!(
        log.contains(&format!("127.0.0.1:{port}/agent_images/{uuid}")),
        "the agent downloaded from the conductor: {log}"
    );
    assert!(!served.exists(), "no longer served once deployed");
    agent.kill().await.unwrap();

    // An image the conductor cannot fetch fails the deploy before the
    // machine is even booted.
    app.provision(&uuid, "deleted").await;
    wait_unlocked_in(&app, &uuid, &["available"]).await;
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/instance_info",
                    "value": {"image_source": format!("http://127.0.0.1:{port}/nowhere.raw"),
                              "image_os_hash_algo": "sha256", "image_os_hash_value": "0".repeat(64)}}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.provision(&uuid, "active").await;
    let failed = wait_unlocked_in(&app, &uuid, &["deploy failed"]).await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("nowhere.raw"), "{error}");
    assert!(!served.exists());
    app.stop().await;
}
