//! The node vmedia API's tasks (`/v1/nodes/{id}/vmedia`), as Ironic's
//! conductor runs them: attach and detach take the node's lock, clear
//! `last_error`, answer, then work in the background; a failure (an
//! interface without virtual media included) becomes `last_error` and an
//! ERROR history event. Listing reads the BMC and refuses at once. Only
//! the `redfish` management interface has virtual media.

use ferric_common::db::models::history::HistoryEvent;
use ferric_common::db::models::node::StateChange;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{AttachVirtualMedia, DetachVirtualMedia, TaskReply, VirtualMedia};

use crate::task::Task;
use crate::tasks::{Context, TaskError, accepted, driver_refusal, lock_node, read_node};

/// `GET vmedia`: the system's devices as Ironic lists them.
pub async fn list(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    Ok(
        match task.driver.management.get_virtual_media(&task).await {
            Ok(devices) => TaskReply {
                task_id: String::new(),
                outcome: Some(Outcome::VirtualMedia(VirtualMedia {
                    devices_json: devices.to_string(),
                })),
            },
            Err(e) => driver_refusal(&e),
        },
    )
}

/// `POST vmedia`: accepted under the node's lock, done in the background.
pub async fn attach(
    ctx: &Context,
    node_uuid: &str,
    request: AttachVirtualMedia,
) -> Result<TaskReply, TaskError> {
    let task = match lock_for(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    task.spawn_after(move |task| async move {
        let source = match request.image_download_source.as_str() {
            "" => "local",
            other => other,
        };
        let done = task
            .driver
            .management
            .attach_virtual_media(&task, &request.device_type, &request.image_url, source)
            .await
            .map_err(|e| {
                format!(
                    "Could not attach device {} to node {}: {e}",
                    request.device_type, task.node.uuid
                )
            });
        record_failure(task, done).await
    });
    Ok(accepted())
}

/// `DELETE vmedia`: accepted under the node's lock, done in the background.
pub async fn detach(
    ctx: &Context,
    node_uuid: &str,
    request: DetachVirtualMedia,
) -> Result<TaskReply, TaskError> {
    let task = match lock_for(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    task.spawn_after(move |task| async move {
        let done = task
            .driver
            .management
            .detach_virtual_media(&task, &request.device_types)
            .await
            .map_err(|e| {
                // Ironic prints the list as Python does, None when absent.
                let types = if request.device_types.is_empty() {
                    "None".to_owned()
                } else {
                    format!(
                        "[{}]",
                        request
                            .device_types
                            .iter()
                            .map(|t| format!("'{t}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!(
                    "Could not detach device(s) {types} from node {}: {e}",
                    task.node.uuid
                )
            });
        record_failure(task, done).await
    });
    Ok(accepted())
}

/// Locks the node and clears its `last_error`, as Ironic does before a
/// virtual media action; a node whose management `driver_info` is unusable
/// is refused first.
async fn lock_for(ctx: &Context, node_uuid: &str) -> Result<Result<Task, TaskReply>, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Err(e) = task.driver.management.validate(&task) {
        return Ok(Err(driver_refusal(&e)));
    }
    let task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let cleared = StateChange {
        last_error: Some(None),
        ..StateChange::default()
    };
    if let Err(e) = task.write(cleared).await {
        task.release().await;
        return Err(e);
    }
    Ok(Ok(task))
}

/// After the work: its failure becomes `last_error` and an ERROR history
/// event; the task goes back to be released.
async fn record_failure(task: Task, done: Result<(), String>) -> Task {
    let Err(error) = done else {
        return task;
    };
    tracing::warn!(node.uuid = %task.node.uuid, %error, "virtual media action failed");
    let (host, id, state) = (
        task.ctx().host.clone(),
        task.node.id,
        task.node.provision_state.clone(),
    );
    let recorded = task
        .ctx()
        .db
        .run(move |conn| {
            HistoryEvent {
                node_id: id,
                conductor: &host,
                event_type: "UNKNOWN",
                severity: "ERROR",
                event: &error,
                state: &state,
            }
            .record(conn)?;
            let change = StateChange {
                last_error: Some(Some(error.clone())),
                ..StateChange::default()
            };
            ferric_common::db::models::node::Node::write_state(conn, id, &host, &change)
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(node.uuid = %task.node.uuid, error = %e, "could not record a virtual media failure");
    }
    task
}
