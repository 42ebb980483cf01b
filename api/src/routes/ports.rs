//! `/v1/ports` and `/v1/nodes/{uuid}/ports`: a node's NICs. MACs are unique
//! and stored lower-case; changes to a port of a locked node get 409.

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::Page;
use ferric_common::db::models::node::Node;
use ferric_common::db::models::port::{Port, PortFields, PortFilter};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, next_link, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::{base_url, find_node, wait_unlocked};
use crate::state::AppState;
use crate::validation::{
    Kind, boolean, check_object, expect_uuid, is_uuid_like, is_valid_logical_name, mac_address,
};
use crate::views::parse_fields;
use crate::views::port::{DEFAULT_LIST_FIELDS, FIELDS, PortOwners, check_fields, port_body};
use ferric_common::db::models::portgroup::Portgroup;

const PORT_SCHEMA: &[(&str, Kind)] = &[
    ("address", Kind::String),
    ("node_uuid", Kind::StringOrNull),
    ("node_ident", Kind::StringOrNull),
    ("uuid", Kind::StringOrNull),
    ("extra", Kind::ObjectOrNull),
    ("local_link_connection", Kind::ObjectOrNull),
    ("pxe_enabled", Kind::BoolLike),
    ("physical_network", Kind::StringOrNull),
    ("is_smartnic", Kind::BoolLike),
    ("portgroup_uuid", Kind::StringOrNull),
    ("name", Kind::StringOrNull),
    ("description", Kind::StringOrNull),
    ("vendor", Kind::StringOrNull),
    ("category", Kind::StringOrNull),
    ("available_for_dynamic_portgroup", Kind::Bool),
];

const MAX_LENGTHS: &[(&str, usize)] = &[
    ("name", 255),
    ("physical_network", 64),
    ("description", 255),
    ("vendor", 32),
    ("category", 80),
];

const PATCH_ALLOWED: [&str; 14] = [
    "address",
    "extra",
    "is_smartnic",
    "local_link_connection",
    "node_ident",
    "node_uuid",
    "physical_network",
    "portgroup_uuid",
    "pxe_enabled",
    "name",
    "description",
    "vendor",
    "category",
    "available_for_dynamic_portgroup",
];

fn min_version(field: &str) -> u32 {
    FIELDS
        .iter()
        .find(|(n, _)| *n == field)
        .map_or(1, |(_, m)| *m)
}

fn duplicate(
    e: ferric_common::db::DbError,
    address: &str,
    name: Option<&str>,
    uuid: &str,
) -> ApiError {
    if !e.is_unique_violation() {
        return e.into();
    }
    let detail = e.violation_detail();
    if detail.contains("address") {
        ApiError::Conflict(format!("A port with MAC address {address} already exists."))
    } else if detail.contains("name") {
        ApiError::Conflict(format!(
            "A port with name {} already exists.",
            name.unwrap_or_default()
        ))
    } else {
        ApiError::Conflict(format!("A port with UUID {uuid} already exists."))
    }
}

/// Builds row fields from a validated port document.
fn fields_from_map(map: &Map<String, Value>, node_id: i32) -> Result<PortFields, ApiError> {
    let s = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    let obj = |k: &str| match map.get(k) {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".into(),
    };
    let b = |k: &str, default: bool| -> Result<bool, ApiError> {
        Ok(match map.get(k) {
            Some(v) => boolean(k, v)?.unwrap_or(default),
            None => default,
        })
    };
    let address = mac_address("address", &s("address").unwrap_or_default())?;
    if s("physical_network").as_deref() == Some("") {
        return Err(ApiError::BadRequest(
            "A non-empty value is required when setting physical_network".into(),
        ));
    }
    Ok(PortFields {
        address,
        node_id,
        extra: obj("extra"),
        local_link_connection: obj("local_link_connection"),
        portgroup_id: None,
        pxe_enabled: b("pxe_enabled", true)?,
        physical_network: s("physical_network"),
        is_smartnic: b("is_smartnic", false)?,
        name: s("name"),
        description: s("description"),
        vendor: s("vendor"),
        category: s("category"),
        available_for_dynamic_portgroup: b("available_for_dynamic_portgroup", true)?,
    })
}

