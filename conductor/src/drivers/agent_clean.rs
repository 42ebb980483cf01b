//! Cleaning through the deploy ramdisk's agent (Ironic's in-band cleaning
//! of the agent deploy interfaces), for `direct`:
//! 1. `cleaning` boots the ramdisk with `ipa-api-url=` and reboots; the
//!    node waits in `clean wait`, unlocked.
//! 2. The agent's first heartbeat fetches its clean steps
//!    (`clean.get_clean_steps`, kept as `agent_cached_clean_steps`) and
//!    plans: automated cleaning runs every step whose priority — the
//!    agent's, or `[deploy] erase_devices_priority` /
//!    `erase_devices_metadata_priority`, or `[conductor]
//!    clean_step_priority_override` — is not 0, highest first; a
//!    manual clean, or an automated one by runbook
//!    ([`Task::cleaning_by_runbook`]), runs the `deploy` steps it named,
//!    in its order, each of which the agent must offer. The plan is `driver_internal_info`
//!    `clean_steps` with `clean_step_index`, the running step `clean_step`.
//! 3. Each step starts with `clean.execute_clean_step` (the whole node, its
//!    ports, the agent's `clean_version`); later heartbeats poll the agent's
//!    command until it ends. After the last one the node is powered off,
//!    its ramdisk's boot undone: `available` (or `manageable` for a manual
//!    clean).
//! 4. A failed step ends in `clean failed` with Ironic's message in
//!    `last_error`, in maintenance with fault `clean failure` (as Ironic,
//!    when a step was running), powered off; so does no heartbeat within
//!    `deploy_callback_timeout_secs` (the periodic pass).

use ferric_common::config::ConductorSettings;
use ferric_common::db::models::node::StateChange;
use ferric_common::states::{Event, ProvisionState};
use serde_json::{Map, Value, json};

use super::agent_client;
use super::direct::{boot_ramdisk, leave_ramdisk, without_agent};
use super::error::DriverError;
use crate::task::Task;

/// `driver_internal_info` keys of a cleaning, wiped when it ends.
const CLEAN_KEYS: [&str; 6] = [
    "agent_cached_clean_steps",
    "clean_steps",
    "clean_step_index",
    "ferric_clean_version",
    "declarative_cleaning",
    "cleaning_disable_ramdisk",
];

/// Boots the ramdisk for cleaning: the change to record with `clean wait`.
///
/// # Errors
/// The boot interface's or the power interface's failure (the ramdisk's
/// boot is undone).
pub async fn prepare(task: &mut Task) -> Result<StateChange, DriverError> {
    let api = task.ctx().boot.api_url.clone();
    let mut change = boot_ramdisk(task, &format!("ipa-api-url={api}")).await?;
    let mut info: Map<String, Value> = change
        .driver_internal_info
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    // The requested steps of a manual clean stay; a former cleaning's plan
    // goes.
    for key in [
        "agent_cached_clean_steps",
        "clean_step_index",
        "ferric_clean_version",
    ] {
        info.remove(key);
    }
    change.driver_internal_info = Some(Value::Object(info).to_string());
    change.clean_step = Some("{}".into());
    Ok(change)
}

/// Whether the node is in a manual clean (it goes back to `manageable`).
fn manual(task: &Task) -> bool {
    task.node.target_provision_state.as_deref() == Some(ProvisionState::Manageable.as_str())
}

/// The agent's steps, flattened (`clean_steps` is keyed by hardware
/// manager; ironic-python-agent already keeps one of each step).
fn offered(steps: &Value) -> Vec<Value> {
    match steps {
        Value::Object(managers) => managers
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .cloned()
            .collect(),
        Value::Array(steps) => steps.clone(),
        _ => Vec::new(),
    }
}

