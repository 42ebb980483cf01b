//! Power actions (`PUT /states/power`): lock, record the target, answer, then
//! drive the power interface and record the outcome.

use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::notify;
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
    if let Some(Err(message)) = ctx.bmcs.access(&node) {
        let _ = lock.release().await;
        return Ok(refused(RefusalKind::Invalid, message));
    }
    let target = power::settles_to(&action.target).to_owned();
    let requested = action.target.clone();
    let timeout = action.timeout_seconds;
    let change = StateChange {
        target_power_state: Some(Some(target.clone())),
        last_error: Some(None),
        ..StateChange::default()
    };
    if let Err(e) = commit_start(ctx, node.id, task_id, change).await {
        let _ = lock.release().await;
        return Err(e);
    }
    ctx.notifier
        .send(notify::power_set(&node, &requested, "start"));
    let ctx2 = ctx.clone();
    ctx.tracker.spawn(async move {
        if let Err(e) = finish(&ctx2, &node, &requested, &target, timeout).await {
            tracing::error!(node.uuid = %node.uuid, error = %e, "power action failed");
        }
        let _ = lock.release().await;
    });
    Ok(accepted())
}

/// What a power action came to.
enum Outcome {
    /// Already there (on, off, soft off): nothing asked of the hardware;
    /// the state read is recorded, as Ironic's `_can_skip_state_change`.
    Already(String),
    /// The hardware was driven to this state.
    Changed(String),
}

/// Drives the node's power interface to `target` and records the outcome.
/// Asking for the state the node is already in changes nothing but the
/// target, as in Ironic; a failure clears the target and sets `last_error`
/// with Ironic's wording.
async fn finish(
    ctx: &Context,
    node: &Node,
    requested: &str,
    target: &str,
    timeout_secs: u32,
) -> Result<(), TaskError> {
    let (host, id) = (ctx.host.clone(), node.id);
    let on_off = requested == power::POWER_ON || requested == power::POWER_OFF;
    let outcome = match ctx.bmcs.access(node) {
        None => {
            // Fake power: the recorded state is the hardware's.
            if node.power_state.as_deref() == Some(target) && on_off {
                Ok(Outcome::Already(target.to_owned()))
            } else {
                Ok(Outcome::Changed(target.to_owned()))
            }
        }
        Some(Err(message)) => Err(format!(
            "Failed to change power state to '{target}' by '{requested}': {message}"
        )),
        Some(Ok(access)) => {
            let timeout = std::time::Duration::from_secs(match timeout_secs {
                0 if requested == power::SOFT_POWER_OFF => ctx.settings.soft_power_off_timeout_secs,
                0 => ctx.settings.power_state_change_timeout_secs,
                n => u64::from(n),
            });
            async {
                // Ironic reads the state first for on/off; a failure to
                // read is worded without the "by".
                if on_off || requested == power::SOFT_POWER_OFF {
                    let current = ctx.bmcs.power_state(&access).await.map_err(|e| {
                        format!("Failed to change power state to '{requested}': {e}")
                    })?;
                    if current == target {
                        return Ok(Outcome::Already(current.to_owned()));
                    }
                }
                ctx.bmcs
                    .set_power(&access, requested, timeout)
                    .await
                    .map(|state| Outcome::Changed(state.to_owned()))
                    .map_err(|e| {
                        format!("Failed to change power state to '{target}' by '{requested}': {e}")
                    })
            }
            .await
        }
    };
    let mut failed = false;
    let change = match outcome {
        Ok(Outcome::Already(state)) => StateChange {
            power_state: Some(Some(state)),
            target_power_state: Some(None),
            ..StateChange::default()
        },
        Ok(Outcome::Changed(state)) => {
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
            StateChange {
                power_state: Some(Some(state)),
                target_power_state: Some(None),
                driver_internal_info: Some(Value::Object(internal).to_string()),
                ..StateChange::default()
            }
        }
        Err(error) => {
            tracing::warn!(node.uuid = %node.uuid, %error, "power action failed");
            failed = true;
            StateChange {
                target_power_state: Some(None),
                last_error: Some(Some(error)),
                ..StateChange::default()
            }
        }
    };
    // The row is read back only for the notification's payload.
    let notify = ctx.notifier.is_enabled();
    let written = ctx
        .db
        .run(move |conn| {
            Node::write_state(conn, id, &host, &change)?;
            if notify {
                Node::by_id(conn, id)
            } else {
                Ok(None)
            }
        })
        .await?;
    if let Some(after) = written {
        let status = if failed { "error" } else { "end" };
        ctx.notifier
            .send(notify::power_set(&after, requested, status));
    }
    Ok(())
}
