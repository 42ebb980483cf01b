//! The Redfish HTTP client the `redfish` interfaces share: reqwest with
//! rustls, one HTTP client per TLS policy (connections are pooled and
//! reused per BMC by reqwest), and per BMC connection its authentication
//! state and a bound on requests in flight.
//!
//! Semantics follow sushy and Ironic's `redfish.utils`: a request that
//! cannot reach the BMC is retried `[redfish]connection_attempts` times,
//! `connection_retry_interval_secs` apart, then fails as Ironic's
//! RedfishConnectionError; a GET answered with a server-side error (5xx)
//! is retried `server_side_retries` times, `server_side_retries_delay_secs`
//! apart, as sushy does (other methods are not: they may have acted); an
//! HTTP error becomes sushy's message; `basic`
//! sends the credentials with every request, `session` logs in at the
//! service's `SessionService` and sends `X-Auth-Token` (logging in again
//! once when the BMC forgets the session), `auto` uses a session when the
//! service offers one and basic otherwise.
//!
//! Invariant: neither the password nor a session token is ever logged or
//! put in an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferric_common::config::RedfishSettings;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::driver_info::{AuthType, RedfishInfo, VerifyCa};

/// A Redfish failure, worded as Ironic words it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedfishError {
    /// Ironic's RedfishConnectionError: the BMC could not be reached.
    #[error(
        "Redfish connection failed for node {node}: Unable to connect to {url}. Error: {error}"
    )]
    Connection {
        node: String,
        url: String,
        error: String,
    },
    /// Ironic's RedfishError around sushy's HTTPError: the BMC refused.
    #[error("Redfish exception occurred. Error: {message}")]
    Http {
        status: u16,
        message: String,
        /// The error's `code` and its extended messages' `MessageId`s
        /// (`Base.1.0.ActionParameterValueConflict`, …), for callers that
        /// branch on what the BMC said.
        message_ids: Vec<String>,
    },
    /// Ironic's RedfishError for another failure of the service (a missing
    /// action or attribute, a malformed reply).
    #[error("Redfish exception occurred. Error: {0}")]
    Service(String),
    /// Ironic's PowerStateFailure.
    #[error("Failed to set node power state to {0}.")]
    PowerStateFailure(&'static str),
    /// Ironic's InvalidParameterValue for a boot device.
    #[error("Invalid boot device {0} specified.")]
    InvalidBootDevice(String),
}

impl RedfishError {
    /// The HTTP status of a service's refusal, when that is what it was.
    pub fn status(&self) -> Option<u16> {
        match self {
            RedfishError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the service's refusal carries a message id ending in
    /// `.{name}` (registry and version aside), e.g.
    /// `ActionParameterValueConflict`.
    pub fn has_message_id(&self, name: &str) -> bool {
        let RedfishError::Http { message_ids, .. } = self else {
            return false;
        };
        message_ids
            .iter()
            .any(|id| id.rsplit('.').next() == Some(name))
    }
}

/// A successful reply.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub json: Value,
}

/// What a connection authenticates with.
#[derive(Default)]
enum Auth {
    /// Not decided yet (`auto` and `session` look at the service first).
    #[default]
    Unknown,
    Basic,
    Session(SecretString),
}

/// One BMC connection's state.
struct Connection {
    auth: tokio::sync::Mutex<Auth>,
    slots: Arc<Semaphore>,
}

/// Every BMC connection of this conductor.
pub struct Clients {
    settings: RedfishSettings,
    http: Mutex<HashMap<VerifyCa, reqwest::Client>>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    parallel: Arc<Semaphore>,
}

impl Clients {
    pub fn new(settings: RedfishSettings) -> Clients {
        let parallel = Arc::new(Semaphore::new(settings.max_parallel_calls));
        Clients {
            settings,
            http: Mutex::default(),
            connections: Mutex::default(),
            parallel,
        }
    }

    pub fn settings(&self) -> &RedfishSettings {
        &self.settings
    }

    /// The reqwest client for a TLS policy (built once).
    fn http(&self, verify: &VerifyCa) -> Result<reqwest::Client, RedfishError> {
        let mut clients = self
            .http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(verify) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(self.settings.connect_timeout_secs))
            .timeout(Duration::from_secs(self.settings.read_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("ferric/", env!("CARGO_PKG_VERSION")));
        match verify {
            VerifyCa::System => {}
            VerifyCa::Off => builder = builder.danger_accept_invalid_certs(true),
            VerifyCa::Bundle(path) => {
                // Only the operator's CAs, as requests' `verify=<path>`.
                builder = builder.tls_built_in_root_certs(false);
                for cert in certificates(path)? {
                    builder = builder.add_root_certificate(cert);
                }
            }
        }
        let client = builder
            .build()
            .map_err(|e| RedfishError::Service(format!("cannot build the HTTP client: {e}")))?;
        clients.insert(verify.clone(), client.clone());
        Ok(client)
    }

