//! `ContinueInspection`: an agent's inspection data for a node in
//! `inspect wait` (Ironic's `continue_inspection`). Under the node's lock
//! the node resumes (`inspecting`) and the conductor answers; then, in the
//! background: the hooks ([`crate::inspection`]) and the inspection rules
//! ([`crate::inspection_rules`]) run, the inspect interface powers the node
//! off and undoes the ramdisk's boot, and one transaction writes the new
//! properties, ports, traits, the stored inventory and the move to
//! `manageable`. Anything failing ends in `inspect failed` with the reason
//! in `last_error`, and nothing of the inspection's findings is written.

use ferric_common::db::models::inspection_rule::InspectionRule;
use ferric_common::db::models::inventory::InspectionRecord;
use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::db::models::port::Port;
use ferric_common::states::{Event, ProvisionState};
use ferric_proto::v1::{ContinueInspection, RefusalKind, TaskReply};
use serde_json::{Map, Value, json};

use crate::inspection::{self, AddPorts};
use crate::inspection_rules::{self, Rule, Subject};
use crate::task::Task;
use crate::tasks::{Context, TaskError, accepted, lock_node, refused};

/// Resumes the node's inspection with the agent's data.
pub async fn continue_inspection(
    ctx: &Context,
    node_uuid: &str,
    data: ContinueInspection,
) -> Result<TaskReply, TaskError> {
    let inventory = match serde_json::from_str::<Value>(&data.inventory) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            return Ok(refused(
                RefusalKind::Invalid,
                "The inspection inventory is not a JSON object.".into(),
            ));
        }
    };
    let Ok(Value::Object(plugin_data)) = serde_json::from_str::<Value>(&data.plugin_data) else {
        return Ok(refused(
            RefusalKind::Invalid,
            "The inspection plugin data is not a JSON object.".into(),
        ));
    };
    let mut task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    // A node the API enrolled for this data is in `enroll` and stays there.
    let discovered = data.auto_discovered;
    let expected = if discovered {
        ProvisionState::Enroll
    } else {
        ProvisionState::InspectWait
    };
    if task.node.provision_state != expected.as_str() {
        tracing::error!(node.uuid = %task.node.uuid, state = %task.node.provision_state, "inspection data for a node not waiting for it refused");
        task.release().await;
        // Ironic answers NotFound, telling the caller nothing more.
        return Ok(refused(
            RefusalKind::NotFound,
            format!("Node {node_uuid} could not be found."),
        ));
    }
    if !discovered && let Err(e) = task.transition(Event::Resume, StateChange::default()).await {
        task.release().await;
        return Err(e);
    }
    tracing::info!(node.uuid = %task.node.uuid, discovered, "inspection data received");
    task.spawn_after(move |mut task| async move {
        if let Err(e) = finish(&mut task, inventory, plugin_data, discovered).await {
            tracing::error!(node.uuid = %task.node.uuid, error = %e, "could not record the inspection's end");
        }
        task
    });
    Ok(accepted())
}

/// The node as inspection rules see it: its fields, JSON columns as
/// objects.
fn rules_node(node: &Node) -> Map<String, Value> {
    let object = |text: &str| {
        let map: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
        Value::Object(map)
    };
    let Value::Object(map) = json!({
        "uuid": node.uuid,
        "name": node.name,
        "driver": node.driver,
        "resource_class": node.resource_class,
        "properties": object(&node.properties),
        "extra": object(&node.extra),
        "provision_state": node.provision_state,
    }) else {
        return Map::new();
    };
    map
}