async fn node_for_port(
    state: &AppState,
    map: &Map<String, Value>,
    version: Microversion,
) -> Result<Node, ApiError> {
    let node_uuid = map.get("node_uuid").and_then(Value::as_str);
    let node_ident = map.get("node_ident").and_then(Value::as_str);
    match (node_uuid, node_ident) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(format!(
            "Schema error for port: {} is valid under each of {{'required': ['node_uuid']}}, {{'required': ['node_ident']}}",
            crate::validation::py_repr(&Value::Object(map.clone()))
        ))),
        (None, None) => Err(ApiError::BadRequest(format!(
            "Schema error for port: {} is not valid under any of the given schemas. Possible root cause: 'node_ident' is a required property",
            crate::validation::py_repr(&Value::Object(map.clone()))
        ))),
        (Some(uuid), None) => {
            let uuid = expect_uuid("node_uuid", uuid)?;
            let key = uuid.clone();
            let node = state.db.run(move |conn| Node::by_uuid(conn, &key)).await?;
            node.ok_or_else(|| ApiError::BadRequest(format!("Node {uuid} could not be found.")))
        }
        (None, Some(ident)) => {
            if !version.at_least(94) {
                return Err(ApiError::not_acceptable());
            }
            find_node(state, ident, version)
                .await
                .map_err(|_| ApiError::BadRequest("Node None could not be found.".into()))
        }
    }
}

/// The portgroup a port document names, which must be on the port's node.
///
/// # Errors
/// 400 for an unknown portgroup or one of another node.
async fn portgroup_for_port(
    state: &AppState,
    map: &Map<String, Value>,
    node: &Node,
) -> Result<Option<Portgroup>, ApiError> {
    let Some(ident) = map.get("portgroup_uuid").and_then(Value::as_str) else {
        return Ok(None);
    };
    let uuid = expect_uuid("portgroup_uuid", ident)?;
    let key = uuid.clone();
    let pg = state
        .db
        .run(move |conn| Portgroup::by_uuid(conn, &key))
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("Portgroup {uuid} could not be found.")))?;
    if pg.node_id != node.id {
        return Err(ApiError::BadRequest(format!(
            "Port can not be added to portgroup {uuid} because they are on different nodes."
        )));
    }
    Ok(Some(pg))
}

/// Ironic's check that the ports of a portgroup share one physical
/// network: a port joining `portgroup` (or changing its physical network
/// in it) must be on the network its other ports are on, or the
/// portgroup's own; the first port with one gives it to a portgroup that
/// has none.
///
/// # Errors
/// 409 naming both networks.
async fn check_physnet(
    state: &AppState,
    portgroup: &Portgroup,
    port_id: Option<i32>,
    physnet: Option<String>,
) -> Result<(), ApiError> {
    let (pg_id, pg_physnet) = (portgroup.id, portgroup.physical_network.clone());
    let own = physnet.clone();
    let members = state
        .db
        .run(move |conn| {
            let members = Portgroup::member_physnets(conn, pg_id, port_id)?;
            if members.is_empty()
                && pg_physnet.is_none()
                && let Some(physnet) = &own
            {
                Portgroup::adopt_physical_network(conn, pg_id, physnet)?;
            }
            Ok(members)
        })
        .await?;
    let expected = match members.len() {
        0 => match &portgroup.physical_network {
            Some(pg) => Some(pg.clone()),
            None => return Ok(()),
        },
        1 => members.into_iter().next().flatten(),
        _ => {
            let names: Vec<String> = members
                .iter()
                .map(|m| m.clone().unwrap_or_else(|| "None".into()))
                .collect();
            return Err(ApiError::Conflict(format!(
                "Port group {} has member ports with inconsistent physical networks ({}). All ports in a port group must have the same physical network.",
                portgroup.uuid,
                names.join(", ")
            )));
        }
    };
    if physnet == expected {
        return Ok(());
    }
    let show = |n: &Option<String>| n.clone().unwrap_or_else(|| "None".into());
    Err(ApiError::Conflict(format!(
        "Port with physical network {} cannot become a member of port group {} which has ports in physical network {}.",
        show(&physnet),
        portgroup.uuid,
        show(&expected)
    )))
}

