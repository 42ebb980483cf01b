//! `states` and the state changes below it that are not provisioning:
//! `states/power`, `states/boot_mode` and `states/secure_boot` (1.76).
//! Each is a task for the node's conductor; the API checks input and relays.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_common::states::{ProvisionState, power};
use ferric_proto::v1::PowerAction;
use ferric_proto::v1::task::Kind;
use serde_json::Value;

use super::{accepted_at, object, required_str};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::routes::common::find_node;
use crate::validation::no_unexpected;
use crate::views::node::states_body;

/// `GET /v1/nodes/{ident}/states`.
pub async fn get_states(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(states_body(&node, version)))
}

/// `PUT /v1/nodes/{ident}/states/power`.
pub async fn set_power(
    Call(req, state, version, request_id): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = object(body)?;
    no_unexpected(&map, &["target", "timeout"])?;
    let target = required_str(&map, "target")?;
    let node = find_node(&state, &path, version).await?;
    let timeout = match map.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("Expected an integer for timeout: {v}"))
                })?,
        ),
    };
    let soft = target == power::SOFT_REBOOT || target == power::SOFT_POWER_OFF;
    if (soft || timeout.is_some()) && !version.at_least(27) {
        return Err(ApiError::not_acceptable());
    }
    if timeout.is_some_and(|t| t < 1) {
        return Err(ApiError::BadRequest(
            "timeout has to be positive integer".into(),
        ));
    }
    let invalid = |state_name: &str| {
        ApiError::BadRequest(format!(
            "The requested action \"{target}\" can not be performed on node \"{}\" while it is in state \"{state_name}\".",
            path.as_str()
        ))
    };
    if !power::TARGETS.iter().any(|(t, _)| *t == target) {
        return Err(invalid(node.power_state.as_deref().unwrap_or("None")));
    }
    if matches!(node.provision_state.as_str(), "cleaning" | "clean wait") {
        return Err(invalid(&node.provision_state));
    }
    if node.disable_power_off && (target == power::POWER_OFF || target == power::SOFT_POWER_OFF) {
        return Err(ApiError::Conflict(format!(
            "Failed to set node power state to {target}."
        )));
    }
    let action = PowerAction {
        target,
        timeout_seconds: timeout.and_then(|t| u32::try_from(t).ok()).unwrap_or(0),
    };
    state
        .call(&node, &request_id.0, Kind::Power(action))
        .await?;
    Ok(accepted_at(&req, &state, &path))
}

/// `PUT /v1/nodes/{ident}/states/boot_mode` (1.76) with `{"target": …}`.
pub async fn set_boot_mode(
    call: Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    set_boot_setting(call, &path, || {
        let target = body
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !["bios", "uefi"].contains(&target) {
            return Err(ApiError::BadRequest(format!(
                "Invalid boot mode {target} requested for node. Allowed boot modes are: bios, uefi"
            )));
        }
        Ok(Kind::SetBootMode(ferric_proto::v1::SetBootMode {
            target: target.to_owned(),
        }))
    })
    .await
}

/// `PUT /v1/nodes/{ident}/states/secure_boot` (1.76) with `{"target": bool}`.
pub async fn set_secure_boot(
    call: Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    set_boot_setting(call, &path, || {
        let bad = |raw: String| {
            ApiError::BadRequest(format!(
                "Invalid target: Unrecognized value '{raw}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            ))
        };
        let enabled = match body.get("target") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => {
                crate::pagination::parse_bool("target", s).map_err(|_| bad(s.clone()))?
            }
            Some(other) => return Err(bad(other.to_string())),
            None => return Err(bad("None".into())),
        };
        Ok(Kind::SetSecureBoot(ferric_proto::v1::SetSecureBoot {
            enabled,
        }))
    })
    .await
}

/// A boot mode or secure boot change (1.76): the node found, the version
/// checked, the request read by `task`, refused while the node moves
/// between states, then the node's conductor's.
async fn set_boot_setting(
    Call(req, state, version, request_id): Call,
    path: &str,
    task: impl FnOnce() -> Result<Kind, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, path, version).await?;
    boot_mode_gate(version)?;
    let kind = task()?;
    refuse_while_transitioning(&node)?;
    state.call(&node, &request_id.0, kind).await?;
    Ok(accepted_at(&req, &state, path))
}

fn boot_mode_gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(76) {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "This endpoint is supported starting with the API version 1.76".into(),
        ))
    }
}

/// Boot settings do not change while the node moves between states.
fn refuse_while_transitioning(node: &Node) -> Result<(), ApiError> {
    let stable = node
        .provision_state
        .parse::<ProvisionState>()
        .is_ok_and(ProvisionState::is_stable);
    if stable {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "Node is in {} state. Since node is transitioning, the boot mode will not be set as this may interfere with ongoing changes and result in erroneous modification. Try again later.",
            node.provision_state
        )))
    }
}
