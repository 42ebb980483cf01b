//! The deploy ramdisk's endpoints (1.22): `GET /v1/lookup` finds the node
//! a ramdisk runs on (by MAC addresses or UUID, only while the node waits
//! for a ramdisk) and returns its agent configuration with the agent
//! token; `POST /v1/heartbeat/{node}` passes the agent's heartbeat to the
//! node's conductor, which checks the token and the agent's identity. Both
//! are public, as in Ironic (the ramdisk has no credentials, only the
//! token), and so is `POST /v1/continue_inspection`, where an agent posts
//! its inspection data for the conductor to process.
//!
//! Beyond Ironic, as anyone on the provisioning network can call them:
//! each source has a request rate (`[api] ramdisk_requests_per_minute`),
//! only `[api] ramdisk_allowed_networks` are answered when set, a lookup
//! names at most [`MAX_LOOKUP_ADDRESSES`] MACs, the lookup's node carries
//! only what an agent reads (no image locations), and the source address
//! goes to the conductor, which binds the token to it.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::{Node, NodeFilter};
use ferric_common::db::models::port::{Port, PortFilter};
use ferric_common::db::models::{Page, SortDir};
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{AgentHeartbeat, AgentLookup, ContinueInspection, DeployProgress};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::parse_query;
use crate::routes::common::{base_url, find_node};
use crate::state::AppState;
use crate::throttle::client_ip;
use crate::validation::{is_uuid_like, mac_address};
use crate::views::masking::mask_secrets;
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

/// The source of a ramdisk request, once it passed the network allow-list
/// and its rate.
fn admit(
    req: &actix_web::HttpRequest,
    state: &AppState,
    what: &str,
) -> Result<Option<std::net::IpAddr>, ApiError> {
    let api = &state.settings.api;
    let source = client_ip(req, api.enable_proxy_headers_parsing);
    let Some(ip) = source else {
        return Ok(None);
    };
    if !api.ramdisk_allowed_networks.is_empty()
        && !ferric_common::destinations::in_any(&api.ramdisk_allowed_networks, ip)
    {
        tracing::warn!(source = %ip, "{what} from outside [api] ramdisk_allowed_networks refused");
        return Err(ApiError::Forbidden(format!(
            "{what} requests are accepted only from [api] ramdisk_allowed_networks."
        )));
    }
    state.ramdisk_rate.check(ip, what)?;
    Ok(Some(ip))
}

/// `instance_info` keys an agent reads from its lookup (root device hints,
/// boot mode and disk label): never where the images are.
const LOOKUP_INSTANCE_INFO: [&str; 3] = ["root_device", "capabilities", "deploy_boot_mode"];

/// Whether ironic-python-agent reads this `driver_internal_info` key
/// (erase and boot-mode settings); the agent's token, URL and certificate,
/// steps and everything else stay out of an unauthenticated answer.
fn agent_reads_internal(key: &str) -> bool {
    ["agent_erase", "agent_continue_if", "agent_enable"]
        .iter()
        .any(|p| key.starts_with(p))
        || [
            "disk_erasure_concurrency",
            "wipe_special_filesystems",
            "deploy_boot_mode",
        ]
        .contains(&key)
}

/// The node as a lookup shows it: Ironic's fields, holding only what an
/// agent needs.
fn lookup_node(node: &Node, base: &str) -> Value {
    let pick = |column: &str, keep: &dyn Fn(&str) -> bool| -> Value {
        let Value::Object(map) = json_column(column) else {
            return json!({});
        };
        let mut value = Value::Object(map.into_iter().filter(|(k, _)| keep(k)).collect());
        mask_secrets(&mut value);
        value
    };
    let mut properties = json_column(&node.properties);
    mask_secrets(&mut properties);
    json!({
        "uuid": node.uuid,
        "properties": properties,
        "instance_info": pick(&node.instance_info, &|k| LOOKUP_INSTANCE_INFO.contains(&k)),
        "driver_internal_info": pick(&node.driver_internal_info, &agent_reads_internal),
        "links": links(base, &format!("nodes/{}", node.uuid)),
    })
}

