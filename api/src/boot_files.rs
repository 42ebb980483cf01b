//! Serves `http_root` over HTTP (with Range requests, which iPXE's
//! `sanboot` of an ISO needs) for a one-command set-up, when `[deploy]
//! http_listen` is set. A datacenter may use its own web server instead.
//!
//! Invariant: only files under the root are served (no listing, no path
//! escaping it, no symbolic link leading out of it; the per-MAC links into
//! node directories stay inside and are served); nothing here writes.

use std::path::PathBuf;

use actix_web::{App, HttpServer};

use crate::startup::SideServer;

/// Binds `listen` (`host:port`, port 0 for any) to serve `root`.
///
/// # Errors
/// When the root cannot be created or the address cannot be bound.
pub fn bind(root: PathBuf, listen: &str) -> std::io::Result<SideServer> {
    std::fs::create_dir_all(&root)?;
    let real_root = std::fs::canonicalize(&root)?;
    SideServer::bind(listen, |listener| {
        Ok(HttpServer::new(move || {
            let inside = real_root.clone();
            App::new().service(
                actix_files::Files::new("/", root.clone())
                    .use_etag(true)
                    .path_filter(move |path, _| {
                        // Where the request leads once every link is
                        // followed: it must still be under the root.
                        std::fs::canonicalize(inside.join(path))
                            .is_ok_and(|real| real.starts_with(&inside))
                    }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run())
    })
}
