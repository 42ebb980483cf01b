//! The deploy ramdisk's endpoints (1.22): `GET /v1/lookup` finds the node
//! a ramdisk runs on (by MAC addresses or UUID, only while the node waits
//! for a ramdisk) and returns its agent configuration with the agent
//! token; `POST /v1/heartbeat/{node}` passes the agent's heartbeat to the
//! node's conductor, which checks the token. Both are public, as in Ironic
//! (the ramdisk has no credentials, only the token).

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_common::db::models::port::{Port, PortFilter};
use ferric_common::db::models::{Page, SortDir};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{AgentHeartbeat, AgentLookup};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::parse_query;
use crate::routes::common::{base_url, find_node};
use crate::state::AppState;
use crate::validation::{is_uuid_like, mac_address};
use crate::views::masking::{mask_instance_info, mask_secrets};
use crate::views::{json_column, links};

/// Where a ramdisk may look its node up: Ironic's `LOOKUP_ALLOWED_STATES`.
const LOOKUP_ALLOWED_STATES: [&str; 9] = [
    "deploying",
    "wait call-back",
    "cleaning",
    "clean wait",
    "inspecting",
    "inspect wait",
    "rescuing",
    "rescue wait",
    "service wait",
];

/// Valid agent statuses in a heartbeat.
const AGENT_STATUSES: [&str; 3] = ["start", "end", "error"];

fn gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(22) {
        Ok(())
    } else {
        Err(not_found())
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("Resource could not be found.".into())
}

/// The node of these MAC addresses: exactly one node must own them.
async fn node_by_addresses(state: &AppState, addresses: Vec<String>) -> Result<Node, ApiError> {
    let found = state
        .db
        .run(move |conn| {
            let mut node_ids = Vec::new();
            for address in &addresses {
                let filter = PortFilter {
                    address: Some(address.clone()),
                    ..PortFilter::default()
                };
                let page = Page {
                    limit: 1,
                    sort_key: "id".into(),
                    sort_dir: SortDir::Asc,
                };
                for port in Port::list(conn, &filter, &page, None)? {
                    if !node_ids.contains(&port.node_id) {
                        node_ids.push(port.node_id);
                    }
                }
            }
            match node_ids.as_slice() {
                [id] => Node::by_id(conn, *id),
                _ => Ok(None),
            }
        })
        .await?;
    found.ok_or_else(not_found)
}

/// The agent configuration Ironic 39 sends with a lookup (its defaults).
fn agent_config(token: &str, node: &Node, state: &AppState) -> Value {
    let skip_bmc_detect = matches!(
        node.management_interface.as_deref(),
        Some("redfish" | "idrac-redfish")
    );
    json!({
        "metrics": {
            "backend": "noop",
            "prepend_host": false,
            "prepend_uuid": false,
            "prepend_host_reverse": true,
            "global_prefix": null,
        },
        "metrics_statsd": {"statsd_host": "localhost", "statsd_port": 8125},
        "heartbeat_timeout": state.settings.api.ramdisk_heartbeat_timeout_secs,
        "agent_containers": {
            "allow_arbitrary_containers": false,
            "allowed_containers": [],
            "container_steps_file": "/etc/ironic-python-agent.d/mysteps.yaml",
            "runner": "podman",
            "pull_options": [],
            "run_options": ["--rm", "--network=host"],
        },
        "agent_token": token,
        "agent_token_required": true,
        "agent_md5_checksum_enable": true,
        "disable_deep_image_inspection": false,
        "permitted_image_formats": ["raw", "gpt", "qcow2", "iso"],
        "agent_skip_bmc_detect": skip_bmc_detect,
        "enable_bios_bootloader_install": false,
        "tls_min_version": "1.3",
        "tls_cipher_suites": null,
    })
}

/// The most MAC addresses one lookup may name: more network interfaces
/// than a server carries (ironic-python-agent sends one per interface it
/// sees, a handful), far fewer than it takes to sweep a fleet.
const MAX_LOOKUP_ADDRESSES: usize = 64;

