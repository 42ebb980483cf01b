//! The conductor's side of Ironic's agent command API: calls to a deploy
//! ramdisk's agent at the `agent_url` its heartbeat gave, with its token.
//!
//! Invariants: the token travels only to that URL and is never logged; a
//! failure never carries the URL (it may hold credentials) and is a
//! [`DriverError::Agent`].

use ferric_common::db::models::node::Node;
use serde_json::{Value, json};

use super::error::DriverError;
use crate::context::Context;

/// Where the node's agent listens and its token, from
/// `driver_internal_info`.
fn endpoint(node: &Node) -> Result<(String, String), DriverError> {
    let info = node.driver_internal_info_map()?;
    match (
        info.get("agent_url").and_then(Value::as_str),
        info.get("agent_secret_token").and_then(Value::as_str),
    ) {
        (Some(url), Some(token)) => Ok((url.to_owned(), token.to_owned())),
        _ => Err(DriverError::Agent(
            "Agent driver requires agent_url in driver_internal_info".into(),
        )),
    }
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
    let (url, token) = endpoint(node)?;
    let response = ctx
        .agent_http
        .post(format!("{url}/v1/commands/"))
        .query(&[
            ("wait", if wait { "true" } else { "false" }),
            ("agent_token", token.as_str()),
        ])
        .json(&json!({"name": name, "params": params}))
        .send()
        .await
        .map_err(|e| {
            DriverError::Agent(format!("Agent command {name} failed: {}", e.without_url()))
        })?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| {
        DriverError::Agent(format!(
            "Agent command {name} answered no JSON: {}",
            e.without_url()
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

/// The agent's most recent command result.
///
/// # Errors
/// The agent could not be reached, or reports no command.
pub async fn last_command(ctx: &Context, node: &Node) -> Result<Value, DriverError> {
    let (url, token) = endpoint(node)?;
    let unreadable = |e: reqwest::Error| {
        DriverError::Agent(format!(
            "could not read the agent's commands: {}",
            e.without_url()
        ))
    };
    let body: Value = ctx
        .agent_http
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
