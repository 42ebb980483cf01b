//! `/v1/allocations` (1.52) and `/v1/nodes/{ident}/allocation`: requests
//! for a node of a resource class. The API stores the request (`allocating`)
//! and sends an `Allocate` task; a conductor picks and reserves the node in
//! the background (or, for a backfill of a deployed node, at once).
//! Deleting one is a conductor task too, since it frees a node.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::DbError;
use ferric_common::db::models::allocation::{
    ALLOCATING, Allocation, AllocationFilter, NewAllocation,
};
use ferric_common::db::models::node::Node;
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::{Allocate, DestroyAllocation};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::{base_url, find_node};
use crate::routes::small_lists::{
    GateBody, ListPage, changed_meanwhile, echoed, resource_gate, respond, sortable,
};
use crate::state::AppState;
use crate::validation::{
    additional_properties, check_trait, expect_uuid, is_valid_logical_name, object_text, py_repr,
};
use crate::views::allocation::{OWNER_VERSION, allocation_body, check_fields};
use crate::views::parse_fields;

const VERSION: u32 = 52;
const UPDATE_VERSION: u32 = 57;
const BACKFILL_VERSION: u32 = 58;

const SORT_KEYS: [&str; 10] = [
    "id",
    "uuid",
    "name",
    "node_id",
    "state",
    "owner",
    "last_error",
    "resource_class",
    "created_at",
    "updated_at",
];

fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
    resource_gate(
        req,
        version,
        VERSION,
        "The API version does not allow allocations",
        GateBody::Fault,
    )
}

fn not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Allocation {ident} could not be found."))
}

fn duplicate(e: DbError, name: Option<&str>, uuid: &str) -> ApiError {
    if !e.is_unique_violation() {
        return e.into();
    }
    if e.violation_detail().contains("name") {
        ApiError::Conflict(format!(
            "An allocation with name {} already exists.",
            name.unwrap_or_default()
        ))
    } else {
        ApiError::Conflict(format!("An allocation with UUID {uuid} already exists."))
    }
}

sortable!(
    Allocation,
    [
        uuid,
        name,
        node_id,
        state,
        owner,
        last_error,
        resource_class
    ]
);

async fn find(state: &AppState, ident: &str) -> Result<Allocation, ApiError> {
    let key = ident.to_owned();
    state
        .db
        .run(move |conn| Allocation::by_ident(conn, &key))
        .await?
        .ok_or_else(|| not_found(ident))
}

async fn node_uuid_of(state: &AppState, alloc: &Allocation) -> Result<Option<String>, ApiError> {
    let Some(node_id) = alloc.node_id else {
        return Ok(None);
    };
    Ok(state
        .db
        .run(move |conn| Node::by_id(conn, node_id))
        .await?
        .map(|n| n.uuid))
}

/// Lists allocations, optionally of one node.
/// What [`collection`] found: every allocation, their nodes' UUIDs, the
/// page asked for, the fields to show and the filters to keep.
type Listed = (
    Vec<Allocation>,
    std::collections::HashMap<i32, String>,
    pagination::Pagination,
    Option<Vec<String>>,
    AllocationFilter,
);

async fn collection(
    req: &HttpRequest,
    state: &AppState,
    version: Microversion,
    node: Option<Node>,
) -> Result<Listed, ApiError> {
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        if !version.at_least(8) {
            return Err(ApiError::not_acceptable());
        }
        if f.iter().any(|f| f == "owner") && !version.at_least(OWNER_VERSION) {
            return Err(ApiError::not_acceptable());
        }
        check_fields(f, version)?;
    }
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        &SORT_KEYS,
        &["extra", "candidate_nodes", "traits"],
    )?;
    let mut filter = AllocationFilter::default();
    let mut uuids = std::collections::HashMap::new();
    let node =
        match node {
            Some(node) => Some(node),
            None => match query.get("node") {
                Some(ident) => Some(find_node(state, ident, version).await.map_err(
                    |e| match e {
                        ApiError::NotFound(m) => ApiError::BadRequest(m),
                        other => other,
                    },
                )?),
                None => None,
            },
        };
    if let Some(node) = node {
        filter.node_id = Some(node.id);
        uuids.insert(node.id, node.uuid);
    }
    filter.resource_class = query.get("resource_class").cloned();
    filter.state = query.get("state").cloned();
    if let Some(owner) = query.get("owner") {
        if !version.at_least(OWNER_VERSION) {
            return Err(ApiError::not_acceptable());
        }
        filter.owner = Some(owner.clone());
    }
    let known = uuids;
    let keep = filter.clone();
    let (rows, uuids) = state
        .db
        .run(move |conn| {
            // Every row: the marker may no longer match the filters.
            let rows = Allocation::list(conn, &AllocationFilter::default())?;
            let uuids =
                Node::uuids_completing(conn, known.clone(), rows.iter().filter_map(|a| a.node_id))?;
            Ok((rows, uuids))
        })
        .await?;
    Ok((rows, uuids, pagination, fields, keep))
}

