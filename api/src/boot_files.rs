//! Serves `http_root` over HTTP (with Range requests, which iPXE's
//! `sanboot` of an ISO needs) for a one-command set-up, when `[deploy]
//! http_listen` is set. A datacenter may use its own web server instead.
//!
//! Invariant: only files under the root are served (no listing, no path
//! escaping it); nothing here writes.

use std::net::TcpListener;
use std::path::PathBuf;

use actix_web::{App, HttpServer, dev::Server};

/// A bound, not yet running, boot-file server.
pub struct BootFileServer {
    server: Server,
    port: u16,
}

impl BootFileServer {
    /// Binds `listen` (`host:port`, port 0 for any) to serve `root`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn bind(root: PathBuf, listen: &str) -> std::io::Result<BootFileServer> {
        std::fs::create_dir_all(&root)?;
        let listener = TcpListener::bind(listen)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new().service(actix_files::Files::new("/", root.clone()).use_etag(true))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(BootFileServer { server, port })
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
        crate::startup::serve_until(self.server, shutdown).await
    }
}
