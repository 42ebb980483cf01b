//! A real Redfish BMC per test: OpenStack's `sushy-emulator` (sushy-tools,
//! from PyPI, in the clients' virtualenv) with its fake systems driver,
//! HTTP basic auth and a fresh state directory, on its own loopback port,
//! killed when dropped; `curl` is the independent witness of what Ferric
//! did to it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "rf-s3cret-9d1e";

pub struct Emulator {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// With TLS: the CA that signed the emulator's certificate.
    pub ca: Option<PathBuf>,
    child: Option<Child>,
}

/// The clients' virtualenv, which `scripts/test` gives `sushy-tools`.
fn venv() -> PathBuf {
    std::env::var("TEST_FERRIC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

/// The uuid of fake system `i`.
pub fn system_uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

impl Emulator {
    /// Starts an emulator with `systems` fake systems (all off) and waits
    /// until it answers.
    pub async fn start(systems: usize) -> Emulator {
        Emulator::start_with(systems, false).await
    }

    /// Starts an emulator serving HTTPS with a certificate for 127.0.0.1
    /// signed by a CA of its own ([`Emulator::ca`]).
    pub async fn start_tls(systems: usize) -> Emulator {
        Emulator::start_with(systems, true).await
    }

    async fn start_with(systems: usize, tls: bool) -> Emulator {
        let python = venv().join("bin/python");
        assert!(
            venv().join("bin/sushy-emulator").exists(),
            "{} has no sushy-emulator: pip install sushy-tools (scripts/test does)",
            venv().display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = crate::helpers::process::free_port();
        // sushy's basic auth reads bcrypt entries only; cost 4 keeps it fast.
        let hash = Command::new(&python)
            .args([
                "-c",
                "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=4)).decode())",
                PASSWORD,
            ])
            .output()
            .unwrap();
        assert!(hash.status.success(), "bcrypt in {}", venv().display());
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{USER}:{}", String::from_utf8_lossy(&hash.stdout)),
        )
        .unwrap();
        let (ca, tls_lines) = if tls {
            let crate::helpers::certs::Certificates { ca, cert, key } =
                crate::helpers::certs::make(dir.path());
            let lines = format!(
                "SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n",
                cert.display(),
                key.display()
            );
            (Some(ca), lines)
        } else {
            (None, String::new())
        };
        let config = dir.path().join("emulator.conf");
        std::fs::write(
            &config,
            tls_lines
                + &format!(
                    "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n\
                 SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
                 SUSHY_EMULATOR_FAKE_DRIVER = True\n\
                 SUSHY_EMULATOR_AUTH_FILE = '{}'\n\
                 SUSHY_EMULATOR_STATE_DIR = '{}'\n\
                 SUSHY_EMULATOR_FEATURE_SET = 'full'\n\
                 SUSHY_EMULATOR_FAKE_SYSTEMS = [\n\
                 {{'uuid': '00000000-0000-4000-8000-%012d' % i, 'name': 'fake-%d' % i,\n\
                   'power_state': 'Off', 'external_notifier': False,\n\
                   'nics': [{{'mac': '52:54:00:00:%02x:%02x' % (i // 256, i % 256),\n\
                             'ip': '127.0.%d.%d' % (i // 250, i % 250 + 2)}}]}}\n\
                 for i in range({systems})]\n",
                    htpasswd.display(),
                    dir.path().join("state").display()
                ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let child = Command::new(venv().join("bin/sushy-emulator"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let emulator = Emulator {
            port,
            dir,
            ca,
            child: Some(child),
        };
        let root = emulator.url("/redfish/v1/");
        let probe = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        super::wait_until(
            Duration::from_secs(30),
            "sushy-emulator to answer",
            || async {
                probe
                    .get(&root)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            },
        )
        .await;
        emulator
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// The path of fake system `i`.
    pub fn system(&self, i: usize) -> String {
        format!("/redfish/v1/Systems/{}", system_uuid(i))
    }

    /// `driver_info` for a node managed through fake system `i`.
    pub fn driver_info(&self, i: usize) -> Value {
        json!({
            "redfish_address": self.url(""),
            "redfish_system_id": self.system(i),
            "redfish_username": USER,
            "redfish_password": PASSWORD,
            "redfish_auth_type": "basic",
        })
    }

    /// `curl`, trusting the emulator's CA when it serves HTTPS.
    fn curl_command(&self) -> Command {
        let mut curl = Command::new("curl");
        if let Some(ca) = &self.ca {
            curl.arg("--cacert").arg(ca);
        }
        curl
    }

    /// What `curl` reads at `path` (the witness).
    pub fn curl(&self, path: &str) -> Value {
        let out = self
            .curl_command()
            .args([
                "-sS",
                "--max-time",
                "20",
                "-u",
                &format!("{USER}:{PASSWORD}"),
            ])
            .arg(self.url(path))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {path} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// POSTs `body` at `path` with `curl` (a change behind Ferric's back).
    pub fn curl_post(&self, path: &str, body: &Value) {
        let out = self
            .curl_command()
            .args([
                "-sS",
                "-f",
                "--max-time",
                "20",
                "-u",
                &format!("{USER}:{PASSWORD}"),
            ])
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
            ])
            .arg(self.url(path))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "curl POST {path} failed");
    }

    /// The requests the emulator served, in order (`METHOD path`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("emulator.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                // Werkzeug colours some lines: drop the escape sequences.
                let mut plain = String::new();
                let mut in_escape = false;
                for c in l.chars() {
                    match (in_escape, c) {
                        (false, '\u{1b}') => in_escape = true,
                        (true, 'm') => in_escape = false,
                        (false, c) => plain.push(c),
                        (true, _) => {}
                    }
                }
                let (_, rest) = plain.split_once('"')?;
                let mut words = rest.split(' ');
                Some(format!("{} {}", words.next()?, words.next()?))
            })
            .collect()
    }

    /// Kills the emulator (a BMC that went away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
