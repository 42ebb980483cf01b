//! Where the RabbitMQ broker is and how to reach it: the URL, and for
//! `amqps://` the CA its certificate must chain to (`[amqp] tls_ca_file`),
//! for every connection Ferric opens to it (tasks, replies, re-routing,
//! notifications, `ferric watch`).
//!
//! Invariants: an `amqps://` broker is trusted only when its certificate
//! chains to the operator's CA file and names the host of the URL (lapin
//! over rustls, built with no other roots: no system store, no "accept
//! any"); the URL, which holds the password, is never shown (`Debug`
//! redacts it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lapin::tcp::OwnedTLSConfig;
use lapin::{Connect as _, Connection, ConnectionProperties};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::ExposeSecret as _;

use crate::config::AmqpSettings;
use crate::queue::QueueError;

/// A broker to connect to; cloning is shallow.
#[derive(Clone)]
pub struct Broker {
    url: Arc<str>,
    /// The CA file's path and its PEM text (`amqps://` only).
    ca: Option<(Arc<Path>, Arc<str>)>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &"******")
            .field("ca", &self.ca.as_ref().map(|(path, _)| path))
            .finish()
    }
}

impl Broker {
    /// The broker `[amqp]` names, its CA read.
    ///
    /// # Errors
    /// `amqps://` without a CA file, or a CA file that cannot be read or
    /// holds no PEM certificate (the error names the file).
    pub fn from_settings(settings: &AmqpSettings) -> Result<Broker, QueueError> {
        let url = settings.url.expose_secret();
        let tls = url.starts_with("amqps://");
        let ca = match (&settings.tls_ca_file, tls) {
            (Some(file), true) => Some(read_ca(file)?),
            (None, true) => {
                return Err(QueueError::Broker(
                    "amqp.url is amqps://: set amqp.tls_ca_file to the CA its certificate chains to \
                     (for a public CA, the system's bundle, e.g. /etc/ssl/certs/ca-certificates.crt)"
                        .into(),
                ));
            }
            (Some(_), false) => {
                return Err(QueueError::Broker(
                    "amqp.tls_ca_file applies to an amqps:// URL only".into(),
                ));
            }
            (None, false) => None,
        };
        Ok(Broker {
            url: url.into(),
            ca,
        })
    }

    /// Opens a connection.
    ///
    /// # Errors
    /// [`QueueError::Broker`], naming the CA file when TLS failed.
    pub async fn connect(&self) -> Result<Connection, QueueError> {
        let runtime =
            lapin::runtime::default_runtime().map_err(|e| QueueError::Broker(e.to_string()))?;
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca.as_ref().map(|(_, pem)| pem.to_string()),
        };
        self.url
            .as_ref()
            .connect_with_config(ConnectionProperties::default(), tls, runtime)
            .await
            .map_err(|e| match &self.ca {
                Some((file, _)) => {
                    QueueError::Broker(format!("{e} (amqps, verified against {})", file.display()))
                }
                None => QueueError::Broker(e.to_string()),
            })
    }
}

/// The PEM text of `file`, checked to hold at least one certificate.
fn read_ca(file: &Path) -> Result<(Arc<Path>, Arc<str>), QueueError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        QueueError::Broker(format!("amqp.tls_ca_file {}: {e}", file.display()))
    };
    let pem = std::fs::read_to_string(file).map_err(|e| unreadable(&e))?;
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certificates.is_empty() {
        return Err(unreadable(&"no certificate in it"));
    }
    Ok((PathBuf::from(file).into(), pem.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(url: &str, ca: Option<&Path>) -> AmqpSettings {
        AmqpSettings {
            url: SecretString::from(url),
            prefix: String::new(),
            tls_ca_file: ca.map(Path::to_owned),
        }
    }

    #[test]
    fn amqps_needs_a_readable_ca_with_certificates() {
        let empty = std::env::temp_dir().join(format!("ferric-ca-{}", rand::random::<u64>()));
        std::fs::write(&empty, "nothing here\n").unwrap();
        let cases = [
            (settings("amqps://h/%2f", None), "set amqp.tls_ca_file"),
            (
                settings("amqp://h/%2f", Some(&empty)),
                "applies to an amqps:// URL only",
            ),
            (
                settings("amqps://h/%2f", Some(&empty)),
                "no certificate in it",
            ),
            (
                settings("amqps://h/%2f", Some(Path::new("/nonexistent/ca.pem"))),
                "/nonexistent/ca.pem",
            ),
        ];
        for (settings, says) in cases {
            let error = Broker::from_settings(&settings).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
        let _ = std::fs::remove_file(&empty);
        let plain = Broker::from_settings(&settings("amqp://u:secret@h/%2f", None)).unwrap();
        assert!(!format!("{plain:?}").contains("secret"));
    }
}
