//! The deploy ramdisk's side of the conversation (Ironic's agent API, 1.62+
//! token semantics): lookup hands out the node's agent token once, every
//! heartbeat must carry it, and a heartbeat records where the agent
//! listens (`agent_url`), its version and when it was last heard.
//!
//! Invariants: the token is generated here, 32 random bytes, stored only in
//! `driver_internal_info.agent_secret_token` and sent only in the first
//! lookup's reply (later lookups get `******`); it is compared in constant
//! time and never logged. These writes touch only their own keys of
//! `driver_internal_info`, so they never undo a flow's changes.

use base64::Engine as _;
use ferric_common::db::models::node::{InternalInfoMerge, Node};
use ferric_common::states::ProvisionState;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{AgentHeartbeat, AgentToken, RefusalKind, TaskReply};
use rand::RngCore as _;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::task::Task;
use crate::tasks::{Context, TaskError, accepted, node_locked, node_not_found, refused};

/// What a repeated lookup gets instead of the token.
const MASKED: &str = "******";

/// Merges `entries` into the node's `driver_internal_info`; `Err` with the
/// reply to send when that could not be done. With `only_if_absent`, an
/// existing key makes it [`InternalInfoMerge::AlreadyPresent`] (`Ok`).
async fn merge(
    ctx: &Context,
    node: &Node,
    entries: Map<String, Value>,
    only_if_absent: Option<&'static str>,
) -> Result<Result<InternalInfoMerge, TaskReply>, TaskError> {
    let (id, host) = (node.id, ctx.host.clone());
    let merged = ctx
        .db
        .run(move |conn| Node::merge_internal_info(conn, id, &host, &entries, only_if_absent))
        .await?;
    Ok(match merged {
        done @ (InternalInfoMerge::Merged | InternalInfoMerge::AlreadyPresent) => Ok(done),
        InternalInfoMerge::Locked(holder) => Err(node_locked(&node.uuid, &holder)),
        InternalInfoMerge::NotFound => Err(node_not_found(&node.uuid)),
        InternalInfoMerge::Contended => Err(refused(
            RefusalKind::Temporary,
            format!("Node {} is changing; please retry.", node.uuid),
        )),
    })
}

/// A new agent token: 32 random bytes, URL-safe base64 (as Python's
/// `secrets.token_urlsafe()`).
fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `AgentLookup`: the token the first time, `******` afterwards.
pub async fn lookup(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let Some(node) = crate::task::load(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let token = new_token();
    let mut entries = Map::new();
    entries.insert("agent_secret_token".into(), json!(token));
    entries.insert("agent_secret_token_pregenerated".into(), Value::Null);
    // Only the first lookup's token is stored; two lookups at once cannot
    // both hand one out.
    let token = match merge(ctx, &node, entries, Some("agent_secret_token")).await? {
        Ok(InternalInfoMerge::Merged) => {
            tracing::info!(node.uuid = %node.uuid, "agent token generated");
            token
        }
        Ok(_) => {
            tracing::warn!(node.uuid = %node.uuid, "agent token already handed out; lookup gets it masked");
            MASKED.to_owned()
        }
        Err(refusal) => return Ok(refusal),
    };
    Ok(TaskReply {
        task_id: String::new(),
        outcome: Some(Outcome::AgentToken(AgentToken { token })),
    })
}

/// Whether `offered` is the node's token (a corrupt
/// `driver_internal_info` holds none).
fn token_valid(node: &Node, offered: Option<&str>) -> bool {
    let Ok(info) = node.driver_internal_info_map() else {
        return false;
    };
    match (
        info.get("agent_secret_token").and_then(Value::as_str),
        offered,
    ) {
        (Some(known), Some(offered)) => bool::from(known.as_bytes().ct_eq(offered.as_bytes())),
        _ => false,
    }
}

/// `AgentHeartbeat`: checks the token, then records the agent.
pub async fn heartbeat(
    ctx: &Context,
    node_uuid: &str,
    beat: AgentHeartbeat,
) -> Result<TaskReply, TaskError> {
    let Some(node) = crate::task::load(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    if beat.agent_version.is_none() && beat.agent_status.is_none() {
        return Ok(refused(
            RefusalKind::Invalid,
            "Agent did not transmit a version, and a version is required. Please update the agent being used.".into(),
        ));
    }
    if !token_valid(&node, beat.agent_token.as_deref()) {
        tracing::warn!(node.uuid = %node.uuid, "heartbeat with an invalid or missing agent token");
        return Ok(refused(
            RefusalKind::Invalid,
            "Invalid or missing agent token received.".into(),
        ));
    }
    let mut entries = Map::new();
    entries.insert("agent_url".into(), json!(beat.callback_url));
    entries.insert("agent_version".into(), json!(beat.agent_version));
    entries.insert(
        "agent_last_heartbeat".into(),
        json!(
            ferric_common::db::now()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string()
        ),
    );
    if let Some(ca) = beat.agent_verify_ca {
        entries.insert("agent_verify_ca".into(), json!(ca));
    }
    if let Some(status) = beat.agent_status {
        entries.insert("agent_status".into(), json!(status));
        entries.insert(
            "agent_status_message".into(),
            json!(beat.agent_status_message),
        );
    }
    if let Err(refusal) = merge(ctx, &node, entries, None).await? {
        return Ok(refusal);
    }
    tracing::debug!(node.uuid = %node.uuid, "agent heartbeat recorded");
    if node.provision_state == ProvisionState::DeployWait.as_str() {
        // A heartbeat keeps the deploy's callback timeout away, as Ironic's
        // `touch_provisioning`.
        let id = node.id;
        ctx.db
            .run(move |conn| Node::touch_provisioning(conn, id))
            .await?;
        ctx.tracker.spawn(continue_deploy(ctx.clone(), node));
    }
    Ok(accepted())
}

/// What a heartbeat does in the background: the node's deploy interface
/// carries the deploy on, under the node's lock. Another heartbeat holding
/// the lock, or a node no longer waiting, makes it do nothing.
async fn continue_deploy(ctx: Context, node: Node) {
    let mut task = match Task::try_exclusive(&ctx, &node).await {
        Ok(Some(task)) => task,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(node.uuid = %node.uuid, error = %e, "could not take the node to continue its deploy");
            return;
        }
    };
    if task.node.provision_state == ProvisionState::DeployWait.as_str() {
        let deploy = task.driver.deploy;
        if let Err(e) = deploy.heartbeat(&mut task).await {
            tracing::error!(node.uuid = %node.uuid, error = %e, "could not continue the deploy");
        }
    }
    task.release().await;
}