/// `POST /v1/ports`.
pub async fn create(
    Call(req, state, version, _): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body = if body.is_null() { json!({}) } else { body };
    let map = check_object("port", &body, PORT_SCHEMA, &["address"], MAX_LENGTHS)?;
    for (key, value) in map {
        if !value.is_null() && key != "node_ident" && !version.at_least(min_version(key)) {
            return Err(ApiError::not_acceptable());
        }
    }
    let node = node_for_port(&state, map, version).await?;
    let uuid = match map.get("uuid").and_then(Value::as_str) {
        Some(u) => expect_uuid("uuid", u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mut fields = fields_from_map(map, node.id)?;
    let portgroup = portgroup_for_port(&state, map, &node).await?;
    fields.portgroup_id = portgroup.as_ref().map(|pg| pg.id);
    if let Some(pg) = &portgroup {
        check_physnet(&state, pg, None, fields.physical_network.clone()).await?;
    }
    let (address, name, key) = (fields.address.clone(), fields.name.clone(), uuid.clone());
    let port = state
        .db
        .run(move |conn| Port::insert(conn, &key, &fields))
        .await
        .map_err(|e| duplicate(e, &address, name.as_deref(), &uuid))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("{base}/v1/ports/{}", port.uuid)))
        .json(port_body(
            &port,
            PortOwners {
                node_uuid: &node.uuid,
                portgroup_uuid: portgroup.as_ref().map(|pg| pg.uuid.as_str()),
            },
            &base,
            version,
            None,
        )))
}

/// The UUID of a port's portgroup, if it has one.
async fn portgroup_uuid_of(state: &AppState, port: &Port) -> Result<Option<String>, ApiError> {
    let Some(id) = port.portgroup_id else {
        return Ok(None);
    };
    Ok(state
        .db
        .run(move |conn| Portgroup::by_id(conn, id))
        .await?
        .map(|pg| pg.uuid))
}

async fn find_port(state: &AppState, ident: &str) -> Result<(Port, Node), ApiError> {
    // Ironic's `uuid_or_name` argument check: a MAC address or any other
    // text is no port identifier (list with `?address=` to find by MAC).
    if !is_uuid_like(ident) && !is_valid_logical_name(ident) {
        return Err(ApiError::BadRequest(format!(
            "Expected UUID or name for port_ident: {ident}"
        )));
    }
    let key = ident.to_owned();
    let found = state
        .db
        .run(move |conn| {
            let port = if is_uuid_like(&key) {
                Port::by_uuid(conn, &key.to_lowercase())?
            } else {
                Port::by_ident(conn, &key)?
            };
            match port {
                Some(port) => {
                    let node = ferric_common::db::models::node::Node::by_id(conn, port.node_id)?;
                    Ok(node.map(|n| (port, n)))
                }
                None => Ok(None),
            }
        })
        .await?;
    found.ok_or_else(|| ApiError::NotFound(format!("Port {ident} could not be found.")))
}

/// `GET /v1/ports/{ident}`.
pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        check_fields(f, version)?;
    }
    let (port, node) = find_port(&state, &path).await?;
    let portgroup_uuid = portgroup_uuid_of(&state, &port).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(port_body(
        &port,
        PortOwners {
            node_uuid: &node.uuid,
            portgroup_uuid: portgroup_uuid.as_deref(),
        },
        &base,
        version,
        fields.as_deref(),
    )))
}

/// What a port list is narrowed to by its path.
enum Scope {
    All,
    /// A node's id and UUID.
    Node(i32, String),
    /// A portgroup's id.
    Portgroup(i32),
}

