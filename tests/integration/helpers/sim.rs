//! `ferric-sim` as a process: a fleet of simulated BMCs — Redfish ones on
//! 127.1.x.y, IPMI ones on 127.2.x.y (`--spread`), one address each — the
//! control API to read what a BMC holds and to give it faults; killed on
//! drop.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub struct Sim {
    child: Child,
    pub control: String,
    pub manifest: std::path::PathBuf,
    bmcs: Vec<Value>,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// `n` Redfish BMCs (user `admin`, password `password`), once all listen.
    pub fn start(n: usize) -> Sim {
        Sim::start_with(n, 0)
    }

    /// `redfish` Redfish BMCs (indexes first) and `ipmi` IPMI ones.
    pub fn start_with(redfish: usize, ipmi: usize) -> Sim {
        let n = redfish + ipmi;
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("bmcs.json");
        let port = super::process::free_port();
        let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferric-sim"))
            .args(["--redfish", &redfish.to_string()])
            .args(["--ipmi", &ipmi.to_string(), "--spread"])
            .args(["--first-port", &port.to_string()])
            .args(["--ipmi-first-port", &udp_port.to_string()])
            .arg("--manifest")
            .arg(&manifest)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The first line comes once every BMC listens.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ferric-sim did not start ({e}): {line:?}"));
        let bmcs: Vec<Value> = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        assert_eq!(bmcs.len(), n);
        Sim {
            child,
            control: ready["control"].as_str().unwrap().to_owned(),
            manifest,
            bmcs,
            _dir: dir,
        }
    }

    /// `driver_info` of a node managed by BMC `i` (`redfish` or `ipmi`).
    pub fn driver_info(&self, i: usize) -> Value {
        let bmc = &self.bmcs[i];
        if bmc["protocol"] == "ipmi" {
            return json!({
                "ipmi_address": bmc["address"],
                "ipmi_port": bmc["port"],
                "ipmi_username": bmc["username"],
                "ipmi_password": bmc["password"],
            });
        }
        json!({
            "redfish_address": bmc["address"],
            "redfish_username": bmc["username"],
            "redfish_password": bmc["password"],
        })
    }

    /// `ipmitool -I lanplus -C <suite>` against BMC `i` with `password`:
    /// whether it succeeded, and what it printed (stdout, then stderr).
    pub async fn ipmitool(
        &self,
        i: usize,
        suite: &str,
        password: &str,
        args: &[&str],
    ) -> (bool, String) {
        let bmc = &self.bmcs[i];
        let out = tokio::process::Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", suite, "-N", "1", "-R", "1"])
            .args(["-H", bmc["address"].as_str().unwrap()])
            .args(["-p", &bmc["port"].to_string()])
            .args(["-U", bmc["username"].as_str().unwrap(), "-P", password])
            .args(args)
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text.trim().to_owned())
    }

    /// What BMC `i` holds (`power_on`, `boot_target`, `media`, `requests`…).
    pub async fn state(&self, i: usize) -> Value {
        let reply = reqwest::get(format!("{}/bmcs/{i}", self.control))
            .await
            .unwrap();
        assert!(reply.status().is_success());
        reply.json::<Value>().await.unwrap()["state"].clone()
    }

    /// Changes BMC `i` (`latency_ms`, `error_rate`, `hang`, `power`).
    pub async fn set(&self, i: usize, change: Value) {
        let reply = reqwest::Client::new()
            .patch(format!("{}/bmcs/{i}", self.control))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert!(
            reply.status().is_success(),
            "{}",
            reply.text().await.unwrap()
        );
    }

    /// The fleet's totals (`requests`, `injected_errors`, `powered_on`).
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/stats", self.control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
