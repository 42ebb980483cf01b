//! `/v1/volume` (1.32): volume connectors and targets, globally and under
//! `/v1/nodes/{ident}/volume`. Both resources share one shape of code
//! ([`Resource`]): create (the node named by `node_uuid` must exist),
//! list with `node`, `detail`, `fields`, sort and paging, show, patch and
//! delete. As in Ironic, a connector or target changes only while its node
//! is powered off (deletion also in `manageable`, `enroll`, `adopt
//! failed`), and target `properties` secrets are masked.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_common::db::models::volume::{
    ConnectorFields, TargetFields, VolumeConnector, VolumeTarget,
};
use ferric_common::db::{AnyConnection, DbError};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::{base_url, find_node, wait_unlocked};
use crate::routes::small_lists::{ListPage, Sortable, echoed, respond, sortable};
use crate::state::AppState;
use crate::validation::{
    Kind, check_known_fields, check_object, expect_uuid, is_uuid_like, object_text,
};
use crate::views::masking::mask_secrets;
use crate::views::{json_column, links, parse_fields, timestamp};

const VERSION: u32 = 32;

/// What differs between connectors and targets.
trait Resource: Sized + Sortable + Send + 'static {
    type Fields: Clone + Send + Sync + 'static;
    /// `connectors` or `targets`: the URL segment and the list key.
    const PLURAL: &'static str;
    /// `connector` or `target`: schema errors and `<x>_uuid` names.
    const SINGULAR: &'static str;
    /// "Volume connector" / "Volume target".
    const TITLE: &'static str;
    const SCHEMA: &'static [(&'static str, Kind)];
    const REQUIRED: &'static [&'static str];
    /// Column widths, checked before the database sees the value.
    const MAX_LENGTHS: &'static [(&'static str, usize)];
    const PATCH_ALLOWED: &'static [&'static str];
    const SORT_KEYS: &'static [&'static str];
    const REFUSED_SORT_KEYS: &'static [&'static str];
    /// Body fields in Ironic's order (before `links` and `node_uuid`).
    const FIELDS: &'static [&'static str];
    const LIST_FIELDS: &'static [&'static str];

    fn node_id(&self) -> i32;
    fn value(&self, field: &str) -> Value;
    /// The patchable document of the row.
    fn document(&self, node_uuid: &str) -> Value;
    fn fields(map: &Map<String, Value>, node_id: i32) -> Result<Self::Fields, ApiError>;
    fn duplicate(e: DbError, fields: &Self::Fields) -> ApiError;

    fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Self>, DbError>;
    fn list(conn: &mut AnyConnection, node_id: Option<i32>) -> Result<Vec<Self>, DbError>;
    fn insert(conn: &mut AnyConnection, uuid: &str, f: &Self::Fields) -> Result<Self, DbError>;
    fn update(conn: &mut AnyConnection, id: i32, f: &Self::Fields)
    -> Result<Option<Self>, DbError>;
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError>;
}

sortable!(VolumeConnector, [uuid, connector_id, node_id], {"type" => connector_type});

