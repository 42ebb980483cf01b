//! A real BMC per test: Debian openipmi's `ipmi_sim` on its own loopback
//! UDP port and state directory, killed when dropped, and `ipmitool` as the
//! independent witness of what Ferric did to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const USER: &str = "admin";
/// At most 20 bytes: the longest password IPMI 2.0 carries.
pub const PASSWORD: &str = "s3cret-pw-7f3a";

pub struct SimBmc {
    pub port: u16,
    pub state: tempfile::TempDir,
    child: Option<Child>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ipmi-sim")
}

fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

impl SimBmc {
    /// Starts a BMC and waits until ipmitool gets an answer from it.
    pub async fn start() -> SimBmc {
        let state = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let dir = fixtures();
        std::fs::write(state.path().join("power"), "0\n").unwrap();
        std::fs::write(state.path().join("boot"), "default\n").unwrap();
        let conf = std::fs::read_to_string(dir.join("lan.conf.in"))
            .unwrap()
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@STATE@", state.path().to_str().unwrap())
            .replace("@USER@", USER)
            .replace("@PASS@", PASSWORD);
        std::fs::write(state.path().join("lan.conf"), conf).unwrap();
        let child = Command::new("ipmi_sim")
            .arg("-n")
            .arg("-c")
            .arg(state.path().join("lan.conf"))
            .arg("-f")
            .arg(dir.join("sim.emu"))
            .arg("-s")
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ipmi_sim runs (apt-get install openipmi)");
        let mut bmc = SimBmc {
            port,
            state,
            child: Some(child),
        };
        super::wait_until(Duration::from_secs(20), "ipmi_sim to answer", || {
            let ok = bmc.try_ipmitool(&["chassis", "power", "status"]).is_some();
            async move { ok.then_some(()) }
        })
        .await;
        bmc.child.as_mut().unwrap().try_wait().unwrap();
        bmc
    }

    fn try_ipmitool(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ipmitool")
            .args([
                "-I",
                "lanplus",
                "-C",
                "3",
                "-N",
                "1",
                "-R",
                "1",
                "-H",
                "127.0.0.1",
            ])
            .args(["-p", &self.port.to_string(), "-U", USER, "-P", PASSWORD])
            .args(args)
            .output()
            .expect("ipmitool runs (apt-get install ipmitool)");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// ipmitool's answer (the witness); panics when it fails.
    pub fn ipmitool(&self, args: &[&str]) -> String {
        self.try_ipmitool(args)
            .unwrap_or_else(|| panic!("ipmitool {args:?} failed against port {}", self.port))
    }

    /// What the simulated machine was asked to do, one line per request.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.path().join("events.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned())
            .collect()
    }

    /// `driver_info` for a node managed through this BMC.
    pub fn driver_info(&self) -> serde_json::Value {
        serde_json::json!({
            "ipmi_address": "127.0.0.1",
            "ipmi_port": self.port,
            "ipmi_username": USER,
            "ipmi_password": PASSWORD,
        })
    }

    /// Kills the BMC (a machine whose BMC went away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SimBmc {
    fn drop(&mut self) {
        self.stop();
    }
}
