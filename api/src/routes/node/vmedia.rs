//! `vmedia` (1.89 attach/detach, 1.93 list): through the node's conductor
//! (the `redfish` management interface; others refuse as Ironic does).

use actix_web::{HttpResponse, web};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{AttachVirtualMedia, DetachVirtualMedia, GetVirtualMedia};
use serde_json::Value;

use super::unknown_path;
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::routes::common::find_node;
use crate::validation::{Kind as CheckKind, check_object, py_repr};

/// Ironic's `boot_devices.VMEDIA_DEVICES`.
const VMEDIA_DEVICES: [&str; 3] = ["disk", "cdrom", "floppy"];

/// `GET /v1/nodes/{ident}/vmedia` (1.93): the BMC's virtual media devices
/// (`redfish` management only).
pub async fn list_vmedia(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(93) {
        return Err(unknown_path());
    }
    let node = find_node(&state, &path, version).await?;
    let kind = Kind::GetVirtualMedia(GetVirtualMedia {});
    let media = state
        .ask(&node, &request_id.0, kind, |reply| match reply {
            Outcome::VirtualMedia(media) => Some(media.devices_json),
            _ => None,
        })
        .await?;
    let devices: Value = serde_json::from_str(&media)
        .map_err(|e| ApiError::Internal(format!("Unexpected conductor reply: {e}")))?;
    Ok(HttpResponse::Ok().json(devices))
}

/// `POST /v1/nodes/{ident}/vmedia` (1.89): checked as Ironic's schema
/// checks it, then accepted by the node's conductor (204); the attachment
/// happens in the background and a failure lands in `last_error`.
pub async fn attach_vmedia(
    Call(_, state, version, request_id): Call,
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
    Call(_, state, version, request_id): Call,
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