/// What a lookup by address found.
enum Found {
    One(Box<Node>),
    None,
    /// Several nodes: refused, never a reason to enroll a new one.
    Several,
}

impl Found {
    fn of(mut nodes: Vec<Node>) -> Found {
        match nodes.len() {
            0 => Found::None,
            1 => nodes
                .pop()
                .map_or(Found::None, |node| Found::One(Box::new(node))),
            _ => Found::Several,
        }
    }

    fn node(self) -> Result<Node, ApiError> {
        match self {
            Found::One(node) => Ok(*node),
            Found::None | Found::Several => Err(not_found()),
        }
    }
}

/// The node of these MAC addresses: exactly one node must own them.
async fn node_by_addresses(state: &AppState, addresses: Vec<String>) -> Result<Node, ApiError> {
    nodes_by_addresses(state, addresses).await?.node()
}

/// The nodes owning these MAC addresses.
async fn nodes_by_addresses(state: &AppState, addresses: Vec<String>) -> Result<Found, ApiError> {
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
            let mut nodes = Vec::new();
            for id in node_ids {
                nodes.extend(Node::by_id(conn, id)?);
            }
            Ok(Found::of(nodes))
        })
        .await?;
    Ok(found)
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
        "disable_deep_image_inspection": state.settings.conductor.disable_deep_image_inspection,
        "permitted_image_formats": state.settings.conductor.permitted_image_formats,
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
    let source = admit(&req, &state, "lookup")?;
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
    let kind = Kind::AgentLookup(AgentLookup {
        source_address: source.map(|ip| ip.to_string()),
    });
    let token = state
        .ask(&node, &request_id.0, kind, |reply| match reply {
            Outcome::AgentToken(t) => Some(t.token),
            _ => None,
        })
        .await?;
    let node = find_node(&state, &node.uuid, version).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(json!({
        "node": lookup_node(&node, &base),
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
    call: Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(call.2)?;
    heartbeat_of(call, &path, body_map(body)?).await
}

/// `POST /v1/heartbeat` with the node in the body (`node_ident`), as
/// Ironic's pecan controller also takes it.
pub async fn heartbeat_by_body(
    call: Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(call.2)?;
    let mut map = body_map(body)?;
    let Some(node) = optional_string(&map, "node_ident")? else {
        return Err(ApiError::BadRequest(
            "Missing mandatory parameter: node_ident".into(),
        ));
    };
    map.remove("node_ident");
    heartbeat_of(call, &node, map).await
}

fn body_map(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ApiError::BadRequest(
            "Invalid request body: expected a JSON object.".into(),
        )),
    }
}

