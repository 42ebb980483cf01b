//! Node sub-resources that act on hardware or state: `states`,
//! `states/power`, `states/provision`, `management/boot_device`,
//! `maintenance`, `validate` and `traits`. Hardware and state changes are
//! tasks for the owning conductor; the API only checks input and relays.

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_common::states::{ProvisionState, Verb, power};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{
    GetBootDevice, GetSupportedBootDevices, InjectNmi, PowerAction, ProvisionAction, SetBootDevice,
    ValidateInterfaces,
};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::microversion::{Microversion, RequestId};
use crate::routes::common::{base_url, find_node};
use crate::state::AppState;
use crate::validation::{boolean, check_trait, no_unexpected};
use crate::views::node::states_body;

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ApiError::BadRequest(
            "Invalid request body: expected a JSON object.".into(),
        )),
    }
}

fn required_str(map: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Err(ApiError::BadRequest(format!(
            "Missing mandatory parameter: {key}"
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Expected string for {key}: {other}"
        ))),
    }
}

fn accepted_at(req: &HttpRequest, state: &AppState, ident: &str) -> HttpResponse {
    let base = base_url(req, state);
    HttpResponse::Accepted()
        .insert_header(("Location", format!("{base}/v1/nodes/{ident}/states")))
        .finish()
}

/// `GET /v1/nodes/{ident}/states`.
pub async fn get_states(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(states_body(&node, version)))
}

