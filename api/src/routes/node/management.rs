//! `management`: the boot device (get, set, supported), `inject_nmi`
//! (1.29) through the node's conductor, and `indicators` (1.63).

use actix_web::{HttpResponse, web};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{GetBootDevice, GetSupportedBootDevices, InjectNmi, SetBootDevice};
use serde_json::json;

use super::{object, required_str, unknown_path, unsupported};
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

/// `GET /v1/nodes/{ident}/management/indicators` (1.63): the `fake`
/// management interface's LEDs.
pub async fn indicators(
    Call(req, state, version, _): Call,
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