async fn heartbeat_of(
    Call(req, state, version, request_id): Call,
    node_ident: &str,
    map: Map<String, Value>,
) -> Result<HttpResponse, ApiError> {
    let source = admit(&req, &state, "heartbeat")?;
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
    let node = find_node(&state, node_ident, version).await?;
    // Ironic's check: the URL's scheme mentions http.
    let valid_url = callback_url
        .split_once("://")
        .is_some_and(|(scheme, rest)| scheme.contains("http") && !rest.is_empty());
    if !valid_url && !callback_url.is_empty() {
        return Err(ApiError::BadRequest(
            "An issue with the supplied \"callback_url\" has been detected.".into(),
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
    let deploy_progress = match map.get("deploy_progress") {
        None | Some(Value::Null) => None,
        Some(progress) => Some(deploy_progress(progress)?),
    };
    let beat = AgentHeartbeat {
        callback_url,
        agent_version,
        agent_token,
        agent_verify_ca,
        agent_status,
        agent_status_message,
        source_address: source.map(|ip| ip.to_string()),
        deploy_progress,
    };
    state
        .call(&node, &request_id.0, Kind::AgentHeartbeat(beat))
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// ferric-agent's `deploy_progress`: `bytes`, `total` (or null) and
/// `seconds`.
fn deploy_progress(value: &Value) -> Result<DeployProgress, ApiError> {
    let invalid = || {
        ApiError::BadRequest(format!(
            "Invalid deploy_progress: {value} is not an object with bytes, total and seconds"
        ))
    };
    let bytes = value
        .get("bytes")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    let total = match value.get("total") {
        None | Some(Value::Null) => None,
        Some(total) => Some(total.as_u64().ok_or_else(invalid)?),
    };
    let seconds = value
        .get("seconds")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(invalid)?;
    Ok(DeployProgress {
        bytes,
        total,
        seconds,
    })
}

/// The node waiting in `inspect wait` whose BMC is at one of `addresses`
/// (`driver_info` `ipmi_address`, or the host of `redfish_address`), as
/// Ironic finds a machine whose MACs it does not know yet; exactly one must
/// match.
async fn node_by_bmc(state: &AppState, addresses: Vec<String>) -> Result<Found, ApiError> {
    let found = state
        .db
        .run(move |conn| {
            let filter = NodeFilter {
                provision_state: Some("inspect wait".into()),
                ..NodeFilter::default()
            };
            let page = Page {
                limit: 1000,
                sort_key: "id".into(),
                sort_dir: SortDir::Asc,
            };
            let matching: Vec<Node> = Node::list(conn, &filter, &page, None)?
                .into_iter()
                .filter(|node| {
                    let info = node.driver_info_map().unwrap_or_default();
                    let ipmi = info.get("ipmi_address").and_then(Value::as_str);
                    let redfish = info
                        .get("redfish_address")
                        .and_then(Value::as_str)
                        .and_then(|url| url::Url::parse(url).ok())
                        .and_then(|url| {
                            url.host_str()
                                .map(|h| h.trim_matches(['[', ']']).to_owned())
                        });
                    addresses
                        .iter()
                        .any(|a| ipmi == Some(a.as_str()) || redfish.as_deref() == Some(a.as_str()))
                })
                .collect();
            Ok(Found::of(matching))
        })
        .await?;
    Ok(found)
}

/// Why posted inspection data is not the minimal inventory Ironic accepts:
/// an object with `inventory.interfaces`, a non-empty list of objects each
/// with a string `mac_address`.
fn inventory_problem(data: &Map<String, Value>) -> Option<String> {
    let Some(inventory) = data.get("inventory") else {
        return Some("'inventory' is a required property".into());
    };
    let Some(inventory) = inventory.as_object() else {
        return Some("'inventory' is not of type 'object'".into());
    };
    let Some(interfaces) = inventory.get("interfaces") else {
        return Some("'interfaces' is a required property of 'inventory'".into());
    };
    let Some(interfaces) = interfaces.as_array().filter(|i| !i.is_empty()) else {
        return Some("'inventory.interfaces' must be a non-empty list".into());
    };
    if interfaces
        .iter()
        .any(|i| !i.get("mac_address").is_some_and(Value::is_string))
    {
        return Some("every interface of the inventory needs a string 'mac_address'".into());
    }
    for key in ["bmc_address", "bmc_v6address"] {
        if inventory
            .get(key)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Some(format!("'inventory.{key}' is not of type 'string'"));
        }
    }
    None
}

/// `POST /v1/continue_inspection` (1.84, and the base version for
/// ironic-inspector's clients): an agent's inspection data, for the node
/// its MACs (else its BMC address; or, from 1.84, `?node_uuid=`) name,
/// while it waits in
/// `inspect wait`. 202 with `{"uuid"}`; at 1.84 and later the node and
/// agent configuration as a lookup answers. With `[auto_discovery]
/// enabled`, data no node matches at all (not even several) enrolls a new
/// node for it, inspected and left in `enroll` with `auto_discovered` in
/// its plugin data, as Ironic does.
///
/// # Errors
/// 404 outside those versions, for an unknown node or one not waiting;
/// 400 for data that is not an inventory; 500 when a discovered machine
/// cannot be enrolled (its driver has no conductor).
pub async fn continue_inspection(
    Call(req, state, version, request_id): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let explicit = version.at_least(84);
    if !explicit && version.minor() != 1 {
        return Err(ApiError::NotFound(
            "API version 1.84 or newer is required".into(),
        ));
    }
    let source = admit(&req, &state, "inspection")?;
    let query = parse_query(req.query_string());
    let node_uuid = match query.get("node_uuid") {
        Some(_) if !explicit => {
            return Err(ApiError::NotFound(
                "API version 1.84 or newer is required".into(),
            ));
        }
        Some(u) if is_uuid_like(u) => Some(u.to_lowercase()),
        Some(u) => {
            return Err(ApiError::BadRequest(format!(
                "Expected a UUID for node_uuid: {u}"
            )));
        }
        None => None,
    };
    let mut data = body_map(body)?;
    if let Some(problem) = inventory_problem(&data) {
        return Err(ApiError::BadRequest(format!(
            "Schema error for data: {problem}"
        )));
    }
    let inventory = data.remove("inventory").unwrap_or(Value::Null);
    let macs: Vec<String> = inventory["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["mac_address"].as_str())
        .filter_map(|mac| mac_address("mac_address", mac).ok())
        .take(MAX_LOOKUP_ADDRESSES)
        .collect();
    let bmc_addresses: Vec<String> = ["bmc_address", "bmc_v6address"]
        .iter()
        .filter_map(|k| inventory[*k].as_str())
        .filter(|a| !a.is_empty() && *a != "0.0.0.0" && *a != "::")
        .map(str::to_owned)
        .collect();
    let mut discovered = false;
    let node = match (node_uuid, macs.is_empty(), bmc_addresses.is_empty()) {
        (Some(uuid), _, _) => find_node(&state, &uuid, version)
            .await
            .map_err(|_| not_found())?,
        (None, true, true) => {
            return Err(ApiError::BadRequest(
                "No lookup information provided".into(),
            ));
        }
        (None, _, _) => {
            let by_mac = nodes_by_addresses(&state, macs).await?;
            let by_bmc = match by_mac {
                Found::One(_) => Found::None,
                _ if bmc_addresses.is_empty() => Found::None,
                _ => node_by_bmc(&state, bmc_addresses).await?,
            };
            match (by_mac, by_bmc) {
                (Found::One(node), _) | (_, Found::One(node)) => *node,
                // A machine nobody enrolled, as Ironic's AutoEnrollPossible.
                (Found::None, Found::None) if state.settings.auto_discovery.enabled => {
                    discovered = true;
                    crate::routes::node::crud::enroll_discovered(&state).await?
                }
                _ => return Err(not_found()),
            }
        }
    };
    if discovered {
        tracing::info!(node.uuid = %node.uuid, "enrolled a machine nobody had enrolled (auto-discovery)");
        data.insert("auto_discovered".into(), Value::Bool(true));
    } else if node.provision_state != "inspect wait" {
        tracing::warn!(node.uuid = %node.uuid, state = %node.provision_state, "inspection data for a node not waiting for it");
        return Err(not_found());
    }
    // At 1.84 the agent gets its token with the answer, as from a lookup
    // (taken before the data is processed, as Ironic does).
    let token = if explicit {
        let kind = Kind::AgentLookup(AgentLookup {
            source_address: source.map(|ip| ip.to_string()),
        });
        Some(
            state
                .ask(&node, &request_id.0, kind, |reply| match reply {
                    Outcome::AgentToken(t) => Some(t.token),
                    _ => None,
                })
                .await?,
        )
    } else {
        None
    };
    let kind = Kind::ContinueInspection(ContinueInspection {
        inventory: inventory.to_string(),
        plugin_data: Value::Object(data).to_string(),
        auto_discovered: discovered,
    });
    state.call(&node, &request_id.0, kind).await?;
    let Some(token) = token else {
        return Ok(HttpResponse::Accepted().json(json!({"uuid": node.uuid})));
    };
    let node = find_node(&state, &node.uuid, version).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Accepted().json(json!({
        "node": lookup_node(&node, &base),
        "config": agent_config(&token, &node, &state),
    })))
}