/// `PUT /v1/nodes/{ident}/states/power`.
pub async fn set_power(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
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

/// Body keys of a provision request.
const PROVISION_KEYS: [&str; 8] = [
    "target",
    "configdrive",
    "clean_steps",
    "deploy_steps",
    "rescue_password",
    "disable_ramdisk",
    "service_steps",
    "runbook",
];

/// `PUT /v1/nodes/{ident}/states/provision`.
pub async fn set_provision(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = object(body)?;
    no_unexpected(&map, &PROVISION_KEYS)?;
    let target = required_str(&map, "target")?;
    let node = find_node(&state, &path, version).await?;
    let verb = target.parse::<Verb>().ok();
    if let Some(verb) = verb {
        // Ironic gates by the internal verb, so `undeploy` is not gated.
        if verb != Verb::Undeploy && !version.at_least(verb.min_minor_version()) {
            return Err(ApiError::not_acceptable());
        }
    }
    if node.maintenance
        && let Some(op) = verb.and_then(Verb::refused_in_maintenance)
    {
        return Err(ApiError::BadRequest(format!(
            "The {op} operation can't be performed on node {} because it's in maintenance mode.",
            node.uuid
        )));
    }
    if node.protected && verb.is_some_and(Verb::refused_when_protected) {
        return Err(ApiError::Forbidden(format!(
            "Node {} is protected and cannot be undeployed, rebuilt or deleted",
            node.uuid
        )));
    }
    let current: Option<ProvisionState> = node.provision_state.parse().ok();
    let allowed = match (verb, current) {
        (Some(verb), Some(current)) => current.next(verb.event()).is_some(),
        _ => false,
    };
    if !allowed {
        if let Some(holder) = &node.reservation {
            return Err(ApiError::node_locked(&node.uuid, holder));
        }
        return Err(ApiError::BadRequest(format!(
            "The requested action \"{target}\" can not be performed on node \"{}\" while it is in state \"{}\".",
            node.uuid, node.provision_state
        )));
    }
    let Some(verb) = verb else {
        return Err(ApiError::BadRequest(format!(
            "The requested action \"{target}\" could not be understood."
        )));
    };
    if let Some(current) = current
        && !verb.allowed_from(current, version.minor())
    {
        return Err(ApiError::not_acceptable());
    }
    let configdrive = map
        .get("configdrive")
        .filter(|v| !v.is_null() && *v != &json!(""));
    if let Some(cd) = configdrive {
        if !matches!(verb, Verb::Active | Verb::Deploy | Verb::Rebuild)
            || (verb == Verb::Rebuild && !version.at_least(35))
        {
            return Err(ApiError::BadRequest(
                "Adding a config drive is only supported when setting provision state to active, rebuild".into(),
            ));
        }
        match cd {
            Value::Object(_) if !version.at_least(56) => {
                return Err(ApiError::BadRequest(
                    "Providing a JSON object for configdrive is only supported starting with API version 1.56".into(),
                ));
            }
            Value::Object(_) | Value::String(_) => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid configdrive format: {other} is not of type 'object', 'string'"
                )));
            }
        }
    }
    let steps = |key: &str| map.get(key).filter(|v| !v.is_null()).cloned();
    let mut clean_steps = steps("clean_steps");
    let deploy_steps = steps("deploy_steps");
    let mut service_steps = steps("service_steps");
    let mut disable_ramdisk = match map.get("disable_ramdisk").filter(|v| !v.is_null()) {
        Some(v) => boolean("disable_ramdisk", v)?,
        None => None,
    };
    if let Some(ident) = map.get("runbook").filter(|v| !v.is_null()) {
        let runbook = runbook_steps(&state, &node, ident, version).await?;
        let slot = match verb {
            Verb::Clean => Some(("clean_steps", &mut clean_steps)),
            Verb::Service => Some(("service_steps", &mut service_steps)),
            _ => None,
        };
        let Some((key, slot)) = slot else {
            return Err(ApiError::BadRequest(
                "\"runbooks\" is only valid when setting target provision state to any of ['clean', 'service']".into(),
            ));
        };
        if slot
            .as_ref()
            .is_some_and(|s| s.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(ApiError::BadRequest(format!(
                "Please provide either \"{key}\" or a runbook, but not both."
            )));
        }
        *slot = Some(runbook.steps);
        disable_ramdisk = Some(runbook.disable_ramdisk);
    }
    if disable_ramdisk == Some(true) {
        let needed = match verb {
            Verb::Clean => Some(70),
            Verb::Service => Some(108),
            _ => None,
        };
        match needed {
            Some(minor) if !version.at_least(minor) => {
                return Err(ApiError::NotAcceptable(
                    "disable_ramdisk is not acceptable in this API version".into(),
                ));
            }
            None => {
                return Err(ApiError::BadRequest(
                    "disable_ramdisk is supported only with manual cleaning or servicing".into(),
                ));
            }
            _ => {}
        }
    }
    if clean_steps.is_some() && verb != Verb::Clean {
        return Err(ApiError::BadRequest(
            "\"clean_steps\" is only valid when setting target provision state to clean".into(),
        ));
    }
    if deploy_steps.is_some() {
        if !version.at_least(69) {
            return Err(ApiError::NotAcceptable(
                "Request not acceptable. The minimal required API version should be 1.69".into(),
            ));
        }
        if !matches!(verb, Verb::Active | Verb::Deploy | Verb::Rebuild) {
            return Err(ApiError::BadRequest(
                "\"deploy_steps\" is only valid when setting target provision state to active or rebuild".into(),
            ));
        }
    }
    let rescue_password = map.get("rescue_password").filter(|v| !v.is_null());
    if rescue_password.is_some() && verb != Verb::Rescue {
        return Err(ApiError::BadRequest(
            "\"rescue_password\" is only valid when setting target provision state to rescue"
                .into(),
        ));
    }
    if service_steps.is_some() && verb != Verb::Service {
        return Err(ApiError::BadRequest(
            "\"service_steps\" is only valid when setting target provision state to service".into(),
        ));
    }
    for (key, value) in [
        ("clean_steps", &clean_steps),
        ("deploy_steps", &deploy_steps),
        ("service_steps", &service_steps),
    ] {
        if let Some(v) = value
            && !v.is_array()
        {
            return Err(ApiError::BadRequest(format!(
                "Invalid {key}: {} is not of type 'array'",
                crate::validation::py_repr(v)
            )));
        }
    }
    if verb == Verb::Clean
        && clean_steps
            .as_ref()
            .is_none_or(|s| s.as_array().is_none_or(Vec::is_empty))
    {
        return Err(ApiError::BadRequest(
            "\"clean_steps\" is required when setting target provision state to clean".into(),
        ));
    }
    if verb == Verb::Service
        && service_steps.is_none()
        && map.get("runbook").is_none_or(Value::is_null)
    {
        return Err(ApiError::BadRequest(
            "\"service_steps\" is required when setting target provision state to service".into(),
        ));
    }
    let rescue_password = match (verb, rescue_password) {
        (Verb::Rescue, Some(Value::String(p))) if !p.trim().is_empty() => Some(p.clone()),
        (Verb::Rescue, _) => {
            return Err(ApiError::BadRequest(
                "A non-empty \"rescue_password\" is required when setting target provision state to rescue".into(),
            ));
        }
        _ => None,
    };
    let action = ProvisionAction {
        verb: verb.as_str().to_owned(),
        configdrive_json: configdrive.map(Value::to_string),
        clean_steps_json: clean_steps.map(|v| v.to_string()),
        deploy_steps_json: deploy_steps.map(|v| v.to_string()),
        service_steps_json: service_steps.map(|v| v.to_string()),
        rescue_password,
        disable_ramdisk,
    };
    state
        .call(&node, &request_id.0, Kind::Provision(action))
        .await?;
    Ok(accepted_at(&req, &state, &path))
}

