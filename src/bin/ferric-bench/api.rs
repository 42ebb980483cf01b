//! The HTTP side of the bench: one pooled client, the Ironic headers, and
//! one timed request classified as success, HTTP error, connection reset or
//! other failure.
//!
//! Invariant: the base URL resolves only to loopback addresses, checked in
//! [`Api::connect`] before any request is sent.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};

/// A client bound to one Ironic-compatible endpoint.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(10))
        // Below the server's keep-alive (Ferric's and most servers' 5 s):
        // a connection the server is closing just then is never reused.
        .pool_idle_timeout(Duration::from_secs(4))
        .tcp_nodelay(true)
        .build()?)
}

/// How one request ended.
pub struct Outcome {
    pub status: Option<StatusCode>,
    pub body: bytes::Bytes,
    pub elapsed: Duration,
    pub failure: Option<Failure>,
    /// The transport error, when there was one.
    pub error: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// An unexpected HTTP status.
    Status,
    /// The connection was refused, reset or aborted.
    Reset,
    /// Timed out, or anything else on the transport.
    Other,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Api {
    /// Checks that `url` is loopback and builds a client for it.
    ///
    /// # Errors
    /// A malformed URL, one that resolves to a non-loopback address, or a
    /// malformed `USER:PASSWORD`.
    pub async fn connect(url: &str, basic_auth: Option<&str>) -> anyhow::Result<Api> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url:?}"))?;
        let host = parsed
            .host_str()
            .with_context(|| format!("--url {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            bail!("--url {url:?} resolves to {addrs:?}: ferric-bench only targets loopback");
        }
        let auth = match basic_auth {
            None => None,
            Some(pair) => {
                let (user, password) = pair
                    .split_once(':')
                    .context("--basic-auth must be USER:PASSWORD")?;
                Some((user.to_owned(), password.to_owned()))
            }
        };
        Ok(Api {
            http: client()?,
            base: url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// The same endpoint on a new connection pool, so a phase never starts
    /// on connections the previous one left idle (which the server may be
    /// closing just then).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn fresh(&self) -> anyhow::Result<Api> {
        Ok(Api {
            http: client()?,
            ..self.clone()
        })
    }

    /// Sends one request and times it; `expect` is the status that counts as
    /// success.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        expect: StatusCode,
    ) -> Outcome {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-OpenStack-Ironic-API-Version", "latest");
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let start = Instant::now();
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let elapsed = start.elapsed();
        match result {
            Ok((status, body)) => Outcome {
                status: Some(status),
                body,
                elapsed,
                failure: (status != expect).then_some(Failure::Status),
                error: None,
            },
            Err(e) => Outcome {
                status: None,
                body: bytes::Bytes::new(),
                elapsed,
                failure: Some(classify(&e)),
                error: Some(error_chain(&e)),
            },
        }
    }

    /// A GET that must answer 200, as JSON.
    ///
    /// # Errors
    /// Any other outcome, with the server's body.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let outcome = self.send(Method::GET, path, None, StatusCode::OK).await;
        if !outcome.ok() {
            bail!(
                "GET {path}: {:?} {}",
                outcome.status,
                String::from_utf8_lossy(&outcome.body)
            );
        }
        Ok(outcome.json())
    }
}

/// The error and its causes, one line.
fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connection refused/reset/aborted counts as a reset; the rest as other.
fn classify(error: &reqwest::Error) -> Failure {
    use std::error::Error as _;
    if error.is_connect() {
        return Failure::Reset;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | ConnectionRefused | BrokenPipe
            ) {
                return Failure::Reset;
            }
        }
        // hyper's "connection closed before message completed": the peer
        // dropped a kept-alive connection under the request.
        if cause.to_string().contains("connection closed") {
            return Failure::Reset;
        }
        source = cause.source();
    }
    Failure::Other
}