async fn list_ports(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    detail_path: bool,
    scope: Scope,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    let shape = pagination::list_shape(&query, version, detail_path, 43, &DEFAULT_LIST_FIELDS)?;
    if query.contains_key("fields")
        && let Some(f) = &shape.fields
    {
        check_fields(f, version)?;
    }
    let fields = shape.fields;
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        &["id"],
        &["extra", "internal_info", "local_link_connection"],
    )?;
    let mut filter = PortFilter::default();
    let mut node_uuids = std::collections::HashMap::new();
    if let Scope::Portgroup(id) = scope {
        filter.portgroup_id = Some(id);
    }
    if let Scope::Node(id, uuid) = scope {
        filter.node_id = Some(id);
        node_uuids.insert(id, uuid);
    } else if let Some(node_uuid) = query.get("node_uuid") {
        let uuid = expect_uuid("node_uuid", node_uuid)?;
        let node = find_node(&state, &uuid, version).await?;
        filter.node_id = Some(node.id);
        node_uuids.insert(node.id, node.uuid);
    } else if let Some(ident) = query.get("node") {
        let node = find_node(&state, ident, version).await?;
        filter.node_id = Some(node.id);
        node_uuids.insert(node.id, node.uuid);
    }
    if let Some(address) = query.get("address") {
        filter.address = Some(mac_address("address", address)?);
    }
    // `?portgroup=` (1.24): the ports of that portgroup (UUID or name).
    if let Some(ident) = query.get("portgroup") {
        if !version.at_least(24) {
            return Err(ApiError::not_acceptable());
        }
        let (pg, _) = crate::routes::portgroups::find(&state, ident).await?;
        filter.portgroup_id = Some(pg.id);
    }
    let marker = match &pagination.marker {
        Some(m) => {
            let uuid = expect_uuid("marker", m)?;
            let key = uuid.clone();
            let port = state.db.run(move |conn| Port::by_uuid(conn, &key)).await?;
            Some(
                port.ok_or_else(|| ApiError::NotFound(format!("Port {uuid} could not be found.")))?,
            )
        }
        None => None,
    };
    let page = Page {
        limit: pagination.page.limit,
        sort_key: "id".into(),
        sort_dir: pagination.page.sort_dir,
    };
    let known = node_uuids.clone();
    let (ports, node_uuids, portgroup_uuids) = state
        .db
        .run(move |conn| {
            let ports = Port::list(conn, &filter, &page, marker.as_ref())?;
            let mut uuids = known.clone();
            let missing: Vec<i32> = ports
                .iter()
                .map(|p| p.node_id)
                .filter(|id| !uuids.contains_key(id))
                .collect();
            if !missing.is_empty() {
                uuids.extend(Node::uuids_of(conn, &missing)?);
            }
            let groups: Vec<i32> = ports.iter().filter_map(|p| p.portgroup_id).collect();
            let group_uuids = if groups.is_empty() {
                std::collections::HashMap::new()
            } else {
                Portgroup::uuids_of(conn, &groups)?
            };
            Ok((ports, uuids, group_uuids))
        })
        .await?;
    let base = base_url(&req, &state);
    let items: Vec<Value> = ports
        .iter()
        .map(|p| {
            let owners = PortOwners {
                node_uuid: node_uuids.get(&p.node_id).map_or("", String::as_str),
                portgroup_uuid: p
                    .portgroup_id
                    .and_then(|id| portgroup_uuids.get(&id))
                    .map(String::as_str),
            };
            port_body(p, owners, &base, version, fields.as_deref())
        })
        .collect();
    let last = ports.last().map(|p| p.uuid.as_str());
    let next = next_link(
        &base,
        path,
        &pagination,
        fields.as_deref(),
        &[],
        ports.len(),
        last,
    );
    Ok(HttpResponse::Ok().json(pagination::collection("ports", items, next)))
}

pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_ports(req, state, version, false, Scope::All, "ports").await
}

pub async fn list_detail(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_ports(req, state, version, true, Scope::All, "ports/detail").await
}

/// `GET /v1/nodes/{ident}/ports[/detail]`.
async fn ports_of_node(call: Call, ident: &str, detail: bool) -> Result<HttpResponse, ApiError> {
    let Call(req, state, version, _) = call;
    let node = find_node(&state, ident, version).await?;
    let sub = format!(
        "nodes/{}/ports{}",
        node.uuid,
        if detail { "/detail" } else { "" }
    );
    list_ports(
        req,
        state,
        version,
        detail,
        Scope::Node(node.id, node.uuid),
        &sub,
    )
    .await
}

/// `GET /v1/nodes/{ident}/ports`.
pub async fn list_for_node(call: Call, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ports_of_node(call, &path, false).await
}

/// `GET /v1/nodes/{ident}/ports/detail`.
pub async fn list_detail_for_node(
    call: Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ports_of_node(call, &path, true).await
}

