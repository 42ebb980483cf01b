//! A real machine, end to end: a QEMU VM (TCG) powered by `ipmi_sim` in a
//! network namespace the test creates, network-booting from Ferric. The
//! real `ferric` binary runs in the namespace with the `ipmi` hardware
//! type, `ipxe` boot and `direct` deploy; `dnsmasq` serves DHCP from the
//! files Ferric's dnsmasq provider writes. A `direct` deploy powers the VM
//! on over IPMI, iPXE chains to Ferric's boot script, the deploy ramdisk
//! (Debian kernel + busybox + the static `ferric-agent`, built by
//! `tests/vm/setup.sh`) looks the node up, heartbeats, writes the image
//! onto the VM's disk, and the node ends `active`, booted from disk into
//! the instance (an isohybrid image), which calls back. Also: a corrupted
//! image, a machine dying mid-deploy, and `ramdisk` deploys of a kernel and
//! ramdisk (over iPXE, and over PXE with pxelinux from TFTP) and of an ISO. Nothing leaves the namespace and loopback.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::helpers::{signatures, wait_until};

const MAC: &str = "52:54:00:77:00:10";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture; torn down (processes killed, namespace deleted) on drop.
struct Vm {
    work: tempfile::TempDir,
    ns: String,
    api: String,
}

impl Vm {
    fn up() -> Vm {
        Vm::with_callback_timeout(1800)
    }

    /// The fixture with Ferric's `deploy_callback_timeout_secs` set.
    fn with_callback_timeout(secs: u64) -> Vm {
        Vm::with(secs, true)
    }

    /// The fixture; `rng`: whether the VM has a virtio-rng device (QEMU's
    /// default machine has none, and its default CPU no RDRAND).
    fn with(secs: u64, rng: bool) -> Vm {
        Vm::build(secs, rng, "")
    }

    /// The fixture with more QEMU hardware (`@W@` is the work directory).
    fn with_hardware(extra: &str) -> Vm {
        Vm::build(1800, true, extra)
    }

    /// The fixture with a disk of `size` (`truncate -s`) instead of 64M.
    fn with_disk(size: &str) -> Vm {
        Vm::build_with(1800, true, "", size)
    }

    fn build(secs: u64, rng: bool, extra: &str) -> Vm {
        Vm::build_with(secs, rng, extra, "64M")
    }

