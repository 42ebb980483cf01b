//! Task handlers: decode-independent logic that turns one [`Task`] into a
//! [`TaskReply`], plus the background work an accepted task starts.
//!
//! Invariants: a handler replies `Accepted` only after it holds the node lock
//! and has committed the in-progress state; the lock then passes to the
//! background work, which releases it when the node reaches its next stable
//! (or failed) state. A refusal changes nothing.

pub mod agent;
pub mod allocation;
pub mod clean_runbook;
pub mod inspection;
pub mod management;
pub mod power;
pub mod provision;
pub mod steps;
pub mod vmedia;

use ferric_common::db::DbError;
use ferric_common::db::models::node::StateChange;
use ferric_common::db::models::receipt::TaskReceipt;
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::{Accepted, RefusalKind, Refused, Task, TaskReply, task_reply::Outcome};

pub use crate::context::Context;
use crate::drivers::DriverError;
use crate::task::Acquired;
pub use crate::task::TaskError;

/// Runs one decoded task. A task that changes state and was already
/// accepted (a redelivery) is answered `Accepted` again without acting.
pub async fn handle(ctx: &Context, task: Task) -> TaskReply {
    let started = std::time::Instant::now();
    let kind = kind_name(task.kind.as_ref());
    let reply = answer(ctx, task).await;
    let outcome = match &reply.outcome {
        Some(Outcome::Accepted(_)) => "accepted".to_owned(),
        // "refused_node_locked", "refused_invalid", …
        Some(Outcome::Refused(refused)) => RefusalKind::try_from(refused.kind).map_or_else(
            |_| "refused_unknown".to_owned(),
            |k| {
                k.as_str_name()
                    .replacen("REFUSAL_KIND", "refused", 1)
                    .to_lowercase()
            },
        ),
        Some(_) => "answered".to_owned(),
        None => "empty".to_owned(),
    };
    ferric_common::metrics::global().task(kind, &outcome, started.elapsed());
    reply
}

/// The task kind as a metrics label.
fn kind_name(kind: Option<&Kind>) -> &'static str {
    match kind {
        Some(Kind::Provision(_)) => "provision",
        Some(Kind::Power(_)) => "power",
        Some(Kind::SetBootDevice(_)) => "set_boot_device",
        Some(Kind::GetBootDevice(_)) => "get_boot_device",
        Some(Kind::GetSupportedBootDevices(_)) => "get_supported_boot_devices",
        Some(Kind::Validate(_)) => "validate",
        Some(Kind::InjectNmi(_)) => "inject_nmi",
        Some(Kind::Allocate(_)) => "allocate",
        Some(Kind::DestroyAllocation(_)) => "destroy_allocation",
        Some(Kind::SetBootMode(_)) => "set_boot_mode",
        Some(Kind::SetSecureBoot(_)) => "set_secure_boot",
        Some(Kind::AgentLookup(_)) => "agent_lookup",
        Some(Kind::AgentHeartbeat(_)) => "agent_heartbeat",
        Some(Kind::AttachVirtualMedia(_)) => "attach_virtual_media",
        Some(Kind::DetachVirtualMedia(_)) => "detach_virtual_media",
        Some(Kind::GetVirtualMedia(_)) => "get_virtual_media",
        Some(Kind::ContinueInspection(_)) => "continue_inspection",
        None => "none",
    }
}

async fn answer(ctx: &Context, task: Task) -> TaskReply {
    let task_id = task.task_id.clone();
    let changes_state = matches!(task.kind, Some(Kind::Provision(_) | Kind::Power(_)));
    if changes_state {
        match already_accepted(ctx, &task_id).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!("task already accepted; redelivery ignored");
                let mut reply = accepted();
                reply.task_id = task_id;
                return reply;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not check the task's receipt");
                let mut reply = refused(RefusalKind::Temporary, format!("Conductor error: {e}"));
                reply.task_id = task_id;
                return reply;
            }
        }
    }
    let result = match task.kind {
        Some(Kind::Provision(action)) => {
            provision::handle(ctx, &task.node_uuid, &task_id, action).await
        }
        Some(Kind::Power(action)) => power::handle(ctx, &task.node_uuid, &task_id, action).await,
        Some(Kind::SetBootDevice(request)) => {
            management::set_boot_device(ctx, &task.node_uuid, request).await
        }
        Some(Kind::GetBootDevice(_)) => management::get_boot_device(ctx, &task.node_uuid).await,
        Some(Kind::GetSupportedBootDevices(_)) => {
            management::supported_boot_devices(ctx, &task.node_uuid).await
        }
        Some(Kind::Validate(_)) => management::validate(ctx, &task.node_uuid).await,
        Some(Kind::InjectNmi(_)) => management::inject_nmi(ctx, &task.node_uuid).await,
        Some(Kind::Allocate(request)) => allocation::allocate(ctx, request).await,
        Some(Kind::DestroyAllocation(request)) => {
            allocation::destroy(ctx, &task.node_uuid, request).await
        }
        Some(Kind::SetBootMode(request)) => {
            management::set_boot_mode(ctx, &task.node_uuid, Some(request.target), None).await
        }
        Some(Kind::SetSecureBoot(request)) => {
            management::set_boot_mode(ctx, &task.node_uuid, None, Some(request.enabled)).await
        }
        Some(Kind::AgentLookup(lookup)) => agent::lookup(ctx, &task.node_uuid, lookup).await,
        Some(Kind::AgentHeartbeat(beat)) => agent::heartbeat(ctx, &task.node_uuid, beat).await,
        Some(Kind::AttachVirtualMedia(request)) => {
            vmedia::attach(ctx, &task.node_uuid, request).await
        }
        Some(Kind::DetachVirtualMedia(request)) => {
            vmedia::detach(ctx, &task.node_uuid, request).await
        }
        Some(Kind::GetVirtualMedia(_)) => vmedia::list(ctx, &task.node_uuid).await,
        Some(Kind::ContinueInspection(data)) => {
            inspection::continue_inspection(ctx, &task.node_uuid, data).await
        }
        None => Ok(refused(RefusalKind::Invalid, "Task has no kind.".into())),
    };
    let mut reply = result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "task failed");
        refused(RefusalKind::Temporary, format!("Conductor error: {e}"))
    });
    reply.task_id = task_id;
    reply
}

