//! Auto-TLS, as ironic-python-agent's `enable_auto_tls`: at start the agent
//! makes a self-signed certificate for the address it advertises, serves
//! its command API over HTTPS with it, and sends the certificate in its
//! heartbeats (`agent_verify_ca`), which the conductor pins for this boot.
//!
//! Making a key needs the kernel's entropy pool, which a machine without a
//! hardware RNG may fill only slowly this early in its boot. The agent
//! waits for it at most a bound, visibly (it logs that it waits), and
//! without a key by then serves plain HTTP, saying so: a deploy never hangs
//! on it.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The agent's certificate and the server configuration serving it.
pub struct AgentTls {
    /// The certificate, PEM: what the heartbeats send.
    pub pem: String,
    pub config: rustls::ServerConfig,
}

/// A certificate for `host` (an IP address or a name), made within
/// `bound`; `None` (logged) when no key could be made by then.
pub fn generate(host: &str, bound: Duration) -> Option<AgentTls> {
    let (send, receive) = std::sync::mpsc::channel();
    let names = vec![host.to_owned()];
    // The thread may stay blocked on the entropy pool past the bound; it
    // is left behind then, its result unused.
    std::thread::spawn(move || {
        let _ = send.send(rcgen::generate_simple_self_signed(names));
    });
    let made = match receive.recv_timeout(Duration::from_secs(1)) {
        Ok(made) => made,
        Err(_) => {
            tracing::warn!(
                bound_secs = bound.as_secs(),
                "waiting for the kernel's entropy pool to make a TLS key"
            );
            match receive.recv_timeout(bound.saturating_sub(Duration::from_secs(1))) {
                Ok(made) => made,
                Err(_) => {
                    tracing::error!(
                        bound_secs = bound.as_secs(),
                        "no entropy for a TLS key in time: serving the command API over plain HTTP"
                    );
                    return None;
                }
            }
        }
    };
    let certified = match made {
        Ok(certified) => certified,
        Err(e) => {
            tracing::error!(error = %e, "could not make a TLS certificate: serving plain HTTP");
            return None;
        }
    };
    let pem = certified.cert.pem();
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key));
    match config {
        Ok(config) => Some(AgentTls { pem, config }),
        Err(e) => {
            tracing::error!(error = %e, "could not set TLS up: serving plain HTTP");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_made_for_the_advertised_address() {
        let tls = generate("192.0.2.7", Duration::from_secs(30)).unwrap();
        assert!(tls.pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
