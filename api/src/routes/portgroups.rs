//! `/v1/portgroups` (1.23), `/v1/nodes/{ident}/portgroups` and
//! `/v1/portgroups/{ident}/ports`: bonds of a node's ports. MACs are
//! unique and stored lower-case; `mode` defaults to `active-backup` and
//! cannot be removed; a portgroup with ports cannot be deleted; changes to
//! a locked node's portgroups get 409.

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::DbError;
use ferric_common::db::models::node::Node;
use ferric_common::db::models::portgroup::{Portgroup, PortgroupFields, PortgroupFilter};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::{base_url, find_node, wait_unlocked};
use crate::routes::small_lists::{ListPage, echoed, respond, sortable};
use crate::state::AppState;
use crate::validation::{
    Kind, boolean, check_object, expect_uuid, is_uuid_like, is_valid_logical_name, mac_address,
    object_text,
};
use crate::views::parse_fields;
use crate::views::portgroup::{DEFAULT_LIST_FIELDS, FIELDS, check_fields, portgroup_body};

const VERSION: u32 = 23;
const DEFAULT_MODE: &str = "active-backup";

const SCHEMA: &[(&str, Kind)] = &[
    ("address", Kind::StringOrNull),
    ("category", Kind::StringOrNull),
    ("extra", Kind::ObjectOrNull),
    ("mode", Kind::StringOrNull),
    ("name", Kind::StringOrNull),
    ("node_uuid", Kind::String),
    ("physical_network", Kind::StringOrNull),
    ("properties", Kind::ObjectOrNull),
    ("standalone_ports_supported", Kind::BoolLike),
    ("uuid", Kind::StringOrNull),
];

const MAX_LENGTHS: &[(&str, usize)] = &[
    ("category", 80),
    ("physical_network", 64),
    ("mode", 255),
    ("name", 255),
];

const PATCH_ALLOWED: [&str; 9] = [
    "address",
    "extra",
    "mode",
    "name",
    "node_uuid",
    "properties",
    "standalone_ports_supported",
    "physical_network",
    "category",
];

const SORT_KEYS: [&str; 11] = [
    "id",
    "uuid",
    "name",
    "address",
    "node_id",
    "mode",
    "standalone_ports_supported",
    "physical_network",
    "category",
    "created_at",
    "updated_at",
];

fn gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(VERSION) {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "The API is not supported for this version".into(),
        ))
    }
}

fn min_version(field: &str) -> u32 {
    FIELDS
        .iter()
        .find(|(n, _)| *n == field)
        .map_or(1, |(_, m)| *m)
}

fn not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Portgroup {ident} could not be found."))
}

fn duplicate(e: DbError, fields: &PortgroupFields, uuid: &str) -> ApiError {
    if !e.is_unique_violation() {
        return e.into();
    }
    let detail = e.violation_detail();
    if detail.contains("address") {
        ApiError::Conflict(format!(
            "A portgroup with MAC address {} already exists.",
            fields.address.as_deref().unwrap_or_default()
        ))
    } else if detail.contains("name") {
        ApiError::Conflict(format!(
            "A portgroup with name {} already exists.",
            fields.name.as_deref().unwrap_or_default()
        ))
    } else {
        ApiError::Conflict(format!("A portgroup with UUID {uuid} already exists."))
    }
}

sortable!(
    Portgroup,
    [
        uuid,
        name,
        address,
        node_id,
        mode,
        standalone_ports_supported,
        physical_network,
        category
    ]
);

/// Builds row fields from a checked portgroup document.
fn fields_from_map(map: &Map<String, Value>, node_id: i32) -> Result<PortgroupFields, ApiError> {
    let s = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    let address = match s("address") {
        Some(a) => Some(mac_address("address", &a)?),
        None => None,
    };
    let standalone = match map.get("standalone_ports_supported") {
        Some(v) => boolean("standalone_ports_supported", v)?.unwrap_or(true),
        None => true,
    };
    Ok(PortgroupFields {
        name: s("name"),
        node_id,
        address,
        extra: object_text(map, "extra"),
        standalone_ports_supported: standalone,
        mode: Some(s("mode").unwrap_or_else(|| DEFAULT_MODE.into())),
        properties: object_text(map, "properties"),
        physical_network: s("physical_network"),
        category: s("category"),
    })
}

