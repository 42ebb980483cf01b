//! Provision actions (`PUT /states/provision`) and the work they start.
//!
//! The handler locks the node, checks the verb against the state machine
//! under the lock, commits the in-progress state and answers; the flow then
//! runs the (fake) driver steps and fires `done` (or `fail`, with
//! `last_error`) until the node is stable, and releases the lock.

use std::time::Duration;

use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::notify;
use ferric_common::states::{Event, ProvisionState, Verb};
use ferric_proto::v1::{ProvisionAction, RefusalKind, TaskReply};
use serde_json::{Map, Value};

use crate::drivers::{self, direct, ramdisk, virtual_media};
use crate::tasks::{
    Context, TaskError, accepted, commit_start, load_node, lock_node, node_not_found, refused,
};

pub async fn handle(
    ctx: &Context,
    node_uuid: &str,
    task_id: &str,
    action: ProvisionAction,
) -> Result<TaskReply, TaskError> {
    let Ok(verb) = action.verb.parse::<Verb>() else {
        return Ok(refused(
            RefusalKind::Invalid,
            format!("\"{}\" is not a valid provision verb.", action.verb),
        ));
    };
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let lock = match lock_node(ctx, &node).await? {
        Ok(lock) => lock,
        Err(refusal) => return Ok(refusal),
    };
    let Some(node) = load_node(ctx, node_uuid).await? else {
        let _ = lock.release().await;
        return Ok(node_not_found(node_uuid));
    };
    match begin(ctx, &node, task_id, verb, &action).await {
        Ok(Begin::Refused(reply)) => {
            let _ = lock.release().await;
            Ok(reply)
        }
        Ok(Begin::Done) => {
            lock.release().await?;
            Ok(accepted())
        }
        Ok(Begin::Started(state)) => {
            tracing::info!(node.uuid = %node.uuid, verb = verb.as_str(), to = %state, "provision action started");
            let ctx2 = ctx.clone();
            let node_uuid = node.uuid.clone();
            ctx.tracker.spawn(async move {
                if let Err(e) = run_flow(&ctx2, &node_uuid, verb, state).await {
                    tracing::error!(node.uuid = %node_uuid, error = %e, "provision flow failed");
                    fail_after_error(&ctx2, &node_uuid, &e).await;
                }
                if let Err(e) = lock.release().await {
                    tracing::error!(node.uuid = %node_uuid, error = %e, "could not release node lock");
                }
            });
            Ok(accepted())
        }
        Err(e) => {
            let _ = lock.release().await;
            Err(e)
        }
    }
}

enum Begin {
    /// Nothing changed; answer with this.
    Refused(TaskReply),
    /// The node reached a stable state at once; release the lock.
    Done,
    /// The node is now in this transient state; the flow continues.
    Started(ProvisionState),
}

/// Checks and commits the first transition, under the lock.
async fn begin(
    ctx: &Context,
    node: &Node,
    task_id: &str,
    verb: Verb,
    action: &ProvisionAction,
) -> Result<Begin, TaskError> {
    let current: ProvisionState = match node.provision_state.parse() {
        Ok(state) => state,
        Err(_) => {
            return Ok(Begin::Refused(refused(
                RefusalKind::Invalid,
                format!(
                    "Node {} is in an unknown state {}.",
                    node.uuid, node.provision_state
                ),
            )));
        }
    };
    if node.maintenance
        && let Some(op) = verb.refused_in_maintenance()
    {
        return Ok(Begin::Refused(refused(
            RefusalKind::Invalid,
            format!(
                "The {op} operation can't be performed on node {} because it's in maintenance mode.",
                node.uuid
            ),
        )));
    }
    if node.protected && verb.refused_when_protected() {
        return Ok(Begin::Refused(refused(
            RefusalKind::Forbidden,
            format!(
                "Node {} is protected and cannot be undeployed, rebuilt or deleted",
                node.uuid
            ),
        )));
    }
    let Some(next) = current.next(verb.event()) else {
        return Ok(Begin::Refused(invalid_state(verb, node, current)));
    };
    let mut change = StateChange::provision(next);
    change.last_error = Some(None);
    match verb {
        Verb::Active | Verb::Deploy | Verb::Rebuild => {
            if let Some(configdrive) = &action.configdrive_json {
                let mut info: Map<String, Value> =
                    serde_json::from_str(&node.instance_info).unwrap_or_default();
                let value = serde_json::from_str(configdrive)
                    .unwrap_or_else(|_| Value::String(configdrive.clone()));
                info.insert("configdrive".into(), value);
                change.instance_info = Some(Value::Object(info).to_string());
            }
        }
        Verb::Clean => {
            // Manual cleaning returns to manageable, not available. The
            // requested steps are kept where Ironic keeps them.
            change.target_provision_state = Some(Some(ProvisionState::Manageable.as_str().into()));
            let steps: Value = action
                .clean_steps_json
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Array(Vec::new()));
            let mut internal: Map<String, Value> =
                serde_json::from_str(&node.driver_internal_info).unwrap_or_default();
            internal.insert("clean_steps".into(), steps);
            change.driver_internal_info = Some(Value::Object(internal).to_string());
        }
        _ => {}
    }
    if next == ProvisionState::Inspecting {
        change.clean_step = None;
        change.inspection_started_at = Some(Some(ferric_common::db::now()));
    }
    commit_start(ctx, node.id, task_id, change).await?;
    ctx.notifier.send(notify::provision_set(
        node,
        verb.event().as_str(),
        next,
        None,
    ));
    if next.is_stable() {
        Ok(Begin::Done)
    } else {
        Ok(Begin::Started(next))
    }
}

