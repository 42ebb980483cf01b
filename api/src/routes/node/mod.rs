//! Node sub-resources, one module per Ironic resource below
//! `/v1/nodes/{ident}` (the node itself is [`crud`]), and what their
//! handlers share: body shapes, the `Accepted` answer with its `Location`,
//! a node that must be unlocked.

pub mod console;
pub mod crud;
pub mod inventory;
pub mod maintenance;
pub mod management;
pub mod provision;
pub mod raid;
pub mod states;
pub mod traits;
pub mod validate;
pub mod vendor;
pub mod vifs;
pub mod vmedia;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use ferric_common::db::models::node::{Node, NodeSettings};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::routes::common::{base_url, find_node, wait_unlocked};
use crate::state::AppState;

pub(super) fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ApiError::BadRequest(
            "Invalid request body: expected a JSON object.".into(),
        )),
    }
}

pub(super) fn required_str(map: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Err(ApiError::BadRequest(format!(
            "Missing mandatory parameter: {key}"
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Expected string for {key}: {other}"
        ))),
    }
}

pub(super) fn accepted_at(req: &HttpRequest, state: &AppState, ident: &str) -> HttpResponse {
    let base = base_url(req, state);
    HttpResponse::Accepted()
        .insert_header(("Location", format!("{base}/v1/nodes/{ident}/states")))
        .finish()
}

pub(super) fn unknown_path() -> ApiError {
    ApiError::routing(StatusCode::NOT_FOUND, "")
}

pub(super) fn unsupported(node: &Node, what: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Driver {} does not support {what} (disabled or not implemented).",
        node.driver
    ))
}

pub(super) async fn unlocked(
    state: &AppState,
    ident: &str,
    version: Microversion,
) -> Result<Node, ApiError> {
    wait_unlocked(state, find_node(state, ident, version).await?).await
}

pub(super) async fn write(
    state: &AppState,
    node: &Node,
    settings: NodeSettings,
) -> Result<(), ApiError> {
    let id = node.id;
    if state
        .db
        .run(move |conn| Node::write_settings(conn, id, &settings))
        .await?
    {
        Ok(())
    } else {
        let latest = find_node(
            state,
            &node.uuid,
            Microversion(crate::microversion::MAX_MINOR),
        )
        .await?;
        Err(ApiError::node_locked(
            &node.uuid,
            latest.reservation.as_deref().unwrap_or("unknown"),
        ))
    }
}