/// `GET /v1/lookup?addresses=…&node_uuid=…`.
pub async fn lookup(Call(req, state, version, request_id): Call) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let query = parse_query(req.query_string());
    // Invalid MACs are ignored, as in Ironic; more than a machine has are
    // refused (beyond Ironic: one lookup must not probe every node).
    let raw_addresses = query.get("addresses").map(String::as_str).unwrap_or("");
    if raw_addresses.split(',').count() > MAX_LOOKUP_ADDRESSES {
        return Err(ApiError::BadRequest(format!(
            "A lookup takes at most {MAX_LOOKUP_ADDRESSES} addresses."
        )));
    }
    let addresses: Vec<String> = raw_addresses
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .filter_map(|a| mac_address("addresses", a.trim()).ok())
        .collect();
    let node_uuid = match query.get("node_uuid") {
        Some(u) if is_uuid_like(u) => Some(u.to_lowercase()),
        Some(u) => {
            return Err(ApiError::BadRequest(format!(
                "Expected a UUID for node_uuid: {u}"
            )));
        }
        None => None,
    };
    let node = match (node_uuid, addresses.is_empty()) {
        (None, true) => {
            return Err(ApiError::BadRequest(
                "At least one of 'addresses' and 'node_uuid' parameters is required".into(),
            ));
        }
        (Some(uuid), _) => find_node(&state, &uuid, version)
            .await
            .map_err(|_| not_found())?,
        (None, false) => node_by_addresses(&state, addresses).await?,
    };
    if !LOOKUP_ALLOWED_STATES.contains(&node.provision_state.as_str()) {
        tracing::warn!(node.uuid = %node.uuid, state = %node.provision_state, "lookup refused in this provision state");
        return Err(not_found());
    }
    let kind = Kind::AgentLookup(AgentLookup {});
    let token = state
        .ask(&node, &request_id.0, kind, |reply| match reply {
            Outcome::AgentToken(t) => Some(t.token),
            _ => None,
        })
        .await?;
    let node = find_node(&state, &node.uuid, version).await?;
    let base = base_url(&req, &state);
    let mut instance_info = json_column(&node.instance_info);
    mask_instance_info(&mut instance_info);
    let mut internal = json_column(&node.driver_internal_info);
    mask_secrets(&mut internal);
    Ok(HttpResponse::Ok().json(json!({
        "node": {
            "uuid": node.uuid,
            "properties": json_column(&node.properties),
            "instance_info": instance_info,
            "driver_internal_info": internal,
            "links": links(&base, &format!("nodes/{}", node.uuid)),
        },
        "config": agent_config(&token, &node, &state),
    })))
}

fn optional_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Invalid {key}: {other} is not a string"
        ))),
    }
}

/// `POST /v1/heartbeat/{node}` with `callback_url`, `agent_token`,
/// `agent_version` (1.36), `agent_verify_ca` (1.68), `agent_status` and
/// `agent_status_message` (1.72): 202 once the conductor accepted it.
pub async fn heartbeat(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let map = match body {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => {
            return Err(ApiError::BadRequest(
                "Invalid request body: expected a JSON object.".into(),
            ));
        }
    };
    let Some(callback_url) = optional_string(&map, "callback_url")? else {
        return Err(ApiError::BadRequest(
            "Missing mandatory parameter: callback_url".into(),
        ));
    };
    let agent_version = optional_string(&map, "agent_version")?;
    if agent_version.is_some() && !version.at_least(36) {
        return Err(ApiError::BadRequest(
            "Field \"agent_version\" not recognised".into(),
        ));
    }
    let agent_status = optional_string(&map, "agent_status")?;
    let agent_status_message = optional_string(&map, "agent_status_message")?;
    if (agent_status.is_some() || agent_status_message.is_some()) && !version.at_least(72) {
        return Err(ApiError::BadRequest(
            "Fields \"agent_status\" and \"agent_status_message\" not recognised.".into(),
        ));
    }
    let agent_verify_ca = optional_string(&map, "agent_verify_ca")?;
    if agent_verify_ca.is_some() && !version.at_least(68) {
        return Err(ApiError::BadRequest(
            "Field \"agent_verify_ca\" not recognised in this version".into(),
        ));
    }
    let node = find_node(&state, &path, version).await?;
    // Ironic's check: the URL's scheme mentions http.
    let valid_url = callback_url
        .split_once("://")
        .is_some_and(|(scheme, rest)| scheme.contains("http") && !rest.is_empty());
    if !valid_url && !callback_url.is_empty() {
        return Err(ApiError::BadRequest(
            "An issue with the supplied \"callback_url\" has been detected.".into(),
        ));
    }
    let internal = json_column(&node.driver_internal_info);
    if let Some(known) = internal.get("agent_url").and_then(Value::as_str)
        && known != callback_url
    {
        tracing::warn!(node.uuid = %node.uuid, "heartbeat from a changed callback URL refused");
        return Err(ApiError::BadRequest(
            "Detected change in ramdisk provided \"callback_url\"".into(),
        ));
    }
    let agent_token = optional_string(&map, "agent_token")?;
    if agent_token.is_none() {
        return Err(ApiError::BadRequest(
            "Agent token is required for heartbeat processing.".into(),
        ));
    }
    if let Some(status) = &agent_status
        && !AGENT_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::BadRequest(
            "Agent status is invalid. Valid states are start,end,error.".into(),
        ));
    }
    let beat = AgentHeartbeat {
        callback_url,
        agent_version,
        agent_token,
        agent_verify_ca,
        agent_status,
        agent_status_message,
    };
    state
        .call(&node, &request_id.0, Kind::AgentHeartbeat(beat))
        .await?;
    Ok(HttpResponse::Accepted().finish())
}
