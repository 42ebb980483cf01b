//! Where Ferric's own outgoing requests may go: the networks an operator
//! allows or denies (`[conductor] image_url_allowed_networks` /
//! `image_url_denied_networks`) and the addresses Ferric itself listens
//! on, which no fetch may reach (a fetched body is republished on the
//! boot-file server: a URL naming the API would publish the API's answers).
//!
//! Invariants: an IPv4-mapped IPv6 address is judged as the IPv4 address it
//! carries; a listener on an unspecified address (`0.0.0.0`, `::`) stands
//! for every address of this machine on its port.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// The networks no image URL reaches unless the operator says otherwise:
/// link-local (cloud metadata services live there), the unspecified
/// network (`0.0.0.0` reaches this machine), and the metadata addresses
/// outside link-local that clouds use.
pub const DEFAULT_DENIED_NETWORKS: [&str; 6] = [
    "169.254.0.0/16",
    "fe80::/10",
    "0.0.0.0/8",
    "::/128",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// `addr` as the address it designates (IPv4-mapped IPv6 as IPv4).
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `addr` is one of this machine's addresses: loopback, or one a
/// socket can be bound to (the kernel's own answer, interfaces included).
pub fn is_local(addr: IpAddr) -> bool {
    let addr = canonical(addr);
    addr.is_loopback()
        || addr.is_unspecified()
        || std::net::UdpSocket::bind(SocketAddr::new(addr, 0)).is_ok()
}

/// The addresses Ferric's own servers listen on, shared between the
/// processes' start-up (which learns the ports it bound) and the
/// conductor's fetches (which refuse them).
#[derive(Debug, Clone, Default)]
pub struct OwnListeners(Arc<RwLock<Vec<SocketAddr>>>);

impl OwnListeners {
    /// Records a listener (port 0 is ignored: nothing listens there).
    pub fn add(&self, addr: SocketAddr) {
        if addr.port() == 0 {
            return;
        }
        let mut all = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !all.contains(&addr) {
            all.push(addr);
        }
    }

    /// Records `host:port` (`[v6]:port` for IPv6) when it names an
    /// address (a name is resolved now; an unresolvable one is left out).
    pub fn add_spec(&self, spec: &str) {
        if let Some((host, port)) = spec.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            self.add_host(host, port);
        }
    }

    /// Records `host` (an address or a name; IPv6 with or without
    /// brackets) on `port`.
    pub fn add_host(&self, host: &str, port: u16) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(addrs) = std::net::ToSocketAddrs::to_socket_addrs(&(host, port)) {
            addrs.for_each(|a| self.add(a));
        }
    }

    /// Whether a connection to `target` would reach one of Ferric's own
    /// listeners.
    pub fn reached_by(&self, target: SocketAddr) -> bool {
        let ip = canonical(target.ip());
        let all = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter().any(|listener| {
            listener.port() == target.port()
                && if listener.ip().is_unspecified() {
                    is_local(ip)
                } else {
                    let own = canonical(listener.ip());
                    own == ip || (own.is_loopback() && ip.is_unspecified())
                }
        })
    }
}

/// Whether `addr` lies in one of `networks`.
pub fn in_any(networks: &[IpNet], addr: IpAddr) -> bool {
    let addr = canonical(addr);
    networks.iter().any(|net| net.contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_addresses_are_judged_as_ipv4() {
        let denied = [net("169.254.0.0/16")];
        assert!(in_any(&denied, "::ffff:169.254.169.254".parse().unwrap()));
        assert!(in_any(&denied, "169.254.1.1".parse().unwrap()));
        assert!(!in_any(&denied, "10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_listener_on_every_address_is_reached_through_any_local_one() {
        let own = OwnListeners::default();
        own.add("0.0.0.0:6385".parse().unwrap());
        own.add("127.0.0.1:8080".parse().unwrap());
        own.add("127.0.0.1:0".parse().unwrap());
        own.add_spec("[::1]:9000");
        own.add_host("::1", 9001);
        assert!(own.reached_by("[::1]:9000".parse().unwrap()));
        assert!(own.reached_by("[::1]:9001".parse().unwrap()));
        assert!(own.reached_by("127.0.0.1:6385".parse().unwrap()));
        assert!(own.reached_by("127.0.0.2:6385".parse().unwrap()));
        assert!(own.reached_by("[::ffff:127.0.0.1]:6385".parse().unwrap()));
        assert!(own.reached_by("0.0.0.0:8080".parse().unwrap()));
        assert!(!own.reached_by("127.0.0.2:8080".parse().unwrap()));
        assert!(!own.reached_by("127.0.0.1:6386".parse().unwrap()));
        // An address of no interface here (TEST-NET-3) is not this machine.
        assert!(!own.reached_by("203.0.113.9:6385".parse().unwrap()));
        assert!(!own.reached_by("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn the_default_denied_networks_parse() {
        for n in DEFAULT_DENIED_NETWORKS {
            n.parse::<IpNet>().unwrap();
        }
    }
}
