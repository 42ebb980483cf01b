//! The real ironic-python-agent (PyPI 13.0.0, in the venv `scripts/test`
//! makes with `tests/ipa/setup.sh`) on this machine, confined:
//! - its own network namespace, joined to the host by a veth pair on a /30
//!   of 100.64.0.0/10 picked from the test process's pid (so tests in
//!   parallel never share one); Ferric listens on the host's end;
//! - its own mount and PID namespaces (`tests/ipa/confine.sh`), where /dev
//!   holds nothing but a loop device the test made ([`LoopDisk`]), which the
//!   tests' hardware manager (`tests/ipa/loop_only_hwm`) lists as the
//!   machine's only disk.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A network namespace for one agent, and the veth pair into it.
pub struct AgentNet {
    pub ns: String,
    /// Ferric's address, on the host's end.
    pub host_ip: String,
    /// The agent's address, inside.
    pub agent_ip: String,
    /// The agent's NIC, inside, and its MAC address.
    pub nic: String,
    pub mac: String,
    /// A second NIC, inside (a veth pair whose far end stays inside), with
    /// an address of its own.
    pub nic2: String,
    pub mac2: String,
}

impl AgentNet {
    pub fn new() -> AgentNet {
        let pid = std::process::id();
        // 100.64.0.0/10 holds 2^20 blocks of four addresses.
        let block = u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + (pid % (1 << 20)) * 4;
        let ip = |last: u32| std::net::Ipv4Addr::from(block + last).to_string();
        let net = AgentNet {
            ns: format!("ferric-ipa-{pid}"),
            host_ip: ip(1),
            agent_ip: ip(2),
            nic: format!("fi{pid}n"),
            mac: format!(
                "52:54:00:{:02x}:{:02x}:{:02x}",
                (pid >> 16) & 255,
                (pid >> 8) & 255,
                pid & 255
            ),
            nic2: format!("fi{pid}m"),
            mac2: format!(
                "52:54:01:{:02x}:{:02x}:{:02x}",
                (pid >> 16) & 255,
                (pid >> 8) & 255,
                pid & 255
            ),
        };
        let host_if = format!("fi{pid}h");
        let _ = Command::new("ip").args(["netns", "del", &net.ns]).status();
        run("ip", &["netns", "add", &net.ns]);
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &net.nic,
            ],
        );
        run("ip", &["link", "set", &net.nic, "netns", &net.ns]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", net.host_ip),
                "dev",
                &host_if,
            ],
        );
        run("ip", &["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", net.ns.as_str(), "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        inside(&["link", "set", &net.nic, "address", &net.mac]);
        inside(&[
            "addr",
            "add",
            &format!("{}/30", net.agent_ip),
            "dev",
            &net.nic,
        ]);
        inside(&["link", "set", &net.nic, "up"]);
        inside(&["link", "set", "lo", "up"]);
        let far = format!("fi{pid}f");
        inside(&[
            "link", "add", &net.nic2, "type", "veth", "peer", "name", &far,
        ]);
        inside(&["link", "set", &net.nic2, "address", &net.mac2]);
        inside(&["addr", "add", "198.18.0.1/30", "dev", &net.nic2]);
        inside(&["link", "set", &net.nic2, "up"]);
        inside(&["link", "set", &far, "up"]);
        net
    }
}

impl Drop for AgentNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A loop device over a sparse temporary file, its partitions scanned: the
/// agent's only disk.
pub struct LoopDisk {
    pub device: String,
    _file: tempfile::NamedTempFile,
}

impl LoopDisk {
    pub fn new(bytes: u64) -> LoopDisk {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(bytes).unwrap();
        let device = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--partscan",
                file.path().to_str().unwrap(),
            ],
        );
        LoopDisk {
            device,
            _file: file,
        }
    }

    /// The first `len` bytes on the device.
    pub fn read(&self, len: usize) -> Vec<u8> {
        use std::io::Read as _;
        let mut bytes = vec![0; len];
        std::fs::File::open(&self.device)
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        bytes
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// The IPA venv: `TEST_FERRIC_IPA_VENV`, else `target/ipa-venv`.
fn venv() -> PathBuf {
    let venv = std::env::var("TEST_FERRIC_IPA_VENV").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ipa-venv"),
        PathBuf::from,
    );
    assert!(
        venv.join("bin/ironic-python-agent").exists(),
        "ironic-python-agent is not installed in {}: run tests/ipa/setup.sh {} (scripts/test does)",
        venv.display(),
        venv.display()
    );
    venv
}