impl Resource for VolumeConnector {
    type Fields = ConnectorFields;
    const PLURAL: &'static str = "connectors";
    const SINGULAR: &'static str = "connector";
    const TITLE: &'static str = "Volume connector";
    const SCHEMA: &'static [(&'static str, Kind)] = &[
        ("connector_id", Kind::String),
        ("extra", Kind::ObjectOrNull),
        ("node_uuid", Kind::String),
        ("type", Kind::String),
        ("uuid", Kind::StringOrNull),
    ];
    const REQUIRED: &'static [&'static str] = &["connector_id", "node_uuid", "type"];
    const MAX_LENGTHS: &'static [(&'static str, usize)] = &[("type", 32), ("connector_id", 255)];
    const PATCH_ALLOWED: &'static [&'static str] = &["connector_id", "extra", "node_uuid", "type"];
    const SORT_KEYS: &'static [&'static str] = &[
        "id",
        "uuid",
        "type",
        "connector_id",
        "node_id",
        "created_at",
        "updated_at",
    ];
    const REFUSED_SORT_KEYS: &'static [&'static str] = &["extra"];
    const FIELDS: &'static [&'static str] = &[
        "uuid",
        "created_at",
        "updated_at",
        "connector_id",
        "extra",
        "type",
    ];
    const LIST_FIELDS: &'static [&'static str] = &["uuid", "connector_id", "type"];

    fn node_id(&self) -> i32 {
        self.node_id
    }
    fn value(&self, field: &str) -> Value {
        match field {
            "uuid" => json!(self.uuid),
            "created_at" => timestamp(Some(self.created_at)),
            "updated_at" => timestamp(self.updated_at),
            "connector_id" => json!(self.connector_id),
            "extra" => json_column(&self.extra),
            "type" => json!(self.connector_type),
            _ => Value::Null,
        }
    }
    fn document(&self, node_uuid: &str) -> Value {
        json!({
            "connector_id": self.connector_id,
            "extra": json_column(&self.extra),
            "node_uuid": node_uuid,
            "type": self.connector_type,
        })
    }
    fn fields(map: &Map<String, Value>, node_id: i32) -> Result<ConnectorFields, ApiError> {
        let s = |k: &str| {
            map.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(ConnectorFields {
            node_id,
            connector_type: s("type"),
            connector_id: s("connector_id"),
            extra: object_text(map, "extra"),
        })
    }
    fn duplicate(e: DbError, fields: &ConnectorFields) -> ApiError {
        if e.is_unique_violation() && !e.violation_detail().contains("uuid") {
            ApiError::Conflict(format!(
                "A volume connector with type {} and connector ID {} already exists.",
                fields.connector_type, fields.connector_id
            ))
        } else if e.is_unique_violation() {
            ApiError::Conflict("A volume connector with this UUID already exists.".into())
        } else {
            e.into()
        }
    }
    fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Self>, DbError> {
        VolumeConnector::by_uuid(conn, uuid)
    }
    fn list(conn: &mut AnyConnection, node_id: Option<i32>) -> Result<Vec<Self>, DbError> {
        VolumeConnector::list(conn, node_id)
    }
    fn insert(conn: &mut AnyConnection, uuid: &str, f: &ConnectorFields) -> Result<Self, DbError> {
        VolumeConnector::insert(conn, uuid, f)
    }
    fn update(
        conn: &mut AnyConnection,
        id: i32,
        f: &ConnectorFields,
    ) -> Result<Option<Self>, DbError> {
        VolumeConnector::update(conn, id, f)
    }
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        VolumeConnector::delete(conn, id)
    }
}

sortable!(
    VolumeTarget,
    [uuid, volume_type, volume_id, boot_index, node_id]
);

impl Resource for VolumeTarget {
    type Fields = TargetFields;
    const PLURAL: &'static str = "targets";
    const SINGULAR: &'static str = "target";
    const TITLE: &'static str = "Volume target";
    const SCHEMA: &'static [(&'static str, Kind)] = &[
        ("boot_index", Kind::Any),
        ("extra", Kind::ObjectOrNull),
        ("node_uuid", Kind::String),
        ("properties", Kind::ObjectOrNull),
        ("volume_id", Kind::String),
        ("volume_type", Kind::String),
        ("uuid", Kind::StringOrNull),
    ];
    const REQUIRED: &'static [&'static str] =
        &["boot_index", "node_uuid", "volume_id", "volume_type"];
    const MAX_LENGTHS: &'static [(&'static str, usize)] = &[("volume_type", 64), ("volume_id", 36)];
    const PATCH_ALLOWED: &'static [&'static str] = &[
        "boot_index",
        "extra",
        "node_uuid",
        "properties",
        "volume_id",
        "volume_type",
    ];
    const SORT_KEYS: &'static [&'static str] = &[
        "id",
        "uuid",
        "volume_type",
        "volume_id",
        "boot_index",
        "node_id",
        "created_at",
        "updated_at",
    ];
    const REFUSED_SORT_KEYS: &'static [&'static str] = &["extra", "properties"];
    const FIELDS: &'static [&'static str] = &[
        "uuid",
        "created_at",
        "updated_at",
        "boot_index",
        "extra",
        "properties",
        "volume_id",
        "volume_type",
    ];
    const LIST_FIELDS: &'static [&'static str] =
        &["uuid", "boot_index", "volume_id", "volume_type"];

    fn node_id(&self) -> i32 {
        self.node_id
    }
    fn value(&self, field: &str) -> Value {
        match field {
            "uuid" => json!(self.uuid),
            "created_at" => timestamp(Some(self.created_at)),
            "updated_at" => timestamp(self.updated_at),
            "boot_index" => json!(self.boot_index),
            "extra" => json_column(&self.extra),
            "properties" => {
                let mut properties = json_column(&self.properties);
                mask_secrets(&mut properties);
                properties
            }
            "volume_id" => json!(self.volume_id),
            "volume_type" => json!(self.volume_type),
            _ => Value::Null,
        }
    }
    fn document(&self, node_uuid: &str) -> Value {
        json!({
            "boot_index": self.boot_index,
            "extra": json_column(&self.extra),
            "node_uuid": node_uuid,
            "properties": json_column(&self.properties),
            "volume_id": self.volume_id,
            "volume_type": self.volume_type,
        })
    }
    fn fields(map: &Map<String, Value>, node_id: i32) -> Result<TargetFields, ApiError> {
        let boot_index = map
            .get("boot_index")
            .and_then(Value::as_i64)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Schema error for target: {} is not of type 'integer'",
                    crate::validation::py_repr(map.get("boot_index").unwrap_or(&Value::Null))
                ))
            })?;
        let s = |k: &str| {
            map.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(TargetFields {
            node_id,
            volume_type: s("volume_type"),
            properties: object_text(map, "properties"),
            boot_index,
            volume_id: s("volume_id"),
            extra: object_text(map, "extra"),
        })
    }
    fn duplicate(e: DbError, fields: &TargetFields) -> ApiError {
        if e.is_unique_violation() && e.violation_detail().contains("boot_index") {
            ApiError::Conflict(format!(
                "A volume target with boot index '{}' for the same node already exists.",
                fields.boot_index
            ))
        } else if e.is_unique_violation() {
            ApiError::Conflict("A volume target with this UUID already exists.".into())
        } else {
            e.into()
        }
    }
    fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Self>, DbError> {
        VolumeTarget::by_uuid(conn, uuid)
    }
    fn list(conn: &mut AnyConnection, node_id: Option<i32>) -> Result<Vec<Self>, DbError> {
        VolumeTarget::list(conn, node_id)
    }
    fn insert(conn: &mut AnyConnection, uuid: &str, f: &TargetFields) -> Result<Self, DbError> {
        VolumeTarget::insert(conn, uuid, f)
    }
    fn update(
        conn: &mut AnyConnection,
        id: i32,
        f: &TargetFields,
    ) -> Result<Option<Self>, DbError> {
        VolumeTarget::update(conn, id, f)
    }
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        VolumeTarget::delete(conn, id)
    }
}