/// Ironic's InvalidStateRequested message.
fn invalid_state(verb: Verb, node: &Node, current: ProvisionState) -> TaskReply {
    refused(
        RefusalKind::Invalid,
        format!(
            "The requested action \"{}\" can not be performed on node \"{}\" while it is in state \"{}\".",
            verb.as_str(),
            node.uuid,
            current
        ),
    )
}

/// Writes a change under this conductor's lock.
///
/// # Errors
/// [`TaskError::LockLost`] when the node is no longer reserved by this host.
async fn write(ctx: &Context, node_id: i32, change: StateChange) -> Result<(), TaskError> {
    let host = ctx.host.clone();
    let written = ctx
        .db
        .run(move |conn| Node::write_state(conn, node_id, &host, &change))
        .await?;
    if written {
        Ok(())
    } else {
        Err(TaskError::LockLost(node_id.to_string()))
    }
}

/// Writes a flow step's change under this conductor's lock, its
/// `driver_internal_info` merged over what others wrote since `node` was
/// read.
///
/// # Errors
/// [`TaskError::LockLost`] when the node is no longer reserved by this host.
async fn write_step(
    ctx: &Context,
    node: &Node,
    change: StateChange,
    destroy_allocation: Option<i32>,
) -> Result<(), TaskError> {
    let (host, id, seen) = (ctx.host.clone(), node.id, node.driver_internal_info.clone());
    let written = ctx
        .db
        .run(move |conn| {
            Node::write_flow_state(conn, id, &host, &change, &seen, destroy_allocation)
        })
        .await?;
    if written {
        Ok(())
    } else {
        Err(TaskError::LockLost(node.uuid.clone()))
    }
}

/// After a flow error: fail the node from its current state, with
/// `last_error`, so it never stays in a transient state unlocked.
async fn fail_after_error(ctx: &Context, node_uuid: &str, error: &TaskError) {
    let Ok(Some(node)) = load_node(ctx, node_uuid).await else {
        return;
    };
    let Ok(state) = node.provision_state.parse::<ProvisionState>() else {
        return;
    };
    let Some(failed) = state.next(Event::Fail) else {
        return;
    };
    let mut change = StateChange::provision(failed);
    change.last_error = Some(Some(format!(
        "{state} failed on conductor {}: {error}",
        ctx.host
    )));
    let error_text = change.last_error.clone().flatten();
    match write(ctx, node.id, change).await {
        Ok(()) => ctx.notifier.send(notify::provision_set(
            &node,
            Event::Fail.as_str(),
            failed,
            error_text.as_deref(),
        )),
        Err(e) => {
            tracing::error!(node.uuid = %node_uuid, error = %e, "could not record the failure");
        }
    }
}