/// Looks a portgroup up by UUID or name, with its node's UUID.
///
/// # Errors
/// 404 when none matches.
pub async fn find(state: &AppState, ident: &str) -> Result<(Portgroup, Node), ApiError> {
    let key = if is_uuid_like(ident) {
        ident.to_lowercase()
    } else {
        ident.to_owned()
    };
    let found = state
        .db
        .run(move |conn| {
            let Some(pg) = Portgroup::by_ident(conn, &key)? else {
                return Ok(None);
            };
            Ok(Node::by_id(conn, pg.node_id)?.map(|node| (pg, node)))
        })
        .await?;
    found.ok_or_else(|| not_found(ident))
}

async fn node_of(state: &AppState, node_uuid: &str) -> Result<Node, ApiError> {
    let uuid = expect_uuid("node_uuid", node_uuid)?;
    let key = uuid.clone();
    state
        .db
        .run(move |conn| Node::by_uuid(conn, &key))
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("Node {uuid} could not be found.")))
}

/// `POST /v1/portgroups`.
pub async fn create(
    Call(req, state, version, _): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let body = if body.is_null() { json!({}) } else { body };
    let map = check_object("portgroup", &body, SCHEMA, &["node_uuid"], MAX_LENGTHS)?;
    for (key, value) in map {
        if !value.is_null() && !version.at_least(min_version(key)) {
            return Err(ApiError::not_acceptable());
        }
    }
    if let Some(name) = map.get("name").and_then(Value::as_str)
        && !is_valid_logical_name(name)
    {
        return Err(ApiError::BadRequest(format!(
            "Cannot create portgroup with invalid name '{name}'"
        )));
    }
    let node = node_of(&state, map["node_uuid"].as_str().unwrap_or_default()).await?;
    let uuid = match map.get("uuid").and_then(Value::as_str) {
        Some(u) => expect_uuid("uuid", u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let fields = fields_from_map(map, node.id)?;
    let (key, insert) = (uuid.clone(), fields.clone());
    let pg = state
        .db
        .run(move |conn| Portgroup::insert(conn, &key, &insert))
        .await
        .map_err(|e| duplicate(e, &fields, &uuid))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("{base}/v1/portgroups/{}", pg.uuid)))
        .json(portgroup_body(&pg, &node.uuid, &base, version, None)))
}

/// `GET /v1/portgroups/{ident}`.
pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        check_fields(f, version)?;
    }
    let (pg, node) = find(&state, &path).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(portgroup_body(
        &pg,
        &node.uuid,
        &base,
        version,
        fields.as_deref(),
    )))
}

async fn list_portgroups(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    detail_path: bool,
    node_scope: Option<Node>,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let query = parse_query(req.query_string());
    let shape = pagination::list_shape(&query, version, detail_path, 43, &DEFAULT_LIST_FIELDS)?;
    if query.contains_key("fields")
        && let Some(f) = &shape.fields
    {
        check_fields(f, version)?;
    }
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        &SORT_KEYS,
        &["extra", "internal_info", "properties"],
    )?;
    let mut filter = PortgroupFilter::default();
    let mut node_uuids = std::collections::HashMap::new();
    let node = match node_scope {
        Some(node) => Some(node),
        None => match query.get("node") {
            Some(ident) => Some(find_node(&state, ident, version).await?),
            None => None,
        },
    };
    if let Some(node) = node {
        filter.node_id = Some(node.id);
        node_uuids.insert(node.id, node.uuid);
    }
    if let Some(address) = query.get("address") {
        filter.address = Some(mac_address("address", address)?);
    }
    let known = node_uuids;
    let (rows, node_uuids) = state
        .db
        .run(move |conn| {
            // Every row: the marker may no longer match the filters.
            let rows = Portgroup::list(conn, &PortgroupFilter::default())?;
            let uuids =
                Node::uuids_completing(conn, known.clone(), rows.iter().map(|p| p.node_id))?;
            Ok((rows, uuids))
        })
        .await?;
    let base = base_url(&req, &state);
    let page = ListPage {
        key: "portgroups",
        path,
        base: &base,
        fields: shape.fields.as_deref(),
        filters: &echoed(&query, &["node", "address"]),
        bytes_per_item: 1024,
    };
    respond(
        rows,
        |p| filter.matches(p),
        &pagination,
        &page,
        not_found,
        |p| {
            let node_uuid = node_uuids.get(&p.node_id).map_or("", String::as_str);
            portgroup_body(p, node_uuid, &base, version, shape.fields.as_deref())
        },
    )
}

pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_portgroups(req, state, version, false, None, "portgroups").await
}

pub async fn list_detail(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_portgroups(req, state, version, true, None, "portgroups/detail").await
}

