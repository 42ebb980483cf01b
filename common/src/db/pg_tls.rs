//! TLS to PostgreSQL with rustls: a relay between libpq and the server.
//!
//! Ferric's queries run on diesel's `PgConnection`, which is libpq, built
//! without OpenSSL (`pq-sys` `bundled_without_openssl`): libpq itself
//! cannot speak TLS. When the operator names a CA (`[database]
//! tls_ca_file`, or `sslmode=verify-full&sslrootcert=…` in the URL as for
//! libpq), libpq is pointed instead at Unix sockets of this relay, one per
//! host of the URL (a multi-host URL keeps its order and
//! `target_session_attrs`). For each connection libpq opens, the relay
//! connects to that host over TCP, asks for TLS as PostgreSQL's protocol
//! does (an `SSLRequest`, answered `S`), completes a rustls handshake
//! verified against the operator's CA and the host's name as written in
//! the URL (`verify-full`), and then copies bytes both ways.
//!
//! Invariants: a server is reached only over TLS verified that way — a
//! server that refuses TLS, or presents a certificate of another CA or for
//! another name, gets no byte of libpq's session (neither the user name nor
//! a password), and there is no fallback to plain TCP. The sockets live in
//! a directory of mode 0700 made for this pool and removed with it. The
//! relay runs on a thread of its own, so a pool can be opened and used from
//! synchronous code (a checkout blocks on it while the relay is served).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

use super::DbError;

/// PostgreSQL's `SSLRequest`: length 8, then the code 1234·65536 + 5679.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// How long reaching a server may take when the URL names no
/// `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The libpq parameters this module takes over from the URL.
const TLS_PARAMETERS: [&str; 2] = ["sslmode", "sslrootcert"];

/// A database URL as libpq is to see it, and the relay that serves it
/// (`None`: no TLS asked for, the URL unchanged).
pub(crate) struct Plan {
    pub url: String,
    pub relay: Option<Relay>,
}

/// Decides how to reach the database at `url`: over TLS through a relay
/// when `ca_file` is given or the URL asks for `verify-full`.
///
/// # Errors
/// A TLS mode Ferric does not offer (anything weaker than `verify-full`
/// with a CA), a CA file that cannot be read or holds no certificate, a
/// URL whose hosts cannot be read, or the relay's sockets not made.
pub(crate) fn plan(url: &str, ca_file: Option<&Path>) -> Result<Plan, DbError> {
    let parsed = PgUrl::parse(url)?;
    let sslmode = parsed.parameter("sslmode");
    let rootcert = parsed.parameter("sslrootcert").map(PathBuf::from);
    let ca_file = match (ca_file, rootcert) {
        (Some(file), _) => Some(file.to_owned()),
        (None, Some(file)) => Some(file),
        (None, None) => None,
    };
    match (sslmode.as_deref(), &ca_file) {
        (None | Some("disable" | "allow" | "prefer"), None) => {
            return Ok(Plan {
                url: url.to_owned(),
                relay: None,
            });
        }
        (None | Some("verify-full"), Some(_)) => {}
        (Some("verify-full"), None) => {
            return Err(DbError::Open(
                "sslmode=verify-full needs a CA: set [database] tls_ca_file (or sslrootcert in the URL)"
                    .into(),
            ));
        }
        (Some(mode), _) => {
            return Err(DbError::Open(format!(
                "sslmode={mode} is not offered: Ferric verifies PostgreSQL's certificate and name \
                 against a CA always (sslmode=verify-full, or [database] tls_ca_file)"
            )));
        }
    }
    let ca_file = ca_file.unwrap_or_default();
    let config = client_config(&ca_file)?;
    let relay = Relay::start(&parsed, config, ca_file)?;
    Ok(Plan {
        url: parsed.through(&relay.dir),
        relay: Some(relay),
    })
}

