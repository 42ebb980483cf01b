//! Auto-TLS is pinned per node: the conductor sends an agent's commands
//! only to an endpoint presenting exactly the certificate that node's agent
//! sent in its heartbeat (`agent_verify_ca`). The endpoint here is Python's
//! `ssl` serving a certificate made as ironic-python-agent makes its own
//! (P-384, signed with SHA-512); the real IPA over auto-TLS is in `ipa.rs`.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

/// An HTTPS endpoint that prints its port, then each request it gets, and
/// answers every one with a 500 and a JSON fault.
const ENDPOINT: &str = r#"
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        print(self.command, self.path.split('?')[0], flush=True)
        body = b'{"faultstring": "reached the agent"}'
        self.send_response(500)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A self-signed certificate for 127.0.0.1 as IPA makes one: (PEM, key path).
fn ipa_style_certificate(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
        ])
        .args([
            "-sha512",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (std::fs::read_to_string(&cert).unwrap(), key)
}

struct Endpoint {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    child: std::process::Child,
}

impl Endpoint {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> Endpoint {
        let mut child = Command::new("python3")
            .args(["-c", ENDPOINT])
            .arg(cert)
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap().parse().unwrap();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = requests.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                seen.lock().unwrap().push(line);
            }
        });
        Endpoint {
            port,
            requests,
            child,
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `direct` node waiting for its agent, whose agent looks it up and
/// heartbeats with `callback_url` and `agent_verify_ca`; its last_error once
/// the deploy failed.
async fn deploy_with_agent(app: &TestApp, mac: &str, callback_url: &str, pem: &str) -> String {
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "manual-management", "deploy_interface": "direct",
                   "instance_info": {"image_source": "http://127.0.0.1:9/disk.raw"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": mac}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    for (verb, state) in [
        ("manage", "manageable"),
        ("provide", "available"),
        ("active", "wait call-back"),
    ] {
        app.provision(&uuid, verb).await;
        app.wait_for_state(&uuid, state).await;
    }
    let lookup = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/lookup?addresses={mac}"),
            Some("1.68"),
            None,
        )
        .await;
    assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.text);
    let token = lookup.json()["config"]["agent_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let beat = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/heartbeat/{uuid}"),
            Some("1.68"),
            Some(&json!({"callback_url": callback_url, "agent_token": token,
                         "agent_version": "13.0.0", "agent_verify_ca": pem})),
        )
        .await;
    assert_eq!(beat.status, StatusCode::ACCEPTED, "{}", beat.text);
    let node: Value = wait_until(Duration::from_secs(20), "the deploy to fail", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (node["provision_state"] == "deploy failed" && node["reservation"].is_null())
            .then_some(node)
    })
    .await;
    node["last_error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conductor_trusts_only_the_certificate_the_nodes_own_agent_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, key) = ipa_style_certificate(dir.path(), "this-agent");
    let (other, _) = ipa_style_certificate(dir.path(), "another-agent");
    let endpoint = Endpoint::start(&dir.path().join("this-agent.pem"), &key);
    let url = format!("https://127.0.0.1:{}", endpoint.port);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.automated_clean = false;
    })
    .await;

    // Another agent's certificate: the handshake fails, no command is sent.
    let refused = deploy_with_agent(&app, "52:54:00:7a:00:01", &url, &other).await;
    assert!(
        refused.contains("Agent command deploy.get_deploy_steps failed")
            && refused.contains("not the certificate this node's agent sent"),
        "{refused}"
    );
    assert!(endpoint.requests.lock().unwrap().is_empty());

    // Its own certificate (signed with SHA-512, which webpki cannot check,
    // and need not: it is pinned): the command reaches the endpoint.
    let reached = deploy_with_agent(&app, "52:54:00:7a:00:02", &url, &mine).await;
    assert!(
        reached.contains("HTTP 500") && reached.contains("reached the agent"),
        "{reached}"
    );
    assert_eq!(*endpoint.requests.lock().unwrap(), ["POST /v1/commands/"]);
}