/// `GET /v1/nodes/{ident}/management/boot_device`.
pub async fn get_boot_device(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    match state
        .call(&node, &request_id.0, Kind::GetBootDevice(GetBootDevice {}))
        .await?
    {
        Outcome::BootDevice(device) => Ok(HttpResponse::Ok().json(json!({
            "boot_device": device.boot_device,
            "persistent": device.persistent,
        }))),
        _ => Err(ApiError::Internal("Unexpected conductor reply.".into())),
    }
}

/// `GET /v1/nodes/{ident}/management/boot_device/supported`.
pub async fn supported_boot_devices(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    let kind = Kind::GetSupportedBootDevices(GetSupportedBootDevices {});
    match state.call(&node, &request_id.0, kind).await? {
        Outcome::SupportedBootDevices(devices) => {
            Ok(HttpResponse::Ok().json(json!({ "supported_boot_devices": devices.boot_devices })))
        }
        _ => Err(ApiError::Internal("Unexpected conductor reply.".into())),
    }
}

/// `PUT /v1/nodes/{ident}/management/boot_device`.
pub async fn set_boot_device(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
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
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
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

/// `GET /v1/nodes/{ident}/validate` and `GET /v1/nodes/validate?node=`.
async fn validate(
    state: web::Data<AppState>,
    request_id: RequestId,
    node: &Node,
) -> Result<HttpResponse, ApiError> {
    match state
        .call(node, &request_id.0, Kind::Validate(ValidateInterfaces {}))
        .await?
    {
        Outcome::Validation(validation) => {
            let mut out = Map::new();
            for iface in validation.interfaces {
                let mut entry = Map::new();
                entry.insert("result".into(), json!(iface.result));
                if let Some(reason) = iface.reason {
                    entry.insert("reason".into(), json!(reason));
                }
                out.insert(iface.interface, Value::Object(entry));
            }
            Ok(HttpResponse::Ok().json(Value::Object(out)))
        }
        _ => Err(ApiError::Internal("Unexpected conductor reply.".into())),
    }
}

pub async fn validate_node(
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    validate(state, request_id, &node).await
}

pub async fn validate_by_query(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let query = crate::pagination::parse_query(req.query_string());
    let ident = query
        .get("node")
        .or_else(|| query.get("node_uuid"))
        .ok_or_else(|| ApiError::BadRequest("Missing mandatory parameter: node".into()))?;
    let node = find_node(&state, ident, version).await?;
    validate(state, request_id, &node).await
}

/// `PUT /v1/nodes/{ident}/maintenance` (`DELETE` with `enable = false`).
async fn maintenance(
    state: web::Data<AppState>,
    version: Microversion,
    ident: &str,
    enable: bool,
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, ident, version).await?;
    if let Some(holder) = &node.reservation {
        return Err(ApiError::node_locked(&node.uuid, holder));
    }
    let mut fields = ferric_common::db::models::node::NodeFields::from_node(&node);
    fields.maintenance = enable;
    fields.maintenance_reason = if enable { reason } else { None };
    if !enable && node.maintenance {
        fields.fault = None;
    }
    let seen = node.clone();
    let updated = state
        .db
        .run(move |conn| Node::update_fields(conn, &seen, &fields))
        .await?;
    if updated.is_none() {
        return Err(crate::routes::nodes::changed_meanwhile(&state, &node, version).await);
    }
    Ok(HttpResponse::Accepted().finish())
}