/// `GET /v1/allocations`.
pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let (rows, uuids, pagination, fields, filter) = collection(&req, &state, version, None).await?;
    let base = base_url(&req, &state);
    let query = parse_query(req.query_string());
    let page = ListPage {
        key: "allocations",
        path: "allocations",
        base: &base,
        fields: fields.as_deref(),
        filters: &echoed(&query, &["node", "resource_class", "state", "owner"]),
        bytes_per_item: 768,
    };
    respond(
        rows,
        |a| filter.matches(a),
        &pagination,
        &page,
        not_found,
        |a| {
            let node_uuid = a.node_id.and_then(|id| uuids.get(&id)).map(String::as_str);
            allocation_body(a, node_uuid, &base, version, fields.as_deref())
        },
    )
}

/// `GET /v1/allocations/{ident}`.
pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let alloc = find(&state, &path).await?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        if f.iter().any(|f| f == "owner") && !version.at_least(OWNER_VERSION) {
            return Err(ApiError::not_acceptable());
        }
        check_fields(f, version)?;
    }
    let node_uuid = node_uuid_of(&state, &alloc).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(allocation_body(
        &alloc,
        node_uuid.as_deref(),
        &base,
        version,
        fields.as_deref(),
    )))
}

fn schema_error(message: String) -> ApiError {
    ApiError::BadRequest(format!("Schema error: {message}"))
}

/// Checks the create body against Ironic's schema for the version.
fn check_body(body: &Value, version: Microversion) -> Result<&Map<String, Value>, ApiError> {
    let map = match body {
        Value::Object(map) => map,
        other => {
            return Err(schema_error(format!(
                "{} is not of type 'object'",
                py_repr(other)
            )));
        }
    };
    let mut allowed = vec![
        "candidate_nodes",
        "extra",
        "name",
        "resource_class",
        "traits",
        "uuid",
    ];
    if version.at_least(BACKFILL_VERSION) {
        allowed.push("node");
    }
    if version.at_least(OWNER_VERSION) {
        allowed.push("owner");
    }
    additional_properties(map, &allowed).map_err(schema_error)?;
    for (key, value) in map {
        let ok = match key.as_str() {
            "candidate_nodes" | "traits" => value.is_array() || value.is_null(),
            "extra" => value.is_object() || value.is_null(),
            _ => value.is_string() || value.is_null(),
        };
        if !ok {
            let types = match key.as_str() {
                "candidate_nodes" | "traits" => "'array', 'null'",
                "extra" => "'object', 'null'",
                _ => "'string', 'null'",
            };
            return Err(schema_error(format!(
                "{} is not of type {types}",
                py_repr(value)
            )));
        }
    }
    if let Some(Value::Array(items)) = map.get("candidate_nodes")
        && let Some(bad) = items.iter().find(|i| !i.is_string())
    {
        return Err(schema_error(format!(
            "{} is not of type 'string'",
            py_repr(bad)
        )));
    }
    for (key, max) in [("resource_class", 80), ("name", 255), ("owner", 255)] {
        if let Some(value) = map.get(key).and_then(Value::as_str)
            && value.chars().count() > max
        {
            return Err(schema_error(format!("{} is too long", py_repr(&map[key]))));
        }
    }
    Ok(map)
}