/// The steps to run, in order: a manual clean's or a runbook's as given,
/// else the automated plan.
fn plan(task: &Task, offered: &[Value]) -> Result<Vec<Value>, String> {
    let settings = &task.ctx().settings;
    if manual(task) || task.cleaning_by_runbook() {
        let info = task.node.driver_internal_info_map().unwrap_or_default();
        let requested = info
            .get("clean_steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut planned = Vec::new();
        for step in requested.iter().filter(|s| s["interface"] == "deploy") {
            let Some(found) = offered.iter().find(|o| o["step"] == step["step"]) else {
                return Err(format!(
                    "Clean step deploy.{} is not offered by the agent of node {}.",
                    step["step"].as_str().unwrap_or_default(),
                    task.node.uuid
                ));
            };
            let mut step = step.clone();
            if let (Some(map), Some(found)) = (step.as_object_mut(), found.as_object()) {
                for key in ["reboot_requested", "abortable"] {
                    if let Some(value) = found.get(key) {
                        map.entry(key).or_insert_with(|| value.clone());
                    }
                }
                map.entry("args").or_insert_with(|| json!({}));
                map.entry("priority").or_insert_with(|| json!(0));
            }
            planned.push(step);
        }
        return Ok(planned);
    }
    Ok(automated_plan(offered, settings))
}

/// The steps of an automated cleaning: the agent's `deploy` steps with the
/// priorities it gives them, then `[deploy] erase_devices_priority` /
/// `erase_devices_metadata_priority`, then `[conductor]
/// clean_step_priority_override` (last wins, as in Ironic); those at 0 are
/// left out, the rest run highest first (ties in the agent's order).
fn automated_plan(offered: &[Value], settings: &ConductorSettings) -> Vec<Value> {
    // Checked at start-up: a bad entry cannot reach here.
    let overrides = settings.clean_step_priorities().unwrap_or_default();
    let mut planned: Vec<Value> = offered
        .iter()
        .filter(|s| s["interface"] == "deploy")
        .cloned()
        .map(|mut step| {
            let configured = match step["step"].as_str() {
                Some("erase_devices") => settings.erase_devices_priority.map(i64::from),
                Some("erase_devices_metadata") => {
                    settings.erase_devices_metadata_priority.map(i64::from)
                }
                _ => None,
            };
            if let Some(priority) = overrides.get(&step_id(&step)).copied().or(configured) {
                step["priority"] = json!(priority);
            }
            step["args"] = json!({});
            step
        })
        .filter(|s| s["priority"].as_i64().unwrap_or(0) != 0)
        .collect();
    planned.sort_by_key(|s| std::cmp::Reverse(s["priority"].as_i64().unwrap_or(0)));
    planned
}

/// `deploy.<step>`, as Ironic names a step.
fn step_id(step: &Value) -> String {
    format!(
        "{}.{}",
        step["interface"].as_str().unwrap_or("deploy"),
        step["step"].as_str().unwrap_or_default()
    )
}

/// A heartbeat in `clean wait`.
///
/// # Errors
/// When the cleaning could not be carried on or recorded.
pub async fn heartbeat(task: &mut Task) -> Result<(), DriverError> {
    let info = task.node.driver_internal_info_map()?;
    if !info.contains_key("agent_cached_clean_steps") {
        return match begin(task).await {
            Ok(index) => start(task, index).await,
            Err(reason) => fail(task, reason, false).await,
        };
    }
    let current: Value = serde_json::from_str(&task.node.clean_step).unwrap_or(Value::Null);
    if current.get("step").is_none() {
        return Ok(());
    }
    let last = match agent_client::last_command(task.ctx(), &task.node).await {
        Ok(last) => last,
        Err(e) => {
            tracing::warn!(node.uuid = %task.node.uuid, error = %e, "agent not reachable; waiting for the next heartbeat");
            return Ok(());
        }
    };
    if last["command_name"] != "execute_clean_step" {
        return Ok(());
    }
    match last["command_status"].as_str() {
        Some("RUNNING") => Ok(()),
        Some("SUCCEEDED") => {
            if last["command_result"]["clean_step"]["step"] != current["step"] {
                return Ok(());
            }
            tracing::info!(node.uuid = %task.node.uuid, step = %step_id(&current), "clean step done");
            let index = info
                .get("clean_step_index")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            start(
                task,
                usize::try_from(index)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1),
            )
            .await
        }
        _ => {
            let error = agent_client::command_error(&last);
            let reason = format!(
                "Clean step {} failed on node {}. {error}",
                step_id(&current),
                task.node.uuid
            );
            fail(task, reason, true).await
        }
    }
}

/// The first heartbeat: the agent's steps and the plan, recorded; the
/// index of the first step. `Err` with the reason the cleaning fails.
async fn begin(task: &mut Task) -> Result<usize, String> {
    let ctx = task.ctx().clone();
    let (node, ports) = agent_client::node_params(&ctx, &task.node, false)
        .await
        .map_err(|e| e.to_string())?;
    let answer = agent_client::call(
        &ctx,
        &task.node,
        "clean.get_clean_steps",
        json!({"node": node, "ports": ports}),
        true,
    )
    .await
    .map_err(|e| e.to_string())?;
    if answer["command_status"] == "FAILED" {
        return Err(format!(
            "Agent command clean.get_clean_steps failed: {}",
            agent_client::command_error(&answer)
        ));
    }
    let steps = answer["command_result"]["clean_steps"].clone();
    let planned = plan(task, &offered(&steps))?;
    tracing::info!(node.uuid = %task.node.uuid, steps = ?planned.iter().map(step_id).collect::<Vec<_>>(), "cleaning planned");
    let mut entries = Map::new();
    entries.insert("agent_cached_clean_steps".into(), steps);
    entries.insert("clean_steps".into(), Value::Array(planned));
    entries.insert(
        "ferric_clean_version".into(),
        answer["command_result"]["hardware_manager_version"].clone(),
    );
    task.merge_internal_info(entries)
        .await
        .map_err(|e| e.to_string())?;
    task.reload().await.map_err(|e| e.to_string())?;
    Ok(0)
}