fn gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(VERSION) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

fn not_found<R: Resource>(ident: &str) -> ApiError {
    ApiError::NotFound(format!("{} {ident} could not be found.", R::TITLE))
}

fn body<R: Resource>(row: &R, node_uuid: &str, base: &str, fields: Option<&[String]>) -> Value {
    let mut out = Map::new();
    for name in R::FIELDS {
        if fields.is_none_or(|f| f.iter().any(|f| f == name)) {
            out.insert((*name).to_owned(), row.value(name));
        }
    }
    out.insert(
        "links".into(),
        links(
            base,
            &format!("volume/{}/{}", R::PLURAL, Sortable::uuid(row)),
        ),
    );
    if fields.is_none_or(|f| f.iter().any(|f| f == "node_uuid")) {
        out.insert("node_uuid".into(), json!(node_uuid));
    }
    Value::Object(out)
}

fn check_fields<R: Resource>(fields: &[String], version: Microversion) -> Result<(), ApiError> {
    if !version.at_least(8) {
        return Err(ApiError::not_acceptable());
    }
    check_known_fields(fields, |f| {
        R::FIELDS.contains(&f) || ["links", "node_uuid"].contains(&f)
    })
}

async fn find<R: Resource>(state: &AppState, ident: &str) -> Result<(R, Node), ApiError> {
    let uuid = if is_uuid_like(ident) {
        ident.to_lowercase()
    } else {
        return Err(ApiError::BadRequest(format!(
            "Expected UUID for {}_uuid: {ident}",
            R::SINGULAR
        )));
    };
    let found = state
        .db
        .run(move |conn| {
            let Some(row) = R::by_uuid(conn, &uuid)? else {
                return Ok(None);
            };
            Ok(Node::by_id(conn, row.node_id())?.map(|node| (row, node)))
        })
        .await?;
    found.ok_or_else(|| not_found::<R>(ident))
}

async fn node_for(state: &AppState, map: &Map<String, Value>) -> Result<Node, ApiError> {
    let raw = map
        .get("node_uuid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = || {
        ApiError::BadRequest(format!(
            "Invalid input for field/attribute node_uuid. Value: '{raw}'. "
        ))
    };
    if !is_uuid_like(raw) {
        return Err(ApiError::BadRequest(format!(
            "Expected UUID for node_uuid: {raw}"
        )));
    }
    let key = raw.to_lowercase();
    state
        .db
        .run(move |conn| Node::by_uuid(conn, &key))
        .await?
        .ok_or_else(invalid)
}

