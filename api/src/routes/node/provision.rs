//! `states/provision`: the request checked as Ironic checks it (verb and
//! microversion, maintenance, protection, the state machine, config
//! drives, steps, runbooks, rescue password), then a task for the node's
//! conductor.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_common::states::{ProvisionState, Verb};
use ferric_proto::v1::ProvisionAction;
use ferric_proto::v1::task::Kind;
use serde_json::{Map, Value, json};

use super::{accepted_at, object, required_str};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
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
    Call(req, state, version, request_id): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = object(body)?;
    no_unexpected(&map, &PROVISION_KEYS)?;
    let target = required_str(&map, "target")?;
    let node = find_node(&state, &path, version).await?;
    let request = ProvisionRequest::parse(&target, &map, version, &NodeFacts::of(&node))?;
    let runbook = match &request.runbook {
        Some(ident) => Some(runbook_steps(&state, &node, ident, version).await?),
        None => None,
    };
    let action = request.into_action(version, runbook)?;
    state
        .call(&node, &request_id.0, Kind::Provision(action))
        .await?;
    Ok(accepted_at(&req, &state, &path))
}

/// What the request's checks need to know of the node.
#[derive(Debug, Clone, Copy)]
pub struct NodeFacts<'a> {
    pub uuid: &'a str,
    pub provision_state: &'a str,
    pub maintenance: bool,
    pub protected: bool,
    pub reservation: Option<&'a str>,
}

impl<'a> NodeFacts<'a> {
    pub fn of(node: &'a Node) -> NodeFacts<'a> {
        NodeFacts {
            uuid: &node.uuid,
            provision_state: &node.provision_state,
            maintenance: node.maintenance,
            protected: node.protected,
            reservation: node.reservation.as_deref(),
        }
    }
}

/// A provision request checked as far as it can be without a runbook
/// (Ironic's order of checks: the verb and its microversion, maintenance,
/// protection, the state machine, the config drive).
#[derive(Debug)]
pub struct ProvisionRequest {
    verb: Verb,
    configdrive: Option<Value>,
    clean_steps: Option<Value>,
    deploy_steps: Option<Value>,
    service_steps: Option<Value>,
    disable_ramdisk: Option<bool>,
    rescue_password: Option<Value>,
    /// The `runbook` asked for, to resolve before [`Self::into_action`].
    pub runbook: Option<Value>,
}

impl ProvisionRequest {
    /// Checks `target` and the body's keys against the version and the
    /// node.
    ///
    /// # Errors
    /// Ironic's 400, 403, 406 or 409 (a refused transition on a locked node).
    pub fn parse(
        target: &str,
        map: &Map<String, Value>,
        version: Microversion,
        node: &NodeFacts<'_>,
    ) -> Result<ProvisionRequest, ApiError> {
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
            if let Some(holder) = node.reservation {
                return Err(ApiError::node_locked(node.uuid, holder));
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
            .filter(|v| !v.is_null() && *v != &json!(""))
            .cloned();
        if let Some(cd) = &configdrive {
            check_configdrive(cd, verb, version)?;
        }
        let present = |key: &str| map.get(key).filter(|v| !v.is_null()).cloned();
        let disable_ramdisk = match present("disable_ramdisk") {
            Some(v) => boolean("disable_ramdisk", &v)?,
            None => None,
        };
        Ok(ProvisionRequest {
            verb,
            configdrive,
            clean_steps: present("clean_steps"),
            deploy_steps: present("deploy_steps"),
            service_steps: present("service_steps"),
            disable_ramdisk,
            rescue_password: present("rescue_password"),
            runbook: present("runbook"),
        })
    }

    /// The rest of Ironic's checks, with the runbook resolved (its steps
    /// take the place of the verb's), and the task's action.
    ///
    /// # Errors
    /// Ironic's 400 or 406.
    pub fn into_action(
        self,
        version: Microversion,
        runbook: Option<RunbookSteps>,
    ) -> Result<ProvisionAction, ApiError> {
        let ProvisionRequest {
            verb,
            configdrive,
            mut clean_steps,
            deploy_steps,
            mut service_steps,
            mut disable_ramdisk,
            rescue_password,
            runbook: asked_runbook,
        } = self;
        if let Some(runbook) = runbook {
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
                        "disable_ramdisk is supported only with manual cleaning or servicing"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        if clean_steps.is_some() && verb != Verb::Clean {
            return Err(only_valid("clean_steps", "clean"));
        }
        if deploy_steps.is_some() {
            if !version.at_least(69) {
                return Err(ApiError::NotAcceptable(
                    "Request not acceptable. The minimal required API version should be 1.69"
                        .into(),
                ));
            }
            if !matches!(verb, Verb::Active | Verb::Deploy | Verb::Rebuild) {
                return Err(only_valid("deploy_steps", "active or rebuild"));
            }
        }
        if rescue_password.is_some() && verb != Verb::Rescue {
            return Err(only_valid("rescue_password", "rescue"));
        }
        if service_steps.is_some() && verb != Verb::Service {
            return Err(only_valid("service_steps", "service"));
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
            return Err(required_for("clean_steps", "clean"));
        }
        if verb == Verb::Service && service_steps.is_none() && asked_runbook.is_none() {
            return Err(required_for("service_steps", "service"));
        }
        let rescue_password = match (verb, rescue_password) {
            (Verb::Rescue, Some(Value::String(p))) if !p.trim().is_empty() => Some(p),
            (Verb::Rescue, _) => {
                return Err(ApiError::BadRequest(
                    "A non-empty \"rescue_password\" is required when setting target provision state to rescue".into(),
                ));
            }
            _ => None,
        };
        Ok(ProvisionAction {
            verb: verb.as_str().to_owned(),
            configdrive_json: configdrive.as_ref().map(Value::to_string),
            clean_steps_json: clean_steps.map(|v| v.to_string()),
            deploy_steps_json: deploy_steps.map(|v| v.to_string()),
            service_steps_json: service_steps.map(|v| v.to_string()),
            rescue_password,
            disable_ramdisk,
        })
    }
}

/// A config drive goes only with a deploy (or a rebuild from 1.35), as an
/// object only from 1.56.
fn check_configdrive(
    configdrive: &Value,
    verb: Verb,
    version: Microversion,
) -> Result<(), ApiError> {
    if !matches!(verb, Verb::Active | Verb::Deploy | Verb::Rebuild)
        || (verb == Verb::Rebuild && !version.at_least(35))
    {
        return Err(ApiError::BadRequest(
            "Adding a config drive is only supported when setting provision state to active, rebuild".into(),
        ));
    }
    match configdrive {
        Value::Object(_) if !version.at_least(56) => Err(ApiError::BadRequest(
            "Providing a JSON object for configdrive is only supported starting with API version 1.56".into(),
        )),
        Value::Object(_) => within_limit(configdrive.to_string().len()),
        Value::String(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(()),
        Value::String(encoded) => {
            use base64::Engine as _;
            let compact: String = encoded.split_whitespace().collect();
            // Before decoding: what the text would decode to.
            let padding = compact.bytes().rev().take_while(|b| *b == b'=').count();
            within_limit((compact.len() / 4 * 3).saturating_sub(padding))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| {
                    ApiError::BadRequest(format!(
                        "Invalid configdrive: not a URL, a JSON object or a base64-encoded (gzipped) ISO 9660 image: {e}"
                    ))
                })?;
            within_limit(decoded.len())
        }
        other => Err(ApiError::BadRequest(format!(
            "Invalid configdrive format: {other} is not of type 'object', 'string'"
        ))),
    }
}

/// The largest config drive (Ironic's and IPA's 64 MiB).
const MAX_CONFIGDRIVE_BYTES: usize = 64 << 20;

fn within_limit(bytes: usize) -> Result<(), ApiError> {
    if bytes > MAX_CONFIGDRIVE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "Config drive is too large: {bytes} bytes, at most {} MiB",
            MAX_CONFIGDRIVE_BYTES >> 20
        )));
    }
    Ok(())
}

