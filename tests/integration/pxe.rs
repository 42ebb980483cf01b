//! iPXE boot and the ramdisk deploy on a real BMC (`ipmi_sim`), with images
//! served over HTTP by the test and the files checked on disk where Ironic
//! puts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::bmc::SimBmc;
use crate::helpers::http::FileServer;
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

const MAC: &str = "52:54:00:12:34:56";

async fn pxe_app() -> TestApp {
    pxe_app_with(|_| {}).await
}

/// The `ipmi` app these tests use, with `more` settings.
async fn pxe_app_with(more: impl FnOnce(&mut ferric_common::config::Settings)) -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["ipmi".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.conductor.check_provision_state_interval_secs = 1;
        s.dhcp.dhcp_provider = ferric_common::config::DhcpProvider::Dnsmasq;
        s.ipmi.min_command_interval_ms = 0;
        s.ipmi.command_retry_timeout_secs = 3;
        more(s);
    })
    .await
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An active-ready ramdisk node: ipmi + ipxe + ramdisk, one PXE port,
/// `instance_info` as given; returns its UUID once `available`.
async fn ramdisk_node(app: &TestApp, bmc: &SimBmc, mac: &str, instance_info: Value) -> String {
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "ipmi", "driver_info": bmc.driver_info(),
                   "boot_interface": "ipxe", "deploy_interface": "ramdisk",
                   "instance_info": instance_info}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": mac}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    uuid
}

async fn deploy_and_wait(app: &TestApp, uuid: &str) -> Value {
    app.provision(uuid, "active").await;
    wait_deployed(app, uuid).await
}

