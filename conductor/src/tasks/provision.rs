//! Provision actions (`PUT /states/provision`) and the work they start.
//!
//! The handler locks the node, checks the verb against the state machine
//! under the lock, commits the in-progress state and answers; the flow then
//! asks the node's interfaces for each transient state's work (power for
//! verify, deploy for deploy and tear-down, inspect for inspection) and
//! fires `done` (or `fail`, with `last_error`) until the node is stable or
//! waits for an agent, and releases the lock. It never names an interface
//! implementation.

use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::notify;
use ferric_common::states::{Event, ProvisionState, Verb};
use ferric_proto::v1::{ProvisionAction, RefusalKind, TaskReply};
use serde_json::Value;

use crate::drivers::DriverError;
use crate::drivers::interfaces::{Deployed, Inspected};
use crate::task::Task;
use crate::tasks::clean_runbook;
use crate::tasks::steps::check_clean_steps;
use crate::tasks::{Context, TaskError, accepted, commit_start, lock_node, refused};

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
    let task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let waited_in = task.provision_state().ok();
    match begin(ctx, &task.node, task_id, verb, &action).await {
        Ok(Begin::Refused(reply)) => {
            task.release().await;
            Ok(reply)
        }
        Ok(Begin::Done) => {
            task.release().await;
            Ok(accepted())
        }
        Ok(Begin::Started(_))
            if verb == Verb::Abort && waited_in.is_some_and(waits_for_an_agent) =>
        {
            // As Ironic's abort of a wait for an agent: the interface that
            // started the wait powers the node off and undoes the ramdisk's
            // boot (the task still holds the node as it waited).
            task.spawn_after(move |task| async move {
                let change = if waited_in == Some(ProvisionState::InspectWait) {
                    task.driver.inspect.clean_up(&task).await
                } else {
                    task.driver.deploy.clean_up(&task).await
                };
                if let Err(e) = task.write(change).await {
                    tracing::error!(node.uuid = %task.node.uuid, error = %e, "could not record the aborted wait's clean-up");
                }
                task
            });
            Ok(accepted())
        }
        Ok(Begin::Started(state)) => {
            tracing::info!(node.uuid = %task.node.uuid, verb = verb.as_str(), to = %state, "provision action started");
            task.spawn_after(move |mut task| async move {
                match run_flow(&mut task, verb, state).await {
                    Ok(()) => {}
                    // Fenced: the node is another's now; nothing to record.
                    Err(TaskError::LockLost(_)) => {}
                    Err(e) => {
                        tracing::error!(node.uuid = %task.node.uuid, error = %e, "provision flow failed");
                        fail_after_error(&mut task, &e).await;
                    }
                }
                task
            });
            Ok(accepted())
        }
        Err(e) => {
            task.release().await;
            Err(e)
        }
    }
}

