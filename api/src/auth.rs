//! HTTP basic authentication as Ironic's `auth_strategy = http_basic`
//! (`ironic/common/auth_basic.py`): an Apache htpasswd file whose entries
//! are bcrypt digests (`$2y$`, `$2a$`, `$2b$`), read at start and again on
//! SIGHUP; version discovery (`/`, `/v1`) stays public; failures answer
//! with Ironic's messages and `{"error": {"message", "code"}}` bodies, 401s
//! with `WWW-Authenticate: Basic realm="Baremetal API"`.
//!
//! Invariants: passwords are compared by bcrypt only (constant time in the
//! digest); an unknown user's password is checked against a decoy digest of
//! the users' cost, so the answer does not tell whether a user exists;
//! verified pairs are cached by a SHA-256 of the password, never
//! the password itself, and the cache is dropped on reload; a file that
//! cannot be read or holds a non-bcrypt entry stops start-up, and on reload
//! keeps the previous users.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use base64::Engine;
use sha2::Digest;

use crate::state::AppState;

/// Ironic's answer to a wrong user name or password.
const WRONG_CREDENTIALS: &str = "Incorrect username or password";

/// Most cached verifications (Ironic keeps 256 too).
const CACHE_SIZE: usize = 256;

/// Routes anyone may call (Ironic's `acl_public_routes`).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/v1"
            | "/v1/"
            | "/v1/lookup"
            | "/v1/continue_inspection"
            | "/metrics"
            | "/healthz"
            | "/readyz"
    ) || path.starts_with("/v1/heartbeat/")
}

/// Why the user file cannot be used (Ironic's ConfigInvalid).
#[derive(Debug, thiserror::Error)]
#[error("Invalid configuration file. {0}")]
pub struct ConfigInvalid(String);

/// The users of an htpasswd file.
pub struct BasicAuth {
    file: PathBuf,
    users: RwLock<Arc<Users>>,
    cache: Mutex<HashMap<(String, [u8; 32]), bool>>,
}

/// The users of the file, and a digest of the same cost that no password
/// matches: an unknown user's password is checked against it, so the
/// answer takes as long as for a known user (no user enumeration by
/// timing).
struct Users {
    digests: HashMap<String, String>,
    decoy: String,
}

impl Users {
    fn new(digests: HashMap<String, String>) -> Users {
        // The cost most users have (`$2y$NN$…`), else bcrypt's default.
        let mut costs: HashMap<u32, usize> = HashMap::new();
        for digest in digests.values() {
            if let Some(cost) = digest.split('$').nth(2).and_then(|c| c.parse().ok()) {
                *costs.entry(cost).or_default() += 1;
            }
        }
        let cost = costs
            .into_iter()
            .max_by_key(|(cost, n)| (*n, *cost))
            .map_or(bcrypt::DEFAULT_COST, |(cost, _)| cost);
        let secret = uuid::Uuid::new_v4().to_string();
        let decoy = bcrypt::hash(secret, cost).unwrap_or_default();
        Users { digests, decoy }
    }
}

fn read_users(file: &Path) -> Result<HashMap<String, String>, ConfigInvalid> {
    let text = std::fs::read_to_string(file).map_err(|_| {
        ConfigInvalid(format!(
            "Problem reading auth user file: {}",
            file.display()
        ))
    })?;
    let mut users = HashMap::new();
    for line in text.lines().map(str::trim) {
        let Some((user, digest)) = line.split_once(':') else {
            continue;
        };
        if !["$2y$", "$2a$", "$2b$"]
            .iter()
            .any(|p| digest.starts_with(p))
        {
            return Err(ConfigInvalid(format!(
                "Only bcrypt digested passwords are supported for {user}"
            )));
        }
        users
            .entry(user.to_owned())
            .or_insert_with(|| digest.to_owned());
    }
    Ok(users)
}

/// An authentication failure, answered as Ironic answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After` (a source backing off).
    pub retry_after_secs: Option<u64>,
}

impl Failure {
    fn unauthorized(message: &str) -> Failure {
        Failure {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
            retry_after_secs: None,
        }
    }

    fn bad_request(message: String) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message,
            retry_after_secs: None,
        }
    }

    fn backing_off(wait: std::time::Duration) -> Failure {
        let secs = wait.as_secs().max(1);
        Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "Too many failed authentications from this address; retry in {secs} s."
            ),
            retry_after_secs: Some(secs),
        }
    }

    /// Whether this is a wrong user name or password (what backoff counts).
    fn is_wrong_credentials(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED && self.message == WRONG_CREDENTIALS
    }

    fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Basic realm=\"Baremetal API\""));
        }
        if let Some(secs) = self.retry_after_secs {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        response.json(serde_json::json!({
            "error": {"message": self.message, "code": self.status.as_u16()}
        }))
    }
}