/// `POST /v1/allocations`.
pub async fn create(
    Call(req, state, version, request_id): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let body = if body.is_null() { json!({}) } else { body };
    let map = check_body(&body, version)?;
    let s = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut traits: Vec<String> = Vec::new();
    if let Some(Value::Array(items)) = map.get("traits") {
        for item in items {
            let t = check_trait("", item)?;
            if !traits.contains(&t) {
                traits.push(t);
            }
        }
    }
    let name = s("name");
    if let Some(name) = &name
        && !is_valid_logical_name(name)
    {
        return Err(ApiError::BadRequest(format!(
            "Cannot create allocation with invalid name '{name}'"
        )));
    }
    let node = match s("node") {
        Some(ident) => Some(
            find_node(&state, &ident, version)
                .await
                .map_err(|e| match e {
                    ApiError::NotFound(m) => ApiError::BadRequest(m),
                    other => other,
                })?,
        ),
        None => None,
    };
    let resource_class = match s("resource_class").filter(|rc| !rc.is_empty()) {
        Some(rc) => Some(rc),
        None => match &node {
            Some(node) => node.resource_class.clone(),
            None => {
                return Err(ApiError::BadRequest(
                    "The resource_class field is mandatory when not backfilling".into(),
                ));
            }
        },
    };
    let candidates: Vec<String> = match map.get("candidate_nodes") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let idents: Vec<String> = items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect();
            candidate_uuids(&state, idents).await?
        }
        _ => Vec::new(),
    };
    let uuid = match s("uuid") {
        Some(u) => expect_uuid("uuid", &u)?,
        None => match node.as_ref().and_then(|n| n.instance_uuid.clone()) {
            Some(instance) => instance,
            None => uuid::Uuid::new_v4().to_string(),
        },
    };
    let new = NewAllocation {
        uuid: uuid.clone(),
        name: name.clone(),
        state: ALLOCATING.into(),
        owner: s("owner"),
        resource_class,
        traits: serde_json::to_string(&traits).unwrap_or_else(|_| "[]".into()),
        candidate_nodes: serde_json::to_string(&candidates).unwrap_or_else(|_| "[]".into()),
        extra: object_text(map, "extra"),
        backfill_node_id: node.as_ref().map(|n| n.id),
    };
    let created = state
        .db
        .run(move |conn| Allocation::insert(conn, &new))
        .await
        .map_err(|e| duplicate(e, name.as_deref(), &uuid))?;
    let task = Kind::Allocate(Allocate {
        allocation_uuid: uuid.clone(),
        backfill_node_uuid: node.as_ref().map(|n| n.uuid.clone()),
    });
    match &node {
        Some(node) => state.call(node, &request_id.0, task).await?,
        // A conductor that never answers leaves the allocation
        // `allocating`; the conductors' sweep takes it over.
        None => state.call_any(&uuid, &request_id.0, task).await?,
    };
    // As Ironic: a backfill is answered as recorded (`active`); a new
    // allocation as created (`allocating`, no node yet): the conductor
    // fills it in the background, and clients wait for it.
    let alloc = match &node {
        Some(_) => find(&state, &uuid).await?,
        None => created,
    };
    let node_uuid = node_uuid_of(&state, &alloc).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("{base}/v1/allocations/{uuid}")))
        .json(allocation_body(
            &alloc,
            node_uuid.as_deref(),
            &base,
            version,
            None,
        )))
}

/// Node UUIDs for candidate idents (UUIDs or names), in order.
///
/// # Errors
/// 400 `Nodes cannot be found: …` naming every unknown ident.
async fn candidate_uuids(state: &AppState, idents: Vec<String>) -> Result<Vec<String>, ApiError> {
    let lookup = idents.clone();
    let found = state
        .db
        .run(move |conn| {
            let mut out = Vec::with_capacity(lookup.len());
            for ident in &lookup {
                let node = if crate::validation::is_uuid_like(ident) {
                    Node::by_uuid(conn, &ident.to_lowercase())?
                } else {
                    Node::by_ident(conn, ident)?
                };
                out.push(node.map(|n| n.uuid));
            }
            Ok(out)
        })
        .await?;
    let missing: Vec<&str> = idents
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| i.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Nodes cannot be found: {}",
            missing.join(", ")
        )));
    }
    Ok(found.into_iter().flatten().collect())
}