/// A rustls client that trusts exactly the certificates of `ca_file`.
fn client_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, DbError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        DbError::Open(format!("database TLS CA file {}: {e}", ca_file.display()))
    };
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(unreadable(&"no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Open(format!("database TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One server of the URL.
#[derive(Debug, Clone)]
struct Host {
    name: String,
    port: u16,
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.contains(':') {
            write!(f, "[{}]:{}", self.name, self.port)
        } else {
            write!(f, "{}:{}", self.name, self.port)
        }
    }
}

/// A `postgres://` URL cut where the relay changes it: the hosts, and the
/// query's TLS parameters.
#[derive(Debug)]
struct PgUrl {
    /// `postgres://user:password@`, as given.
    head: String,
    hosts: Vec<Host>,
    /// `/dbname`, as given (may be empty).
    path: String,
    /// The query's `key=value` pairs, as given.
    query: Vec<(String, String)>,
}

impl PgUrl {
    fn parse(url: &str) -> Result<PgUrl, DbError> {
        let bad = |why: &str| DbError::Open(format!("database.url: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a postgres:// URL"))?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match before_query.find('/') {
            Some(at) => before_query.split_at(at),
            None => (before_query, ""),
        };
        let (userinfo, hostspec) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let query: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                (key.to_owned(), value.into_owned())
            })
            .collect();
        if query
            .iter()
            .any(|(key, _)| matches!(key.as_str(), "host" | "hostaddr" | "port"))
        {
            return Err(bad(
                "with TLS, name the servers in the URL's host part (host:port,host:port), not in host=, hostaddr= or port=",
            ));
        }
        let hosts = hostspec
            .split(',')
            .map(|spec| Host::parse(spec).ok_or_else(|| bad("a host of the URL cannot be read")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PgUrl {
            head: format!("{scheme}://{userinfo}"),
            hosts,
            path: path.to_owned(),
            query,
        })
    }

    fn parameter(&self, key: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn connect_timeout(&self) -> Duration {
        self.parameter("connect_timeout")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|secs| *secs > 0)
            .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_secs)
    }

    /// The URL pointing at the relay's sockets in `dir` (socket `i + 1`
    /// for host `i`), without the TLS parameters libpq must not see.
    fn through(&self, dir: &Path) -> String {
        let dir = utf8_percent_encode(&dir.to_string_lossy(), NON_ALPHANUMERIC).to_string();
        let hosts: Vec<String> = (1..=self.hosts.len())
            .map(|port| format!("{dir}:{port}"))
            .collect();
        let query: Vec<String> = self
            .query
            .iter()
            .filter(|(key, _)| !TLS_PARAMETERS.contains(&key.as_str()))
            .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
            .collect();
        let mut url = format!("{}{}{}", self.head, hosts.join(","), self.path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }
}

impl Host {
    /// `name`, `name:port`, `[v6]` or `[v6]:port`; the port defaults to 5432.
    fn parse(spec: &str) -> Option<Host> {
        let (name, port) = if let Some(v6) = spec.strip_prefix('[') {
            let (name, after) = v6.split_once(']')?;
            (name, after.strip_prefix(':'))
        } else {
            match spec.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (spec, None),
            }
        };
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .ok()?
            .into_owned();
        if name.is_empty() || name.starts_with('/') {
            return None;
        }
        let port = match port {
            Some(port) => port.parse().ok()?,
            None => 5432,
        };
        Some(Host { name, port })
    }
}

/// Why the relay's last connection failed, kept for the pool's error.
#[derive(Debug, Clone)]
pub(crate) struct RelayError {
    pub message: String,
    /// The server refused TLS or its certificate was refused: trying again
    /// will not help (a wrong CA, a server not set up for TLS).
    pub permanent: bool,
}

/// The running relay; dropping it stops it and removes its sockets.
pub(crate) struct Relay {
    dir: PathBuf,
    last_error: Arc<Mutex<Option<RelayError>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("dir", &self.dir).finish()
    }
}

/// What every connection of one host's listener needs.
struct Upstream {
    host: Host,
    server_name: ServerName<'static>,
    connect_timeout: Duration,
    tls: TlsConnector,
    ca_file: PathBuf,
    last_error: Arc<Mutex<Option<RelayError>>>,
}

