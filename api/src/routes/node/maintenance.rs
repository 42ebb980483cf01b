//! `maintenance`: set (with a reason) and unset, written by the API under
//! the unlocked-node guard.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use serde_json::Value;

use super::object;
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::routes::common::{find_node, wait_unlocked};
use crate::state::AppState;
use crate::validation::no_unexpected;

/// `PUT /v1/nodes/{ident}/maintenance` (`DELETE` with `enable = false`).
async fn maintenance(
    state: web::Data<AppState>,
    version: Microversion,
    ident: &str,
    enable: bool,
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let node = wait_unlocked(&state, find_node(&state, ident, version).await?).await?;
    let mut fields = ferric_common::db::models::node::NodeFields::from_node(&node);
    fields.maintenance = enable;
    fields.maintenance_reason = if enable { reason } else { None };
    if !enable && node.maintenance {
        fields.fault = None;
    }
    let seen = node.clone();
    let updated = state
        .db
        .run(move |conn| Node::update_fields(conn, &seen, &fields))
        .await?;
    if updated.is_none() {
        return Err(crate::routes::node::crud::changed_meanwhile(&state, &node, version).await);
    }
    Ok(HttpResponse::Accepted().finish())
}

pub async fn set_maintenance(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = object(body)?;
    no_unexpected(&map, &["reason"])?;
    let query = crate::pagination::parse_query(req.query_string());
    let reason = match map.get("reason") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => query.get("reason").cloned(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Expected string for reason: {other}"
            )));
        }
    };
    maintenance(state, version, &path, true, reason).await
}

pub async fn unset_maintenance(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    maintenance(state, version, &path, false, None).await
}
