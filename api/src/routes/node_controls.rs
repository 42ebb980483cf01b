//! Node sub-resources whose behaviour, with the interfaces Ferric has, is
//! Ironic's answer for those interfaces:
//! - `vifs` (1.28) with the `noop` network interface: attach and detach are
//!   accepted and change nothing, the list is empty (a locked node still
//!   answers 409);
//! - `states/console`: the `fake` console only flips `console_enabled`;
//!   `no-console` refuses;
//! - `states/raid` (1.12): the requested layout is checked and stored as
//!   `target_raid_config` (the `fake` RAID interface); `no-raid` refuses;
//! - `management/indicators` (1.63): the `fake` management's two LEDs;
//! - `vendor_passthru/methods`: the `fake` vendor interface's methods;
//! - `vmedia` (1.89 attach/detach, 1.93 list): no Ferric interface
//!   implements virtual media yet, so listing refuses as Ironic does for
//!   such drivers;
//! - `firmware` (1.86): no firmware components are recorded.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::node::{Node, NodeSettings};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::parse_bool;
use crate::routes::common::{base_url, find_node};
use crate::state::AppState;
use crate::validation::py_repr;

fn unknown_path() -> ApiError {
    ApiError::routing(StatusCode::NOT_FOUND, "")
}

fn unsupported(node: &Node, what: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Driver {} does not support {what} (disabled or not implemented).",
        node.driver
    ))
}

async fn unlocked(state: &AppState, ident: &str, version: Microversion) -> Result<Node, ApiError> {
    let node = find_node(state, ident, version).await?;
    if let Some(holder) = &node.reservation {
        return Err(ApiError::node_locked(&node.uuid, holder));
    }
    Ok(node)
}

async fn write(state: &AppState, node: &Node, settings: NodeSettings) -> Result<(), ApiError> {
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

/// `GET /v1/nodes/{ident}/vifs`: `noop` networking records no VIFs.
pub async fn list_vifs(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(28) {
        return Err(unknown_path());
    }
    find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(json!({ "vifs": [] })))
}

/// `POST /v1/nodes/{ident}/vifs` with `{"id": …}`.
pub async fn attach_vif(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(28) {
        return Err(unknown_path());
    }
    let schema_error = |m: String| ApiError::BadRequest(format!("Schema error for vif: {m}"));
    let Value::Object(map) = &body else {
        return Err(schema_error(format!(
            "{} is not of type 'object'",
            py_repr(&body)
        )));
    };
    match map.get("id") {
        None => return Err(schema_error("'id' is a required property".into())),
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'string'",
                py_repr(other)
            )));
        }
    }
    unlocked(&state, &path, version).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v1/nodes/{ident}/vifs/{vif}`.
pub async fn detach_vif(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(28) {
        return Err(unknown_path());
    }
    let (ident, _vif) = path.into_inner();
    unlocked(&state, &ident, version).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn console_supported(node: &Node) -> bool {
    node.console_interface
        .as_deref()
        .is_some_and(|c| c != "no-console")
}

/// `GET /v1/nodes/{ident}/states/console`.
pub async fn get_console(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    if !console_supported(&node) {
        return Err(unsupported(&node, "console"));
    }
    let info = if node.console_enabled {
        json!({})
    } else {
        Value::Null
    };
    Ok(HttpResponse::Ok().json(json!({
        "console_enabled": node.console_enabled,
        "console_info": info,
    })))
}

/// `PUT /v1/nodes/{ident}/states/console` with `{"enabled": bool}`: 202.
pub async fn set_console(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let enabled = match body.get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => parse_bool("enabled", s).map_err(|_| {
            ApiError::BadRequest(format!(
                "Invalid enabled: Unrecognized value '{s}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            ))
        })?,
        _ => {
            return Err(ApiError::BadRequest(
                "Missing argument: \"enabled\"".into(),
            ));
        }
    };
    let node = unlocked(&state, &path, version).await?;
    if !console_supported(&node) {
        return Err(unsupported(&node, "console"));
    }
    write(
        &state,
        &node,
        NodeSettings {
            console_enabled: Some(enabled),
            ..NodeSettings::default()
        },
    )
    .await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Accepted()
        .insert_header((
            "Location",
            format!("{base}/v1/nodes/{}/states/console", path.as_str()),
        ))
        .finish())
}

/// Checks one logical disk of a RAID layout (Ironic's
/// `raid_config_schema.json`, the parts clients trip over).
fn check_logical_disk(disk: &Value) -> Result<(), String> {
    let Value::Object(disk) = disk else {
        return Err(format!("{} is not of type 'object'", py_repr(disk)));
    };
    for key in ["raid_level", "size_gb"] {
        if !disk.contains_key(key) {
            return Err(format!("'{key}' is a required property"));
        }
    }
    const LEVELS: [&str; 9] = ["0", "1", "2", "5", "6", "1+0", "5+0", "6+0", "JBOD"];
    match disk["raid_level"].as_str() {
        Some(level) if LEVELS.contains(&level) => {}
        _ => {
            return Err(format!(
                "{} is not one of [{}]",
                py_repr(&disk["raid_level"]),
                LEVELS.map(|l| format!("'{l}'")).join(", ")
            ));
        }
    }
    match &disk["size_gb"] {
        Value::Number(n) if n.as_u64().is_some_and(|v| v > 0) => {}
        Value::String(s) if s == "MAX" => {}
        other => {
            return Err(format!(
                "{} is not valid under any of the given schemas",
                py_repr(other)
            ));
        }
    }
    Ok(())
}

/// `PUT /v1/nodes/{ident}/states/raid` (1.12): the target RAID layout.
pub async fn set_raid(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(12) {
        return Err(unknown_path());
    }
    let invalid = |m: String| ApiError::BadRequest(format!("RAID config validation error: {m}"));
    let Value::Object(config) = &body else {
        return Err(invalid(format!(
            "{} is not of type 'object'",
            py_repr(&body)
        )));
    };
    let Some(disks) = config.get("logical_disks") else {
        return Err(invalid("'logical_disks' is a required property".into()));
    };
    let Value::Array(disks) = disks else {
        return Err(invalid(format!(
            "{} is not of type 'array'",
            py_repr(disks)
        )));
    };
    for disk in disks {
        check_logical_disk(disk).map_err(invalid)?;
    }
    let node = unlocked(&state, &path, version).await?;
    if node
        .raid_interface
        .as_deref()
        .is_none_or(|r| r == "no-raid")
    {
        return Err(unsupported(&node, "raid"));
    }
    write(
        &state,
        &node,
        NodeSettings {
            target_raid_config: Some(Value::Object(config.clone()).to_string()),
            ..NodeSettings::default()
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/nodes/{ident}/management/indicators` (1.63): the `fake`
/// management interface's LEDs.
pub async fn indicators(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(63) {
        return Err(unknown_path());
    }
    let node = find_node(&state, &path, version).await?;
    if node.management_interface.as_deref() != Some("fake") {
        return Err(unsupported(&node, "get_supported_indicators"));
    }
    let base = base_url(&req, &state);
    let ident = path.as_str();
    let indicator = |name: &str, component: &str, readonly: bool, states: &[&str]| {
        json!({
            "name": name,
            "component": component,
            "readonly": readonly,
            "states": states,
            "links": crate::views::links(&base, &format!("nodes/{ident}/management/indicators/{name}")),
        })
    };
    Ok(HttpResponse::Ok().json(json!({
        "indicators": [
            indicator("led-0@chassis", "chassis", true, &["off", "on"]),
            indicator("led@system", "system", false, &["blinking", "off", "on"]),
        ]
    })))
}