/// `GET /v1/portgroups/{ident}/ports[/detail]` (1.24).
async fn ports_of_portgroup(
    call: Call,
    ident: &str,
    detail: bool,
) -> Result<HttpResponse, ApiError> {
    let Call(req, state, version, _) = call;
    if !version.at_least(24) {
        return Err(ApiError::routing(
            actix_web::http::StatusCode::NOT_FOUND,
            "",
        ));
    }
    let (pg, _) = crate::routes::portgroups::find(&state, ident).await?;
    let sub = format!(
        "portgroups/{}/ports{}",
        pg.uuid,
        if detail { "/detail" } else { "" }
    );
    list_ports(req, state, version, detail, Scope::Portgroup(pg.id), &sub).await
}

/// `GET /v1/portgroups/{ident}/ports`.
pub async fn list_for_portgroup(
    call: Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ports_of_portgroup(call, &path, false).await
}

/// `GET /v1/portgroups/{ident}/ports/detail`.
pub async fn list_detail_for_portgroup(
    call: Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ports_of_portgroup(call, &path, true).await
}

/// `PATCH /v1/ports/{ident}`.
pub async fn update(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let ops = check_patch_ops(&body)?;
    let touched = check_allowed_paths(ops, &PATCH_ALLOWED)?;
    // A field newer than the request's version cannot be changed (406).
    if touched
        .iter()
        .any(|field| !version.at_least(min_version(field)))
    {
        return Err(ApiError::not_acceptable());
    }
    let (port, node) = find_port(&state, &path).await?;
    let node = wait_unlocked(&state, node).await?;
    let mut doc = json!({
        "address": port.address,
        "node_uuid": node.uuid,
        "extra": serde_json::from_str::<Value>(&port.extra).unwrap_or_else(|_| json!({})),
        "local_link_connection": serde_json::from_str::<Value>(&port.local_link_connection).unwrap_or_else(|_| json!({})),
        "pxe_enabled": port.pxe_enabled,
        "physical_network": port.physical_network,
        "is_smartnic": port.is_smartnic,
        "name": port.name,
        "description": port.description,
        "vendor": port.vendor,
        "category": port.category,
        "available_for_dynamic_portgroup": port.available_for_dynamic_portgroup,
        "portgroup_uuid": portgroup_uuid_of(&state, &port).await?,
    });
    apply_patch(&mut doc, ops)?;
    let map = check_object("patch", &doc, PORT_SCHEMA, &["address"], MAX_LENGTHS)?;
    let target_node = if map.get("node_uuid").and_then(Value::as_str) == Some(node.uuid.as_str()) {
        node.clone()
    } else {
        node_for_port(&state, map, version).await?
    };
    let mut fields = fields_from_map(map, target_node.id)?;
    let portgroup = portgroup_for_port(&state, map, &target_node).await?;
    fields.portgroup_id = portgroup.as_ref().map(|pg| pg.id);
    if let Some(pg) = &portgroup
        && (fields.portgroup_id != port.portgroup_id
            || fields.physical_network != port.physical_network)
    {
        check_physnet(&state, pg, Some(port.id), fields.physical_network.clone()).await?;
    }
    let (address, name, uuid, id) = (
        fields.address.clone(),
        fields.name.clone(),
        port.uuid.clone(),
        port.id,
    );
    let updated = state
        .db
        .run(move |conn| Port::update(conn, id, &fields))
        .await
        .map_err(|e| duplicate(e, &address, name.as_deref(), &uuid))?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "Node {} is locked, please retry after the current operation is completed.",
                target_node.uuid
            ))
        })?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(port_body(
        &updated,
        PortOwners {
            node_uuid: &target_node.uuid,
            portgroup_uuid: portgroup.as_ref().map(|pg| pg.uuid.as_str()),
        },
        &base,
        version,
        None,
    )))
}

/// `DELETE /v1/ports/{uuid}`.
pub async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uuid = expect_uuid("port_uuid", &path)?;
    let (port, node) = find_port(&state, &uuid).await?;
    let node = wait_unlocked(&state, node).await?;
    let id = port.id;
    if !state.db.run(move |conn| Port::delete(conn, id)).await? {
        let latest = find_node(
            &state,
            &node.uuid,
            Microversion(crate::microversion::MAX_MINOR),
        )
        .await?;
        return Err(ApiError::node_locked(
            &node.uuid,
            latest.reservation.as_deref().unwrap_or("unknown"),
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}
