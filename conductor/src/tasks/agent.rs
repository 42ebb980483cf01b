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
//!
//! The agent's identity, beyond Ironic (a stolen token is not enough to
//! redirect a deploy): the first heartbeat pins `agent_url` and
//! `agent_verify_ca` for that boot (a changed one is refused, atomically
//! with the write); with `[conductor] agent_bind_source_address` the token
//! is bound to the address its lookup came from
//! (`agent_lookup_address`): heartbeats must come from there and the
//! callback URL must name it.

use std::net::IpAddr;

use base64::Engine as _;
use ferric_common::db::models::node::{InternalInfoMerge, MergeGuard, Node};
use ferric_common::destinations::canonical;
use ferric_common::states::ProvisionState;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{
    AgentHeartbeat, AgentLookup, AgentToken, DeployProgress, RefusalKind, TaskReply,
};
use rand::RngCore as _;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::task::{Acquired, Task};
use crate::tasks::{Context, TaskError, accepted, node_locked, node_not_found, refused};

/// What a repeated lookup gets instead of the token.
const MASKED: &str = "******";

/// Where the lookup that received the token came from.
const LOOKUP_ADDRESS: &str = "agent_lookup_address";

/// What the first heartbeat pins for the rest of the boot.
const PINNED: [&str; 2] = ["agent_url", "agent_verify_ca"];

/// Why a heartbeat does not come from the agent its token was handed to,
/// if it does not: it must come from the lookup's address, and its
/// callback URL must name that address (a heartbeat relayed by an older
/// API, without a source, is not judged).
fn foreign_source(info: &Map<String, Value>, beat: &AgentHeartbeat) -> Option<String> {
    let source: IpAddr = beat.source_address.as_deref()?.parse().ok()?;
    let source = canonical(source);
    let bound = info
        .get(LOOKUP_ADDRESS)
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .map(canonical);
    if bound.is_some_and(|bound| bound != source) {
        return Some(
            "Heartbeat refused: the agent token was handed to an agent at another address.".into(),
        );
    }
    if beat.callback_url.is_empty() {
        return None;
    }
    let names_source = reqwest::Url::parse(&beat.callback_url)
        .ok()
        .and_then(|url| {
            let host = url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']');
            host.parse::<IpAddr>().ok()
        })
        .is_some_and(|ip| canonical(ip) == source);
    (!names_source).then(|| {
        format!(
            "Heartbeat refused: callback_url must name the address the agent heartbeats from ({source})."
        )
    })
}