pub async fn set_maintenance(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = object(body)?;
    no_unexpected(&map, &["reason"])?;
    let query = crate::pagination::parse_query(req.query_string());
    let reason = match map.get("reason") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => query.get("reason").cloned(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Expected string for reason: {other}"
            )));
        }
    };
    maintenance(state, version, &path, true, reason).await
}

pub async fn unset_maintenance(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    maintenance(state, version, &path, false, None).await
}

/// Most traits a node may have.
const MAX_TRAITS: usize = 50;

fn traits_gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(37) {
        Ok(())
    } else {
        Err(ApiError::not_acceptable())
    }
}

pub async fn get_traits(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version)?;
    let node = find_node(&state, &path, version).await?;
    let id = node.id;
    let traits = state.db.run(move |conn| Node::traits(conn, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "traits": traits })))
}

async fn locked_node(
    state: &AppState,
    ident: &str,
    version: Microversion,
) -> Result<Node, ApiError> {
    let node = find_node(state, ident, version).await?;
    if let Some(holder) = &node.reservation {
        return Err(ApiError::node_locked(&node.uuid, holder));
    }
    Ok(node)
}

pub async fn set_traits(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version)?;
    let map = match &body {
        Value::Object(map) if map.contains_key("traits") => map,
        _ => {
            return Err(ApiError::BadRequest(
                "A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> with no body, or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits with the list of traits specified in the request body.".into(),
            ));
        }
    };
    if let Some(key) = map.keys().find(|k| *k != "traits") {
        return Err(ApiError::BadRequest(format!(
            "Schema error for body: Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let Value::Array(items) = &map["traits"] else {
        return Err(ApiError::BadRequest(format!(
            "Schema error for body: {} is not of type 'array'",
            crate::validation::py_repr(&map["traits"])
        )));
    };
    let mut traits: Vec<String> = Vec::new();
    for item in items {
        let t = check_trait("body", item)?;
        if !traits.contains(&t) {
            traits.push(t);
        }
    }
    let node = locked_node(&state, &path, version).await?;
    if traits.len() > MAX_TRAITS {
        return Err(ApiError::BadRequest(format!(
            "Could not modify traits for node {} as it would exceed the maximum number of traits per node ({} vs. {MAX_TRAITS})",
            node.id,
            traits.len()
        )));
    }
    let id = node.id;
    state
        .db
        .run(move |conn| Node::set_traits(conn, id, &traits))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::Conflict(format!(
                    "The traits of node {} were changed by another request; please retry.",
                    node.uuid
                ))
            } else {
                e.into()
            }
        })?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn add_trait(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version)?;
    let (ident, name) = path.into_inner();
    let name = check_trait("trait", &json!(name))?;
    let node = locked_node(&state, &ident, version).await?;
    let id = node.id;
    let key = name.clone();
    let count = state
        .db
        .run(move |conn| {
            let mut traits = Node::traits(conn, id)?;
            if !traits.contains(&key) {
                traits.push(key.clone());
            }
            Ok(traits.len())
        })
        .await?;
    if count > MAX_TRAITS {
        return Err(ApiError::BadRequest(format!(
            "Could not modify traits for node {id} as it would exceed the maximum number of traits per node ({count} vs. {MAX_TRAITS})"
        )));
    }
    let key = name.clone();
    state
        .db
        .run(move |conn| Node::add_trait(conn, id, &key))
        .await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::NoContent()
        .insert_header(("Location", format!("{base}/v1/nodes/{ident}/traits/{name}")))
        .finish())
}

