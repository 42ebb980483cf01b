//! `ferric-sim` as a process: a fleet of simulated Redfish BMCs, each on
//! its own 127.1.x.y address (`--spread`), the control API to read what a
//! BMC holds and to give it faults; killed on drop.

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
        Sim::start_with(n, &[])
    }

    /// [`Sim::start`] with more `ferric-sim` flags.
    pub fn start_with(n: usize, args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("bmcs.json");
        let port = super::process::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferric-sim"))
            .args(["--redfish", &n.to_string(), "--spread"])
            .args(["--first-port", &port.to_string()])
            .arg("--manifest")
            .arg(&manifest)
            .args(args)
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

    /// `driver_info` of a `redfish` node managed by BMC `i`.
    pub fn driver_info(&self, i: usize) -> Value {
        json!({
            "redfish_address": self.bmcs[i]["address"],
            "redfish_username": self.bmcs[i]["username"],
            "redfish_password": self.bmcs[i]["password"],
        })
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
