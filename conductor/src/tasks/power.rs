//! Power actions (`PUT /states/power`): lock, record the target, answer, then
//! drive the node's power interface and record the outcome.

use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::notify;
use ferric_common::states::power;
use ferric_proto::v1::{PowerAction, RefusalKind, TaskReply};
use serde_json::Value;

use crate::drivers::DriverError;
use crate::task::Task;
use crate::tasks::{
    Context, TaskError, accepted, commit_start, driver_refusal, lock_node, refused,
};

pub async fn handle(
    ctx: &Context,
    node_uuid: &str,
    task_id: &str,
    action: PowerAction,
) -> Result<TaskReply, TaskError> {
    if !power::TARGETS.iter().any(|(t, _)| *t == action.target) {
        return Ok(refused(
            RefusalKind::Invalid,
            format!("Invalid power state {}.", action.target),
        ));
    }
    let task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    if let Err(e) = task.driver.power.validate(&task) {
        task.release().await;
        return Ok(driver_refusal(&e));
    }
    let target = power::settles_to(&action.target).to_owned();
    let requested = action.target.clone();
    let timeout = action.timeout_seconds;
    let change = StateChange {
        target_power_state: Some(Some(target.clone())),
        last_error: Some(None),
        ..StateChange::default()
    };
    if let Err(e) = commit_start(ctx, task.node.id, task_id, change).await {
        task.release().await;
        return Err(e);
    }
    ctx.notifier
        .send(notify::power_set(&task.node, &requested, "start"));
    task.spawn_after(move |task| async move {
        if let Err(e) = finish(&task, &requested, &target, timeout).await {
            tracing::error!(node.uuid = %task.node.uuid, error = %e, "power action failed");
        }
        task
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

/// Drives the node's power interface to `target`. Asking for the state
/// the node is already in changes nothing (Ironic reads the state first
/// for on, off and soft off; a failure to read is worded without the
/// "by").
async fn drive(
    task: &Task,
    requested: &str,
    target: &str,
    timeout_secs: u32,
) -> Result<Outcome, String> {
    let power_interface = task.driver.power;
    let settings = &task.ctx().settings;
    let timeout = std::time::Duration::from_secs(match timeout_secs {
        0 if requested == power::SOFT_POWER_OFF => settings.soft_power_off_timeout_secs,
        0 => settings.power_state_change_timeout_secs,
        n => u64::from(n),
    });
    let failed_by = |e: DriverError| {
        format!("Failed to change power state to '{target}' by '{requested}': {e}")
    };
    if matches!(
        requested,
        power::POWER_ON | power::POWER_OFF | power::SOFT_POWER_OFF
    ) {
        let current = match power_interface.get_power_state(task).await {
            Ok(current) => current,
            Err(e @ (DriverError::InvalidParameter(_) | DriverError::Corrupt(_))) => {
                return Err(failed_by(e));
            }
            Err(e) => {
                return Err(format!(
                    "Failed to change power state to '{requested}': {e}"
                ));
            }
        };
        if current == Some(target) {
            return Ok(Outcome::Already(target.to_owned()));
        }
    }
    power_interface
        .set_power_state(task, requested, timeout)
        .await
        .map(|state| Outcome::Changed(state.to_owned()))
        .map_err(failed_by)
}

/// Drives the power interface and records the outcome; a failure clears
/// the target and sets `last_error` with Ironic's wording.
async fn finish(
    task: &Task,
    requested: &str,
    target: &str,
    timeout_secs: u32,
) -> Result<(), TaskError> {
    let node = &task.node;
    let mut failed = false;
    let change = match drive(task, requested, target, timeout_secs).await {
        Ok(Outcome::Already(state)) => StateChange {
            power_state: Some(Some(state)),
            target_power_state: Some(None),
            ..StateChange::default()
        },
        Ok(Outcome::Changed(state)) => {
            let mut internal = node.driver_internal_info_map()?;
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
    let (host, id) = (task.ctx().host.clone(), node.id);
    // The row is read back only for the notification's payload.
    let notify = task.ctx().notifier.is_enabled();
    let written = task
        .ctx()
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
        task.ctx()
            .notifier
            .send(notify::power_set(&after, requested, status));
    }
    Ok(())
}