/// The states where a node waits for its deploy ramdisk's agent.
fn waits_for_an_agent(state: ProvisionState) -> bool {
    matches!(
        state,
        ProvisionState::InspectWait | ProvisionState::CleanWait | ProvisionState::DeployWait
    )
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
                let mut info = node.instance_info_map()?;
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
            let mut internal = node.driver_internal_info_map()?;
            internal.insert("clean_steps".into(), steps);
            change.driver_internal_info = Some(Value::Object(internal).to_string());
        }
        _ => {}
    }
    if verb == Verb::Abort && current == ProvisionState::InspectWait {
        change.last_error = Some(Some("Inspection was aborted by request.".into()));
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

/// After a flow error: fail the node from its current state, with
/// `last_error`, so it never stays in a transient state unlocked.
async fn fail_after_error(task: &mut Task, error: &TaskError) {
    // Not written for want of a database: the periodic pass writes it.
    let unrecorded = |task: &Task, e: &TaskError| {
        tracing::error!(node.uuid = %task.node.uuid, error = %e, "could not record the failure");
        if matches!(e, TaskError::Db(db) if db.is_transient()) {
            task.ctx()
                .unsettled
                .remember(task.node.id, &task.node.uuid, Some(error.to_string()));
        }
    };
    if let Err(e) = task.reload().await {
        unrecorded(task, &e);
        return;
    }
    let Ok(state) = task.provision_state() else {
        return;
    };
    if state.next(Event::Fail).is_none() {
        return;
    }
    let reason = Node::flow_failure(state, &task.ctx().host, error);
    if let Err(e) = task.fail(reason, StateChange::default()).await {
        unrecorded(task, &e);
    }
}

/// What one transient state's work came to.
struct Step {
    event: Event,
    change: StateChange,
    /// The node now waits for its agent: the flow ends, the lock goes.
    waits: bool,
}

impl Step {
    fn fires(event: Event, change: StateChange) -> Step {
        Step {
            event,
            change,
            waits: false,
        }
    }

    fn fails(message: String) -> Step {
        Step::fires(
            Event::Fail,
            StateChange {
                last_error: Some(Some(message)),
                ..StateChange::default()
            },
        )
    }
}

/// Drives a node from a transient state to a stable one (or to a wait for
/// its agent).
async fn run_flow(task: &mut Task, verb: Verb, mut state: ProvisionState) -> Result<(), TaskError> {
    let delay = task.ctx().settings.fake_step_delay();
    let manual_clean = verb == Verb::Clean;
    while !state.is_stable() {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Read after the step's work, so what others wrote meanwhile (an
        // agent's token) is carried into this step's write.
        match task.reload().await {
            Ok(()) => {}
            Err(TaskError::NodeGone(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        let Step {
            event,
            mut change,
            waits,
        } = interface_step(task, state).await?;
        let Some(mut next) = state.next(event) else {
            // A transient state without a way forward (a `* failed` one).
            return Ok(());
        };
        if manual_clean && next == ProvisionState::Available {
            // Manual cleaning ends where it started.
            next = ProvisionState::Manageable;
        }
        if manual_clean && next.target() == Some(ProvisionState::Available) {
            change.target_provision_state = Some(Some(ProvisionState::Manageable.as_str().into()));
        }
        task.move_to(event, next, change).await?;
        if event == Event::Fail || waits {
            // A failure state waits for an operator; a wait, for the agent.
            return Ok(());
        }
        state = next;
    }
    Ok(())
}

/// The node's interfaces' work in `state`, then the conductor's own
/// bookkeeping ([`bookkeeping`]).
async fn interface_step(task: &mut Task, state: ProvisionState) -> Result<Step, TaskError> {
    if state == ProvisionState::Cleaning
        && !manual_cleaning(&task.node)
        && automated_cleaning_on(task)
        && let Err(reason) = clean_runbook::declare(task).await?
    {
        return Ok(Step::fails(reason));
    }
    let driver = task.driver;
    let node_uuid = task.node.uuid.clone();
    Ok(match state {
        ProvisionState::Verifying => {
            if let Err(e) = driver.power.validate(task) {
                return Ok(Step::fails(format!(
                    "Failed to validate power driver interface for node {node_uuid}. Error: {e}"
                )));
            }
            match driver.power.get_power_state(task).await {
                Ok(power_state) => Step::fires(
                    Event::Done,
                    StateChange {
                        power_state: power_state.map(|s| Some(s.to_owned())),
                        ..StateChange::default()
                    },
                ),
                Err(e) => Step::fails(format!(
                    "Failed to get power state for node {node_uuid}. Error: {e}"
                )),
            }
        }
        ProvisionState::Deploying => match driver.deploy.deploy(task).await {
            Ok(Deployed::Done(change)) => Step::fires(Event::Done, change),
            Ok(Deployed::Waiting(change)) => Step {
                event: Event::Wait,
                change,
                waits: true,
            },
            Err(e) => Step::fails(format!("Deploy step deploy.deploy failed: {e}.")),
        },
        ProvisionState::Deleting => match driver.deploy.tear_down(task).await {
            Ok(power_state) => {
                let mut step = bookkeeping(task, state)?;
                if let Some(power_state) = power_state {
                    step.change.power_state = Some(Some(power_state.to_owned()));
                }
                step
            }
            Err(e) => Step::fails(e.to_string()),
        },
        ProvisionState::Cleaning if agent_cleans(task)? => {
            match driver.deploy.prepare_cleaning(task).await {
                Ok(Some(change)) => Step {
                    event: Event::Wait,
                    change,
                    waits: true,
                },
                Ok(None) => bookkeeping(task, state)?,
                Err(e) => Step::fails(format!(
                    "Failed to prepare node {node_uuid} for cleaning: {e}"
                )),
            }
        }
        ProvisionState::Inspecting => match driver.inspect.inspect_hardware(task).await {
            Ok(Inspected::Done) => bookkeeping(task, state)?,
            Ok(Inspected::Waiting(change)) => Step {
                event: Event::Wait,
                change: *change,
                waits: true,
            },
            Err(e) => Step::fails(e.to_string()),
        },
        ProvisionState::Rescuing if !driver.rescue.supported() => {
            Step::fails(DriverError::not_supported(&task.node, "rescue").to_string())
        }
        _ => bookkeeping(task, state)?,
    })
}

/// Whether this cleaning needs the deploy ramdisk's agent: a deploy
/// interface with one, and automated cleaning on (`[conductor]
/// automated_clean` and the node's own), or a manual clean naming a
/// `deploy` step.
fn agent_cleans(task: &Task) -> Result<bool, TaskError> {
    let node = &task.node;
    if !task.driver.deploy.boots_deploy_ramdisk() {
        return Ok(false);
    }
    let internal = node.driver_internal_info_map()?;
    let requested = internal.get("clean_steps").and_then(Value::as_array);
    if manual_cleaning(node) || task.cleaning_by_runbook() {
        let no_ramdisk = internal.get("cleaning_disable_ramdisk") == Some(&Value::Bool(true));
        return Ok(!no_ramdisk
            && requested.is_some_and(|steps| steps.iter().any(|s| s["interface"] == "deploy")));
    }
    Ok(automated_cleaning_on(task))
}

/// Whether the node is in a manual clean (it goes back to `manageable`).
fn manual_cleaning(node: &Node) -> bool {
    node.target_provision_state.as_deref() == Some(ProvisionState::Manageable.as_str())
}

/// Whether automated cleaning runs for the node: its own `automated_clean`
/// when set, else `[conductor] automated_clean` (as Ironic).
fn automated_cleaning_on(task: &Task) -> bool {
    task.node
        .automated_clean
        .unwrap_or(task.ctx().settings.automated_clean)
}

/// The conductor's own work in `state` once the interfaces have done
/// theirs: the event it fires and the columns it changes on the way.
fn bookkeeping(task: &Task, state: ProvisionState) -> Result<Step, TaskError> {
    let node = &task.node;
    let mut change = StateChange::default();
    let mut internal = node.driver_internal_info_map()?;
    let refused_steps = match internal.get("clean_steps") {
        Some(Value::Array(steps)) => check_clean_steps(&task.driver, steps).err(),
        _ => None,
    };
    let event = match state {
        ProvisionState::Verifying => Event::Done,
        ProvisionState::Cleaning if refused_steps.is_some() => {
            let reason = refused_steps.unwrap_or_default();
            internal.remove("clean_steps");
            change.last_error = Some(Some(format!("Cannot clean node {}: {reason}", node.uuid)));
            Event::Fail
        }
        ProvisionState::Cleaning => {
            // The interfaces' steps (and automated cleaning, which has
            // none) finish at once.
            internal.insert("clean_steps".into(), Value::Null);
            change.clean_step = Some("{}".into());
            if !automated_cleaning_on(task) {
                internal.remove("clean_steps");
            }
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
        // Wait states resume at once when nothing waits for an agent.
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
            task.ctx().host
        )));
    }
    if state == ProvisionState::Cleaning {
        internal.remove("declarative_cleaning");
        internal.remove("cleaning_disable_ramdisk");
    }
    change.driver_internal_info = Some(Value::Object(internal).to_string());
    Ok(Step::fires(event, change))
}
