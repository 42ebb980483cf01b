//! `states/provision`: the request checked as Ironic checks it (verb and
//! microversion, maintenance, protection, the state machine, config
//! drives, steps, runbooks, rescue password), then a task for the node's
//! conductor.

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_common::states::{ProvisionState, Verb};
use ferric_proto::v1::ProvisionAction;
use ferric_proto::v1::task::Kind;
use serde_json::{Value, json};

use super::{accepted_at, object, required_str};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::microversion::{Microversion, RequestId};
use crate::routes::common::find_node;
use crate::state::AppState;
use crate::validation::{boolean, no_unexpected};

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
