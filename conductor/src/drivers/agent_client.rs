//! The conductor's side of Ironic's agent command API: calls to a deploy
//! ramdisk's agent at the `agent_url` its heartbeat gave, with its token,
//! over TLS pinned to the certificate it sent when it sent one
//! ([`super::agent_tls`]).
//!
//! Invariants: the token travels only to that URL and is never logged; a
//! failure never carries the URL (it may hold credentials) and is a
//! [`DriverError::Agent`]. The node an agent is sent is Ironic's
//! `as_dict(secure=True)`: secret-looking keys masked (the config drive
//! kept for the steps that write it), and none of the agent's own secrets.

use ferric_common::db::models::node::Node;
use ferric_common::db::models::port::Port;
use ferric_common::redact::mask_secrets;
use serde_json::{Map, Value, json};

use super::agent_tls;
use super::error::DriverError;
use crate::context::Context;

/// A JSON column as the object it holds (`{}` when it holds none).
fn object(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

/// The node as Ironic sends it in an agent command (`node.as_dict(secure=
/// True)`): its fields, JSON columns as objects, secrets masked. With
/// `configdrive`, `instance_info.configdrive` goes as it is (the deploy
/// step that writes it needs it), else it is masked too.
pub fn agent_node(node: &Node, configdrive: bool) -> Value {
    let masked = |text: &str| {
        let mut value = object(text);
        mask_secrets(&mut value);
        value
    };
    let instance_info = agent_instance_info(&node.instance_info, configdrive);
    json!({
        "uuid": node.uuid,
        "name": node.name,
        "driver": node.driver,
        "driver_info": masked(&node.driver_info),
        "driver_internal_info": masked(&node.driver_internal_info),
        "instance_info": instance_info,
        "instance_uuid": node.instance_uuid,
        "properties": masked(&node.properties),
        "extra": object(&node.extra),
        "provision_state": node.provision_state,
        "target_provision_state": node.target_provision_state,
        "power_state": node.power_state,
        "maintenance": node.maintenance,
        "resource_class": node.resource_class,
        "raid_config": object(&node.raid_config),
        "target_raid_config": object(&node.target_raid_config),
        "boot_mode": node.boot_mode,
        "secure_boot": node.secure_boot,
        "boot_interface": node.boot_interface,
        "deploy_interface": node.deploy_interface,
        "management_interface": node.management_interface,
        "power_interface": node.power_interface,
        "raid_interface": node.raid_interface,
    })
}

/// `instance_info` as an agent is sent it: secrets masked, the config
/// drive as it is when `configdrive`, else masked.
fn agent_instance_info(text: &str, configdrive: bool) -> Value {
    let mut info = object(text);
    let drive = info
        .as_object_mut()
        .and_then(|map| map.remove("configdrive"));
    mask_secrets(&mut info);
    if let (Some(drive), Some(map)) = (drive, info.as_object_mut()) {
        let shown = if configdrive { drive } else { json!("******") };
        map.insert("configdrive".into(), shown);
    }
    info
}

/// The node's ports as Ironic sends them in an agent command.
pub fn agent_ports(ports: &[Port]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                json!({
                    "uuid": p.uuid,
                    "address": p.address,
                    "pxe_enabled": p.pxe_enabled,
                    "physical_network": p.physical_network,
                    "local_link_connection": object(&p.local_link_connection),
                    "extra": object(&p.extra),
                    "is_smartnic": p.is_smartnic,
                    "name": p.name,
                })
            })
            .collect(),
    )
}

/// The node and ports parameters of an agent command, read now.
///
/// # Errors
/// When the ports cannot be read.
pub async fn node_params(
    ctx: &Context,
    node: &Node,
    configdrive: bool,
) -> Result<(Value, Value), DriverError> {
    let id = node.id;
    let ports = ctx
        .db
        .run(move |conn| Port::of_node(conn, id))
        .await
        .map_err(|e| DriverError::Agent(format!("cannot read the node's ports: {e}")))?;
    Ok((agent_node(node, configdrive), agent_ports(&ports)))
}

/// Where the node's agent listens, its token, and the client that reaches
/// it (pinned to the certificate its heartbeat sent, if it sent one), from
/// `driver_internal_info`.
fn endpoint(ctx: &Context, node: &Node) -> Result<(String, String, reqwest::Client), DriverError> {
    let info = node.driver_internal_info_map()?;
    let (Some(url), Some(token)) = (
        info.get("agent_url").and_then(Value::as_str),
        info.get("agent_secret_token").and_then(Value::as_str),
    ) else {
        return Err(DriverError::Agent(
            "Agent driver requires agent_url in driver_internal_info".into(),
        ));
    };
    let client = match info.get("agent_verify_ca").and_then(Value::as_str) {
        Some(pem) => agent_tls::pinned_client(pem).map_err(DriverError::Agent)?,
        None => ctx.agent_http.clone(),
    };
    Ok((url.to_owned(), token.to_owned(), client))
}