/// Merges `entries` into the node's `driver_internal_info` under `guard`;
/// `Err` with the reply to send when that could not be done (a guard that
/// does not hold is `Ok`: [`InternalInfoMerge::AlreadyPresent`] or
/// [`InternalInfoMerge::Differs`]).
async fn merge(
    ctx: &Context,
    node: &Node,
    entries: Map<String, Value>,
    guard: MergeGuard<'static>,
) -> Result<Result<InternalInfoMerge, TaskReply>, TaskError> {
    let (id, host) = (node.id, ctx.host.clone());
    let merged = ctx
        .db
        .run(move |conn| Node::merge_internal_info(conn, id, &host, &entries, guard))
        .await?;
    Ok(match merged {
        done @ (InternalInfoMerge::Merged
        | InternalInfoMerge::AlreadyPresent
        | InternalInfoMerge::Differs(_)) => Ok(done),
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

/// `AgentLookup`: the token the first time (bound to the lookup's source
/// address), `******` afterwards.
pub async fn lookup(
    ctx: &Context,
    node_uuid: &str,
    lookup: AgentLookup,
) -> Result<TaskReply, TaskError> {
    let Some(node) = crate::task::load(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let token = new_token();
    let mut entries = Map::new();
    entries.insert("agent_secret_token".into(), json!(token));
    entries.insert("agent_secret_token_pregenerated".into(), Value::Null);
    entries.insert(LOOKUP_ADDRESS.into(), json!(lookup.source_address));
    // Only the first lookup's token is stored; two lookups at once cannot
    // both hand one out.
    let guard = MergeGuard::Absent("agent_secret_token");
    let token = match merge(ctx, &node, entries, guard).await? {
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

/// `driver_internal_info.deploy_progress` from an agent's report: bytes
/// written, the total when known, seconds and the throughput in MB/s.
fn progress_entry(progress: &DeployProgress) -> Value {
    let mb_per_s = if progress.seconds > 0.0 {
        (progress.bytes as f64 / progress.seconds / 1e6 * 10.0).round() / 10.0
    } else {
        0.0
    };
    json!({
        "bytes": progress.bytes,
        "total": progress.total,
        "seconds": progress.seconds,
        "mb_per_s": mb_per_s,
    })
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
    if ctx.settings.agent_bind_source_address
        && let Some(reason) = node
            .driver_internal_info_map()
            .ok()
            .and_then(|info| foreign_source(&info, &beat))
    {
        tracing::warn!(node.uuid = %node.uuid, source = ?beat.source_address, "heartbeat from another address than the agent's refused");
        return Ok(refused(RefusalKind::Invalid, reason));
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
    if let Some(progress) = &beat.deploy_progress {
        let before = node
            .driver_internal_info_map()
            .ok()
            .and_then(|info| info.get("deploy_progress")?.get("bytes")?.as_u64())
            .unwrap_or(0);
        ferric_common::metrics::global().deploy_image_bytes(progress.bytes.saturating_sub(before));
        entries.insert("deploy_progress".into(), progress_entry(progress));
    }
    if let Some(status) = beat.agent_status {
        entries.insert("agent_status".into(), json!(status));
        entries.insert(
            "agent_status_message".into(),
            json!(beat.agent_status_message),
        );
    }
    match merge(ctx, &node, entries, MergeGuard::AbsentOrSame(&PINNED)).await? {
        Err(refusal) => return Ok(refusal),
        Ok(InternalInfoMerge::Differs(key)) => {
            tracing::warn!(node.uuid = %node.uuid, changed = %key, "heartbeat changing what the agent's first heartbeat pinned refused");
            let message = if key == "agent_url" {
                "Detected change in ramdisk provided \"callback_url\"".to_owned()
            } else {
                "Detected change in the agent's TLS certificate (agent_verify_ca); the first heartbeat's is kept for this boot.".to_owned()
            };
            return Ok(refused(RefusalKind::Invalid, message));
        }
        Ok(_) => {}
    }
    tracing::debug!(node.uuid = %node.uuid, "agent heartbeat recorded");
    if [ProvisionState::DeployWait, ProvisionState::CleanWait]
        .iter()
        .any(|s| node.provision_state == s.as_str())
    {
        // A heartbeat keeps the callback timeout away, as Ironic's
        // `touch_provisioning`.
        let id = node.id;
        ctx.db
            .run(move |conn| Node::touch_provisioning(conn, id))
            .await?;
        ctx.tracker
            .spawn(continue_deploy(ctx.clone(), node, beat.agent_token.clone()));
    }
    Ok(accepted())
}

/// What a heartbeat does in the background: the node's deploy interface
/// carries the deploy on, under the node's lock, waited for as any task
/// waits (`node_locked_retry_attempts`): a ramdisk that boots fast looks
/// up and heartbeats before the task that booted it has let the node go,
/// and dropping that heartbeat (as Ironic does) stalled the deploy until
/// the agent's next one, minutes later. A lock still held after the wait,
/// a node no longer waiting for its agent, or no longer holding the token
/// the heartbeat carried (the node was undeployed, or booted another
/// ramdisk, while the heartbeat waited) makes it do nothing: the agent's
/// next heartbeat tries again.
async fn continue_deploy(ctx: Context, node: Node, token: Option<String>) {
    let mut task = match Task::exclusive(&ctx, &node.uuid).await {
        Ok(Acquired::Locked(task)) => *task,
        Ok(Acquired::NotFound) => return,
        Ok(Acquired::HeldBy(holder)) => {
            tracing::info!(node.uuid = %node.uuid, %holder, "node busy; its agent's next heartbeat continues the deploy");
            return;
        }
        Err(e) => {
            tracing::warn!(node.uuid = %node.uuid, error = %e, "could not take the node to continue its deploy");
            return;
        }
    };
    let waiting = [ProvisionState::DeployWait, ProvisionState::CleanWait]
        .iter()
        .any(|s| task.node.provision_state == s.as_str());
    if waiting && token_valid(&task.node, token.as_deref()) {
        let deploy = task.driver.deploy;
        if let Err(e) = deploy.heartbeat(&mut task).await {
            tracing::error!(node.uuid = %node.uuid, error = %e, "could not continue the deploy or cleaning");
        }
    }
    task.release().await;
}