/// Changes are refused unless the node is powered off (deletion also in
/// the states where a node may be deleted).
fn check_powered_off(node: &Node, action: &str, deleting: bool) -> Result<(), ApiError> {
    if let Some(holder) = &node.reservation {
        return Err(ApiError::node_locked(&node.uuid, holder));
    }
    let deletable =
        ["manageable", "enroll", "adopt failed"].contains(&node.provision_state.as_str());
    if node.power_state.as_deref() == Some("power off") || (deleting && deletable) {
        return Ok(());
    }
    Err(ApiError::BadRequest(format!(
        "The requested action \"{action}\" can not be performed on node \"{}\" while it is in state \"{}\".",
        node.uuid,
        node.power_state.as_deref().unwrap_or("None")
    )))
}

async fn create<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    body_value: Value,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let body_value = if body_value.is_null() {
        json!({})
    } else {
        body_value
    };
    let map = check_object(
        R::SINGULAR,
        &body_value,
        R::SCHEMA,
        R::REQUIRED,
        R::MAX_LENGTHS,
    )?;
    let node = node_for(&state, map).await?;
    let uuid = match map.get("uuid").and_then(Value::as_str) {
        Some(u) => expect_uuid("uuid", u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let fields = R::fields(map, node.id)?;
    let (key, insert) = (uuid.clone(), fields.clone());
    let row = state
        .db
        .run(move |conn| R::insert(conn, &key, &insert))
        .await
        .map_err(|e| R::duplicate(e, &fields))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("{base}/v1/volume/{}/{}", R::PLURAL, Sortable::uuid(&row)),
        ))
        .json(body(&row, &node.uuid, &base, None)))
}

async fn list<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    node_ident: Option<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let query = parse_query(req.query_string());
    let shape = pagination::list_shape(&query, version, false, 0, R::LIST_FIELDS)?;
    if query.contains_key("fields")
        && let Some(f) = &shape.fields
    {
        check_fields::<R>(f, version)?;
    }
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        R::SORT_KEYS,
        R::REFUSED_SORT_KEYS,
    )?;
    let node = match node_ident.as_ref().or(query.get("node")) {
        Some(ident) => Some(find_node(&state, ident, version).await?),
        None => None,
    };
    let node_id = node.as_ref().map(|n| n.id);
    let (rows, uuids) = state
        .db
        .run(move |conn| {
            // Every row: the marker may no longer match the filters.
            let rows = R::list(conn, None)?;
            let ids: Vec<i32> = rows.iter().map(Resource::node_id).collect();
            let uuids = if ids.is_empty() {
                Default::default()
            } else {
                Node::uuids_of(conn, &ids)?
            };
            Ok((rows, uuids))
        })
        .await?;
    let base = base_url(&req, &state);
    let mut fields = shape.fields.clone();
    if let Some(f) = fields.as_mut()
        && !query.contains_key("fields")
    {
        f.push("node_uuid".into());
    }
    let path = match &node {
        Some(node) if node_ident.is_some() => format!("nodes/{}/volume/{}", node.uuid, R::PLURAL),
        _ => format!("volume/{}", R::PLURAL),
    };
    let page = ListPage {
        key: R::PLURAL,
        path: &path,
        base: &base,
        fields: shape.fields.as_deref(),
        filters: &echoed(&query, &["node", "detail"]),
        bytes_per_item: 512,
    };
    let keep = |r: &R| node_id.is_none_or(|id| r.node_id() == id);
    respond(rows, keep, &pagination, &page, not_found::<R>, |r| {
        let node_uuid = uuids.get(&r.node_id()).map_or("", String::as_str);
        body(r, node_uuid, &base, fields.as_deref())
    })
}

async fn show<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    ident: &str,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        check_fields::<R>(f, version)?;
    }
    let (row, node) = find::<R>(&state, ident).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(body(&row, &node.uuid, &base, fields.as_deref())))
}

