//! HTTP clients for a deploy ramdisk's command API, and TLS to an agent
//! with auto-TLS (ironic-python-agent's default since API 1.68): the agent
//! serves HTTPS with a self-signed certificate made at its boot and sends
//! it in its first heartbeat as `agent_verify_ca`.
//!
//! Invariants: an agent that sent a certificate is trusted only when it
//! presents exactly that certificate (the bytes compared, and the
//! handshake signed with its key): no certificate authority, no other
//! agent's certificate and never "accept any". The pin lives as long as
//! `agent_verify_ca` does: the first heartbeat of a boot pins it, and the
//! end of the deploy or clean wipes it. An agent that sent none is reached
//! over plain HTTP, or HTTPS verified against the system's authorities.
//!
//! Pinning, not path validation, is also what makes IPA's certificates
//! usable at all: IPA signs them with ECDSA over SHA-512, which webpki does
//! not verify; a pinned certificate needs no signature of its own checked.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How long connecting to an agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one agent call may take (a `wait=true` command included).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The client for agents that sent no certificate.
///
/// # Errors
/// When the TLS backend cannot be set up.
pub fn plain_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .build()
}

/// A client that trusts only the agent presenting `pem`, the certificate
/// its heartbeat sent.
///
/// # Errors
/// When `pem` holds no certificate (the text says so; it never quotes
/// `pem`), or the client cannot be built.
pub fn pinned_client(pem: &str) -> Result<reqwest::Client, String> {
    let pinned = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        "the agent's certificate (agent_verify_ca) is not a PEM certificate".to_owned()
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertificate {
        pinned,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS to the agent: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .use_preconfigured_tls(config)
        .build()
        .map_err(|e| format!("TLS to the agent: {e}"))
}

/// Why an agent's certificate was refused (rustls shows it with `Debug`,
/// so both say it in words).
#[derive(thiserror::Error)]
#[error("not the certificate this node's agent sent in its heartbeat (agent_verify_ca)")]
struct NotThePinned;

impl std::fmt::Debug for NotThePinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Accepts exactly one certificate.
#[derive(Debug)]
struct PinnedCertificate {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(NotThePinned))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
