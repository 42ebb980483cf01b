//! Serves `http_root` over HTTP (with Range requests, which iPXE's
//! `sanboot` of an ISO needs) for a one-command set-up, when `[deploy]
//! http_listen` is set. A datacenter may use its own web server instead.
//! Each file served from a node's directory (`<uuid>/deploy_kernel`, …) is
//! recorded in the node journal, so the console can say when a machine
//! last fetched its kernel.
//!
//! Invariant: only files under the root are served (no listing, no path
//! escaping it, no symbolic link leading out of it; the per-MAC links into
//! node directories stay inside and are served); nothing here writes files.

use std::path::PathBuf;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{self, Next};
use actix_web::{App, HttpServer, web};
use ferric_common::db::models::journal::JournalEntry;
use ferric_common::journal::Journal;

use crate::startup::SideServer;

/// Where fetches are recorded, and under which name.
#[derive(Clone)]
pub struct FetchRecorder {
    pub journal: Journal,
    /// e.g. `ferric-boot-files.<host>`.
    pub publisher: String,
}

/// The node and file of a path `/<uuid>/<file>`, if it is one.
fn node_file(path: &str) -> Option<(&str, &str)> {
    let (uuid, file) = path.strip_prefix('/')?.split_once('/')?;
    (uuid::Uuid::try_parse(uuid).is_ok() && !file.is_empty() && !file.contains('/'))
        .then_some((uuid, file))
}

/// Records a successful fetch of a node's file (a ranged read only from
/// its start, so an ISO read in pieces counts once).
async fn record_fetch(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let recorder = req.app_data::<web::Data<FetchRecorder>>().cloned();
    let path = req.path().to_owned();
    let from_start = req
        .headers()
        .get(actix_web::http::header::RANGE)
        .is_none_or(|r| r.as_bytes().starts_with(b"bytes=0-"));
    let res = next.call(req).await?;
    if let Some(recorder) = recorder
        && from_start
        && res.status().is_success()
        && let Some((uuid, file)) = node_file(&path)
    {
        recorder.journal.append(JournalEntry::boot_file_fetched(
            uuid,
            file,
            &recorder.publisher,
        ));
    }
    Ok(res)
}

/// Binds `listen` (`host:port`, port 0 for any) to serve `root`, recording
/// fetches with `recorder` when given.
///
/// # Errors
/// When the root cannot be created or the address cannot be bound.
pub fn bind(
    root: PathBuf,
    listen: &str,
    recorder: Option<FetchRecorder>,
) -> std::io::Result<SideServer> {
    std::fs::create_dir_all(&root)?;
    let real_root = std::fs::canonicalize(&root)?;
    SideServer::bind(listen, |listener| {
        Ok(HttpServer::new(move || {
            let inside = real_root.clone();
            let mut app = App::new();
            if let Some(recorder) = &recorder {
                app = app.app_data(web::Data::new(recorder.clone()));
            }
            app.wrap(middleware::from_fn(record_fetch)).service(
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

#[cfg(test)]
mod tests {
    use super::node_file;

    #[test]
    fn only_a_file_in_a_node_directory_is_a_node_fetch() {
        let uuid = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";
        assert_eq!(
            node_file(&format!("/{uuid}/deploy_kernel")),
            Some((uuid, "deploy_kernel"))
        );
        assert_eq!(node_file("/boot.ipxe"), None);
        assert_eq!(node_file("/pxelinux.cfg/52-54-00-12-34-56"), None);
        assert_eq!(node_file(&format!("/{uuid}/")), None);
        assert_eq!(node_file("/not-a-uuid/deploy_kernel"), None);
    }
}