/// `PATCH /v1/allocations/{ident}` (1.57): `name` and `extra` only.
pub async fn update(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    if !version.at_least(UPDATE_VERSION) {
        return Err(ApiError::MethodNotAllowed(
            "The API version does not allow updating allocations".into(),
        ));
    }
    let alloc = find(&state, &path).await?;
    let ops = check_patch_ops(&body)?;
    check_allowed_paths(ops, &["name", "extra"])?;
    for op in ops {
        if op.get("path").and_then(Value::as_str) == Some("/name")
            && let Some(name) = op.get("value").and_then(Value::as_str)
            && !is_valid_logical_name(name)
        {
            return Err(ApiError::BadRequest(format!(
                "Cannot update allocation with invalid name '{name}'"
            )));
        }
    }
    let mut doc = json!({
        "name": alloc.name,
        "extra": serde_json::from_str::<Value>(&alloc.extra).unwrap_or_else(|_| json!({})),
    });
    apply_patch(&mut doc, ops)?;
    let name = match doc.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'string', 'null'",
                py_repr(other)
            )));
        }
    };
    let extra = match doc.get("extra") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'object', 'null'",
                py_repr(other)
            )));
        }
    };
    let (id, uuid, key, seen) = (alloc.id, alloc.uuid.clone(), name.clone(), alloc.updated_at);
    let updated = state
        .db
        .run(move |conn| Allocation::update_descriptive(conn, id, seen, key.as_deref(), &extra))
        .await
        .map_err(|e| duplicate(e, name.as_deref(), &uuid))?
        .ok_or_else(|| changed_meanwhile("Allocation", &alloc.uuid))?;
    let node_uuid = node_uuid_of(&state, &updated).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(allocation_body(
        &updated,
        node_uuid.as_deref(),
        &base,
        version,
        None,
    )))
}

/// Sends the `DestroyAllocation` task: to the node's owner when the
/// allocation has a node, else to any conductor.
async fn destroy(state: &AppState, alloc: &Allocation, request_id: &str) -> Result<(), ApiError> {
    let task = Kind::DestroyAllocation(DestroyAllocation {
        allocation_uuid: alloc.uuid.clone(),
    });
    let node = match alloc.node_id {
        Some(id) => state.db.run(move |conn| Node::by_id(conn, id)).await?,
        None => None,
    };
    match node {
        Some(node) => state.call(&node, request_id, task).await?,
        None => state.call_any(&alloc.uuid, request_id, task).await?,
    };
    Ok(())
}

/// `DELETE /v1/allocations/{ident}`.
pub async fn delete(
    Call(req, state, version, request_id): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let alloc = find(&state, &path).await?;
    destroy(&state, &alloc, &request_id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `/v1/nodes/{ident}/allocation` exists from 1.52 (a bare 404 before).
fn node_gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(VERSION) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

async fn node_allocation(
    state: &AppState,
    ident: &str,
    version: Microversion,
) -> Result<(Node, Allocation), ApiError> {
    // A node that does not exist is a bad request here, as in Ironic.
    let node = find_node(state, ident, version)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(m) => ApiError::BadRequest(m),
            other => other,
        })?;
    let node_id = node.id;
    let found = state
        .db
        .run(move |conn| {
            Allocation::list(
                conn,
                &AllocationFilter {
                    node_id: Some(node_id),
                    ..AllocationFilter::default()
                },
            )
        })
        .await?;
    match found.into_iter().next() {
        Some(alloc) => Ok((node, alloc)),
        None => Err(ApiError::NotFound(format!(
            "Allocation for node {ident} was not found"
        ))),
    }
}

/// `GET /v1/nodes/{ident}/allocation`.
pub async fn show_for_node(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    node_gate(version)?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        check_fields(f, version)?;
    }
    let (node, alloc) = node_allocation(&state, &path, version).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(allocation_body(
        &alloc,
        Some(&node.uuid),
        &base,
        version,
        fields.as_deref(),
    )))
}

/// `DELETE /v1/nodes/{ident}/allocation`.
pub async fn delete_for_node(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    node_gate(version)?;
    let (_, alloc) = node_allocation(&state, &path, version).await?;
    destroy(&state, &alloc, &request_id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
