//! `/v1/nodes/{ident}/history` (1.78): a node's recorded events, paged by
//! `created_at`, plain or `detail`, and one event by UUID; and `/v1/shards`
//! (1.82): nodes counted by shard. Below their versions both are unknown
//! paths (404), as in Ironic.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use ferric_common::db::models::history::HistoryRow;
use ferric_common::db::models::node::Node;
use serde_json::json;

use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, next_link, parse_bool, parse_query};
use crate::routes::common::{base_url, find_node};
use crate::validation::expect_uuid;
use crate::views::history::{fields, history_body};

fn history_record_not_found(event: &str) -> ApiError {
    ApiError::NotFound(format!("Node history record {event} could not be found."))
}

/// `GET /v1/nodes/{ident}/history`.
///
/// # Errors
/// 404 below 1.78 or for an unknown node or marker; 400 for bad arguments.
pub async fn list(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(78) {
        return Err(ApiError::routing(StatusCode::NOT_FOUND, ""));
    }
    let query = parse_query(req.query_string());
    let unexpected: Vec<&str> = query
        .keys()
        .map(String::as_str)
        .filter(|k| !["detail", "marker", "limit", "sort_key", "sort_dir"].contains(k))
        .collect();
    if !unexpected.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Unexpected arguments: {}",
            unexpected.join(", ")
        )));
    }
    let detail = query
        .get("detail")
        .map(|raw| parse_bool("detail", raw))
        .transpose()?
        .unwrap_or(false);
    // Events are ordered by `created_at` then `id` (the order they were
    // recorded in) whichever of the two is asked for.
    let mut pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        &["created_at", "id"],
        &[],
    )?;
    if !query.contains_key("sort_key") {
        pagination.page.sort_key = "created_at".into();
    }
    let node = find_node(&state, &path, version).await?;
    let marker = match &pagination.marker {
        Some(raw) => Some(expect_uuid("marker", raw)?),
        None => None,
    };
    let (node_id, limit) = (node.id, pagination.page.limit);
    let descending = pagination.page.sort_dir == ferric_common::db::models::SortDir::Desc;
    let marker = match marker {
        Some(uuid) => {
            let key = uuid.clone();
            let row = state
                .db
                .run(move |conn| HistoryRow::by_uuid(conn, node_id, &key))
                .await?;
            Some(row.ok_or_else(|| history_record_not_found(&uuid))?)
        }
        None => None,
    };
    let rows = state
        .db
        .run(move |conn| HistoryRow::page(conn, node_id, marker.as_ref(), limit, descending))
        .await?;
    let base = base_url(&req, &state);
    let items: Vec<_> = rows
        .iter()
        .map(|row| history_body(row, &node.uuid, &base, version, detail))
        .collect();
    let shown = fields(detail);
    let next = next_link(
        &base,
        &format!("nodes/{path}/history"),
        &pagination,
        Some(&shown),
        &[],
        rows.len(),
        rows.last().map(|r| r.uuid.as_str()),
    );
    Ok(HttpResponse::Ok().json(pagination::collection("history", items, next)))
}

/// `GET /v1/nodes/{ident}/history/{event}`: one event, detailed.
///
/// # Errors
/// 404 below 1.78 or for an unknown node or event.
pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(78) {
        return Err(ApiError::routing(StatusCode::NOT_FOUND, ""));
    }
    let (ident, event) = path.into_inner();
    let node = find_node(&state, &ident, version).await?;
    let (node_id, key) = (node.id, event.clone());
    let row = state
        .db
        .run(move |conn| HistoryRow::by_uuid(conn, node_id, &key))
        .await?
        .ok_or_else(|| history_record_not_found(&event))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(history_body(&row, &node.uuid, &base, version, true)))
}

/// `GET /v1/shards`: `{"shards": [{"name", "count"}]}`, most nodes first; a
/// node without a shard counts under `"None"`, as Ironic prints it.
///
/// # Errors
/// 404 below 1.82 (with Ironic's fault body).
pub async fn shards(Call(_, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    shards_allowed(version)?;
    let counts = state.db.run(Node::shard_counts).await?;
    let shards: Vec<_> = counts
        .into_iter()
        .map(|(name, count)| json!({"name": name.unwrap_or_else(|| "None".into()), "count": count}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "shards": shards })))
}

/// Ironic's refusal of `/v1/shards` below 1.82 (a fault body, not a routing one).
fn shards_allowed(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(82) {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "The API version does not allow shards".into(),
        ))
    }
}

/// `GET /v1/shards/{name}`: there is no such resource.
///
/// # Errors
/// Always 404, with Ironic's words.
pub async fn shard(version: Microversion) -> Result<HttpResponse, ApiError> {
    shards_allowed(version)?;
    Err(ApiError::NotFound(
        "The resource could not be found.".into(),
    ))
}