/// What the inspection found, or why it failed.
async fn findings(
    task: &Task,
    inventory: &Value,
    plugin_data: &mut Map<String, Value>,
) -> Result<Result<(StateChange, InspectionRecord), String>, TaskError> {
    let ctx = task.ctx();
    let node = &task.node;
    let add_ports = AddPorts::parse(&ctx.settings.inspect_add_ports).unwrap_or(AddPorts::Pxe);
    // The MACs of the inventory that already have a port, on any node (a
    // port is never created twice; Ironic skips those too).
    let candidates: Vec<String> = inventory["interfaces"]
        .as_array()
        .map(|interfaces| {
            interfaces
                .iter()
                .filter_map(|i| i["mac_address"].as_str())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let (existing, rules) = ctx
        .db
        .run(move |conn| {
            Ok((
                Port::taken_addresses(conn, &candidates)?,
                InspectionRule::all(conn)?,
            ))
        })
        .await?;
    let properties = node.properties_map().unwrap_or_default();
    let found = match inspection::process(
        &node.uuid,
        &properties,
        &existing,
        inventory,
        plugin_data,
        add_ports,
    ) {
        Ok(found) => found,
        Err(e) => return Ok(Err(format!("failed to run inspection hooks: {e}"))),
    };
    let mut rules_view = rules_node(node);
    rules_view.insert("properties".into(), Value::Object(found.properties));
    let rules: Vec<Rule> = rules
        .into_iter()
        .filter(|r| r.phase == "main")
        .map(|r| Rule {
            uuid: r.uuid,
            priority: r.priority,
            conditions: serde_json::from_str(&r.conditions).unwrap_or_default(),
            actions: serde_json::from_str(&r.actions).unwrap_or_default(),
        })
        .collect();
    let mut subject = Subject {
        node: &mut rules_view,
        add_traits: Vec::new(),
        remove_traits: Vec::new(),
        plugin_data,
    };
    if let Err(e) = inspection_rules::apply(rules, inventory, &mut subject) {
        return Ok(Err(e));
    }
    let (add_traits, remove_traits) = (subject.add_traits, subject.remove_traits);
    let change = StateChange {
        properties: Some(rules_view["properties"].to_string()),
        extra: Some(rules_view["extra"].to_string()),
        inspection_started_at: Some(None),
        inspection_finished_at: Some(Some(ferric_common::db::now())),
        ..StateChange::default()
    };
    // Ironic keeps the ramdisk's logs out of the stored plugin data.
    plugin_data.remove("logs");
    let record = InspectionRecord {
        new_ports: found.new_ports,
        add_traits,
        remove_traits,
        inventory: inventory.to_string(),
        plugin_data: Value::Object(plugin_data.clone()).to_string(),
    };
    Ok(Ok((change, record)))
}

/// Records a failed inspection: `inspect failed`, or for a `discovered`
/// node its `last_error` (it stays in `enroll`).
async fn give_up(
    task: &mut Task,
    reason: &str,
    cleaned: StateChange,
    discovered: bool,
) -> Result<(), TaskError> {
    let reason = format!("Failed to finish inspection: {reason}");
    if discovered {
        task.write(StateChange {
            last_error: Some(Some(reason)),
            ..cleaned
        })
        .await
    } else {
        task.fail(reason, cleaned).await
    }
}

/// Processes the data, powers the node off, undoes the ramdisk's boot, and
/// records the outcome; a `discovered` node stays in `enroll` either way
/// (a failure is its `last_error`).
async fn finish(
    task: &mut Task,
    inventory: Value,
    mut plugin_data: Map<String, Value>,
    discovered: bool,
) -> Result<(), TaskError> {
    let outcome = findings(task, &inventory, &mut plugin_data).await;
    let inspect = task.driver.inspect;
    let cleaned = inspect.clean_up(task).await;
    let (mut change, record) = match outcome {
        Ok(Ok(found)) => found,
        Ok(Err(reason)) => {
            tracing::warn!(node.uuid = %task.node.uuid, reason = %reason, "inspection failed");
            return give_up(task, &reason, cleaned, discovered).await;
        }
        Err(e) => return give_up(task, &e.to_string(), cleaned, discovered).await,
    };
    change.power_state = cleaned.power_state;
    change.driver_internal_info = cleaned.driver_internal_info;
    let ports = record.new_ports.len();
    if discovered {
        task.record_inspection(change, record).await?;
        tracing::info!(node.uuid = %task.node.uuid, new_ports = ports, "auto-discovery finished: the node is enrolled");
        return Ok(());
    }
    match task.finish_inspection(Event::Done, change, record).await {
        Ok(_) => {
            tracing::info!(node.uuid = %task.node.uuid, new_ports = ports, "inspection finished");
            Ok(())
        }
        Err(TaskError::Db(e)) => {
            task.reload().await?;
            task.fail(
                format!("Failed to finish inspection: {e}"),
                StateChange::default(),
            )
            .await
        }
        Err(e) => Err(e),
    }
}
