//! Power actions (`PUT /states/power`): lock, record the target, answer, then
//! drive the power interface and record the outcome.

use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::states::power;
use ferric_proto::v1::{PowerAction, RefusalKind, TaskReply};
use serde_json::Value;

use crate::tasks::{
    Context, TaskError, accepted, commit_start, load_node, lock_node, node_not_found, refused,
};

pub async fn handle(
    ctx: &Context,
    node_uuid: &str,
    task_id: &str,
    action: PowerAction,
) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    if !power::TARGETS.iter().any(|(t, _)| *t == action.target) {
        return Ok(refused(
            RefusalKind::Invalid,
            format!("Invalid power state {}.", action.target),
        ));
    }
    let lock = match lock_node(ctx, &node).await? {
        Ok(lock) => lock,
        Err(refusal) => return Ok(refusal),
    };
    // Re-read under the lock: the row may have changed since the first read.
    let Some(node) = load_node(ctx, node_uuid).await? else {
        let _ = lock.release().await;
        return Ok(node_not_found(node_uuid));
    };
    let target = power::settles_to(&action.target).to_owned();
    let requested = action.target.clone();
    let change = StateChange {
        target_power_state: Some(Some(target.clone())),
        last_error: Some(None),
        ..StateChange::default()
    };
    if let Err(e) = commit_start(ctx, node.id, task_id, change).await {
        let _ = lock.release().await;
        return Err(e);
    }
    let ctx2 = ctx.clone();
    ctx.tracker.spawn(async move {
        if let Err(e) = finish(&ctx2, &node, &requested, &target).await {
            tracing::error!(node.uuid = %node.uuid, error = %e, "power action failed");
        }
        let _ = lock.release().await;
    });
    Ok(accepted())
}

/// Drives the (fake) power interface to `target` and records it. Asking for
/// the state the node is already in changes nothing but the target, as in
/// Ironic.
async fn finish(
    ctx: &Context,
    node: &Node,
    requested: &str,
    target: &str,
) -> Result<(), TaskError> {
    let (host, id) = (ctx.host.clone(), node.id);
    let already = node.power_state.as_deref() == Some(target)
        && (requested == power::POWER_ON || requested == power::POWER_OFF);
    if already {
        let change = StateChange {
            target_power_state: Some(None),
            ..StateChange::default()
        };
        ctx.db
            .run(move |conn| Node::write_state(conn, id, &host, &change))
            .await?;
        return Ok(());
    }
    let mut internal: serde_json::Map<String, Value> =
        serde_json::from_str(&node.driver_internal_info).unwrap_or_default();
    internal.insert(
        "last_power_state_change".into(),
        Value::String(
            ferric_common::db::now()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
        ),
    );
    let change = StateChange {
        power_state: Some(Some(target.to_owned())),
        target_power_state: Some(None),
        driver_internal_info: Some(Value::Object(internal).to_string()),
        ..StateChange::default()
    };
    ctx.db
        .run(move |conn| Node::write_state(conn, id, &host, &change))
        .await?;
    Ok(())
}