/// A request's failure with its causes ("error sending request: … invalid
/// peer certificate: …"), without the URL (it may hold credentials).
fn described(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Runs command `name` on the node's agent; its answer (the command's
/// status, or its result when `wait`).
///
/// # Errors
/// The agent could not be reached or refused the command.
pub async fn call(
    ctx: &Context,
    node: &Node,
    name: &str,
    params: Value,
    wait: bool,
) -> Result<Value, DriverError> {
    let (url, token, client) = endpoint(ctx, node)?;
    let response = client
        .post(format!("{url}/v1/commands/"))
        .query(&[
            ("wait", if wait { "true" } else { "false" }),
            ("agent_token", token.as_str()),
        ])
        .json(&json!({"name": name, "params": params}))
        .send()
        .await
        .map_err(|e| {
            DriverError::Agent(format!("Agent command {name} failed: {}", described(e)))
        })?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| {
        DriverError::Agent(format!(
            "Agent command {name} answered no JSON: {}",
            described(e)
        ))
    })?;
    if !status.is_success() {
        return Err(DriverError::Agent(format!(
            "Agent command {name} failed with HTTP {status}: {}",
            body.get("faultstring")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )));
    }
    Ok(body)
}

/// How long an agent asked to power its machine off gets to answer: it may
/// go down before its answer is out (more so over TLS on a slow machine).
const SHUTDOWN_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks the agent to power its machine off (`standby.power_off`, not
/// waited for). No answer within a few seconds, or a connection cut, is
/// what a machine going down looks like: `Ok(false)`, for the caller to
/// check the power state. `Ok(true)` when the agent accepted.
///
/// # Errors
/// The agent refused, or could not be reached at all.
pub async fn power_off(ctx: &Context, node: &Node) -> Result<bool, DriverError> {
    let (url, token, client) = endpoint(ctx, node)?;
    let sent = client
        .post(format!("{url}/v1/commands/"))
        .query(&[("wait", "false"), ("agent_token", token.as_str())])
        .json(&json!({"name": "standby.power_off", "params": {}}))
        .timeout(SHUTDOWN_ANSWER_WAIT)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Ok(true),
        Ok(response) => Err(DriverError::Agent(format!(
            "Agent command standby.power_off failed with HTTP {}",
            response.status()
        ))),
        Err(e) if e.is_timeout() || e.is_request() && !e.is_connect() => Ok(false),
        Err(e) => Err(DriverError::Agent(format!(
            "Agent command standby.power_off failed: {}",
            described(e)
        ))),
    }
}

/// A failed command's error, as Ironic's `get_command_error` reads it:
/// its `details`, else its `message`, else the whole error.
pub fn command_error(command: &Value) -> String {
    let error = &command["command_error"];
    match error {
        Value::Null => "Invalid agent response".to_owned(),
        Value::String(text) => text.clone(),
        _ => error["details"]
            .as_str()
            .filter(|d| !d.is_empty())
            .or_else(|| error["message"].as_str())
            .map_or_else(|| error.to_string(), str::to_owned),
    }
}

/// The agent's most recent command result.
///
/// # Errors
/// The agent could not be reached, or reports no command.
pub async fn last_command(ctx: &Context, node: &Node) -> Result<Value, DriverError> {
    let (url, token, client) = endpoint(ctx, node)?;
    let unreadable = |e: reqwest::Error| {
        DriverError::Agent(format!(
            "could not read the agent's commands: {}",
            described(e)
        ))
    };
    let body: Value = client
        .get(format!("{url}/v1/commands/"))
        .query(&[("agent_token", token.as_str())])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unreadable)?
        .json()
        .await
        .map_err(unreadable)?;
    body["commands"]
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .ok_or_else(|| DriverError::Agent("the agent reports no command".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_gets_instance_info_with_secrets_masked_and_the_config_drive_where_it_is_written() {
        let text = json!({
            "image_source": "http://u:pw@images/disk.img",
            "root_device": {"serial": "S1"},
            "image_password": "x",
            "configdrive": "H4sI-base64",
        })
        .to_string();
        let writing = agent_instance_info(&text, true);
        assert_eq!(writing["root_device"], json!({"serial": "S1"}));
        assert_eq!(writing["image_password"], "******");
        assert_eq!(writing["image_source"], "http://u:******@images/disk.img");
        assert_eq!(writing["configdrive"], "H4sI-base64");
        let listing = agent_instance_info(&text, false);
        assert_eq!(listing["configdrive"], "******");
        assert_eq!(agent_instance_info("not json", true), json!({}));
    }
}