/// A running ironic-python-agent.
pub struct Ipa {
    child: std::process::Child,
    work: tempfile::TempDir,
}

impl Ipa {
    /// Starts IPA in `net` with `disk`, its API at `api_url` and `options`
    /// added to its `[DEFAULT]` section (IPA's defaults otherwise: auto-TLS
    /// on).
    pub fn start(net: &AgentNet, disk: &LoopDisk, api_url: &str, options: &[&str]) -> Ipa {
        let work = tempfile::tempdir().unwrap();
        let mut conf = format!(
            "[DEFAULT]\napi_url = {api_url}\ndebug = true\ndisk_wait_attempts = 0\nlookup_interval = 1\nlookup_timeout = 120\n"
        );
        for option in options {
            conf.push_str(option);
            conf.push('\n');
        }
        std::fs::write(work.path().join("ipa.conf"), conf).unwrap();
        let confine = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ipa/confine.sh");
        let child = Command::new("ip")
            .args(["netns", "exec", &net.ns])
            .args([
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
            ])
            .arg(confine)
            .arg(&disk.device)
            .arg(work.path())
            .arg(venv())
            .arg(format!("{},{}", net.nic, net.nic2))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(work.path().join("confine.err")).unwrap())
            .spawn()
            .unwrap();
        Ipa { child, work }
    }

    /// What IPA logged so far, and what its confinement said.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.work.path().join(name)).unwrap_or_default();
        format!("{}{}", read("confine.err"), read("ipa.log"))
    }
}

impl Drop for Ipa {
    fn drop(&mut self) {
        // unshare --kill-child takes the PID namespace's init, and with it
        // every process inside, down.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A machine behind a real IPMI BMC (`ipmi_sim`) whose firmware
/// network-boots ironic-python-agent: powering it on with boot device pxe
/// starts IPA confined in `net` on `disk`, with the kernel command line of
/// the boot configuration Ferric wrote for `net.mac` under `http_root`
/// (`tests/ipa/bmc-hook.sh`); powering it off stops IPA.
pub struct IpaMachine {
    pub bmc: super::bmc::SimBmc,
    work: tempfile::TempDir,
}

impl IpaMachine {
    pub async fn start(net: &AgentNet, disk: &LoopDisk, http_root: &Path) -> IpaMachine {
        let bmc = super::bmc::SimBmc::start().await;
        let work = tempfile::tempdir().unwrap();
        std::fs::write(
            work.path().join("ipa.conf"),
            "[DEFAULT]\ndebug = true\ndisk_wait_attempts = 0\nlookup_interval = 1\nlookup_timeout = 120\n",
        )
        .unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let env = format!(
            "NS={}\nDISK={}\nWORK={}\nVENV={}\nNICS={},{}\nMAC={}\nHTTP_ROOT={}\nCONFINE={}\n",
            net.ns,
            disk.device,
            work.path().display(),
            venv().display(),
            net.nic,
            net.nic2,
            net.mac,
            http_root.display(),
            root.join("tests/ipa/confine.sh").display(),
        );
        let state = bmc.state.path();
        std::fs::write(state.join("machine.env"), env).unwrap();
        std::fs::copy(root.join("tests/ipa/bmc-hook.sh"), state.join("hook")).unwrap();
        IpaMachine { bmc, work }
    }

    /// Every boot's IPA log and confinement errors, in order.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for n in 1.. {
            let boot = self.work.path().join(format!("boot-{n}"));
            if !boot.exists() {
                break;
            }
            for name in ["cmdline", "confine.err", "ipa.log"] {
                let content = std::fs::read_to_string(boot.join(name)).unwrap_or_default();
                text.push_str(&format!("--- boot {n} {name} ---\n{content}\n"));
            }
        }
        text
    }

    /// How many times the machine network-booted IPA.
    pub fn boots(&self) -> usize {
        std::fs::read_to_string(self.bmc.state.path().join("boots"))
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for IpaMachine {
    fn drop(&mut self) {
        let pid =
            std::fs::read_to_string(self.bmc.state.path().join("ipa.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}
