//! Serves `http_root` over HTTP (with Range requests, which iPXE's
//! `sanboot` of an ISO needs) for a one-command set-up, when `[deploy]
//! http_listen` is set. A datacenter may use its own web server instead.
//!
//! Invariant: only files under the root are served (no listing, no path
//! escaping it); nothing here writes.

use std::path::PathBuf;

use actix_web::{App, HttpServer};

use crate::startup::SideServer;

/// Binds `listen` (`host:port`, port 0 for any) to serve `root`.
///
/// # Errors
/// When the root cannot be created or the address cannot be bound.
pub fn bind(root: PathBuf, listen: &str) -> std::io::Result<SideServer> {
    std::fs::create_dir_all(&root)?;
    SideServer::bind(listen, |listener| {
        Ok(HttpServer::new(move || {
            App::new().service(actix_files::Files::new("/", root.clone()).use_etag(true))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run())
    })
}