impl BasicAuth {
    /// Reads `file`.
    ///
    /// # Errors
    /// When it cannot be read or an entry is not bcrypt.
    pub fn load(file: &Path) -> Result<BasicAuth, ConfigInvalid> {
        Ok(BasicAuth {
            file: file.to_path_buf(),
            users: RwLock::new(Arc::new(Users::new(read_users(file)?))),
            cache: Mutex::default(),
        })
    }

    /// Reads the file again; on an error the previous users stay.
    ///
    /// # Errors
    /// As [`BasicAuth::load`].
    pub fn reload(&self) -> Result<usize, ConfigInvalid> {
        let users = Users::new(read_users(&self.file)?);
        let count = users.digests.len();
        if let Ok(mut current) = self.users.write() {
            *current = Arc::new(users);
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        Ok(count)
    }

    /// Reloads on every SIGHUP until the process ends.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        let auth = Arc::downgrade(self);
        tokio::spawn(async move {
            let Ok(mut hangups) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP; the user file is read at start only");
                return;
            };
            while hangups.recv().await.is_some() {
                let Some(auth) = auth.upgrade() else { return };
                match auth.reload() {
                    Ok(n) => tracing::info!(users = n, "auth user file reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "auth user file not reloaded; keeping the previous users")
                    }
                }
            }
        });
    }

    /// Checks an `Authorization` header value; returns the user name.
    ///
    /// # Errors
    /// Ironic's 401 or 400 with its message.
    pub async fn check(self: &Arc<Self>, header: Option<&[u8]>) -> Result<String, Failure> {
        let Some(header) = header else {
            return Err(Failure::unauthorized("Authorization required"));
        };
        let header = std::str::from_utf8(header)
            .map_err(|_| Failure::bad_request("Could not parse Authorization header".into()))?;
        let Some((kind, token)) = header.trim().split_once(char::is_whitespace) else {
            return Err(Failure::bad_request(
                "Could not parse Authorization header".into(),
            ));
        };
        if !kind.eq_ignore_ascii_case("basic") {
            return Err(Failure::bad_request(format!(
                "Unsupported authorization type \"{kind}\""
            )));
        }
        let undecodable = || Failure::bad_request("Could not decode authorization token".into());
        let pair = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| undecodable())?;
        let split = pair
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(undecodable)?;
        let (user, password) = (pair.get(..split), pair.get(split + 1..));
        let (Some(user), Some(password)) = (user, password) else {
            return Err(undecodable());
        };
        let user = String::from_utf8(user.to_vec()).map_err(|_| undecodable())?;
        let Some(users) = self.users.read().ok().map(|users| Arc::clone(&users)) else {
            return Err(Failure::unauthorized(WRONG_CREDENTIALS));
        };
        // An unknown user is checked against the decoy: the same work, and
        // never a match.
        let known = users.digests.contains_key(&user);
        let digest = users
            .digests
            .get(&user)
            .cloned()
            .unwrap_or_else(|| users.decoy.clone());
        let key = (user.clone(), sha2::Sha256::digest(password).into());
        let cached = self.cache.lock().ok().and_then(|c| c.get(&key).copied());
        let ok = match cached {
            Some(ok) => ok,
            None => {
                let password = password.to_vec();
                let ok = ferric_common::telemetry::spawn_blocking(move || {
                    bcrypt::verify(&password, &digest).unwrap_or(false)
                })
                .await
                .unwrap_or(false);
                if let Ok(mut cache) = self.cache.lock() {
                    if cache.len() >= CACHE_SIZE {
                        cache.clear();
                    }
                    cache.insert(key, ok);
                }
                ok
            }
        };
        if ok && known {
            Ok(user)
        } else {
            Err(Failure::unauthorized(WRONG_CREDENTIALS))
        }
    }
}

/// The middleware: lets public routes and `noauth` through, checks the rest.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some((auth, state)) = state.and_then(|s| Some((s.auth.clone()?, s))) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if is_public(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let source = crate::throttle::client_ip(
        req.request(),
        state.settings.api.enable_proxy_headers_parsing,
    );
    // A source backing off is not even checked (its guesses cost nothing
    // to refuse, and bcrypt's work is not spent on them).
    if let Some(wait) = source.and_then(|ip| state.auth_backoff.waiting(ip)) {
        let failure = Failure::backing_off(wait);
        return Ok(req.into_response(failure.response()).map_into_right_body());
    }
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    match auth.check(header.as_deref()).await {
        Ok(_user) => {
            if let Some(ip) = source {
                state.auth_backoff.succeeded(ip);
            }
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(failure) => {
            if let Some(ip) = source.filter(|_| failure.is_wrong_credentials()) {
                state.auth_backoff.failed(ip);
                tracing::warn!(source = %ip, "failed authentication");
            }
            Ok(req.into_response(failure.response()).map_into_right_body())
        }
    }
}