impl Relay {
    fn start(
        url: &PgUrl,
        config: Arc<rustls::ClientConfig>,
        ca_file: PathBuf,
    ) -> Result<Relay, DbError> {
        let dir = private_dir()?;
        let last_error = Arc::new(Mutex::new(None));
        let mut listeners = Vec::new();
        for (index, host) in url.hosts.iter().enumerate() {
            let server_name = ServerName::try_from(host.name.clone()).map_err(|_| {
                DbError::Open(format!(
                    "database.url: {} is not a name TLS can verify",
                    host.name
                ))
            })?;
            let socket = dir.join(format!(".s.PGSQL.{}", index + 1));
            let listener = std::os::unix::net::UnixListener::bind(&socket)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    DbError::Open(format!("database TLS relay {}: {e}", socket.display()))
                })?;
            listeners.push((
                listener,
                Upstream {
                    host: host.clone(),
                    server_name,
                    connect_timeout: url.connect_timeout(),
                    tls: TlsConnector::from(config.clone()),
                    ca_file: ca_file.clone(),
                    last_error: last_error.clone(),
                },
            ));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Open(format!("database TLS relay: {e}")))?;
        std::thread::Builder::new()
            .name("ferric-pg-tls".into())
            .spawn(move || runtime.block_on(serve(listeners, stopped)))
            .map_err(|e| DbError::Open(format!("database TLS relay: {e}")))?;
        Ok(Relay {
            dir,
            last_error,
            stop: Some(stop),
        })
    }

    /// Why the last connection through the relay failed, if it did (a
    /// connection through it that succeeds clears it).
    pub fn last_error(&self) -> Option<RelayError> {
        self.last_error.lock().ok()?.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory only this user can enter, for the relay's sockets.
fn private_dir() -> Result<PathBuf, DbError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let base = std::env::temp_dir();
    for _ in 0..8 {
        let dir = base.join(format!("ferric-pg-tls-{:016x}", rand::random::<u64>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(DbError::Open(format!(
                    "database TLS relay: cannot create {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    Err(DbError::Open(
        "database TLS relay: no fresh directory for its sockets".into(),
    ))
}

/// Accepts on every host's socket until told to stop.
async fn serve(
    listeners: Vec<(std::os::unix::net::UnixListener, Upstream)>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, upstream) in listeners {
        let upstream = Arc::new(upstream);
        let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
            tracing::error!(host = %upstream.host, "database TLS relay: cannot listen");
            continue;
        };
        tasks.spawn(async move {
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(e) => {
                        // Out of file descriptors, say: pause instead of spinning.
                        tracing::warn!(error = %e, "database TLS relay: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let upstream = upstream.clone();
                tokio::spawn(async move { upstream.serve(client).await });
            }
        });
    }
    let _ = stopped.await;
    tasks.abort_all();
}

impl Upstream {
    /// Carries one libpq connection to the server over TLS, or records why
    /// it could not (libpq then sees its socket closed and tries the next
    /// host, or reports the failure with [`Relay::last_error`]'s reason).
    async fn serve(&self, mut client: tokio::net::UnixStream) {
        match self.connect().await {
            Ok(mut server) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
            Err(error) => {
                let changed = self.last_error.lock().is_ok_and(|mut last| {
                    let changed = last.as_ref().map(|e| &e.message) != Some(&error.message);
                    *last = Some(error.clone());
                    changed
                });
                if changed {
                    tracing::warn!(error = %error.message, "database TLS");
                }
            }
        }
    }

    async fn connect(
        &self,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, RelayError> {
        let at = &self.host;
        let failed = |what: String, permanent: bool| RelayError {
            message: format!("TLS to PostgreSQL at {at}: {what}"),
            permanent,
        };
        let mut tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect((self.host.name.as_str(), self.host.port)),
        )
        .await
        .map_err(|_| failed("timed out connecting".into(), false))?
        .map_err(|e| failed(e.to_string(), false))?;
        keep_alive(&tcp);
        let answer = tokio::time::timeout(self.connect_timeout, async {
            tcp.write_all(&SSL_REQUEST).await?;
            tcp.read_u8().await
        })
        .await
        .map_err(|_| failed("timed out asking for TLS".into(), false))?
        .map_err(|e| failed(e.to_string(), false))?;
        match answer {
            b'S' => {}
            b'N' => return Err(failed("the server does not offer TLS".into(), true)),
            _ => {
                return Err(failed(
                    "the server's answer to the TLS request is not PostgreSQL's".into(),
                    true,
                ));
            }
        }
        tokio::time::timeout(
            self.connect_timeout,
            self.tls.connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| failed("timed out in the TLS handshake".into(), false))?
        .map_err(|e| {
            let refused = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::AlertReceived(_)
                            | rustls::Error::PeerIncompatible(_)
                    )
                });
            let why = if refused {
                format!("{e} (verified against {})", self.ca_file.display())
            } else {
                e.to_string()
            };
            failed(why, refused)
        })
    }
}

/// TCP keepalives and a user timeout as libpq's settings for Ferric's
/// plain connections ([`super::NETWORK_TIMEOUTS`]): a server gone without a
/// word is noticed in seconds, not hours.
fn keep_alive(tcp: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_tcp_user_timeout(Some(Duration::from_secs(15)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_cut_and_rebuilt_through_the_relay() {
        let url = PgUrl::parse(
            "postgres://u:p%40w@db1.example:5433,[::1],10.0.0.2/ferric?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&target_session_attrs=read-write",
        )
        .unwrap();
        let hosts: Vec<String> = url.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["db1.example:5433", "[::1]:5432", "10.0.0.2:5432"]);
        assert_eq!(url.parameter("sslrootcert").as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            url.through(Path::new("/tmp/r")),
            "postgres://u:p%40w@%2Ftmp%2Fr:1,%2Ftmp%2Fr:2,%2Ftmp%2Fr:3/ferric?target_session_attrs=read%2Dwrite"
        );
    }

    #[test]
    fn weaker_modes_and_hosts_outside_the_authority_are_refused() {
        for (url, says) in [
            (
                "postgres://h/db?sslmode=require",
                "sslmode=require is not offered",
            ),
            (
                "postgres://h/db?sslmode=verify-ca",
                "sslmode=verify-ca is not offered",
            ),
            ("postgres://h/db?sslmode=verify-full", "needs a CA"),
            (
                "postgres://h/db?host=other&sslmode=verify-full&sslrootcert=/x",
                "host=",
            ),
            (
                "postgres:///db?sslmode=verify-full&sslrootcert=/x",
                "cannot be read",
            ),
        ] {
            let error = plan(url, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn without_a_ca_the_url_is_left_alone() {
        let plan = plan("postgres://h:1/db?sslmode=prefer", None).unwrap();
        assert_eq!(plan.url, "postgres://h:1/db?sslmode=prefer");
        assert!(plan.relay.is_none());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("ferric-ca-{}", rand::random::<u64>()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let error = plan("postgres://h/db", Some(&dir))
            .err()
            .unwrap()
            .to_string();
        let _ = std::fs::remove_file(&dir);
        assert!(error.contains("no certificate in it"), "{error}");
    }
}
