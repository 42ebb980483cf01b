//! `Application::build`: binds the listener and builds the actix server;
//! `run_until` serves until a shutdown future completes, drains for
//! `[api] drain_secs` (still serving, `/readyz` 503, connections closed
//! after each answer), then stops accepting and lets in-flight requests
//! finish.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware, web};

use crate::microversion;
use crate::routes;
use crate::state::AppState;

/// The API's TLS configuration from PEM files.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("cannot read the TLS certificate", cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid("cannot read the TLS key", key, &e))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid("TLS set-up for", cert, &e))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| invalid("the TLS certificate and key do not fit", cert, &e))
}

/// The local address of a request's connection: the address the client
/// reached, which links use when no public endpoint is configured (never
/// the client's `Host` header).
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// Records each connection's [`LocalAddr`], plain or TLS.
fn record_local_addr(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    use actix_web::rt::net::TcpStream;
    let local = connection
        .downcast_ref::<TcpStream>()
        .and_then(|s| s.local_addr().ok())
        .or_else(|| {
            connection
                .downcast_ref::<TlsStream<TcpStream>>()
                .and_then(|s| s.get_ref().0.local_addr().ok())
        });
    if let Some(addr) = local {
        data.insert(LocalAddr(addr));
    }
}

struct Limits {
    max_connections: usize,
    client_request_timeout: std::time::Duration,
    keep_alive: std::time::Duration,
}

/// A bound, not yet running API server.
pub struct Application {
    port: u16,
    server: Server,
    draining: Arc<AtomicBool>,
    drain: Duration,
}

impl Application {
    /// Binds `[api] host:port` (port 0 picks a free one).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn build(state: AppState) -> std::io::Result<Application> {
        let listener =
            TcpListener::bind((state.settings.api.host.as_str(), state.settings.api.port))?;
        let port = listener.local_addr()?.port();
        let workers = match state.settings.api.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let limits = Limits {
            max_connections: state.settings.api.max_connections,
            client_request_timeout: std::time::Duration::from_millis(
                state.settings.api.client_request_timeout_ms,
            ),
            keep_alive: std::time::Duration::from_secs(state.settings.api.keep_alive_secs),
        };
        let tls = match (
            &state.settings.api.tls_cert_file,
            &state.settings.api.tls_key_file,
        ) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        let draining = state.draining.clone();
        let drain = Duration::from_secs(state.settings.api.drain_secs);
        let console = state.settings.console.enabled;
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(middleware::from_fn(crate::auth::authenticate))
                .wrap(middleware::from_fn(microversion::negotiate))
                .wrap(middleware::from_fn(routes::health::close_when_draining))
                .configure(routes::configure)
                .configure(|cfg| {
                    if console {
                        crate::console::configure(cfg);
                    }
                })
                .default_service(web::to(routes::not_found))
        })
        .on_connect(record_local_addr)
        .workers(workers)
        .max_connections(limits.max_connections)
        .client_request_timeout(limits.client_request_timeout)
        .keep_alive(limits.keep_alive)
        .backlog(4096)
        .disable_signals()
        .shutdown_timeout(5);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Application {
            port,
            server,
            draining,
            drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, drains, then stops gracefully.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (draining, drain) = (self.draining, self.drain);
        serve_until(self.server, async move {
            shutdown.await;
            draining.store(true, Ordering::Release);
            if !drain.is_zero() {
                tracing::info!(
                    ?drain,
                    "draining: /readyz answers 503 until the listener closes"
                );
                tokio::time::sleep(drain).await;
            }
        })
        .await
    }
}

/// Runs an actix server until `shutdown` completes, then stops it
/// gracefully.
///
/// # Errors
/// When the server fails.
pub async fn serve_until(
    server: Server,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let handle = server.handle();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            // The server future processes the stop command, so it must
            // keep being polled while the stop is requested.
            let stop = handle.stop(true);
            let (result, ()) = tokio::join!(&mut server, stop);
            result
        }
    }
}

/// A small one-worker server on a port of its own (`http_root`, a
/// conductor's metrics), bound and not yet running.
pub struct SideServer {
    server: Server,
    port: u16,
}

impl SideServer {
    /// Binds `listen` (`host:port`, port 0 for any) and builds the server
    /// `build` makes on that listener.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub(crate) fn bind(
        listen: &str,
        build: impl FnOnce(std::net::TcpListener) -> std::io::Result<Server>,
    ) -> std::io::Result<SideServer> {
        let listener = std::net::TcpListener::bind(listen)?;
        let port = listener.local_addr()?.port();
        Ok(SideServer {
            server: build(listener)?,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        serve_until(self.server, shutdown).await
    }
}