/// Drives a node from a transient state to a stable one.
async fn run_flow(
    ctx: &Context,
    node_uuid: &str,
    verb: Verb,
    mut state: ProvisionState,
) -> Result<(), TaskError> {
    let delay = Duration::from_millis(ctx.settings.fake_step_delay_ms);
    let manual_clean = verb == Verb::Clean;
    while !state.is_stable() {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Read after the step's work, so what others wrote meanwhile (an
        // agent's token) is carried into this step's write.
        let Some(node) = load_node(ctx, node_uuid).await? else {
            return Ok(());
        };
        let (event, mut change) = match hardware_step(ctx, &node, state).await {
            Some(done) => done,
            None => step(ctx, &node, state),
        };
        let Some(mut next) = state.next(event) else {
            // A transient state without a way forward (a `* failed` one).
            return Ok(());
        };
        if manual_clean && next == ProvisionState::Available {
            // Manual cleaning ends where it started.
            next = ProvisionState::Manageable;
        }
        let base = StateChange::provision(next);
        change.provision_state = base.provision_state;
        change.target_provision_state = base.target_provision_state;
        change.provision_updated_at = base.provision_updated_at;
        if manual_clean && next.target() == Some(ProvisionState::Available) {
            change.target_provision_state = Some(Some(ProvisionState::Manageable.as_str().into()));
        }
        let error_text = change.last_error.clone().flatten();
        // Tear-down ends the instance's allocation, as Ironic does, in the
        // same transaction as the state change.
        let destroy_allocation = node
            .allocation_id
            .filter(|_| state == ProvisionState::Deleting && event == Event::Clean);
        write_step(ctx, &node, change, destroy_allocation).await?;
        ctx.notifier.send(notify::provision_set(
            &node,
            event.as_str(),
            next,
            error_text.as_deref(),
        ));
        tracing::info!(node.uuid = %node.uuid, from = %state, event = event.as_str(), to = %next, "provision state changed");
        if event == Event::Fail {
            // A failure state waits for an operator.
            return Ok(());
        }
        if next == ProvisionState::DeployWait && direct::handles(&node) {
            // The agent's heartbeats carry the deploy on; the lock goes.
            return Ok(());
        }
        state = next;
    }
    Ok(())
}

/// The work of real hardware interfaces in `state` (`None`: nothing beyond
/// what [`step`] does). Ironic's verify for `ipmitool` checks the
/// driver_info and reads the power state; boot and deploy interfaces are
/// not implemented yet, so the steps that need them fail saying so.
async fn hardware_step(
    ctx: &Context,
    node: &Node,
    state: ProvisionState,
) -> Option<(Event, StateChange)> {
    let info = ctx.bmcs.access(node)?;
    let failed = |message: String| {
        Some((
            Event::Fail,
            StateChange {
                last_error: Some(Some(message)),
                ..StateChange::default()
            },
        ))
    };
    let automated_clean = ctx.settings.automated_clean && node.automated_clean != Some(false);
    match state {
        ProvisionState::Verifying => {
            let info = match info {
                Ok(info) => info,
                Err(message) => {
                    return failed(format!(
                        "Failed to validate power driver interface for node {}. Error: {message}",
                        node.uuid
                    ));
                }
            };
            match ctx.bmcs.power_state(&info).await {
                Ok(power_state) => Some((
                    Event::Done,
                    StateChange {
                        power_state: Some(Some(power_state.to_owned())),
                        ..StateChange::default()
                    },
                )),
                Err(e) => failed(format!(
                    "Failed to get power state for node {}. Error: {e}",
                    node.uuid
                )),
            }
        }
        ProvisionState::Cleaning if !automated_clean => None,
        // The ramdisk deploy interface has no clean steps (Ironic's needs
        // an agent ramdisk, which Ferric does not have yet).
        ProvisionState::Cleaning
            if ramdisk::handles(node) || direct::handles(node) || virtual_media::handles(node) =>
        {
            None
        }

        ProvisionState::Deploying if direct::handles(node) => {
            match direct::start(ctx, node).await {
                Ok(change) => Some((Event::Wait, change)),
                Err(e) => failed(format!("Deploy step deploy.deploy failed: {e}.")),
            }
        }
        ProvisionState::Deploying if ramdisk::handles(node) || virtual_media::handles(node) => {
            let deployed = if virtual_media::handles(node) {
                virtual_media::deploy(ctx, node).await
            } else {
                ramdisk::deploy(ctx, node).await
            };
            match deployed {
                Ok(power_state) => Some((
                    Event::Done,
                    StateChange {
                        power_state: Some(Some(power_state.to_owned())),
                        deploy_step: Some("{}".into()),
                        ..StateChange::default()
                    },
                )),
                Err(e) => failed(format!("Deploy step deploy.deploy failed: {e}.")),
            }
        }
        ProvisionState::Deleting
            if ramdisk::handles(node) || direct::handles(node) || virtual_media::handles(node) =>
        {
            // Whatever the deploy interface, what virtual media booted
            // (the instance's or a direct deploy's deploy ISO) is ejected.
            let torn_down = if node.boot_interface.as_deref() == Some("redfish-virtual-media") {
                virtual_media::tear_down(ctx, node).await
            } else {
                ramdisk::tear_down(ctx, node).await
            };
            match torn_down {
                Ok(power_state) => {
                    let (event, mut change) = step(ctx, node, state);
                    change.power_state = Some(Some(power_state.to_owned()));
                    Some((event, change))
                }
                Err(e) => failed(e),
            }
        }
        ProvisionState::Deploying
        | ProvisionState::Cleaning
        | ProvisionState::Rescuing
        | ProvisionState::Inspecting => failed(format!(
            "{state} needs the {} boot and {} deploy interfaces, which Ferric does not implement yet.",
            node.boot_interface.as_deref().unwrap_or("none"),
            node.deploy_interface.as_deref().unwrap_or("none")
        )),
        _ => None,
    }
}

