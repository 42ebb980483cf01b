//! The destination policy of the conductor's image fetches: an http(s)
//! image or checksum URL may reach only addresses outside
//! `[conductor] image_url_denied_networks`, inside
//! `image_url_allowed_networks` when that is set, and never one of
//! Ferric's own listeners (a fetched kernel is republished, unauthenticated,
//! on the boot-file server: a URL naming the API would publish its answers).
//!
//! The check runs at every hop: on an IP-literal URL before anything is
//! sent and on every redirect's target; on every name reqwest resolves
//! (through [`PolicyResolver`], so DNS cannot rebind a name into a denied
//! network between check and connection); and on the address the answer
//! actually came from, before a byte of its body is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ferric_common::destinations::{OwnListeners, in_any};
use ipnet::IpNet;

/// A destination the policy refuses; the text names the setting.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// The networks and listeners of one conductor.
#[derive(Debug, Clone)]
pub struct DestinationPolicy {
    allowed: Vec<IpNet>,
    denied: Vec<IpNet>,
    own: OwnListeners,
}

impl DestinationPolicy {
    /// The policy of these settings.
    pub fn new(allowed: Vec<IpNet>, denied: Vec<IpNet>, own: OwnListeners) -> DestinationPolicy {
        DestinationPolicy {
            allowed,
            denied,
            own,
        }
    }

    /// Whether an address may be reached at all (any port).
    ///
    /// # Errors
    /// [`Refused`] naming the setting that refuses it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if in_any(&self.denied, ip) {
            return Err(Refused(format!(
                "the image URL reaches {ip}, in [conductor] image_url_denied_networks"
            )));
        }
        if !self.allowed.is_empty() && !in_any(&self.allowed, ip) {
            return Err(Refused(format!(
                "the image URL reaches {ip}, outside [conductor] image_url_allowed_networks"
            )));
        }
        Ok(())
    }

    /// Whether a connection to `target` may be made.
    ///
    /// # Errors
    /// [`Refused`] for a denied network or one of Ferric's own listeners.
    pub fn check(&self, target: SocketAddr) -> Result<(), Refused> {
        self.check_ip(target.ip())?;
        if self.own.reached_by(target) {
            return Err(Refused(format!(
                "the image URL reaches {target}, where Ferric itself listens"
            )));
        }
        Ok(())
    }

    /// The check of a URL whose host is an IP address (a name is checked
    /// when it is resolved, and again on the answer's address).
    ///
    /// # Errors
    /// [`Refused`] as [`DestinationPolicy::check`].
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(0);
        self.check(SocketAddr::new(ip, port))
    }

    /// reqwest's redirect policy under this one: at most 10 hops, each
    /// checked.
    pub fn redirects(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let policy = Arc::clone(self);
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error(Refused("the image URL redirects too often".into()));
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }

    /// The policy's refusal somewhere in `error`'s causes, if it is one.
    pub fn refusal_in<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e Refused> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return Some(refused);
            }
            cause = e.source();
        }
        None
    }
}

/// Name resolution for image fetches: the system resolver's answer, or a
/// refusal when any address it gives is refused by the policy.
#[derive(Debug, Clone)]
pub struct PolicyResolver(pub Arc<DestinationPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            for addr in &addrs {
                policy.check_ip(addr.ip())?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> DestinationPolicy {
        let own = OwnListeners::default();
        own.add("127.0.0.1:6385".parse().unwrap());
        DestinationPolicy::new(
            allowed.iter().map(|n| n.parse().unwrap()).collect(),
            ferric_common::destinations::DEFAULT_DENIED_NETWORKS
                .iter()
                .map(|n| n.parse().unwrap())
                .collect(),
            own,
        )
    }

    fn url(u: &str) -> reqwest::Url {
        reqwest::Url::parse(u).unwrap()
    }

    #[test]
    fn literal_urls_are_judged_by_network_and_listener() {
        let p = policy(&[]);
        assert!(p.check_url(&url("http://127.0.0.1:6385/v1/nodes")).is_err());
        assert!(
            p.check_url(&url("http://[::ffff:127.0.0.1]:6385/"))
                .is_err()
        );
        assert!(p.check_url(&url("http://169.254.169.254/latest")).is_err());
        assert!(p.check_url(&url("http://[fe80::1]/")).is_err());
        assert!(p.check_url(&url("http://0.0.0.0:8080/")).is_err());
        assert!(p.check_url(&url("http://127.0.0.1:9000/disk.raw")).is_ok());
        assert!(p.check_url(&url("http://images.example/disk.raw")).is_ok());
    }

    #[test]
    fn an_allow_list_refuses_everything_else() {
        let p = policy(&["10.0.0.0/8"]);
        assert!(p.check_ip("10.1.2.3".parse().unwrap()).is_ok());
        let refused = p.check_ip("192.0.2.1".parse().unwrap()).unwrap_err();
        assert!(
            refused.0.contains("image_url_allowed_networks"),
            "{refused}"
        );
    }
}