/// Ironic's 400 for a key given with the wrong verb.
fn only_valid(key: &str, states: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "\"{key}\" is only valid when setting target provision state to {states}"
    ))
}

/// Ironic's 400 for a key the verb needs.
fn required_for(key: &str, state: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "\"{key}\" is required when setting target provision state to {state}"
    ))
}

/// What a runbook brings to a clean or service request.
pub struct RunbookSteps {
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

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";

    fn node(state: &str) -> NodeFacts<'_> {
        NodeFacts {
            uuid: UUID,
            provision_state: state,
            maintenance: false,
            protected: false,
            reservation: None,
        }
    }

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn action(
        target: &str,
        value: Value,
        minor: u32,
        state: &str,
    ) -> Result<ProvisionAction, ApiError> {
        let version = Microversion(minor);
        ProvisionRequest::parse(target, &body(value), version, &node(state))?
            .into_action(version, None)
    }

    fn message(result: Result<ProvisionAction, ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_deploy_carries_its_config_drive() {
        let done = action(
            "active",
            json!({"target": "active", "configdrive": {"meta_data": {}}}),
            115,
            "available",
        )
        .unwrap();
        assert_eq!(done.verb, "active");
        assert_eq!(
            done.configdrive_json.as_deref(),
            Some(r#"{"meta_data":{}}"#)
        );
    }

    #[test]
    fn a_config_drive_object_needs_1_56_and_a_deploy() {
        let old = action("active", json!({"configdrive": {}}), 55, "available");
        assert!(message(old).contains("only supported starting with API version 1.56"));
        let wrong_verb = action("manage", json!({"configdrive": "abc"}), 115, "enroll");
        assert!(message(wrong_verb).contains("only supported when setting provision state"));
    }

    #[test]
    fn a_config_drive_string_is_a_url_or_base64_within_64_mib() {
        use base64::Engine as _;
        let deploy =
            |drive: Value| action("active", json!({"configdrive": drive}), 115, "available");
        assert!(deploy(json!("http://images/cd.iso.gz")).is_ok());
        assert!(deploy(json!("H4sIAAAAAAAA/wMAAAAAAAAAAAA=")).is_ok());
        let bad = message(deploy(json!("this is not base64!")));
        assert!(
            bad.starts_with("Invalid configdrive: not a URL, a JSON object or a base64"),
            "{bad}"
        );
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0_u8; (64 << 20) + 3]);
        let bad = message(deploy(json!(big)));
        assert_eq!(
            bad,
            "Config drive is too large: 67108867 bytes, at most 64 MiB"
        );
        let bad = message(deploy(json!({"user_data": "x".repeat((64 << 20) + 1)})));
        assert!(bad.starts_with("Config drive is too large"), "{bad}");
    }

    #[test]
    fn a_transition_the_state_machine_refuses_is_400_or_409_when_locked() {
        let refused = message(action("deploy", json!({}), 115, "enroll"));
        assert!(
            refused.contains("can not be performed on node") && refused.contains("\"enroll\""),
            "{refused}"
        );
        let mut locked = node("enroll");
        locked.reservation = Some("c1");
        let err =
            ProvisionRequest::parse("deploy", &Map::new(), Microversion(115), &locked).unwrap_err();
        assert!(matches!(err, ApiError::Conflict(_)), "{err}");
    }

    #[test]
    fn maintenance_and_protection_refuse_before_the_state_machine() {
        let mut facts = node("active");
        facts.maintenance = true;
        let err =
            ProvisionRequest::parse("rebuild", &Map::new(), Microversion(115), &facts).unwrap_err();
        assert!(err.to_string().contains("maintenance mode"), "{err}");
        let mut facts = node("active");
        facts.protected = true;
        let err =
            ProvisionRequest::parse("deleted", &Map::new(), Microversion(115), &facts).unwrap_err();
        assert!(matches!(err, ApiError::Forbidden(_)), "{err}");
    }

    #[test]
    fn manual_cleaning_needs_steps_and_only_cleaning_takes_them() {
        let missing = message(action("clean", json!({}), 115, "manageable"));
        assert!(missing.contains("\"clean_steps\" is required"), "{missing}");
        let wrong = message(action(
            "provide",
            json!({"clean_steps": [{"interface": "deploy", "step": "erase_devices"}]}),
            115,
            "manageable",
        ));
        assert!(wrong.contains("\"clean_steps\" is only valid"), "{wrong}");
        let steps = json!([{"interface": "bios", "step": "factory_reset"}]);
        let done = action("clean", json!({"clean_steps": steps}), 115, "manageable").unwrap();
        assert_eq!(done.clean_steps_json, Some(steps.to_string()));
    }

    #[test]
    fn a_runbook_takes_the_place_of_the_steps() {
        let version = Microversion(115);
        let request = ProvisionRequest::parse(
            "clean",
            &body(json!({"runbook": "CUSTOM_RB"})),
            version,
            &node("manageable"),
        )
        .unwrap();
        assert_eq!(request.runbook, Some(json!("CUSTOM_RB")));
        let steps = json!([{"interface": "bios", "step": "factory_reset"}]);
        let done = request
            .into_action(
                version,
                Some(RunbookSteps {
                    steps: steps.clone(),
                    disable_ramdisk: true,
                }),
            )
            .unwrap();
        assert_eq!(done.clean_steps_json, Some(steps.to_string()));
        assert_eq!(done.disable_ramdisk, Some(true));
    }

    #[test]
    fn rescue_needs_a_password_and_old_versions_get_406() {
        let missing = message(action("rescue", json!({}), 115, "active"));
        assert!(
            missing.contains("non-empty \"rescue_password\""),
            "{missing}"
        );
        let done = action("rescue", json!({"rescue_password": "pw"}), 115, "active").unwrap();
        assert_eq!(done.rescue_password.as_deref(), Some("pw"));
        let old = action("rescue", json!({"rescue_password": "pw"}), 37, "active");
        assert!(matches!(old, Err(ApiError::NotAcceptable(_))), "{old:?}");
        let deploy_steps = action("active", json!({"deploy_steps": []}), 68, "available");
        assert!(matches!(deploy_steps, Err(ApiError::NotAcceptable(_))));
    }
}