/// Why the manual clean steps recorded on the node cannot run, if they
/// cannot.
fn manual_steps_refused(node: &Node, internal: &Map<String, Value>) -> Option<String> {
    let Some(Value::Array(steps)) = internal.get("clean_steps") else {
        return None;
    };
    drivers::fake::check_clean_steps(node, steps).err()
}

/// The fake driver's work in `state`: the event it fires and the columns it
/// changes on the way.
fn step(ctx: &Context, node: &Node, state: ProvisionState) -> (Event, StateChange) {
    let mut change = StateChange::default();
    let mut internal: Map<String, Value> =
        serde_json::from_str(&node.driver_internal_info).unwrap_or_default();
    let event = match state {
        ProvisionState::Verifying => Event::Done,
        ProvisionState::Cleaning if manual_steps_refused(node, &internal).is_some() => {
            let reason = manual_steps_refused(node, &internal).unwrap_or_default();
            internal.remove("clean_steps");
            change.last_error = Some(Some(format!("Cannot clean node {}: {reason}", node.uuid)));
            Event::Fail
        }
        ProvisionState::Cleaning => {
            // The fake interfaces' steps (and automated cleaning, which has
            // none) finish at once.
            internal.insert("clean_steps".into(), Value::Null);
            change.clean_step = Some("{}".into());
            if !ctx.settings.automated_clean || node.automated_clean == Some(false) {
                internal.remove("clean_steps");
            }
            Event::Done
        }
        ProvisionState::Deploying => {
            internal.insert("deploy_steps".into(), Value::Null);
            change.deploy_step = Some("{}".into());
            Event::Done
        }
        ProvisionState::Deleting => {
            // Tear down: the instance is gone; then clean.
            change.instance_info = Some("{}".into());
            change.instance_uuid = Some(None);
            change.instance_name = Some(None);
            Event::Clean
        }
        ProvisionState::Inspecting => {
            // As Ironic records a finished inspection.
            change.inspection_started_at = Some(None);
            change.inspection_finished_at = Some(Some(ferric_common::db::now()));
            Event::Done
        }
        ProvisionState::Adopting | ProvisionState::Rescuing | ProvisionState::Unrescuing => {
            Event::Done
        }
        ProvisionState::Servicing => Event::Done,
        // Wait states resume at once with fake drivers.
        ProvisionState::CleanWait
        | ProvisionState::DeployWait
        | ProvisionState::InspectWait
        | ProvisionState::RescueWait
        | ProvisionState::ServiceWait => Event::Resume,
        _ => Event::Fail,
    };
    if event == Event::Fail && change.last_error.is_none() {
        change.last_error = Some(Some(format!(
            "The {state} state can't be resumed by conductor {}. Moving to fail state.",
            ctx.host
        )));
    }
    change.driver_internal_info = Some(Value::Object(internal).to_string());
    (event, change)
}