async fn update<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    ident: &str,
    patch: Value,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let ops = check_patch_ops(&patch)?;
    check_allowed_paths(ops, R::PATCH_ALLOWED)?;
    let (row, node) = find::<R>(&state, ident).await?;
    let node = wait_unlocked(&state, node).await?;
    let mut doc = row.document(&node.uuid);
    apply_patch(&mut doc, ops)?;
    let map = check_object(R::SINGULAR, &doc, R::SCHEMA, R::REQUIRED, R::MAX_LENGTHS)?;
    let target = if map.get("node_uuid").and_then(Value::as_str) == Some(node.uuid.as_str()) {
        node.clone()
    } else {
        node_for(&state, map).await?
    };
    let action = format!("{} update", R::TITLE.to_lowercase());
    check_powered_off(&node, &action, false)?;
    if target.id != node.id {
        check_powered_off(&target, &action, false)?;
    }
    let fields = R::fields(map, target.id)?;
    let (id, write) = (Sortable::id(&row), fields.clone());
    let updated = state
        .db
        .run(move |conn| R::update(conn, id, &write))
        .await
        .map_err(|e| R::duplicate(e, &fields))?;
    let Some(updated) = updated else {
        return Err(write_stopped::<R>(&state, ident).await);
    };
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(body(&updated, &target.uuid, &base, None)))
}

/// Why a guarded write changed nothing: the row is gone (404) or its node
/// is locked (409 naming the holder).
async fn write_stopped<R: Resource>(state: &AppState, ident: &str) -> ApiError {
    match find::<R>(state, ident).await {
        Ok((_, node)) => {
            ApiError::node_locked(&node.uuid, node.reservation.as_deref().unwrap_or("unknown"))
        }
        Err(e) => e,
    }
}

async fn delete<R: Resource>(
    state: web::Data<AppState>,
    version: Microversion,
    ident: &str,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let (row, node) = find::<R>(&state, ident).await?;
    let node = wait_unlocked(&state, node).await?;
    let action = format!("{} deletion", R::TITLE.to_lowercase());
    check_powered_off(&node, &action, true)?;
    let id = Sortable::id(&row);
    if !state.db.run(move |conn| R::delete(conn, id)).await? {
        return Err(write_stopped::<R>(&state, ident).await);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/volume`: links to connectors and targets.
pub async fn root(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    root_links(&req, &state, version, "volume".into())
}

/// `GET /v1/nodes/{ident}/volume`: links to the node's.
pub async fn node_root(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    root_links(&req, &state, version, format!("nodes/{}/volume", node.uuid))
}

fn root_links(
    req: &HttpRequest,
    state: &AppState,
    version: Microversion,
    prefix: String,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(VERSION) {
        return Err(ApiError::NotFound(
            "The API is not supported for this version".into(),
        ));
    }
    let base = base_url(req, state);
    Ok(HttpResponse::Ok().json(json!({
        "links": links(&base, &format!("{prefix}/")),
        "connectors": links(&base, &format!("{prefix}/connectors")),
        "targets": links(&base, &format!("{prefix}/targets")),
    })))
}

/// Generates the actix handlers of one resource.
macro_rules! handlers {
    ($row:ty, $create:ident, $list:ident, $list_node:ident, $show:ident, $update:ident, $delete:ident) => {
        pub async fn $create(
            req: HttpRequest,
            state: web::Data<AppState>,
            version: Microversion,
            JsonBody(body): JsonBody,
        ) -> Result<HttpResponse, ApiError> {
            create::<$row>(req, state, version, body).await
        }

        pub async fn $list(
            req: HttpRequest,
            state: web::Data<AppState>,
            version: Microversion,
        ) -> Result<HttpResponse, ApiError> {
            list::<$row>(req, state, version, None).await
        }

        pub async fn $list_node(
            req: HttpRequest,
            state: web::Data<AppState>,
            version: Microversion,
            path: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            list::<$row>(req, state, version, Some(path.into_inner())).await
        }

        pub async fn $show(
            req: HttpRequest,
            state: web::Data<AppState>,
            version: Microversion,
            path: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            show::<$row>(req, state, version, &path).await
        }

        pub async fn $update(
            req: HttpRequest,
            state: web::Data<AppState>,
            version: Microversion,
            path: web::Path<String>,
            JsonBody(body): JsonBody,
        ) -> Result<HttpResponse, ApiError> {
            update::<$row>(req, state, version, &path, body).await
        }

        pub async fn $delete(
            state: web::Data<AppState>,
            version: Microversion,
            path: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            delete::<$row>(state, version, &path).await
        }
    };
}

handlers!(
    VolumeConnector,
    create_connector,
    list_connectors,
    list_node_connectors,
    show_connector,
    update_connector,
    delete_connector
);
handlers!(
    VolumeTarget,
    create_target,
    list_targets,
    list_node_targets,
    show_target,
    update_target,
    delete_target
);
