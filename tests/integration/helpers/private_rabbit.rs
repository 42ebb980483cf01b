//! `PrivateRabbit`: a RabbitMQ node of the test's own that accepts TLS
//! only (`listeners.tcp = none`), on a free loopback port, with its state
//! in a temporary directory — the machine's broker, which the other tests
//! share, is not touched. It runs as the `rabbitmq` user (the machine's
//! Erlang cookie is that user's) and is killed, with its whole process
//! group, when dropped.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::certs::Certificates;
use crate::helpers::process::free_port;
use crate::helpers::wait_until;

pub struct PrivateRabbit {
    /// The TLS listener's port.
    pub port: u16,
    /// The node's name (`rabbitmqctl -n`).
    pub node: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl PrivateRabbit {
    /// Starts a node serving `certificates`' server certificate on a TLS
    /// listener alone, and waits until it accepts connections.
    pub async fn start_tls(certificates: &Certificates) -> PrivateRabbit {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let node = format!("ferric-tls-{port}@localhost");
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        for (from, to) in [
            (&certificates.ca, "ca.pem"),
            (&certificates.cert, "cert.pem"),
            (&certificates.key, "key.pem"),
        ] {
            std::fs::copy(from, path(to)).unwrap();
        }
        std::fs::write(
            path("rabbitmq.conf"),
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 loopback_users = none\n",
                path("ca.pem"),
                path("cert.pem"),
                path("key.pem"),
            ),
        )
        .unwrap();
        std::fs::write(path("enabled_plugins"), "[].\n").unwrap();
        let status = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path())
            .status()
            .expect("chown runs");
        assert!(status.success(), "the rabbitmq user owns the node's files");
        let log = std::fs::File::create(path("server.log")).unwrap();
        let child = Command::new("runuser")
            .args(["-u", "rabbitmq", "--", "env"])
            .arg("HOME=/var/lib/rabbitmq")
            .arg(format!("RABBITMQ_NODENAME={node}"))
            .arg(format!("RABBITMQ_DIST_PORT={}", free_port()))
            .arg(format!("RABBITMQ_MNESIA_BASE={}", path("mnesia")))
            .arg(format!("RABBITMQ_LOG_BASE={}", path("log")))
            .arg(format!("RABBITMQ_CONFIG_FILE={}", path("rabbitmq.conf")))
            .arg(format!(
                "RABBITMQ_ENABLED_PLUGINS_FILE={}",
                path("enabled_plugins")
            ))
            .arg(format!("RABBITMQ_PID_FILE={}", path("pid")))
            .arg("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server starts");
        let rabbit = PrivateRabbit {
            port,
            node,
            dir,
            child,
        };
        wait_until(
            Duration::from_secs(90),
            "the private RabbitMQ node to listen",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        rabbit
    }

    /// `amqps://` for guest at this node.
    pub fn url(&self, host: &str) -> String {
        format!("amqps://guest:guest@{host}:{}/%2f", self.port)
    }

    /// `rabbitmqctl -n <node> <args>` as the `rabbitmq` user; its output
    /// (no table headers).
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("runuser")
            .args(["-u", "rabbitmq", "--", "env", "HOME=/var/lib/rabbitmq"])
            .args(["rabbitmqctl", "-q", "--no-table-headers", "-n", &self.node])
            .args(args)
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
        }
        let _ = self.child.wait();
    }
}
