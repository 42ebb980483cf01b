//! The node vmedia API's tasks (`/v1/nodes/{id}/vmedia`), as Ironic's
//! conductor runs them: attach and detach take the node's lock, clear
//! `last_error`, answer, then work in the background; a failure (an
//! interface without virtual media included) becomes `last_error` and an
//! ERROR history event. Listing reads the BMC and refuses at once. Only
//! the `redfish` management interface has virtual media.

use ferric_common::db::models::history::HistoryEvent;
use ferric_common::db::models::node::{Node, StateChange};
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{
    AttachVirtualMedia, DetachVirtualMedia, RefusalKind, TaskReply, VirtualMedia,
};

use crate::drivers::bmc::Access;
use crate::drivers::redfish::System;
use crate::drivers::virtual_media;
use crate::reservation::NodeLock;
use crate::tasks::{Context, TaskError, accepted, load_node, lock_node, node_not_found, refused};

/// `GET vmedia`: the system's devices as Ironic lists them.
pub async fn list(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    if let Err(message) = supported(&node, "get_virtual_media") {
        return Ok(refused(RefusalKind::Invalid, message));
    }
    let info = match ctx.bmcs.access(&node) {
        Some(Ok(Access::Redfish { info, .. })) => info,
        Some(Err(message)) => return Ok(refused(RefusalKind::Invalid, message)),
        _ => {
            return Ok(refused(
                RefusalKind::Invalid,
                format!("Node {node_uuid} has no usable Redfish driver_info."),
            ));
        }
    };
    match System::new(&ctx.bmcs.redfish, &info, &node.uuid)
        .media_summary()
        .await
    {
        Ok(devices) => Ok(TaskReply {
            task_id: String::new(),
            outcome: Some(Outcome::VirtualMedia(VirtualMedia {
                devices_json: devices.to_string(),
            })),
        }),
        Err(e) => Ok(refused(RefusalKind::DriverFailure, e.to_string())),
    }
}

/// `POST vmedia`: accepted under the node's lock, done in the background.
pub async fn attach(
    ctx: &Context,
    node_uuid: &str,
    request: AttachVirtualMedia,
) -> Result<TaskReply, TaskError> {
    let (node, lock) = match lock_for(ctx, node_uuid).await? {
        Ok(locked) => locked,
        Err(refusal) => return Ok(refusal),
    };
    let (ctx2, node2) = (ctx.clone(), node.clone());
    in_background(ctx, node, lock, async move {
        let source = match request.image_download_source.as_str() {
            "" => "local",
            other => other,
        };
        let done = match supported(&node2, "attach_virtual_media") {
            Ok(()) => {
                virtual_media::attach(
                    &ctx2,
                    &node2,
                    &request.device_type,
                    &request.image_url,
                    source,
                )
                .await
            }
            Err(e) => Err(e),
        };
        done.map_err(|e| {
            format!(
                "Could not attach device {} to node {}: {e}",
                request.device_type, node2.uuid
            )
        })
    });
    Ok(accepted())
}

/// `DELETE vmedia`: accepted under the node's lock, done in the background.
pub async fn detach(
    ctx: &Context,
    node_uuid: &str,
    request: DetachVirtualMedia,
) -> Result<TaskReply, TaskError> {
    let (node, lock) = match lock_for(ctx, node_uuid).await? {
        Ok(locked) => locked,
        Err(refusal) => return Ok(refusal),
    };
    let (ctx2, node2) = (ctx.clone(), node.clone());
    in_background(ctx, node, lock, async move {
        let done = match supported(&node2, "detach_virtual_media") {
            Ok(()) => virtual_media::detach(&ctx2, &node2, &request.device_types).await,
            Err(e) => Err(e),
        };
        done.map_err(|e| {
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
                node2.uuid
            )
        })
    });
    Ok(accepted())
}

/// Ironic's UnsupportedDriverExtension for interfaces without virtual media.
fn supported(node: &Node, extension: &str) -> Result<(), String> {
    if node.management_interface.as_deref() == Some("redfish") {
        Ok(())
    } else {
        Err(format!(
            "Driver {} does not support {extension} (disabled or not implemented).",
            node.driver
        ))
    }
}

/// Locks the node and clears its `last_error`, as Ironic does before a
/// virtual media action.
async fn lock_for(
    ctx: &Context,
    node_uuid: &str,
) -> Result<Result<(Node, NodeLock), TaskReply>, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(Err(node_not_found(node_uuid)));
    };
    if let Some(Err(message)) = ctx.bmcs.access(&node) {
        return Ok(Err(refused(RefusalKind::Invalid, message)));
    }
    let lock = match lock_node(ctx, &node).await? {
        Ok(lock) => lock,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (host, id) = (ctx.host.clone(), node.id);
    let cleared = StateChange {
        last_error: Some(None),
        ..StateChange::default()
    };
    if let Err(e) = ctx
        .db
        .run(move |conn| Node::write_state(conn, id, &host, &cleared))
        .await
    {
        let _ = lock.release().await;
        return Err(e.into());
    }
    Ok(Ok((node, lock)))
}

/// Runs `work` after the answer; its failure becomes `last_error` and an
/// ERROR history event; the lock is released either way.
fn in_background(
    ctx: &Context,
    node: Node,
    lock: NodeLock,
    work: impl Future<Output = Result<(), String>> + Send + 'static,
) {
    let ctx = ctx.clone();
    ctx.tracker.clone().spawn(async move {
        if let Err(error) = work.await {
            tracing::warn!(node.uuid = %node.uuid, %error, "virtual media action failed");
            let (host, id, state) = (ctx.host.clone(), node.id, node.provision_state.clone());
            let _ = ctx
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
                    Node::write_state(conn, id, &host, &change)
                })
                .await;
        }
        let _ = lock.release().await;
    });
}