/// Starts step `index` of the plan, or ends the cleaning after the last.
async fn start(task: &mut Task, index: usize) -> Result<(), DriverError> {
    let info = task.node.driver_internal_info_map()?;
    let planned = info
        .get("clean_steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(step) = planned.get(index).cloned() else {
        return finish(task).await;
    };
    let ctx = task.ctx().clone();
    let (node, ports) = agent_client::node_params(&ctx, &task.node, false).await?;
    let started = agent_client::call(
        &ctx,
        &task.node,
        "clean.execute_clean_step",
        json!({"step": step, "node": node, "ports": ports,
               "clean_version": info.get("ferric_clean_version").cloned().unwrap_or(Value::Null)}),
        false,
    )
    .await;
    let failure = match &started {
        Ok(answer) if answer["command_status"] == "FAILED" => {
            Some(agent_client::command_error(answer))
        }
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    if let Some(error) = failure {
        let reason = format!(
            "Clean step {} failed on node {}. {error}",
            step_id(&step),
            task.node.uuid
        );
        return fail(task, reason, true).await;
    }
    let mut entries = Map::new();
    entries.insert("clean_step_index".into(), json!(index));
    task.merge_internal_info(entries).await?;
    task.write(StateChange {
        clean_step: Some(step.to_string()),
        ..StateChange::default()
    })
    .await?;
    task.reload().await?;
    tracing::info!(node.uuid = %task.node.uuid, step = %step_id(&step), "clean step started");
    Ok(())
}

/// The node's `driver_internal_info` without the agent's and the
/// cleaning's keys.
fn without_cleaning(task: &Task) -> Option<String> {
    let mut info: Map<String, Value> =
        serde_json::from_str(&without_agent(&task.node).ok()?).ok()?;
    for key in CLEAN_KEYS {
        info.remove(key);
    }
    Some(Value::Object(info).to_string())
}

/// Powers off and undoes the ramdisk's boot; what to record.
async fn tear_down(task: &Task) -> StateChange {
    StateChange {
        clean_step: Some("{}".into()),
        driver_internal_info: without_cleaning(task),
        ..leave_ramdisk(task).await
    }
}

/// Every step ran: `available` (or `manageable`).
async fn finish(task: &mut Task) -> Result<(), DriverError> {
    let manual = manual(task);
    let change = tear_down(task).await;
    task.transition(Event::Resume, StateChange::default())
        .await?;
    if manual {
        task.move_to(Event::Done, ProvisionState::Manageable, change)
            .await?;
    } else {
        task.transition(Event::Done, change).await?;
    }
    tracing::info!(node.uuid = %task.node.uuid, "cleaning done");
    Ok(())
}

/// `clean failed` with `reason`, powered off; in maintenance with fault
/// `clean failure` when a step was running (as Ironic).
async fn fail(task: &mut Task, reason: String, in_step: bool) -> Result<(), DriverError> {
    tracing::warn!(node.uuid = %task.node.uuid, reason = %reason, "cleaning failed");
    let mut change = tear_down(task).await;
    if in_step {
        change.maintenance = Some(true);
        change.maintenance_reason = Some(Some(reason.clone()));
        change.fault = Some(Some("clean failure".into()));
    }
    Ok(task.fail(reason, change).await?)
}

/// Undoes a cleaning that timed out or was aborted: powered off, the
/// ramdisk's boot and the cleaning's keys gone.
pub async fn clean_up(task: &Task) -> StateChange {
    tear_down(task).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ironic-python-agent's generic hardware manager's steps.
    fn ipa_steps() -> Vec<Value> {
        [
            "erase_devices",
            "erase_devices_metadata",
            "erase_devices_express",
            "erase_pstore",
        ]
        .iter()
        .zip([10, 99, 0, 0])
        .map(|(step, priority)| {
            json!({"interface": "deploy", "step": step, "priority": priority,
                       "reboot_requested": false, "abortable": true})
        })
        .collect()
    }

    fn names(plan: &[Value]) -> Vec<(&str, i64)> {
        plan.iter()
            .map(|s| {
                (
                    s["step"].as_str().unwrap_or(""),
                    s["priority"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }

    #[test]
    fn the_agents_priorities_run_highest_first_and_zero_is_left_out() {
        let plan = automated_plan(&ipa_steps(), &ConductorSettings::default());
        assert_eq!(
            names(&plan),
            [("erase_devices_metadata", 99), ("erase_devices", 10)]
        );
    }

    #[test]
    fn the_override_beats_the_deploy_options_and_can_enable_a_step() {
        let settings = ConductorSettings {
            erase_devices_priority: Some(0),
            erase_devices_metadata_priority: Some(5),
            clean_step_priority_override:
                "deploy.erase_devices_express:95, deploy.erase_devices_metadata:7".into(),
            ..ConductorSettings::default()
        };
        let plan = automated_plan(&ipa_steps(), &settings);
        assert_eq!(
            names(&plan),
            [("erase_devices_express", 95), ("erase_devices_metadata", 7)]
        );
        assert!(plan.iter().all(|s| s["args"] == json!({})));
    }
}
