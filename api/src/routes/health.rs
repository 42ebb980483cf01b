//! `GET /healthz` and `GET /readyz`, the probes load balancers and
//! Kubernetes call: unauthenticated (as version discovery), answering
//! nothing but whether this API process lives and whether it can do its
//! work now.
//!
//! Invariants: `/healthz` touches nothing outside the process; `/readyz`
//! answers within the database's connection timeout plus the broker's
//! connect timeout, and 200 only when every check passed: the process is
//! not draining, the database answers, the broker is reachable, and every
//! hardware type this process enables (`[conductor]
//! enabled_hardware_types`) has an alive conductor. While draining, every
//! answer closes its connection, so no client keeps one the listener will
//! drop.

use std::sync::atomic::Ordering;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use ferric_common::db::DbError;
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when this API can take requests now, else 503; the
/// body names each check and what failed.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "draining", "checks": {}}));
    }
    let (database, broker) = tokio::join!(state.db.ping(), state.queue.ready());
    let mut checks = Map::new();
    checks.insert(
        "database".into(),
        outcome(database.as_ref().map_err(DbError::to_string)),
    );
    checks.insert("broker".into(), outcome(broker.map_err(|e| e.to_string())));
    let conductors = if database.is_ok() {
        conductors(&state).await
    } else {
        Err("unknown: the database is unreachable".into())
    };
    checks.insert("conductors".into(), outcome(conductors));
    let ready = checks.values().all(|c| c == "ok");
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

fn outcome<E: std::fmt::Display>(result: Result<impl Sized, E>) -> Value {
    match result {
        Ok(_) => json!("ok"),
        Err(e) => json!(e.to_string()),
    }
}

/// Every enabled hardware type has an alive conductor.
async fn conductors(state: &AppState) -> Result<(), String> {
    let view = state.cluster(true).await.map_err(|e| e.to_string())?;
    let missing: Vec<&str> = state
        .settings
        .conductor
        .enabled_hardware_types
        .iter()
        .map(String::as_str)
        .filter(|hw| !view.hardware_types().contains_key(*hw))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no alive conductor for hardware type(s) {}",
            missing.join(", ")
        ))
    }
}

/// Middleware: while the API drains, each answer closes its connection.
///
/// # Errors
/// Whatever the inner service returns.
pub async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.draining.load(Ordering::Acquire));
    let mut response = next.call(req).await?;
    if draining {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