async fn already_accepted(ctx: &Context, task_id: &str) -> Result<bool, DbError> {
    if task_id.is_empty() {
        return Ok(false);
    }
    let task_id = task_id.to_owned();
    ctx.db
        .run(move |conn| TaskReceipt::exists(conn, &task_id))
        .await
}

/// Commits the change that starts task `task_id` on a node this conductor
/// holds, with the task's receipt.
///
/// # Errors
/// [`TaskError::LockLost`] when the node is no longer reserved by this host.
pub async fn commit_start(
    ctx: &Context,
    node_id: i32,
    task_id: &str,
    change: StateChange,
) -> Result<(), TaskError> {
    let (host, task_id) = (ctx.host.clone(), task_id.to_owned());
    let written = ctx
        .db
        .run(move |conn| TaskReceipt::commit_start(conn, node_id, &host, &change, &task_id))
        .await?;
    if written {
        Ok(())
    } else {
        Err(TaskError::LockLost(node_id.to_string()))
    }
}

pub fn accepted() -> TaskReply {
    TaskReply {
        task_id: String::new(),
        outcome: Some(Outcome::Accepted(Accepted {})),
    }
}

pub fn refused(kind: RefusalKind, message: String) -> TaskReply {
    TaskReply {
        task_id: String::new(),
        outcome: Some(Outcome::Refused(Refused {
            kind: kind as i32,
            message,
        })),
    }
}

/// Ironic's NodeNotFound refusal.
pub fn node_not_found(ident: &str) -> TaskReply {
    refused(
        RefusalKind::NotFound,
        format!("Node {ident} could not be found."),
    )
}

/// Ironic's NodeLocked refusal.
pub fn node_locked(node_uuid: &str, holder: &str) -> TaskReply {
    refused(
        RefusalKind::NodeLocked,
        format!(
            "Node {node_uuid} is locked by host {holder}, please retry after the current operation is completed."
        ),
    )
}

/// Takes a node's lock with the configured retries (Ironic's
/// `node_locked_retry_*`); on failure, the refusal to answer with.
///
/// # Errors
/// On a database failure.
pub async fn lock_node(
    ctx: &Context,
    node_uuid: &str,
) -> Result<Result<crate::task::Task, TaskReply>, TaskError> {
    Ok(match crate::task::Task::exclusive(ctx, node_uuid).await? {
        Acquired::Locked(task) => Ok(*task),
        Acquired::NotFound => Err(node_not_found(node_uuid)),
        Acquired::HeldBy(holder) => Err(node_locked(node_uuid, &holder)),
    })
}

/// A shared task on the node; on failure, the refusal to answer with.
///
/// # Errors
/// On a database failure.
pub async fn read_node(
    ctx: &Context,
    node_uuid: &str,
) -> Result<Result<crate::task::Task, TaskReply>, TaskError> {
    Ok(crate::task::Task::shared(ctx, node_uuid)
        .await?
        .ok_or_else(|| node_not_found(node_uuid)))
}

/// The refusal for a driver's failure: the request's fault (invalid
/// parameter, unsupported extension, corrupt column) or the hardware's.
pub fn driver_refusal(error: &DriverError) -> TaskReply {
    let kind = if error.is_invalid_request() {
        RefusalKind::Invalid
    } else {
        RefusalKind::DriverFailure
    };
    refused(kind, error.to_string())
}