/// `GET /v1/nodes/{ident}/portgroups[/detail]`.
async fn portgroups_of_node(
    call: Call,
    ident: &str,
    detail: bool,
) -> Result<HttpResponse, ApiError> {
    let Call(req, state, version, _) = call;
    // A node's portgroups came with 1.24; below, Ironic's node controller
    // knows no such sub-resource.
    if !version.at_least(24) {
        return Err(ApiError::routing(
            actix_web::http::StatusCode::NOT_FOUND,
            "",
        ));
    }
    let node = find_node(&state, ident, version).await?;
    let sub = format!(
        "nodes/{}/portgroups{}",
        node.uuid,
        if detail { "/detail" } else { "" }
    );
    list_portgroups(req, state, version, detail, Some(node), &sub).await
}

/// `GET /v1/nodes/{ident}/portgroups`.
pub async fn list_for_node(call: Call, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    portgroups_of_node(call, &path, false).await
}

/// `GET /v1/nodes/{ident}/portgroups/detail`.
pub async fn list_detail_for_node(
    call: Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    portgroups_of_node(call, &path, true).await
}

/// `PATCH /v1/portgroups/{ident}`.
pub async fn update(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let ops = check_patch_ops(&body)?;
    let touched = check_allowed_paths(ops, &PATCH_ALLOWED)?;
    if touched.iter().any(|t| !version.at_least(min_version(t))) {
        return Err(ApiError::not_acceptable());
    }
    for op in ops {
        if op.get("path").and_then(Value::as_str) == Some("/mode")
            && op.get("op").and_then(Value::as_str) == Some("remove")
        {
            return Err(ApiError::BadRequest(
                "'mode' is a mandatory attribute and can not be removed".into(),
            ));
        }
    }
    let (pg, node) = find(&state, &path).await?;
    let node = wait_unlocked(&state, node).await?;
    let mut doc = json!({
        "address": pg.address,
        "extra": serde_json::from_str::<Value>(&pg.extra).unwrap_or_else(|_| json!({})),
        "mode": pg.mode,
        "name": pg.name,
        "node_uuid": node.uuid,
        "properties": serde_json::from_str::<Value>(&pg.properties).unwrap_or_else(|_| json!({})),
        "standalone_ports_supported": pg.standalone_ports_supported,
        "physical_network": pg.physical_network,
        "category": pg.category,
    });
    apply_patch(&mut doc, ops)?;
    let map = check_object("portgroup", &doc, SCHEMA, &["node_uuid"], MAX_LENGTHS)?;
    if let Some(name) = map.get("name").and_then(Value::as_str)
        && !is_valid_logical_name(name)
    {
        return Err(ApiError::BadRequest(format!(
            "Portgroup {}: Cannot change name to invalid name '{name}'",
            pg.uuid
        )));
    }
    let target = match map.get("node_uuid").and_then(Value::as_str) {
        Some(uuid) if uuid == node.uuid => node.clone(),
        Some(uuid) => node_of(&state, uuid).await?,
        None => node.clone(),
    };
    if target.id != node.id {
        let id = pg.id;
        if state
            .db
            .run(move |conn| Portgroup::port_count(conn, id))
            .await?
            > 0
        {
            return Err(ApiError::BadRequest(format!(
                "Cannot complete the requested action because portgroup {} contains ports.",
                pg.uuid
            )));
        }
    }
    let fields = fields_from_map(map, target.id)?;
    let (id, write) = (pg.id, fields.clone());
    let updated = state
        .db
        .run(move |conn| Portgroup::update(conn, id, &write))
        .await
        .map_err(|e| duplicate(e, &fields, &pg.uuid))?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "Node {} is locked, please retry after the current operation is completed.",
                target.uuid
            ))
        })?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(portgroup_body(&updated, &target.uuid, &base, version, None)))
}

/// `DELETE /v1/portgroups/{ident}`.
pub async fn delete(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let (pg, node) = find(&state, &path).await?;
    wait_unlocked(&state, node).await?;
    let id = pg.id;
    let (deleted, ports) = state
        .db
        .run(move |conn| {
            let deleted = Portgroup::delete(conn, id)?;
            let ports = if deleted {
                0
            } else {
                Portgroup::port_count(conn, id)?
            };
            Ok((deleted, ports))
        })
        .await?;
    if deleted {
        return Ok(HttpResponse::NoContent().finish());
    }
    if ports > 0 {
        return Err(ApiError::BadRequest(format!(
            "Cannot complete the requested action because portgroup {} contains ports.",
            pg.uuid
        )));
    }
    // Not deleted: gone meanwhile (404 from `find`), or its node locked.
    let (_, latest) = find(&state, &pg.uuid).await?;
    Err(ApiError::node_locked(
        &latest.uuid,
        latest.reservation.as_deref().unwrap_or("unknown"),
    ))
}