/// The `fake` vendor interface's passthru methods.
fn fake_vendor_methods() -> Value {
    let method = |description: &str, is_async: bool, exclusive: bool| {
        json!({
            "http_methods": ["POST"],
            "async": is_async,
            "description": description,
            "attach": false,
            "require_exclusive_lock": exclusive,
        })
    };
    json!({
        "fourth_method_shared_lock": method("Test if the value of bar is woof", true, false),
        "log_passthrough": method("Test pass-through to wait.", true, true),
        "second_method": method("Test if the value of bar is kazoo", true, true),
        "third_method_sync": method("Test if the value of bar is meow", false, true),
    })
}

/// `GET /v1/nodes/{ident}/vendor_passthru/methods`.
pub async fn vendor_methods(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    match node.vendor_interface.as_deref() {
        Some("fake") => Ok(HttpResponse::Ok().json(fake_vendor_methods())),
        _ => Ok(HttpResponse::Ok().json(json!({}))),
    }
}

/// `/v1/nodes/{ident}/vendor_passthru?method=…`: Ferric runs no vendor
/// methods yet; an unknown one gets Ironic's message.
pub async fn vendor_passthru(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = crate::pagination::parse_query(req.query_string());
    let node = find_node(&state, &path, version).await?;
    let Some(method) = query.get("method") else {
        return Err(ApiError::BadRequest("Method not specified".into()));
    };
    let methods = match node.vendor_interface.as_deref() {
        Some("fake") => fake_vendor_methods(),
        _ => json!({}),
    };
    if methods.get(method).is_none() {
        return Err(ApiError::BadRequest(format!(
            "No handler for method {method}"
        )));
    }
    Err(unsupported(
        &node,
        &format!("vendor passthru method {method}"),
    ))
}

/// `GET /v1/nodes/{ident}/vmedia` (1.93).
pub async fn list_vmedia(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(93) {
        return Err(unknown_path());
    }
    let node = find_node(&state, &path, version).await?;
    Err(unsupported(&node, "get_virtual_media"))
}

/// `POST /v1/nodes/{ident}/vmedia` (1.89): checked, then refused by the
/// boot interface (Ironic accepts and fails later with `last_error`;
/// Ferric says so at once).
pub async fn attach_vmedia(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(89) {
        return Err(unknown_path());
    }
    let map: Map<String, Value> = match body {
        Value::Object(map) => map,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Schema error for vmedia: {} is not of type 'object'",
                py_repr(&other)
            )));
        }
    };
    for key in ["device_type", "image_url"] {
        if !map.contains_key(key) {
            return Err(ApiError::BadRequest(format!(
                "Schema error for vmedia: '{key}' is a required property"
            )));
        }
    }
    let node = find_node(&state, &path, version).await?;
    Err(unsupported(&node, "attach_virtual_media"))
}

/// `DELETE /v1/nodes/{ident}/vmedia` (1.89): 204, as in Ironic.
pub async fn detach_vmedia(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(89) {
        return Err(unknown_path());
    }
    // Nothing can be attached, so there is nothing to detach.
    find_node(&state, &path, version).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/nodes/{ident}/firmware` (1.86).
pub async fn firmware(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(86) {
        return Err(unknown_path());
    }
    find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(json!({ "firmware": [] })))
}
