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
//! - `vmedia` (1.89 attach/detach, 1.93 list): through the node's
//!   conductor (the `redfish` management interface; others refuse as
//!   Ironic does);
//! - `firmware` (1.86): no firmware components are recorded.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::node::{Node, NodeSettings};
use serde_json::{Value, json};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::microversion::{Microversion, RequestId};
use crate::pagination::parse_bool;
use crate::routes::common::{base_url, find_node};
use crate::state::AppState;
use crate::validation::{Kind as CheckKind, check_object, py_repr};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{AttachVirtualMedia, DetachVirtualMedia, GetVirtualMedia};

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

/// Ironic's `boot_devices.VMEDIA_DEVICES`.
const VMEDIA_DEVICES: [&str; 3] = ["disk", "cdrom", "floppy"];

/// `GET /v1/nodes/{ident}/vmedia` (1.93): the BMC's virtual media devices
/// (`redfish` management only).
pub async fn list_vmedia(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(93) {
        return Err(unknown_path());
    }
    let node = find_node(&state, &path, version).await?;
    match state
        .call(
            &node,
            &request_id.0,
            Kind::GetVirtualMedia(GetVirtualMedia {}),
        )
        .await?
    {
        Outcome::VirtualMedia(media) => {
            let devices: Value = serde_json::from_str(&media.devices_json)
                .map_err(|e| ApiError::Internal(format!("Unexpected conductor reply: {e}")))?;
            Ok(HttpResponse::Ok().json(devices))
        }
        _ => Err(ApiError::Internal("Unexpected conductor reply.".into())),
    }
}

/// `POST /v1/nodes/{ident}/vmedia` (1.89): checked as Ironic's schema
/// checks it, then accepted by the node's conductor (204); the attachment
/// happens in the background and a failure lands in `last_error`.
pub async fn attach_vmedia(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(89) {
        return Err(unknown_path());
    }
    let map = check_object(
        "vmedia",
        &body,
        &[
            ("device_type", CheckKind::String),
            ("image_url", CheckKind::String),
            ("image_download_source", CheckKind::String),
        ],
        &["device_type", "image_url"],
        &[],
    )?;
    let text = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or_default();
    for (key, allowed) in [
        ("device_type", &VMEDIA_DEVICES[..]),
        ("image_download_source", &["http", "local", "swift"][..]),
    ] {
        if map.contains_key(key) && !allowed.contains(&text(key)) {
            return Err(ApiError::BadRequest(format!(
                "Schema error for vmedia: {} is not one of [{}]",
                py_repr(&map[key]),
                allowed
                    .iter()
                    .map(|v| format!("'{v}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if text("image_download_source") == "swift" {
        return Err(ApiError::BadRequest(
            "image_download_source swift is not supported by Ferric (it has no Swift); use local or http."
                .into(),
        ));
    }
    let image_url = text("image_url");
    let scheme = image_url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_default();
    if !["http", "https", "nfs", "cifs", "smb"].contains(&scheme.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "Unsupported or missing URL scheme: {scheme}"
        )));
    }
    let node = find_node(&state, &path, version).await?;
    let request = AttachVirtualMedia {
        device_type: text("device_type").to_owned(),
        image_url: image_url.to_owned(),
        image_download_source: match text("image_download_source") {
            "" => "local".to_owned(),
            source => source.to_owned(),
        },
    };
    state
        .call(&node, &request_id.0, Kind::AttachVirtualMedia(request))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v1/nodes/{ident}/vmedia[?device_types=cdrom,floppy]` (1.89):
/// 204; the devices (all when none is named) are ejected in the background.
pub async fn detach_vmedia(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(89) {
        return Err(unknown_path());
    }
    let device_types: Vec<String> = query
        .iter()
        .filter(|(key, _)| key == "device_types")
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let invalid: Vec<&str> = device_types
        .iter()
        .map(String::as_str)
        .filter(|t| !VMEDIA_DEVICES.contains(t))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Invalid device type(s) {} (valid are {})",
            invalid.join(", "),
            VMEDIA_DEVICES.join(", ")
        )));
    }
    let node = find_node(&state, &path, version).await?;
    state
        .call(
            &node,
            &request_id.0,
            Kind::DetachVirtualMedia(DetachVirtualMedia { device_types }),
        )
        .await?;
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