    fn build_with(secs: u64, rng: bool, extra: &str, disk: &str) -> Vm {
        let assets = repo().join("target/vm");
        assert!(
            assets.join("vmlinuz").exists() && assets.join("initramfs.gz").exists(),
            "{} has no kernel and deploy ramdisk: run tests/vm/setup.sh (scripts/test does)",
            assets.display()
        );
        let work = tempfile::tempdir().unwrap();
        let ns = format!("ferric-vm-{}", std::process::id());
        let port = crate::helpers::process::free_port();
        let status = Command::new(repo().join("tests/vm/fixture.sh"))
            .arg("up")
            .arg(work.path())
            .arg(&ns)
            .arg(env!("CARGO_BIN_EXE_ferric"))
            .arg(&assets)
            .arg(port.to_string())
            .arg(MAC)
            .arg(secs.to_string())
            .arg(if rng { "1" } else { "0" })
            .env("VM_EXTRA", extra)
            .env("VM_DISK_SIZE", disk)
            .status()
            .unwrap();
        assert!(status.success(), "fixture.sh up failed");
        Vm {
            work,
            ns,
            api: format!("http://127.0.0.1:{port}"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// ipmitool against the VM's BMC, from inside the namespace.
    fn ipmitool(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "ipmitool", "-I", "lanplus", "-C", "3",
            ])
            .args([
                "-H",
                "127.0.0.1",
                "-p",
                "6623",
                "-U",
                "admin",
                "-P",
                "s3cret-vm",
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Every serial console's text so far, without the terminal's escape
    /// sequences: the firmware's console moves the cursor mid-word
    /// (`PXELINU\x1b[25;07H\x1b[25;08HX`) when its screen scrolls.
    fn serial(&self) -> String {
        let mut all = String::new();
        for n in 1..10 {
            if let Ok(text) = std::fs::read(self.path(&format!("bmc/serial-{n}.log"))) {
                all.push_str(&without_escapes(&String::from_utf8_lossy(&text)));
            }
        }
        all
    }
}

/// `text` without ANSI CSI sequences (`ESC [` parameters, then one final
/// byte in `@`..=`~`).
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_cursor_move_inside_a_word_is_not_in_the_text() {
    assert_eq!(
        without_escapes("PXELINU\u{1b}[25;07H\u{1b}[25;08HX 6.04 \u{1b}[0;1miPXE\u{1b}[0m"),
        "PXELINUX 6.04 iPXE"
    );
}

impl Drop for Vm {
    /// Tears the fixture down; a failed test's logs (serial consoles, Ferric,
    /// dnsmasq, the BMC) are kept under `target/vm-artifacts/<namespace>/`,
    /// and every test's when `FERRIC_VM_KEEP` is set.
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("FERRIC_VM_KEEP").is_some() {
            let keep = repo().join("target/vm-artifacts").join(&self.ns);
            let _ = std::fs::create_dir_all(&keep);
            for dir in [self.work.path().to_owned(), self.path("bmc")] {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "log" || e == "out") {
                        let _ = std::fs::copy(&path, keep.join(entry.file_name()));
                    }
                }
            }
        }
        let _ = Command::new(repo().join("tests/vm/fixture.sh"))
            .arg("down")
            .arg(self.work.path())
            .arg(&self.ns)
            .status();
    }
}

async fn call(
    client: &reqwest::Client,
    vm: &Vm,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client
        .request(method, format!("{}{path}", vm.api))
        .header("X-OpenStack-Ironic-API-Version", "latest");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_state(
    client: &reqwest::Client,
    vm: &Vm,
    node: &str,
    states: &[&str],
    secs: u64,
) -> Value {
    wait_until(Duration::from_secs(secs), "the node to settle", || async {
        let (_, body) = call(
            client,
            vm,
            reqwest::Method::GET,
            &format!("/v1/nodes/{node}"),
            None,
        )
        .await;
        (states.contains(&body["provision_state"].as_str().unwrap_or(""))
            && body["reservation"].is_null())
        .then_some(body)
    })
    .await
}

/// The VM's fixture with Ferric answering, and the instance image in
/// Ferric's `http_root`: an isohybrid image built by `tests/vm/setup.sh`
/// that boots from a disk into the same kernel and ramdisk, whose agent's
/// lookup is the instance's call back. Returns the image and its sha256.
async fn ready(vm: &Vm, client: &reqwest::Client) -> (Vec<u8>, String) {
    wait_until(
        Duration::from_secs(30),
        "Ferric in the namespace",
        || async {
            client
                .get(format!("{}/", vm.api))
                .send()
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    let image = std::fs::read(repo().join("target/vm/instance.iso"))
        .expect("target/vm/instance.iso: run tests/vm/setup.sh (scripts/test does)");
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let http_root = vm.path("ferric/httpboot/images");
    std::fs::create_dir_all(&http_root).unwrap();
    std::fs::write(http_root.join("disk.img"), &image).unwrap();
    (image, sha)
}

/// The API's log lines for the agents' lookups that got an answer.
fn lookups(vm: &Vm) -> Vec<String> {
    let log = std::fs::read_to_string(vm.path("ferric.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("http.path=/v1/lookup") && l.contains("http.status="))
        .map(str::to_owned)
        .collect()
}

/// Enrolls the VM as an `ipmi` node with the boot and deploy interfaces and
/// `instance_info`, takes it to `available` and asks for `active`.
async fn enroll_and_deploy(
    vm: &Vm,
    client: &reqwest::Client,
    interfaces: (&str, &str),
    instance_info: Value,
) -> String {
    let uuid = enroll(vm, client, interfaces, instance_info).await;
    provision(client, vm, &uuid, "active").await;
    uuid
}

/// Enrolls the VM as an `ipmi` node and takes it to `available`.
async fn enroll(
    vm: &Vm,
    client: &reqwest::Client,
    (boot_interface, deploy_interface): (&str, &str),
    instance_info: Value,
) -> String {
    let images = vm.path("ferric/images");
    let file_url = |name: &str| format!("file://{}", images.join(name).display());
    let (status, node) = call(
        client,
        vm,
        reqwest::Method::POST,
        "/v1/nodes",
        Some(json!({
            "driver": "ipmi", "name": "vm1", "boot_interface": boot_interface,
            "deploy_interface": deploy_interface,
            "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": 6623, "ipmi_username": "admin",
                            "ipmi_password": "s3cret-vm", "deploy_kernel": file_url("vmlinuz"),
                            "deploy_ramdisk": file_url("initramfs.gz"),
                            "kernel_append_params": "console=ttyS0 ferric.agent-args=--lookup-interval-secs,2,--heartbeat-interval-secs,2"},
            "instance_info": instance_info,
            // The VM's disk is smaller than the 4 GiB an agent picks
            // without hints: name it, as an operator would.
            "properties": {"root_device": {"name": "/dev/vda"}},
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let (status, port) = call(
        client,
        vm,
        reqwest::Method::POST,
        "/v1/ports",
        Some(json!({"node_uuid": uuid, "address": MAC})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{port}");
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        provision(client, vm, &uuid, verb).await;
        wait_state(client, vm, &uuid, &[state], 60).await;
    }
    uuid
}

async fn provision(client: &reqwest::Client, vm: &Vm, uuid: &str, verb: &str) {
    let (status, body) = call(
        client,
        vm,
        reqwest::Method::PUT,
        &format!("/v1/nodes/{uuid}/states/provision"),
        Some(json!({"target": verb})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{verb}: {body}");
}

/// The node once its deploy ended, which must be `active`.
async fn deployed(client: &reqwest::Client, vm: &Vm, uuid: &str) -> Value {
    let done = wait_state(client, vm, uuid, &["active", "deploy failed"], 300).await;
    assert_eq!(done["provision_state"], "active", "{}", evidence(vm, &done));
    done
}

/// What to show when a VM test fails: the node, the VM's console, Ferric's log.
fn evidence(vm: &Vm, node: &Value) -> String {
    let log = std::fs::read_to_string(vm.path("ferric.log")).unwrap_or_default();
    format!(
        "{node}\n--- serial ---\n{}\n--- ferric ---\n{}",
        vm.serial(),
        log.lines().rev().take(40).collect::<Vec<_>>().join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_powered_by_ipmi_network_boots_the_agent_gets_its_image_and_boots_it() {
    deploys_and_boots_from_disk(Vm::up()).await;
}

/// The agent must not wait on the kernel's entropy pool, which a machine
/// without a hardware RNG fills slowly this early in its boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_without_a_hardware_rng_deploys_all_the_same() {
    deploys_and_boots_from_disk(Vm::with(1800, false)).await;
}

/// A `direct` deploy of `vm` to `active`, and the instance booting from
/// the disk.
async fn deploys_and_boots_from_disk(vm: Vm) {
    let client = reqwest::Client::new();
    let (image, sha) = ready(&vm, &client).await;
    let uuid = enroll_and_deploy(
        &vm,
        &client,
        ("ipxe", "direct"),
        json!({"image_source": "http://10.77.0.1:8080/images/disk.img",
               "image_os_hash_algo": "sha256", "image_os_hash_value": sha}),
    )
    .await;
    let done = deployed(&client, &vm, &uuid).await;
    let disk = std::fs::read(vm.path("disk.raw")).unwrap();
    assert_eq!(
        &disk[..image.len()],
        &image[..],
        "the VM's disk holds the image"
    );
    // The console's timeline has the machine's network boot: the kernel and
    // ramdisk it fetched from Ferric's boot-file server.
    let (status, page) = call(
        &client,
        &vm,
        reqwest::Method::GET,
        &format!("/console/nodes/{uuid}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap_or_default();
    for file in ["kernel", "ramdisk"] {
        assert!(
            page.contains(&format!("boot file {file} fetched")),
            "no fetch of {file} in the timeline: {page}"
        );
    }
    let serial = vm.serial();
    assert!(serial.contains("ferric-agent started"), "{serial}");
    assert!(serial.contains("image written and verified"), "{serial}");
    assert_eq!(
        vm.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );
    assert_eq!(done["power_state"], "power on");
    // The instance boots from the disk and calls back: a second lookup,
    // refused because an active node waits for no agent.
    let callback = wait_until(
        Duration::from_secs(120),
        "the instance's callback",
        || async { lookups(&vm).get(1).cloned() },
    )
    .await;
    assert!(callback.contains("http.status=404"), "{callback}");
    assert!(
        lookups(&vm)[0].contains("http.status=200"),
        "{:?}",
        lookups(&vm)
    );
    let instance = std::fs::read_to_string(vm.path("bmc/serial-2.log")).unwrap_or_default();
    assert!(
        instance.contains("ISOLINUX"),
        "booted from the disk: {instance}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_given_a_corrupted_image_fails_its_deploy_and_is_powered_off() {
    let vm = Vm::up();
    let client = reqwest::Client::new();
    ready(&vm, &client).await;
    let wrong = "0".repeat(64);
    let uuid = enroll_and_deploy(
        &vm,
        &client,
        ("ipxe", "direct"),
        json!({"image_source": "http://10.77.0.1:8080/images/disk.img",
               "image_os_hash_algo": "sha256", "image_os_hash_value": wrong}),
    )
    .await;
    let done = wait_state(&client, &vm, &uuid, &["active", "deploy failed"], 300).await;
    assert_eq!(
        done["provision_state"],
        "deploy failed",
        "{}",
        evidence(&vm, &done)
    );
    let error = done["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Image failed to verify against checksum") && error.contains(&wrong),
        "{error}"
    );
    assert_eq!(
        vm.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    assert!(!vm.path("bmc/qemu.pid").exists(), "the VM is gone");
}

/// Runs `args` inside the VM's namespace in the background, its output
/// to `log`; waits until something there listens on `addr` (the namespace
/// and its processes go with the fixture).
async fn serve_in_namespace(vm: &Vm, args: &[&str], log: &str, addr: &str) -> std::process::Child {
    let log = std::fs::File::create(vm.path(log)).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &vm.ns])
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        &format!("a listener on {addr} in the namespace"),
        || async {
            let out = Command::new("ip")
                .args(["netns", "exec", &vm.ns, "ss", "-ltnH"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("{addr} "))
                .then_some(())
        },
    )
    .await;
    child
}

/// The console of the VM's `boot`th power-on (1: the first deploy
/// ramdisk, 2: its instance, …) once its agent called back (the
/// `boot`th lookup).
async fn instance_console(vm: &Vm, boot: usize) -> String {
    wait_until(
        Duration::from_secs(120),
        "the instance's callback",
        || async {
            let console = std::fs::read_to_string(vm.path(&format!("bmc/serial-{boot}.log")))
                .unwrap_or_default();
            (lookups(vm).len() >= boot).then_some(console)
        },
    )
    .await
}

/// A stock-cloud-image deploy: the instance image as a qcow2 with
/// compressed clusters and a config drive given as JSON. The instance's
/// first boot finds the `config-2` partition the agent added, reads its
/// user_data and runs it, and the script calls the test back over the
/// network with what it read. Then the same machine is redeployed with
/// the image zstd-compressed, no config drive, and `image_download_source:
/// local` from a server only Ferric can reach (the namespace's loopback):
/// the conductor fetches and serves it, and the instance boots without a
/// drive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_deploys_a_qcow2_image_with_a_config_drive_and_then_a_zstd_image() {
    let vm = Vm::with_disk("160M");
    let client = reqwest::Client::new();
    let (iso, _) = ready(&vm, &client).await;
    let images = vm.path("ferric/httpboot/images");
    let disk_img = images.join("disk.img");
    let qcow2 = images.join("disk.qcow2");
    for args in [
        vec!["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2"],
        vec!["zstd", "-q"],
    ] {
        let mut command = Command::new(args[0]);
        command.args(&args[1..]).arg(&disk_img);
        if args[0] == "qemu-img" {
            command.arg(&qcow2);
        } else {
            command.arg("-o").arg(images.join("disk.img.zst"));
        }
        assert!(command.status().unwrap().success(), "{args:?}");
    }
    let sha = |name: &str| {
        hex::encode(sha2::Sha256::digest(
            std::fs::read(images.join(name)).unwrap(),
        ))
    };
    let source = |name: &str| {
        json!({
        "image_source": format!("http://10.77.0.1:8080/images/{name}"),
        "image_os_hash_algo": "sha256", "image_os_hash_value": sha(name)})
    };
    // The instance's call back: whatever it POSTs to 10.77.0.1:8099.
    let _callback = serve_in_namespace(
        &vm,
        &[
            "socat",
            "-u",
            "-T",
            "3",
            "TCP-LISTEN:8099,bind=10.77.0.1,reuseaddr,fork",
            &format!("OPEN:{},creat,append", vm.path("callback.txt").display()),
        ],
        "callback.log",
        "10.77.0.1:8099",
    )
    .await;
    // The instance's network comes up only in the ramdisk's init, after
    // its user_data: the script borrows an address of its own for the call.
    let user_data = r#"#!/bin/sh
echo "user-data ran: $((6 * 7))"
{ echo "user-data ran: $((6 * 7))"; cat /config-2/openstack/latest/meta_data.json; } >/tmp/callback
ip link set eth0 up
ip addr add 10.77.0.51/24 dev eth0
i=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
{ printf 'POST /instance HTTP/1.0\r\nContent-Length: %s\r\n\r\n' "$(wc -c </tmp/callback)"; cat /tmp/callback; } | timeout 5 nc 10.77.0.1 8099 2>/dev/null || true
ip addr del 10.77.0.51/24 dev eth0
"#;
    let uuid = enroll(&vm, &client, ("ipxe", "direct"), source("disk.qcow2")).await;
    let (status, body) = call(
        &client,
        &vm,
        reqwest::Method::PUT,
        &format!("/v1/nodes/{uuid}/states/provision"),
        Some(json!({"target": "active", "configdrive": {
            "meta_data": {"hostname": "vm1.example"},
            "user_data": user_data}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    deployed(&client, &vm, &uuid).await;
    let serial = vm.serial();
    let written = serial
        .lines()
        .find(|l| l.contains("image written and verified"))
        .unwrap_or_default();
    assert!(written.contains("qcow2"), "{serial}");
    assert!(serial.contains("config drive written"), "{serial}");
    // The disk: the image (its MBR gained a partition), and the config
    // drive's partition at the end.
    let disk = std::fs::read(vm.path("disk.raw")).unwrap();
    assert!(
        disk[512..iso.len()] == iso[512..],
        "the VM's disk holds the image"
    );
    let dump = Command::new("sfdisk")
        .arg("--dump")
        .arg(vm.path("disk.raw"))
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    let last = dump
        .lines()
        .rev()
        .find(|l| l.contains("start="))
        .unwrap_or_default()
        .to_owned();
    let start: usize = last
        .split("start=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(start * 512, (160 << 20) - (64 << 20), "{dump}");
    assert_eq!(
        &disk[start * 512 + 32808..start * 512 + 32816],
        b"config-2",
        "{dump}"
    );

    // The instance's first boot read the drive and ran its user_data.
    let instance = instance_console(&vm, 2).await;
    assert!(
        instance.contains("INSTANCE: config drive on /dev/vda"),
        "{instance}"
    );
    assert!(instance.contains("#!/bin/sh"), "the user_data: {instance}");
    assert!(instance.contains("user-data ran: 42"), "{instance}");
    let called_back = std::fs::read_to_string(vm.path("callback.txt")).unwrap_or_default();
    assert!(
        called_back.contains("POST /instance")
            && called_back.contains("user-data ran: 42")
            && called_back.contains("\"hostname\":\"vm1.example\""),
        "the instance's call back: {called_back}\n{instance}"
    );

    // Undeployed and deployed again from a zstd'd raw image, without a
    // config drive: the new image's partition table has none. The image
    // is on a server the VM cannot reach (the namespace's loopback), so
    // the conductor fetches it and serves it itself.
    provision(&client, &vm, &uuid, "deleted").await;
    wait_state(&client, &vm, &uuid, &["available"], 120).await;
    let private = vm.path("private-images");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::rename(images.join("disk.img.zst"), private.join("disk.img.zst")).unwrap();
    let _private_server = serve_in_namespace(
        &vm,
        &[
            "python3",
            "-m",
            "http.server",
            "8098",
            "--bind",
            "127.0.0.1",
            "--directory",
            private.to_str().unwrap(),
        ],
        "private-images.log",
        "127.0.0.1:8098",
    )
    .await;
    let mut local = json!({
        "image_source": "http://127.0.0.1:8098/disk.img.zst",
        "image_download_source": "local",
        "image_os_hash_algo": "sha256",
        "image_os_hash_value": hex::encode(sha2::Sha256::digest(
            std::fs::read(private.join("disk.img.zst")).unwrap()))});
    local["image_disk_format"] = json!("raw");
    let (status, body) = call(
        &client,
        &vm,
        reqwest::Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([{"op": "add", "path": "/instance_info", "value": local}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    provision(&client, &vm, &uuid, "active").await;
    deployed(&client, &vm, &uuid).await;
    let disk = std::fs::read(vm.path("disk.raw")).unwrap();
    assert!(
        disk[..iso.len()] == iso[..],
        "the zstd image, byte for byte"
    );
    let instance = instance_console(&vm, 4).await;
    assert!(instance.contains("INSTANCE: no config drive"), "{instance}");
    // The agent wrote from the conductor's copy; the private server saw the
    // conductor's one download.
    let serial = vm.serial();
    let written: Vec<&str> = serial
        .lines()
        .filter(|l| l.contains("image written and verified"))
        .collect();
    assert!(
        written
            .last()
            .is_some_and(|l| l.contains("http://10.77.0.1:8080/agent_images/")),
        "{written:?}"
    );
    let fetched = std::fs::read_to_string(vm.path("private-images.log")).unwrap();
    assert_eq!(fetched.matches("GET /disk.img.zst").count(), 1, "{fetched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramdisk_deploy_boots_the_vm_into_its_ramdisk_which_calls_back() {
    let vm = Vm::up();
    let client = reqwest::Client::new();
    ready(&vm, &client).await;
    let images = vm.path("ferric/images");
    let file_url = |name: &str| format!("file://{}", images.join(name).display());
    // The instance is the same kernel and ramdisk: its agent's lookup is
    // the callback (refused: an active node waits for no ramdisk).
    let uuid = enroll_and_deploy(
        &vm,
        &client,
        ("ipxe", "ramdisk"),
        json!({"kernel": file_url("vmlinuz"), "ramdisk": file_url("initramfs.gz"),
               "ramdisk_kernel_arguments": "console=ttyS0 ipa-api-url=http://10.77.0.1:6385 ferric.agent-args=--lookup-interval-secs,2"}),
    )
    .await;
    let done = wait_state(&client, &vm, &uuid, &["active", "deploy failed"], 120).await;
    assert_eq!(
        done["provision_state"],
        "active",
        "{}",
        evidence(&vm, &done)
    );
    assert_eq!(
        vm.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );
    let callback = wait_until(
        Duration::from_secs(120),
        "the ramdisk's callback",
        || async { lookups(&vm).first().cloned() },
    )
    .await;
    assert!(callback.contains("http.status=404"), "{callback}");
    let serial = vm.serial();
    assert!(serial.contains("ferric-agent started"), "{serial}");

    // Undeploy powers the VM off.
    provision(&client, &vm, &uuid, "deleted").await;
    wait_state(&client, &vm, &uuid, &["available"], 120).await;
    assert_eq!(
        vm.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_whose_agent_dies_mid_deploy_times_out_into_deploy_failed() {
    const CALLBACK_TIMEOUT_SECS: u64 = 90;
    // Long enough for the slowest machine's boot before the agent's first
    // heartbeat (TCG boots took from 10 s to more than 22 s); the fault
    // comes only once the agent writes.
    let vm = Vm::with_callback_timeout(CALLBACK_TIMEOUT_SECS);
    let client = reqwest::Client::new();
    let (mut image, _) = ready(&vm, &client).await;
    // A longer write (48 MiB), so the machine dies while it runs.
    image.resize(48 << 20, 0);
    let sha = hex::encode(sha2::Sha256::digest(&image));
    std::fs::write(vm.path("ferric/httpboot/images/disk.img"), &image).unwrap();
    let uuid = enroll_and_deploy(
        &vm,
        &client,
        ("ipxe", "direct"),
        json!({"image_source": "http://10.77.0.1:8080/images/disk.img",
               "image_os_hash_algo": "sha256", "image_os_hash_value": sha}),
    )
    .await;
    // The conductor records the running step once the agent has answered
    // the command (killing the machine between the agent's receipt and its
    // answer fails the command itself, not the callback wait).
    wait_until(
        Duration::from_secs(120),
        "the agent to start writing the image",
        || async {
            let (_, node) = call(
                &client,
                &vm,
                reqwest::Method::GET,
                &format!("/v1/nodes/{uuid}"),
                None,
            )
            .await;
            (node["deploy_step"]["step"] == "write_image").then_some(())
        },
    )
    .await;
    // The machine (and its agent) dies: no more heartbeats.
    let qemu = std::fs::read_to_string(vm.path("bmc/qemu.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", qemu.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The last heartbeat was at most a heartbeat interval ago; the
    // conductor looks every 5 s.
    let done = wait_state(
        &client,
        &vm,
        &uuid,
        &["active", "deploy failed"],
        CALLBACK_TIMEOUT_SECS + 60,
    )
    .await;
    assert_eq!(
        done["provision_state"],
        "deploy failed",
        "{}",
        evidence(&vm, &done)
    );
    let error = done["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Timeout reached while waiting for callback"),
        "{error}"
    );
    assert!(!vm.serial().contains("image written and verified"));
    assert_eq!(
        vm.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    // Nothing is stuck: the node undeploys to available.
    provision(&client, &vm, &uuid, "deleted").await;
    let node = wait_state(&client, &vm, &uuid, &["available"], 60).await;
    assert_eq!(node["last_error"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramdisk_deploy_of_an_iso_sanboots_it_over_http() {
    let vm = Vm::up();
    let client = reqwest::Client::new();
    ready(&vm, &client).await;
    std::fs::copy(
        repo().join("target/vm/instance.iso"),
        vm.path("ferric/images/instance.iso"),
    )
    .unwrap();
    let iso = format!("file://{}", vm.path("ferric/images/instance.iso").display());
    let uuid = enroll_and_deploy(&vm, &client, ("ipxe", "ramdisk"), json!({"boot_iso": iso})).await;
    let done = wait_state(&client, &vm, &uuid, &["active", "deploy failed"], 120).await;
    assert_eq!(
        done["provision_state"],
        "active",
        "{}",
        evidence(&vm, &done)
    );
    // iPXE reads the ISO with HTTP range requests (the VM's disk is blank);
    // its ISOLINUX boots the instance, whose agent calls back.
    let callback = wait_until(Duration::from_secs(180), "the ISO's callback", || async {
        lookups(&vm).first().cloned()
    })
    .await;
    assert!(callback.contains("http.status=404"), "{callback}");
    let serial = vm.serial();
    assert!(serial.contains("ISOLINUX"), "{serial}");
    assert!(serial.contains("ferric.ip=10.77.0.50/24"), "{serial}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pxe_ramdisk_deploy_boots_pxelinux_over_tftp() {
    let vm = Vm::up();
    let client = reqwest::Client::new();
    ready(&vm, &client).await;
    let images = vm.path("ferric/images");
    let file_url = |name: &str| format!("file://{}", images.join(name).display());
    // SeaBIOS is a BIOS: the pxe boot interface hands out pxelinux.0.
    let uuid = enroll_and_deploy(
        &vm,
        &client,
        ("pxe", "ramdisk"),
        json!({"kernel": file_url("vmlinuz"), "ramdisk": file_url("initramfs.gz"),
               "deploy_boot_mode": "bios",
               "ramdisk_kernel_arguments": "console=ttyS0 ipa-api-url=http://10.77.0.1:6385 ferric.agent-args=--lookup-interval-secs,2"}),
    )
    .await;
    let done = wait_state(&client, &vm, &uuid, &["active", "deploy failed"], 120).await;
    assert_eq!(
        done["provision_state"],
        "active",
        "{}",
        evidence(&vm, &done)
    );
    let callback = wait_until(
        Duration::from_secs(120),
        "the ramdisk's callback",
        || async { lookups(&vm).first().cloned() },
    )
    .await;
    assert!(callback.contains("http.status=404"), "{callback}");
    let serial = vm.serial();
    assert!(serial.contains("PXELINUX"), "{serial}");
    let tftp = std::fs::read_to_string(vm.path("dnsmasq.log")).unwrap_or_default();
    assert!(
        tftp.contains("sent") && tftp.contains(&format!("{uuid}/kernel")),
        "the kernel came over TFTP: {tftp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iso_built_for_virtual_media_boots_its_kernel_and_ramdisk() {
    use crate::helpers::redfish::Emulator;
    use crate::helpers::{Backend, spawn_app_with};
    let assets = repo().join("target/vm");
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
    let images = app.settings.data_dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for name in ["vmlinuz", "initramfs.gz"] {
        std::fs::copy(assets.join(name), images.join(name)).unwrap();
    }
    let file_url = |name: &str| format!("file://{}", images.join(name).display());
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "driver_info": bmc.driver_info(0),
                   "boot_interface": "redfish-virtual-media", "deploy_interface": "ramdisk",
                   "instance_info": {"kernel": file_url("vmlinuz"), "ramdisk": file_url("initramfs.gz"),
                                     "deploy_boot_mode": "bios",
                                     "ramdisk_kernel_arguments": "console=ttyS0 ferric.marker=vmedia-iso"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        app.provision(&uuid, verb).await;
        app.wait_for_state(&uuid, state).await;
    }
    app.provision(&uuid, "active").await;
    let active = wait_until(Duration::from_secs(120), "the deploy", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (["active", "deploy failed"].contains(&node["provision_state"].as_str().unwrap_or(""))
            && node["reservation"].is_null())
        .then_some(node)
    })
    .await;
    assert_eq!(active["provision_state"], "active", "{active}");
    let iso = app
        .settings
        .boot()
        .http_root
        .join(format!("redfish/boot-{uuid}.iso"));
    let cd = bmc.curl(&format!("{}/VirtualMedia/Cd", bmc.system(0)));
    assert_eq!(
        cd["Image"],
        format!("http://127.0.0.1:{port}/redfish/boot-{uuid}.iso")
    );

    // What the BMC was given boots: the ISO, as a machine's CD.
    let work = tempfile::tempdir().unwrap();
    let serial = work.path().join("serial.log");
    let _qemu = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "384",
            "-smp",
            "1",
            "-nographic",
            "-nodefaults",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-cdrom")
        .arg(&iso)
        .args(["-boot", "d", "-nic", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let console = wait_until(Duration::from_secs(120), "the ISO to boot", || async {
        let text =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        text.contains("FERRIC-RAMDISK").then_some(text)
    })
    .await;
    assert!(console.contains("ISOLINUX"), "{console}");
    assert!(console.contains("ferric.marker=vmedia-iso"), "{console}");
    app.stop().await;
}

/// A machine with three disks (the fixture's, without a serial; a virtio
/// disk with serial `SERIAL-B`; an NVMe with serial `NVME-C`) and two NICs:
/// `ferric-agent` inspects it (every disk and NIC in the inventory), then a
/// deploy with `root_device: {"serial": "SERIAL-B"}` writes only that disk.
/// Data a metadata clean must leave: (disk, offset) of 4 KiB of `0x5a`,
/// in the middle of `disk-b`'s first partition and of `disk-c`.
const SENTINELS: [(&str, u64); 2] = [("disk-b.raw", 17 << 20), ("disk-c.raw", 64 << 20)];

/// Plants what a machine's former life leaves on its disks (the VM off):
/// the root disk a whole-disk LVM label; `disk-b` a GPT whose partitions
/// hold ext4, an LVM label and an mdraid 1.2 member; `disk-c` (NVMe)
/// ext4 and an mdraid 0.90 superblock on the whole disk. Checks that
/// `wipefs` sees each, and returns the (disk, offset, length) windows it
/// must find empty after cleaning.
fn plant_signatures(vm: &Vm) -> Vec<(&'static str, u64, u64)> {
    const MIB: u64 = 1 << 20;
    let (root, b, c) = (
        vm.path("disk.raw"),
        vm.path("disk-b.raw"),
        vm.path("disk-c.raw"),
    );
    signatures::lvm_pv(&root, 0, 64 * MIB);
    signatures::gpt(&b, &[32, 32, 0]);
    signatures::ext4(&b, MIB, 32 * MIB);
    signatures::lvm_pv(&b, 33 * MIB, 32 * MIB);
    let p3 = (65 * MIB, 96 * MIB - 65 * MIB - 34 * 512);
    signatures::md_1_2(&b, p3.0, p3.1);
    signatures::ext4(&c, 0, 128 * MIB);
    signatures::md_0_90(&c, 128 * MIB);
    for (file, offset) in SENTINELS {
        signatures::sentinel(&vm.path(file), offset, 4096);
    }
    let windows = vec![
        ("disk.raw", 0, 64 * MIB),
        ("disk-b.raw", 0, 96 * MIB),
        ("disk-b.raw", MIB, 32 * MIB),
        ("disk-b.raw", 33 * MIB, 32 * MIB),
        ("disk-b.raw", p3.0, p3.1),
        ("disk-c.raw", 0, 128 * MIB),
    ];
    let expected = [
        "LVM2_member",
        "gpt",
        "ext4",
        "LVM2_member",
        "linux_raid_member",
        "linux_raid_member",
    ];
    for ((file, offset, len), kind) in windows.iter().zip(expected) {
        let seen = signatures::found(&vm.path(file), *offset, *len);
        assert!(
            seen.iter().any(|s| s == kind),
            "{file} at {offset}: {seen:?}, not {kind}"
        );
    }
    assert!(
        signatures::found(&c, 0, 128 * MIB)
            .iter()
            .any(|s| s == "ext4")
    );
    windows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_with_three_disks_is_inspected_cleaned_and_deployed_to_the_disk_its_hint_names() {
    let vm = Vm::with_hardware(
        "-drive file=@W@/disk-b.raw,if=none,id=db,format=raw \
         -device virtio-blk-pci,drive=db,serial=SERIAL-B \
         -drive file=@W@/disk-c.raw,if=none,id=dc,format=raw -device nvme,drive=dc,serial=NVME-C \
         -netdev user,id=n1,restrict=on -device virtio-net-pci,netdev=n1,mac=52:54:00:77:00:2b",
    );
    for (name, mib) in [("disk-b.raw", 96_u64), ("disk-c.raw", 128)] {
        let file = std::fs::File::create(vm.path(name)).unwrap();
        file.set_len(mib << 20).unwrap();
    }
    let client = reqwest::Client::new();
    let (image, sha) = ready(&vm, &client).await;
    let images = vm.path("ferric/images");
    let file_url = |name: &str| format!("file://{}", images.join(name).display());
    let (status, node) = call(
        &client,
        &vm,
        reqwest::Method::POST,
        "/v1/nodes",
        Some(json!({
            "driver": "ipmi", "name": "vm3", "boot_interface": "ipxe", "deploy_interface": "direct",
            "inspect_interface": "agent",
            "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": 6623, "ipmi_username": "admin",
                            "ipmi_password": "s3cret-vm", "deploy_kernel": file_url("vmlinuz"),
                            "deploy_ramdisk": file_url("initramfs.gz"),
                            "kernel_append_params": "console=ttyS0 ferric.agent-args=--lookup-interval-secs,2,--heartbeat-interval-secs,2"},
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let (status, port) = call(
        &client,
        &vm,
        reqwest::Method::POST,
        "/v1/ports",
        Some(json!({"node_uuid": uuid, "address": MAC})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{port}");
    provision(&client, &vm, &uuid, "manage").await;
    wait_state(&client, &vm, &uuid, &["manageable"], 60).await;

    provision(&client, &vm, &uuid, "inspect").await;
    let inspected = wait_state(&client, &vm, &uuid, &["manageable", "inspect failed"], 300).await;
    assert_eq!(
        inspected["provision_state"],
        "manageable",
        "{}",
        evidence(&vm, &inspected)
    );
    let (_, stored) = call(
        &client,
        &vm,
        reqwest::Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    )
    .await;
    // Kernel names follow the PCI order, not the command line's (why
    // hints name serials): compare serials and sizes.
    let mut disks: Vec<(Option<String>, u64)> = stored["inventory"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["serial"].as_str().map(str::to_owned),
                d["size"].as_u64().unwrap(),
            )
        })
        .collect();
    disks.sort();
    assert_eq!(
        disks,
        [
            (None, 64 << 20),
            (Some("NVME-C".to_owned()), 128 << 20),
            (Some("SERIAL-B".to_owned()), 96 << 20),
        ],
        "{stored}"
    );
    let macs: Vec<&str> = stored["inventory"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["mac_address"].as_str())
        .collect();
    assert!(
        macs.contains(&MAC) && macs.contains(&"52:54:00:77:00:2b"),
        "{macs:?}"
    );
    assert_eq!(inspected["properties"]["cpu_arch"], "x86_64");
    assert_eq!(
        vm.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );

    let planted = plant_signatures(&vm);
    let (status, patched) = call(
        &client,
        &vm,
        reqwest::Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([
            {"op": "add", "path": "/properties/root_device", "value": {"serial": "SERIAL-B"}},
            {"op": "add", "path": "/instance_info",
             "value": {"image_source": "http://10.77.0.1:8080/images/disk.img",
                       "image_os_hash_algo": "sha256", "image_os_hash_value": sha}},
            {"op": "replace", "path": "/automated_clean", "value": true},
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    // Automated cleaning (metadata only in this fixture): every signature
    // gone, from the partitions too, and the data between kept.
    provision(&client, &vm, &uuid, "provide").await;
    let cleaned = wait_state(&client, &vm, &uuid, &["available", "clean failed"], 300).await;
    assert_eq!(
        cleaned["provision_state"],
        "available",
        "{}",
        evidence(&vm, &cleaned)
    );
    for (file, offset, len) in &planted {
        let left = signatures::found(&vm.path(file), *offset, *len);
        assert!(left.is_empty(), "{file} at {offset}: {left:?} left");
    }
    for (file, offset) in SENTINELS {
        assert!(
            signatures::sentinel_kept(&vm.path(file), offset, 4096),
            "{file}: data at {offset} erased by a metadata clean"
        );
    }
    // A manual erase_devices: the NVMe namespace formats itself.
    provision(&client, &vm, &uuid, "manage").await;
    wait_state(&client, &vm, &uuid, &["manageable"], 60).await;
    let (status, body) = call(
        &client,
        &vm,
        reqwest::Method::PUT,
        &format!("/v1/nodes/{uuid}/states/provision"),
        Some(json!({"target": "clean", "clean_steps": [
            {"interface": "deploy", "step": "erase_devices"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let erased = wait_state(&client, &vm, &uuid, &["manageable", "clean failed"], 300).await;
    assert_eq!(
        erased["provision_state"],
        "manageable",
        "{}",
        evidence(&vm, &erased)
    );
    assert!(
        vm.serial().contains("nvme format ("),
        "{}",
        evidence(&vm, &erased)
    );
    for file in ["disk-b.raw", "disk-c.raw"] {
        let bytes = std::fs::read(vm.path(file)).unwrap();
        assert!(bytes.iter().all(|b| *b == 0), "{file} not erased");
    }
    provision(&client, &vm, &uuid, "provide").await;
    wait_state(&client, &vm, &uuid, &["available"], 300).await;
    provision(&client, &vm, &uuid, "active").await;
    deployed(&client, &vm, &uuid).await;
    let b = std::fs::read(vm.path("disk-b.raw")).unwrap();
    assert!(
        b[..image.len()] == image[..],
        "the hinted disk holds the image"
    );
    for other in ["disk.raw", "disk-c.raw"] {
        let bytes = std::fs::read(vm.path(other)).unwrap();
        assert!(bytes.iter().all(|b| *b == 0), "{other} was written");
    }
}