pub async fn delete_traits(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version)?;
    let node = locked_node(&state, &path, version).await?;
    let id = node.id;
    state
        .db
        .run(move |conn| Node::set_traits(conn, id, &[]))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_trait(
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version)?;
    let (ident, name) = path.into_inner();
    let node = locked_node(&state, &ident, version).await?;
    let id = node.id;
    let key = name.clone();
    let removed = state
        .db
        .run(move |conn| Node::remove_trait(conn, id, &key))
        .await?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "Node {} doesn't have a trait '{name}'",
            node.uuid
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// What a runbook brings to a clean or service request.
struct RunbookSteps {
    steps: Value,
    disable_ramdisk: bool,
}

/// Resolves the `runbook` of a provision request and checks the node may
/// run it: from 1.112 the node shares a trait with the runbook, before that
/// the node has a trait named like the runbook.
async fn runbook_steps(
    state: &AppState,
    node: &Node,
    ident: &Value,
    version: Microversion,
) -> Result<RunbookSteps, ApiError> {
    if !version.at_least(92) {
        return Err(ApiError::not_acceptable());
    }
    let Some(ident) = ident.as_str() else {
        return Err(ApiError::BadRequest(format!(
            "Invalid runbook: {} is not of type 'string'",
            crate::validation::py_repr(ident)
        )));
    };
    let runbook = crate::routes::runbooks::find(state, ident).await?;
    let id = node.id;
    let node_traits = state.db.run(move |conn| Node::traits(conn, id)).await?;
    if version.at_least(crate::views::step_template::RUNBOOK_TRAITS_VERSION) {
        let mut runbook_traits: Vec<String> =
            serde_json::from_str(&runbook.traits).unwrap_or_default();
        runbook_traits.sort();
        if runbook_traits.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "Runbook {} has no traits configured. Please ask an administrator to add traits to the runbook.",
                runbook.uuid
            )));
        }
        if !runbook_traits.iter().any(|t| node_traits.contains(t)) {
            return Err(ApiError::BadRequest(format!(
                "This runbook has not been approved for use on this node {}. The node does not have any of the runbook's traits [{}]. Please ask an administrator to add a matching trait to your node.",
                node.uuid,
                runbook_traits
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    } else if !node_traits.contains(&runbook.name) {
        return Err(ApiError::BadRequest(format!(
            "This runbook has not been approved for use on this node {}. Please ask an administrator to add it to your node traits.",
            node.uuid
        )));
    }
    Ok(RunbookSteps {
        steps: serde_json::from_str(&runbook.steps).unwrap_or_else(|_| json!([])),
        disable_ramdisk: runbook.disable_ramdisk,
    })
}

/// `PUT /v1/nodes/{ident}/states/boot_mode` (1.76) with `{"target": …}`.
pub async fn set_boot_mode(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    boot_mode_gate(version)?;
    let target = body
        .get("target")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !["bios", "uefi"].contains(&target) {
        return Err(ApiError::BadRequest(format!(
            "Invalid boot mode {target} requested for node. Allowed boot modes are: bios, uefi"
        )));
    }
    refuse_while_transitioning(&node)?;
    let kind = Kind::SetBootMode(ferric_proto::v1::SetBootMode {
        target: target.to_owned(),
    });
    state.call(&node, &request_id.0, kind).await?;
    Ok(accepted_at(&req, &state, &path))
}

/// `PUT /v1/nodes/{ident}/states/secure_boot` (1.76) with `{"target": bool}`.
pub async fn set_secure_boot(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    request_id: RequestId,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    boot_mode_gate(version)?;
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
    refuse_while_transitioning(&node)?;
    let kind = Kind::SetSecureBoot(ferric_proto::v1::SetSecureBoot { enabled });
    state.call(&node, &request_id.0, kind).await?;
    Ok(accepted_at(&req, &state, &path))
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