/// Waits until a deploy ended (`active` or `deploy failed`) and the node is unlocked.
async fn wait_deployed(app: &TestApp, uuid: &str) -> Value {
    wait_until(Duration::from_secs(60), "the deploy to finish", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (["active", "deploy failed"].contains(&node["provision_state"].as_str().unwrap_or(""))
            && node["reservation"].is_null())
        .then_some(node)
    })
    .await
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn dnsmasq() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramdisk_deploy_of_an_iso_writes_ironics_files_and_boots_the_bmc_from_pxe() {
    let iso = b"not really an ISO, but 34 bytes.\n".repeat(1000);
    let sums = format!("{}  other.iso\n{}  boot.iso\n", sha256(b"x"), sha256(&iso));
    let server = FileServer::start(HashMap::from([
        ("/boot.iso".to_owned(), iso.clone()),
        ("/SHA256SUMS".to_owned(), sums.into_bytes()),
    ]))
    .await;
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let boot = app.settings.boot();
    let uuid = ramdisk_node(
        &app,
        &bmc,
        MAC,
        // The checksum comes from a SHA256SUMS file, as Ironic allows.
        json!({"boot_iso": server.url("/boot.iso"), "image_checksum": server.url("/SHA256SUMS")}),
    )
    .await;
    let events_before = bmc.events().len();

    let active = deploy_and_wait(&app, &uuid).await;
    let events = bmc.events()[events_before..].to_vec();
    let node_dir = boot.http_root.join(&uuid);
    let config = std::fs::read_to_string(node_dir.join("config")).unwrap();
    let script = std::fs::read_to_string(boot.http_root.join("boot.ipxe")).unwrap();
    let mac_link = boot.http_root.join("pxelinux.cfg/52-54-00-12-34-56");
    let (hostsdir, optsdir) = boot.dnsmasq.clone().unwrap();
    let host_entry = std::fs::read_to_string(hostsdir.join(format!("ironic-{MAC}.conf"))).unwrap();
    let options = std::fs::read_to_string(optsdir.join(format!("ironic-{uuid}.conf"))).unwrap();
    let dnsmasq_check = std::process::Command::new(dnsmasq())
        .arg("--test")
        .arg(format!("--dhcp-hostsdir={}", hostsdir.display()))
        .arg(format!(
            "--dhcp-optsfile={}",
            optsdir.join(format!("ironic-{uuid}.conf")).display()
        ))
        .output()
        .unwrap();
    let bootparam = bmc.ipmitool(&["chassis", "bootparam", "get", "5"]);
    let power = bmc.ipmitool(&["chassis", "power", "status"]);

    assert_eq!(active["provision_state"], "active", "{active}");
    assert!(active["last_error"].is_null(), "{active}");
    assert_eq!(active["power_state"], "power on");
    assert_eq!(std::fs::read(node_dir.join("boot_iso")).unwrap(), iso);
    assert_eq!(server.hits("/SHA256SUMS"), 1);
    assert!(
        config.contains(&format!("sanboot http://127.0.0.1:8080/{uuid}/boot_iso")),
        "{config}"
    );
    assert!(config.starts_with("#!ipxe") && config.contains("goto boot_ramdisk"));
    assert!(
        script.contains("chain pxelinux.cfg/${mac:hexhyp}"),
        "{script}"
    );
    assert_eq!(
        std::fs::read_link(&mac_link).unwrap(),
        Path::new("..").join(&uuid).join("config")
    );
    assert_eq!(std::fs::read_to_string(&mac_link).unwrap(), config);
    assert_eq!(host_entry, format!("{MAC},set:{uuid},set:ironic\n"));
    assert!(
        options.contains(&format!(
            "tag:{uuid},tag:ipxe,67,http://127.0.0.1:8080/boot.ipxe"
        )),
        "{options}"
    );
    assert!(
        options.contains(&format!("tag:{uuid},tag:!ipxe,67,snponly.efi")),
        "{options}"
    );
    assert!(
        dnsmasq_check.status.success(),
        "dnsmasq --test: {}",
        String::from_utf8_lossy(&dnsmasq_check.stderr)
    );
    assert!(bootparam.contains("Force PXE"), "{bootparam}");
    assert_eq!(
        events,
        ["set boot pxe", "set power 1"],
        "pxe, then powered on"
    );
    assert_eq!(power, "Chassis Power is on");

    // Undeploy: power off, every file of the node gone, DHCP told to ignore.
    app.provision(&uuid, "deleted").await;
    let available = app.wait_for_state(&uuid, "available").await;
    let left: Vec<PathBuf> = files_under(&boot.http_root)
        .into_iter()
        .filter(|p| !p.ends_with("boot.ipxe"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        std::fs::read_to_string(hostsdir.join(format!("ironic-{MAC}.conf"))).unwrap(),
        format!("{MAC},ignore\n")
    );
    assert!(!optsdir.join(format!("ironic-{uuid}.conf")).exists());
    assert_eq!(available["power_state"], "power off");
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_fails_the_deploy_and_leaves_no_files() {
    let iso = b"the real bytes".to_vec();
    let server = FileServer::start(HashMap::from([("/boot.iso".to_owned(), iso)])).await;
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let boot = app.settings.boot();
    let wrong = sha256(b"other bytes");
    let uuid = ramdisk_node(
        &app,
        &bmc,
        MAC,
        json!({"boot_iso": server.url("/boot.iso"), "image_checksum": wrong}),
    )
    .await;
    let missing = ramdisk_node(
        &app,
        &bmc,
        "52:54:00:00:00:02",
        json!({"boot_iso": server.url("/nope.iso")}),
    )
    .await;

    let forbidden = ramdisk_node(
        &app,
        &bmc,
        "52:54:00:00:00:03",
        json!({"kernel": "file:///etc/passwd", "ramdisk": "file:///etc/passwd"}),
    )
    .await;

    let failed = deploy_and_wait(&app, &uuid).await;
    let not_found = deploy_and_wait(&app, &missing).await;
    let outside = deploy_and_wait(&app, &forbidden).await;

    assert_eq!(failed["provision_state"], "deploy failed");
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("Deploy step deploy.deploy failed: "),
        "{error}"
    );
    assert!(
        error.contains("failed to verify against checksum"),
        "{error}"
    );
    assert!(error.contains(&server.url("/boot.iso")), "{error}");
    assert!(error.contains(&wrong), "{error}");
    assert_eq!(not_found["provision_state"], "deploy failed");
    let error = not_found["last_error"].as_str().unwrap();
    assert!(
        error.contains("/nope.iso") && error.contains("404"),
        "{error}"
    );
    assert_eq!(outside["provision_state"], "deploy failed");
    let error = outside["last_error"].as_str().unwrap();
    assert!(
        error.contains("Validation of image href file:///etc/passwd failed, reason: Security"),
        "{error}"
    );
    assert_eq!(
        files_under(&boot.http_root),
        Vec::<PathBuf>::new(),
        "no boot files"
    );
    assert_eq!(
        files_under(&boot.image_cache_dir),
        Vec::<PathBuf>::new(),
        "no partial download in the cache"
    );
    assert_eq!(
        bmc.events()
            .iter()
            .filter(|e| e.starts_with("set boot"))
            .count(),
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_deploying_the_same_kernel_and_ramdisk_download_them_once() {
    let kernel = vec![7u8; 256 * 1024];
    let ramdisk = vec![9u8; 512 * 1024];
    let server = FileServer::start(HashMap::from([
        ("/vmlinuz".to_owned(), kernel.clone()),
        ("/initrd".to_owned(), ramdisk.clone()),
    ]))
    .await;
    let app = pxe_app().await;
    let boot = app.settings.boot();
    let mut bmcs = Vec::new();
    let mut uuids = Vec::new();
    for i in 0..20 {
        let bmc = SimBmc::start().await;
        let mac = format!("52:54:00:00:01:{i:02x}");
        let uuid = ramdisk_node(
            &app,
            &bmc,
            &mac,
            json!({"kernel": server.url("/vmlinuz"), "ramdisk": server.url("/initrd"),
                   "ramdisk_kernel_arguments": "console=ttyS0"}),
        )
        .await;
        bmcs.push(bmc);
        uuids.push(uuid);
    }

    let paths: Vec<String> = uuids
        .iter()
        .map(|u| format!("/v1/nodes/{u}/states/provision"))
        .collect();
    let replies = futures_util::future::join_all(
        paths
            .iter()
            .map(|p| app.put(p, json!({"target": "active"}))),
    )
    .await;
    let mut nodes = Vec::new();
    for uuid in &uuids {
        nodes.push(wait_deployed(&app, uuid).await);
    }
    let config = std::fs::read_to_string(boot.http_root.join(&uuids[0]).join("config")).unwrap();

    assert!(replies.iter().all(|r| r.status == StatusCode::ACCEPTED));
    for node in &nodes {
        assert_eq!(node["provision_state"], "active", "{node}");
    }
    assert_eq!(server.hits("/vmlinuz"), 1, "one download for twenty nodes");
    assert_eq!(server.hits("/initrd"), 1);
    for uuid in &uuids {
        let dir = boot.http_root.join(uuid);
        assert_eq!(std::fs::read(dir.join("kernel")).unwrap(), kernel);
        assert_eq!(std::fs::read(dir.join("ramdisk")).unwrap(), ramdisk);
    }
    assert!(
        config.contains(&format!(
            "kernel http://127.0.0.1:8080/{}/kernel root=/dev/ram0 text nofb vga=normal console=ttyS0 initrd=ramdisk",
            uuids[0]
        )),
        "{config}"
    );
    assert!(config.contains(&format!(
        "initrd http://127.0.0.1:8080/{}/ramdisk",
        uuids[0]
    )));
    app.stop().await;
}

/// A real TFTP server (tftpd-hpa) on a loopback port, serving `root`.
struct Tftpd {
    port: u16,
    child: std::process::Child,
}

impl Tftpd {
    fn start(root: &Path) -> Tftpd {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("/usr/sbin/in.tftpd")
            .args(["--listen", "--foreground", "--user", "root", "--secure"])
            .arg("--address")
            .arg(format!("127.0.0.1:{port}"))
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("in.tftpd runs (apt-get install tftpd-hpa)");
        Tftpd { port, child }
    }

    /// Fetches `path` with a real TFTP client (curl), retrying while the
    /// server starts.
    async fn get(&self, path: &str) -> Vec<u8> {
        let url = format!("tftp://127.0.0.1:{}/{path}", self.port);
        wait_until(Duration::from_secs(10), "a TFTP transfer", || {
            let url = url.clone();
            async move {
                let out = tokio::process::Command::new("curl")
                    .args(["-s", "--max-time", "5", &url])
                    .output()
                    .await
                    .unwrap();
                out.status.success().then_some(out.stdout)
            }
        })
        .await
    }
}

impl Drop for Tftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pxe_ramdisk_deploy_is_served_over_real_tftp_byte_for_byte() {
    let kernel: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let ramdisk: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let server = FileServer::start(HashMap::from([
        ("/vmlinuz".to_owned(), kernel.clone()),
        ("/initrd".to_owned(), ramdisk.clone()),
    ]))
    .await;
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let boot = app.settings.boot();
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "ipmi", "driver_info": bmc.driver_info(),
                   "boot_interface": "pxe", "deploy_interface": "ramdisk",
                   "properties": {"capabilities": "boot_mode:bios"},
                   "instance_info": {"kernel": server.url("/vmlinuz"),
                                     "ramdisk": server.url("/initrd")}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    app.post("/v1/ports", json!({"node_uuid": uuid, "address": MAC}))
        .await;
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        app.provision(&uuid, verb).await;
        app.wait_for_state(&uuid, state).await;
    }

    let active = deploy_and_wait(&app, &uuid).await;
    let tftp = Tftpd::start(&boot.tftp_root);
    let config = tftp.get("pxelinux.cfg/01-52-54-00-12-34-56").await;
    let served_kernel = tftp.get(&format!("{uuid}/kernel")).await;
    let served_ramdisk = tftp.get(&format!("{uuid}/ramdisk")).await;
    let grub_link =
        std::fs::read_link(boot.tftp_root.join("grub.cfg-01-52-54-00-12-34-56")).unwrap();
    let (_, optsdir) = boot.dnsmasq.clone().unwrap();
    let options = std::fs::read_to_string(optsdir.join(format!("ironic-{uuid}.conf"))).unwrap();
    let config = String::from_utf8(config).unwrap();

    assert_eq!(active["provision_state"], "active", "{active}");
    assert!(config.starts_with("default boot_ramdisk\n"), "{config}");
    assert!(
        config.contains(&format!("kernel {uuid}/kernel\n")),
        "{config}"
    );
    assert!(
        config.contains(&format!(
            "append initrd={uuid}/ramdisk root=/dev/ram0 text nofb vga=normal"
        )),
        "{config}"
    );
    assert!(
        served_kernel == kernel,
        "the kernel over TFTP is byte for byte the image"
    );
    assert!(served_ramdisk == ramdisk, "the ramdisk too");
    assert_eq!(grub_link, Path::new(&uuid).join("config"));
    assert!(
        options.contains(&format!("tag:{uuid},67,pxelinux.0")),
        "{options}"
    );
    assert!(
        bmc.ipmitool(&["chassis", "bootparam", "get", "5"])
            .contains("Force PXE")
    );

    app.provision(&uuid, "deleted").await;
    app.wait_for_state(&uuid, "available").await;
    assert_eq!(
        files_under(&boot.tftp_root),
        Vec::<PathBuf>::new(),
        "undeploy removed every TFTP file"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployed_node_in_maintenance_removes_its_boot_files() {
    let server = FileServer::start(HashMap::from([
        ("/vmlinuz".to_owned(), b"k".to_vec()),
        ("/initrd".to_owned(), b"r".to_vec()),
    ]))
    .await;
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let boot = app.settings.boot();
    let uuid = ramdisk_node(
        &app,
        &bmc,
        MAC,
        json!({"kernel": server.url("/vmlinuz"), "ramdisk": server.url("/initrd")}),
    )
    .await;
    deploy_and_wait(&app, &uuid).await;
    let before = files_under(&boot.http_root).len();

    app.put(
        &format!("/v1/nodes/{uuid}/maintenance"),
        json!({"reason": "decommissioned"}),
    )
    .await;
    let deleted = app.delete(&format!("/v1/nodes/{uuid}")).await;
    let (_, optsdir) = boot.dnsmasq.clone().unwrap();
    // The clean-up removes the boot files and the DHCP options one after the
    // other: wait for both.
    let left = wait_until(
        Duration::from_secs(20),
        "the orphaned boot files and DHCP options to go",
        || async {
            let left: Vec<PathBuf> = files_under(&boot.http_root)
                .into_iter()
                .filter(|p| !p.ends_with("boot.ipxe"))
                .collect();
            let opts_gone = !optsdir.join(format!("ironic-{uuid}.conf")).exists();
            (left.is_empty() && opts_gone).then_some(left)
        },
    )
    .await;

    assert_eq!(
        before, 5,
        "boot.ipxe, config, kernel, ramdisk, the MAC link"
    );
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(left.is_empty());
    assert!(!optsdir.join(format!("ironic-{uuid}.conf")).exists());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferric_serves_http_root_with_range_requests_when_asked() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.deploy.http_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let root = app.settings.boot().http_root;
    std::fs::create_dir_all(root.join("n")).unwrap();
    let iso: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(root.join("n/boot_iso"), &iso).unwrap();
    let port = app.embedded.as_ref().unwrap().boot_files_port.unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    let whole = client
        .get(format!("{base}/n/boot_iso"))
        .send()
        .await
        .unwrap();
    let whole_status = whole.status();
    let whole_body = whole.bytes().await.unwrap();
    let part = client
        .get(format!("{base}/n/boot_iso"))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    let part_status = part.status();
    let part_body = part.bytes().await.unwrap();
    let escape = client
        .get(format!("{base}/../ferric.db"))
        .send()
        .await
        .unwrap()
        .status();
    let listing = client
        .get(format!("{base}/n/"))
        .send()
        .await
        .unwrap()
        .status();
    // A link leading out of the root is not followed; one inside it (as the
    // per-MAC links into node directories) is.
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink(secret_dir.path().join("secret"), root.join("n/out")).unwrap();
    std::fs::create_dir_all(root.join("pxelinux.cfg")).unwrap();
    std::os::unix::fs::symlink("../n/boot_iso", root.join("pxelinux.cfg/01-aa")).unwrap();
    let status_of = async |path: &str| {
        client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        status_of("/n/out").await,
        StatusCode::NOT_FOUND,
        "a link out of http_root"
    );
    assert_eq!(
        status_of("/pxelinux.cfg/01-aa").await,
        StatusCode::OK,
        "a link inside"
    );

    assert_eq!(whole_status, StatusCode::OK);
    assert_eq!(whole_body.as_ref(), iso.as_slice());
    assert_eq!(part_status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part_body.as_ref(), &iso[100..200]);
    assert_ne!(escape, StatusCode::OK, "nothing outside http_root");
    assert_ne!(listing, StatusCode::OK, "no directory listing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_image_urls_never_come_back() {
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let closed = crate::helpers::process::free_port();
    let url = |name: &str| format!("http://admin:hunter2@127.0.0.1:{closed}/{name}");
    let uuid = ramdisk_node(
        &app,
        &bmc,
        MAC,
        json!({"kernel": url("kernel"), "ramdisk": url("ramdisk"), "image_source": url("disk.img")}),
    )
    .await;
    let shown = app.get(&format!("/v1/nodes/{uuid}")).await.text;
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains(&format!("http://admin:******@127.0.0.1:{closed}/kernel")),
        "{shown}"
    );

    let failed = deploy_and_wait(&app, &uuid).await;
    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "Failed to fetch image http://admin:******@127.0.0.1:{closed}/"
        )),
        "{error}"
    );
    for answer in [
        app.get(&format!("/v1/nodes/{uuid}")).await.text,
        app.get("/v1/nodes/detail").await.text,
        app.get(&format!("/v1/nodes/{uuid}/states")).await.text,
        app.get(&format!("/v1/nodes/{uuid}/history?detail=true"))
            .await
            .text,
    ] {
        assert!(!answer.contains("hunter2"), "{answer}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_urls_never_reach_ferric_itself_or_metadata_addresses() {
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let api_port = app.base.rsplit(':').next().unwrap().to_owned();
    let node_list = format!("{}/v1/nodes/detail", app.base);
    let redirector = FileServer::with_redirects(
        HashMap::new(),
        HashMap::from([("/kernel".to_owned(), node_list.clone())]),
    )
    .await;
    let own = "where Ferric itself listens";
    let cases = [
        (node_list.clone(), own, "52:54:00:55:00:01"),
        (
            format!("http://localhost:{api_port}/v1/nodes/detail"),
            own,
            "52:54:00:55:00:02",
        ),
        (redirector.url("/kernel"), own, "52:54:00:55:00:03"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "in [conductor] image_url_denied_networks",
            "52:54:00:55:00:04",
        ),
    ];
    let mut nodes = Vec::new();
    for (url, _, mac) in &cases {
        let uuid = ramdisk_node(&app, &bmc, mac, json!({"kernel": url, "ramdisk": url})).await;
        app.provision(&uuid, "active").await;
        nodes.push(uuid);
    }

    for ((url, expected, _), uuid) in cases.iter().zip(&nodes) {
        let failed = wait_deployed(&app, uuid).await;
        assert_eq!(
            failed["provision_state"], "deploy failed",
            "{url}: {failed}"
        );
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{url}: {error}");
        let published = files_under(&app.settings.boot().http_root.join(uuid));
        assert!(published.is_empty(), "{url}: {published:?}");
    }
    // The redirect was asked for (kernel and ramdisk), and refused.
    assert!(redirector.hits("/kernel") >= 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_server_that_never_answers_fails_the_deploy_and_frees_the_node() {
    // A server that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    let bmc = SimBmc::start().await;
    let app = pxe_app_with(|s| {
        s.conductor.image_download_read_timeout_secs = 2;
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/kernel");
    let uuid = ramdisk_node(&app, &bmc, MAC, json!({"kernel": url, "ramdisk": url})).await;

    let failed = deploy_and_wait(&app, &uuid).await;

    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "the image server sent nothing for 2 s ([conductor] image_download_read_timeout_secs)"
        ),
        "{error}"
    );
    // The lock is gone: the node can be changed and undeployed.
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/extra/after", "value": "timeout"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.provision(&uuid, "deleted").await;
    app.wait_for_state(&uuid, "available").await;
    silent.abort();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_over_the_size_cap_fails_the_deploy_and_leaves_nothing() {
    let big = vec![7u8; 2 << 20];
    let server = FileServer::start(HashMap::from([("/kernel".to_owned(), big)])).await;
    let bmc = SimBmc::start().await;
    let app = pxe_app_with(|s| {
        s.conductor.image_download_max_mb = 1;
    })
    .await;
    let kernel = server.url("/kernel");
    let uuid = ramdisk_node(
        &app,
        &bmc,
        MAC,
        json!({"kernel": kernel, "ramdisk": kernel}),
    )
    .await;

    let failed = deploy_and_wait(&app, &uuid).await;

    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the image is larger than 1 MiB ([conductor] image_download_max_mb)"),
        "{error}"
    );
    let cache = app.settings.boot().image_cache_dir;
    let left: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_deleted_while_deployed_leaves_no_dhcp_entry_or_link_after_undeploy() {
    let kernel = b"kernel".to_vec();
    let server = FileServer::start(HashMap::from([
        ("/vmlinuz".to_owned(), kernel.clone()),
        ("/initrd".to_owned(), kernel),
    ]))
    .await;
    let bmc = SimBmc::start().await;
    let app = pxe_app().await;
    let boot = app.settings.boot();
    let uuid = ramdisk_node(
        &app,
        &bmc,
        MAC,
        json!({"kernel": server.url("/vmlinuz"), "ramdisk": server.url("/initrd")}),
    )
    .await;
    let active = deploy_and_wait(&app, &uuid).await;
    assert_eq!(active["provision_state"], "active", "{active}");
    let (hostsdir, _) = boot.dnsmasq.clone().unwrap();
    let host_file = hostsdir.join(format!("ironic-{MAC}.conf"));
    let link = boot
        .http_root
        .join(&boot.pxe_config_subdir)
        .join(MAC.replace(':', "-"));
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "no link to start with"
    );
    assert!(
        std::fs::read_to_string(&host_file)
            .unwrap()
            .contains("set:ironic")
    );

    let ports = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();
    let port = ports["ports"][0]["uuid"].as_str().unwrap().to_owned();
    let deleted = app.delete(&format!("/v1/ports/{port}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    app.provision(&uuid, "deleted").await;
    app.wait_for_state(&uuid, "available").await;

    assert_eq!(
        std::fs::read_to_string(&host_file).unwrap(),
        format!("{MAC},ignore\n"),
        "DHCP still answers the deleted port's MAC"
    );
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "a dangling pxelinux.cfg link is left"
    );
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert!(
        node["driver_internal_info"]
            .get("ferric_boot_macs")
            .is_none(),
        "{node}"
    );
    app.stop().await;
}
