//! `Netns`: a network namespace of the test's own, joined to this machine
//! by a veth pair on a /30 of 10.231.0.0/16, that can be cut off and
//! reconnected; `Forward`: a `socat` relay on the host's end of the pair to
//! a loopback service (PostgreSQL, RabbitMQ), so a process in the namespace
//! reaches it through the veth and nothing else.
//!
//! The cut: this kernel has neither netem nor iptables/nft, so a partition
//! is a blackhole route on each end of the pair: packets of established
//! connections vanish silently both ways (what a switch failure looks
//! like), and new connections fail at once. All traffic stays on this
//! machine.

use std::process::Command;

pub struct Netns {
    pub name: String,
    /// The machine's end of the pair.
    pub host_ip: String,
    /// The namespace's end.
    pub ns_ip: String,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Netns {
    pub fn new() -> Netns {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let subnet = u8::from_str_radix(&tag[..2], 16).unwrap();
        let (name, host_dev, ns_dev) = (format!("fp{tag}"), format!("fh{tag}"), format!("fn{tag}"));
        let (host_ip, ns_ip) = (format!("10.231.{subnet}.1"), format!("10.231.{subnet}.2"));
        ip(&["netns", "add", &name]);
        let netns = Netns {
            name,
            host_ip,
            ns_ip,
        };
        ip(&[
            "link",
            "add",
            &host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &ns_dev,
            "netns",
            &netns.name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            &host_dev,
        ]);
        ip(&["link", "set", &host_dev, "up"]);
        ip(&[
            "-n",
            &netns.name,
            "addr",
            "add",
            &format!("{}/30", netns.ns_ip),
            "dev",
            &ns_dev,
        ]);
        ip(&["-n", &netns.name, "link", "set", &ns_dev, "up"]);
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// Drops every packet between the namespace and the machine.
    pub fn cut(&self) {
        self.blackholes("add");
    }

    /// Undoes [`Netns::cut`].
    pub fn heal(&self) {
        self.blackholes("del");
    }

    /// Adds or deletes the blackhole route at each end of the pair.
    fn blackholes(&self, verb: &str) {
        let (to_host, to_ns) = (format!("{}/32", self.host_ip), format!("{}/32", self.ns_ip));
        ip(&["-n", &self.name, "route", verb, "blackhole", &to_host]);
        ip(&["route", verb, "blackhole", &to_ns]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["route", "del", "blackhole", &format!("{}/32", self.ns_ip)])
            .output();
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        // Deleting the namespace deletes the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A `socat` relay from `listen_ip:port` (a free port) to `target`.
pub struct Forward {
    pub port: u16,
    child: std::process::Child,
}

impl Forward {
    pub fn new(listen_ip: &str, target: &str) -> Forward {
        let port = crate::helpers::process::free_port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind={listen_ip},reuseaddr,fork"))
            .arg(format!("TCP:{target}"))
            .spawn()
            .expect("socat runs");
        // Listening once a connection gets through (each one is relayed).
        let address: std::net::SocketAddr = format!("{listen_ip}:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1))
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "socat listens on {address}"
            );
        }
        Forward { port, child }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
