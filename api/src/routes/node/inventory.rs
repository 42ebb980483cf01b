//! What is recorded about a node's hardware and family, read-only, with
//! Ironic's gates and answers: `bios` (1.40; fake hardware has no
//! settings, so always empty), `inventory` (1.81; what the last inspection
//! stored, else Ironic's "not found" naming the node's database id), `firmware` (1.86;
//! no components recorded) and `children` (1.83: the nodes whose
//! `parent_node` is this one).

use actix_web::{HttpResponse, web};
use ferric_common::db::models::inventory::NodeInventory;
use ferric_common::db::models::node::Node;
use serde_json::{Value, json};

use super::unknown_path;
use crate::call::Call;
use crate::error::ApiError;
use crate::routes::common::{base_url, find_node};

/// `GET /v1/nodes/{ident}/bios`.
///
/// # Errors
/// 404 below 1.40 or for an unknown node.
pub async fn bios(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(40) {
        return Err(unknown_path());
    }
    find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(json!({ "bios": [] })))
}

/// `GET /v1/nodes/{ident}/bios/{setting}`: no node has settings yet.
///
/// # Errors
/// Always 404: below 1.40, an unknown node, or Ironic's "doesn't have a
/// BIOS setting".
pub async fn bios_setting(
    Call(_, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(40) {
        return Err(unknown_path());
    }
    let (ident, setting) = path.into_inner();
    let node = find_node(&state, &ident, version).await?;
    Err(ApiError::NotFound(format!(
        "Node {} doesn't have a BIOS setting '{setting}'",
        node.uuid
    )))
}

/// `GET /v1/nodes/{ident}/inventory`: what the last inspection stored,
/// `{"inventory": …, "plugin_data": …}`.
///
/// # Errors
/// 404 below 1.81, for an unknown node, or (Ironic's message, naming the
/// node's database id) for a node never inspected.
pub async fn inventory(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(81) {
        return Err(unknown_path());
    }
    let node = find_node(&state, &path, version).await?;
    let id = node.id;
    let stored = state
        .db
        .run(move |conn| NodeInventory::of_node(conn, id))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Node inventory record for node {} could not be found.",
                node.id
            ))
        })?;
    let object = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!({}));
    Ok(HttpResponse::Ok().json(json!({
        "inventory": object(&stored.inventory_data),
        "plugin_data": object(&stored.plugin_data),
    })))
}

/// `GET /v1/nodes/{ident}/children`: the child nodes' UUIDs and a link to
/// the node list filtered by this parent.
///
/// # Errors
/// 404 below 1.83 or for an unknown node; 400 for any query argument.
pub async fn children(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(83) {
        return Err(unknown_path());
    }
    let arguments = crate::pagination::parse_query(req.query_string());
    if !arguments.is_empty() {
        let names: Vec<&str> = arguments.keys().map(String::as_str).collect();
        return Err(ApiError::BadRequest(format!(
            "Unexpected arguments: {}",
            names.join(", ")
        )));
    }
    let node = find_node(&state, &path, version).await?;
    let parent = node.uuid.clone();
    let children = state
        .db
        .run(move |conn| Node::children_of(conn, &parent))
        .await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(json!({
        "children": children,
        "links": {
            "href": format!("{base}/v1/nodes?parent_node={}", node.uuid),
            "rel": "children",
        },
    })))
}

/// `GET /v1/nodes/{ident}/firmware` (1.86).
pub async fn firmware(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(86) {
        return Err(unknown_path());
    }
    find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(json!({ "firmware": [] })))
}