    fn connection(&self, info: &RedfishInfo) -> Arc<Connection> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connections
            .entry(info.connection_key())
            .or_insert_with(|| {
                Arc::new(Connection {
                    auth: tokio::sync::Mutex::default(),
                    slots: Arc::new(Semaphore::new(self.settings.max_parallel_per_bmc)),
                })
            })
            .clone()
    }

    /// One request to the BMC at `path` (a path the service gave, or the
    /// root's); the reply when its status is a success.
    ///
    /// # Errors
    /// [`RedfishError::Connection`] after the retries, or
    /// [`RedfishError::Http`] with sushy's message for an HTTP error.
    pub async fn call(
        &self,
        info: &RedfishInfo,
        node: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RedfishError> {
        let started = Instant::now();
        let span = tracing::info_span!("redfish.call", bmc = %info.address, http.method = %method, http.path = %path);
        let result = self
            .call_with_retries(info, node, method, path, body)
            .instrument(span)
            .await;
        ferric_common::metrics::global().bmc_call("redfish", result.is_ok(), started.elapsed());
        result
    }

    async fn call_with_retries(
        &self,
        info: &RedfishInfo,
        node: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RedfishError> {
        let http = self.http(&info.verify_ca)?;
        let connection = self.connection(info);
        let url = info.url(path);
        let mut attempt = 1;
        let mut server_side_left = self.settings.server_side_retries;
        let mut fresh_session = false;
        loop {
            let auth = self.authenticate(&http, info, node, &connection).await;
            let used_token = match &auth {
                Ok(Credentials::Token(token)) => Some(token.clone()),
                _ => None,
            };
            let sent = match auth {
                Ok(auth) => {
                    self.send(&http, info, &connection, &auth, &method, &url, body)
                        .await
                }
                Err(e) => Err(e),
            };
            match sent {
                // A session the BMC forgot: log in again, once.
                Ok(reply)
                    if reply.status == StatusCode::UNAUTHORIZED
                        && used_token.is_some()
                        && !fresh_session =>
                {
                    forget(&connection, used_token.as_ref()).await;
                    fresh_session = true;
                }
                Ok(reply) if reply.status.is_success() || reply.status.is_redirection() => {
                    return Ok(reply);
                }
                // A busy BMC: a read is safe to ask again.
                Ok(reply)
                    if reply.status.is_server_error()
                        && method == Method::GET
                        && server_side_left > 0 =>
                {
                    tracing::warn!(bmc = %info.address, status = %reply.status, left = server_side_left, "the BMC answered a server-side error; retrying");
                    server_side_left -= 1;
                    tokio::time::sleep(Duration::from_secs(
                        self.settings.server_side_retries_delay_secs,
                    ))
                    .await;
                }
                Ok(reply) => {
                    if reply.status == StatusCode::UNAUTHORIZED {
                        // Ironic drops the cached client after an access error.
                        forget(&connection, used_token.as_ref()).await;
                    }
                    return Err(http_error(&method, &url, &reply));
                }
                Err(Unreachable(error)) => {
                    if attempt >= self.settings.connection_attempts {
                        return Err(RedfishError::Connection {
                            node: node.to_owned(),
                            url,
                            error,
                        });
                    }
                    tracing::warn!(bmc = %info.address, attempt, %error, "the BMC did not answer; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(
                        self.settings.connection_retry_interval_secs,
                    ))
                    .await;
                }
            }
        }
    }

    /// Sends one request with the connection's credentials, within the
    /// BMC's and the conductor's bounds.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        http: &reqwest::Client,
        info: &RedfishInfo,
        connection: &Connection,
        auth: &Credentials,
        method: &Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Unreachable> {
        let closed = || Unreachable("the conductor is shutting down".into());
        let _bmc = connection
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let _all = self
            .parallel
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let mut request = http
            .request(method.clone(), url)
            .header("OData-Version", "4.0")
            .header("Accept", "application/json");
        request = match auth {
            Credentials::None => request,
            Credentials::Basic => request.basic_auth(
                info.username.as_deref().unwrap_or_default(),
                Some(info.password.expose_secret()),
            ),
            Credentials::Token(token) => request.header("X-Auth-Token", token.expose_secret()),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok(Reply {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// The credentials to send, deciding (and logging in) on first use.
    async fn authenticate(
        &self,
        http: &reqwest::Client,
        info: &RedfishInfo,
        node: &str,
        connection: &Connection,
    ) -> Result<Credentials, Unreachable> {
        let mut auth = connection.auth.lock().await;
        if matches!(*auth, Auth::Unknown) {
            *auth = match info.auth_type {
                AuthType::Basic => Auth::Basic,
                AuthType::Session | AuthType::Auto => {
                    match self.log_in(http, info, connection).await? {
                        Ok(token) => Auth::Session(token),
                        Err(why) if info.auth_type == AuthType::Auto => {
                            tracing::debug!(bmc = %info.address, %node, %why, "no Redfish session; using basic authentication");
                            Auth::Basic
                        }
                        Err(why) => {
                            // `session` without a session: requests go
                            // unauthenticated and the BMC's refusal says why.
                            tracing::warn!(bmc = %info.address, %node, %why, "cannot open a Redfish session");
                            return Ok(Credentials::None);
                        }
                    }
                }
            };
        }
        Ok(match &*auth {
            Auth::Session(token) => Credentials::Token(token.clone()),
            _ => Credentials::Basic,
        })
    }

    /// Opens a session at the service's `SessionService`: the token, or
    /// why there is none.
    async fn log_in(
        &self,
        http: &reqwest::Client,
        info: &RedfishInfo,
        connection: &Connection,
    ) -> Result<Result<SecretString, String>, Unreachable> {
        let root = self
            .send(
                http,
                info,
                connection,
                &Credentials::None,
                &Method::GET,
                &info.url(&info.root),
                None,
            )
            .await?;
        let Some(sessions) = root.json["Links"]["Sessions"]["@odata.id"].as_str() else {
            return Ok(Err("the service root links no Sessions".into()));
        };
        let login = serde_json::json!({
            "UserName": info.username.as_deref().unwrap_or_default(),
            "Password": info.password.expose_secret(),
        });
        let reply = self
            .send(
                http,
                info,
                connection,
                &Credentials::None,
                &Method::POST,
                &info.url(sessions),
                Some(&login),
            )
            .await?;
        let token = reply
            .headers
            .get("X-Auth-Token")
            .and_then(|t| t.to_str().ok());
        Ok(match token {
            Some(token) if reply.status.is_success() => Ok(SecretString::from(token.to_owned())),
            _ => Err(format!("logging in answered {}", reply.status)),
        })
    }
}

/// Forgets the connection's authentication after a 401, unless another
/// request already replaced the session that failed (so concurrent
/// requests do not each log in again and leave sessions behind).
async fn forget(connection: &Connection, failed: Option<&SecretString>) {
    let mut auth = connection.auth.lock().await;
    let replaced = match (&*auth, failed) {
        (Auth::Session(current), Some(failed)) => current.expose_secret() != failed.expose_secret(),
        _ => false,
    };
    if !replaced {
        *auth = Auth::Unknown;
    }
}

/// What one request carries.
enum Credentials {
    None,
    Basic,
    Token(SecretString),
}

/// The BMC could not be reached (sushy's ConnectionError).
struct Unreachable(String);

fn unreachable(error: reqwest::Error) -> Unreachable {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Unreachable(text)
}

/// The `code` of a Redfish error body and the `MessageId` of each of its
/// extended messages.
fn message_ids(body: &Value) -> Vec<String> {
    let error = &body["error"];
    let extended = error["@Message.ExtendedInfo"]
        .as_array()
        .into_iter()
        .flatten();
    error["code"]
        .as_str()
        .into_iter()
        .chain(extended.filter_map(|m| m["MessageId"].as_str()))
        .map(str::to_owned)
        .collect()
}

/// sushy's HTTPError message for a refused request.
fn http_error(method: &Method, url: &str, reply: &Reply) -> RedfishError {
    let status = reply.status.as_u16();
    let message_ids = message_ids(&reply.json);
    let refused = |message: String| RedfishError::Http {
        status,
        message,
        message_ids: message_ids.clone(),
    };
    if reply.status == StatusCode::NOT_FOUND {
        return refused(format!("Resource {url} not found"));
    }
    let Some(error) = reply.json.get("error").filter(|e| e.is_object()) else {
        return refused(format!(
            "HTTP {method} {url} returned code {status}. unknown error Extended information: None"
        ));
    };
    let code = error["code"].as_str().unwrap_or("Base.1.0.GeneralError");
    let extended = &error["@Message.ExtendedInfo"];
    let severe = extended.as_array().and_then(|messages| {
        ["Critical", "Warning"].iter().find_map(|severity| {
            messages
                .iter()
                .find(|m| m["Severity"] == *severity)
                .and_then(|m| m["Message"].as_str())
        })
    });
    let detail = severe
        .or_else(|| error["message"].as_str())
        .unwrap_or("unknown error.");
    refused(format!(
        "HTTP {method} {url} returned code {status}. {code}: {detail} Extended information: {}",
        ferric_common::py::py_repr(extended)
    ))
}

/// The certificates in a PEM file, or in every file of a directory.
fn certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, RedfishError> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| RedfishError::Service(format!("cannot read {}: {e}", path.display())))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![path.to_owned()]
    };
    let mut certs = Vec::new();
    for file in files {
        let pem = std::fs::read(&file)
            .map_err(|e| RedfishError::Service(format!("cannot read {}: {e}", file.display())))?;
        let parsed = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            RedfishError::Service(format!("{} holds no PEM certificate: {e}", file.display()))
        })?;
        certs.extend(parsed);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, json: Value) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: reqwest::header::HeaderMap::new(),
            json,
        }
    }

    #[test]
    fn http_errors_read_as_sushys() {
        let url = "http://bmc/redfish/v1/Systems/1";
        let refused = http_error(
            &Method::GET,
            url,
            &reply(
                401,
                json!({"error": {"code": "Base.1.0.GeneralError", "message": "Incorrect username or password",
                       "@Message.ExtendedInfo": [{"MessageId": "Base.1.0.GeneralError"}]}}),
            ),
        );
        assert_eq!(
            refused.to_string(),
            "Redfish exception occurred. Error: HTTP GET http://bmc/redfish/v1/Systems/1 returned code 401. Base.1.0.GeneralError: Incorrect username or password Extended information: [{'MessageId': 'Base.1.0.GeneralError'}]"
        );
        assert_eq!(refused.status(), Some(401));
        let severe = http_error(
            &Method::POST,
            url,
            &reply(
                409,
                json!({"error": {"code": "Base.1.0.Conflict", "message": "general",
                       "@Message.ExtendedInfo": [{"Severity": "OK", "Message": "fine"},
                                                 {"Severity": "Warning", "Message": "busy"}]}}),
            ),
        );
        assert!(severe.to_string().contains("Base.1.0.Conflict: busy"));
        assert!(severe.has_message_id("Conflict"));
        assert!(!severe.has_message_id("ActionParameterValueConflict"));
        let conflict = http_error(
            &Method::POST,
            url,
            &reply(
                409,
                json!({"error": {"code": "Base.1.0.GeneralError", "message": "busy",
                       "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.ActionParameterValueConflict"}]}}),
            ),
        );
        assert!(conflict.has_message_id("ActionParameterValueConflict"));
        let missing = http_error(&Method::GET, url, &reply(404, Value::Null));
        assert_eq!(
            missing.to_string(),
            "Redfish exception occurred. Error: Resource http://bmc/redfish/v1/Systems/1 not found"
        );
        assert_eq!(missing.status(), Some(404));
        assert!(
            http_error(&Method::GET, url, &reply(500, Value::Null))
                .to_string()
                .ends_with("returned code 500. unknown error Extended information: None")
        );
    }

    /// A BMC that answers each request with the next of `statuses` (the
    /// last one again once they run out); how many requests it got.
    async fn scripted_bmc(statuses: Vec<u16>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = statuses[n.min(statuses.len() - 1)];
                let mut request = Vec::new();
                let mut buf = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => request.extend_from_slice(&buf[..k]),
                    }
                }
                let body = r#"{"PowerState": "On"}"#;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (address, seen)
    }

    fn info(address: &str) -> RedfishInfo {
        RedfishInfo {
            address: address.to_owned(),
            root: "/redfish/v1/".into(),
            system_id: Some("/redfish/v1/Systems/1".into()),
            username: Some("admin".into()),
            password: SecretString::from("secret"),
            verify_ca: VerifyCa::Off,
            auth_type: AuthType::Basic,
        }
    }

    #[tokio::test]
    async fn a_get_answered_with_a_server_error_is_asked_again_other_methods_are_not() {
        let clients = Clients::new(RedfishSettings {
            server_side_retries: 3,
            server_side_retries_delay_secs: 0,
            ..RedfishSettings::default()
        });
        let (busy_twice, seen) = scripted_bmc(vec![500, 503, 200]).await;
        let reply = clients
            .call(
                &info(&busy_twice),
                "n1",
                Method::GET,
                "/redfish/v1/Systems/1",
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply.json["PowerState"], "On");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);

        let (always_busy, seen) = scripted_bmc(vec![500]).await;
        let error = clients
            .call(
                &info(&always_busy),
                "n1",
                Method::GET,
                "/redfish/v1/Systems/1",
                None,
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("returned code 500"), "{error}");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "one try and 3 retries"
        );

        let (busy_once, seen) = scripted_bmc(vec![500, 200]).await;
        let error = clients
            .call(
                &info(&busy_once),
                "n1",
                Method::POST,
                "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                Some(&json!({"ResetType": "On"})),
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("returned code 500"), "{error}");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a reset may have acted"
        );
    }
}
