//! `GET /metrics`: this process's Prometheus metrics, with the node counts
//! by state and the ring's members refreshed from the database on each
//! scrape; and [`bind`], the same text alone on its own port for a
//! `ferric conductor` (`[conductor] metrics_listen`).
//!
//! Invariant: a scrape only reads; it is public like version discovery
//! (Prometheus scrapes without OpenStack credentials) and shows no secret.

use actix_web::{App, HttpResponse, HttpServer, web};
use ferric_common::db::models::node::Node;
use ferric_common::metrics;

use crate::error::ApiError;
use crate::startup::SideServer;
use crate::state::AppState;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` on the API.
///
/// # Errors
/// 503 when the database cannot be read.
pub async fn show(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = state.db.run(Node::count_by_state).await?;
    let view = state.cluster(false).await?;
    let members: Vec<(String, String)> = view
        .conductors()
        .iter()
        .filter(|c| view.is_alive(&c.hostname))
        .map(|c| (c.hostname.clone(), c.conductor_group.clone()))
        .collect();
    let registry = metrics::global();
    registry.set_nodes(&counts);
    registry.set_ring_members(&members);
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics::render()))
}

async fn render_only() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics::render())
}

/// Binds `listen` (`host:port`, port 0 for any) to serve `/metrics` alone
/// (for a conductor process).
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(listen: &str) -> std::io::Result<SideServer> {
    SideServer::bind(listen, |listener| {
        Ok(
            HttpServer::new(|| App::new().route("/metrics", web::get().to(render_only)))
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run(),
        )
    })
}
