//! `management`: the boot device (get, set, supported), `inject_nmi`
//! (1.29) through the node's conductor, and `indicators` (1.63).

use actix_web::{HttpResponse, web};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{GetBootDevice, GetSupportedBootDevices, InjectNmi, SetBootDevice};
use serde_json::{Value, json};

use super::{object, required_str, unsupported};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::routes::common::{base_url, find_node};
use crate::validation::{boolean, no_unexpected};

/// `GET /v1/nodes/{ident}/management/boot_device`.
pub async fn get_boot_device(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    let kind = Kind::GetBootDevice(GetBootDevice {});
    let device = state
        .ask(&node, &request_id.0, kind, |reply| match reply {
            Outcome::BootDevice(device) => Some(device),
            _ => None,
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "boot_device": device.boot_device,
        "persistent": device.persistent,
    })))
}

/// `GET /v1/nodes/{ident}/management/boot_device/supported`.
pub async fn supported_boot_devices(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    let kind = Kind::GetSupportedBootDevices(GetSupportedBootDevices {});
    let devices = state
        .ask(&node, &request_id.0, kind, |reply| match reply {
            Outcome::SupportedBootDevices(devices) => Some(devices.boot_devices),
            _ => None,
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "supported_boot_devices": devices })))
}

/// `PUT /v1/nodes/{ident}/management/boot_device`.
pub async fn set_boot_device(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = object(body)?;
    no_unexpected(&map, &["boot_device", "persistent"])?;
    let boot_device = required_str(&map, "boot_device")?;
    let persistent = match map.get("persistent") {
        Some(v) => boolean("persistent", v)?.unwrap_or(false),
        None => false,
    };
    let node = find_node(&state, &path, version).await?;
    let kind = Kind::SetBootDevice(SetBootDevice {
        boot_device,
        persistent,
    });
    state.call(&node, &request_id.0, kind).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /v1/nodes/{ident}/management/inject_nmi` (1.29+): 204.
pub async fn inject_nmi(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(29) {
        return Err(ApiError::NotFound("Resource could not be found.".into()));
    }
    no_unexpected(&object(body)?, &[])?;
    let node = find_node(&state, &path, version).await?;
    state
        .call(&node, &request_id.0, Kind::InjectNmi(InjectNmi {}))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The `fake` management interface's LEDs: name, component, read-only,
/// states.
const FAKE_INDICATORS: [(&str, &str, bool, &[&str]); 2] = [
    ("led-0", "chassis", true, &["off", "on"]),
    ("led", "system", false, &["blinking", "off", "on"]),
];

/// `GET /v1/nodes/{ident}/management/indicators` (documented from 1.63;
/// Ironic 39 serves it at every version, and so does Ferric): the `fake`
/// management interface's LEDs.
pub async fn indicators(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
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
    let all: Vec<Value> = FAKE_INDICATORS
        .iter()
        .map(|(name, component, readonly, states)| {
            indicator(&format!("{name}@{component}"), component, *readonly, states)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "indicators": all })))
}

/// `GET /v1/nodes/{ident}/management/indicators/{name@component}`: the
/// `fake` interface's LEDs are all on, as Ironic's.
pub async fn indicator_state(
    Call(_, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ident, unique) = path.into_inner();
    let node = find_node(&state, &ident, version).await?;
    if node.management_interface.as_deref() != Some("fake") {
        return Err(unsupported(&node, "get_indicator_state"));
    }
    let Some((name, component)) = unique.split_once('@') else {
        return Err(ApiError::BadRequest(format!(
            "Malformed indicator name \"{unique}\""
        )));
    };
    if !FAKE_INDICATORS.iter().any(|(_, c, _, _)| *c == component) {
        return Err(ApiError::BadRequest(format!(
            "Invalid component {component} specified."
        )));
    }
    if !FAKE_INDICATORS
        .iter()
        .any(|(n, c, _, _)| *n == name && *c == component)
    {
        return Err(ApiError::BadRequest(format!(
            "Invalid indicator {name} specified."
        )));
    }
    Ok(HttpResponse::Ok().json(json!({"state": "on"})))
}

/// `PUT /v1/nodes/{ident}/management/indicators/{name@component}`: no
/// interface of Ferric's sets indicators (Ironic's `fake` does not either).
pub async fn set_indicator_state(
    Call(_, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path.0, version).await?;
    Err(unsupported(&node, "set_indicator_state"))
}
