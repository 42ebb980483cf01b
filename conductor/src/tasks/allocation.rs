//! Allocations (`/v1/allocations`): filling one with a matching available
//! node, backfilling one for a node already deployed, and deleting one.
//!
//! Invariants: a node is taken for an allocation only under its lock and
//! only through [`Allocation::assign`], which writes both sides in one
//! transaction and refuses a node associated meanwhile; so two conductors
//! racing for the same allocation or node can never both win. Failing an
//! allocation touches only one still `allocating`.

use ferric_common::db::models::allocation::{ALLOCATING, Allocation};
use ferric_common::db::models::conductor::Conductor;
use ferric_common::db::models::node::Node;
use ferric_common::states::ProvisionState;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{Allocate, DestroyAllocation, RefusalKind, TaskReply};
use rand::seq::SliceRandom;

use crate::reservation::NodeLock;
use crate::tasks::{Context, TaskError, accepted, lock_node, node_not_found, refused};

fn not_found(uuid: &str) -> TaskReply {
    refused(
        RefusalKind::NotFound,
        format!("Allocation {uuid} could not be found."),
    )
}

fn failed_text(uuid: &str, error: &str) -> String {
    format!("Failed to process allocation {uuid}: {error}.")
}

async fn load(ctx: &Context, uuid: &str) -> Result<Option<Allocation>, TaskError> {
    let uuid = uuid.to_owned();
    Ok(ctx
        .db
        .run(move |conn| Allocation::by_uuid(conn, &uuid))
        .await?)
}

/// Handles `Allocate`: a backfill is answered when done; a normal
/// allocation is answered at once and filled in the background.
pub async fn allocate(ctx: &Context, request: Allocate) -> Result<TaskReply, TaskError> {
    let Some(alloc) = load(ctx, &request.allocation_uuid).await? else {
        return Ok(not_found(&request.allocation_uuid));
    };
    if alloc.state != ALLOCATING {
        // Already processed (a redelivery): nothing to do.
        return Ok(accepted());
    }
    let host = ctx.host.clone();
    let id = alloc.id;
    ctx.db
        .run(move |conn| {
            if let Some(me) = Conductor::by_hostname(conn, &host)? {
                Allocation::set_affinity(conn, id, me.id)?;
            }
            Ok(())
        })
        .await?;
    if let Some(node_uuid) = request.backfill_node_uuid {
        return backfill(ctx, &alloc, &node_uuid).await;
    }
    let ctx2 = ctx.clone();
    ctx.tracker.spawn(async move {
        process(&ctx2, alloc).await;
    });
    Ok(accepted())
}

/// Fills an allocation (the background half of [`allocate`], and what the
/// sweep runs for allocations whose conductor died).
pub async fn process(ctx: &Context, alloc: Allocation) {
    let outcome = match candidates(ctx, &alloc).await {
        Ok(Ok(nodes)) => take_one(ctx, &alloc, nodes).await,
        Ok(Err(error)) => Ok(Err(error)),
        Err(e) => Err(e),
    };
    let error = match outcome {
        Ok(Ok(node_uuid)) => {
            tracing::info!(allocation.uuid = %alloc.uuid, node.uuid = %node_uuid, "node reserved for allocation");
            return;
        }
        Ok(Err(error)) => failed_text(&alloc.uuid, &error),
        Err(e) => format!("Unexpected exception during allocation: {e}"),
    };
    tracing::warn!(allocation.uuid = %alloc.uuid, error = %error, "allocation failed");
    let id = alloc.id;
    if let Err(e) = ctx
        .db
        .run(move |conn| Allocation::fail(conn, id, &error))
        .await
    {
        tracing::error!(allocation.uuid = %alloc.uuid, error = %e, "could not record the failed allocation");
    }
}

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The nodes matching the allocation, shuffled, a node named like the
/// allocation first; `Err` with Ironic's reason when there are none.
async fn candidates(
    ctx: &Context,
    alloc: &Allocation,
) -> Result<Result<Vec<Node>, String>, TaskError> {
    let rc = alloc.resource_class.clone().unwrap_or_default();
    let wanted = strings(&alloc.candidate_nodes);
    let owner = alloc.owner.clone();
    let (query_rc, query_wanted) = (rc.clone(), wanted.clone());
    let nodes = ctx
        .db
        .run(move |conn| {
            let nodes =
                Node::allocation_candidates(conn, &query_rc, &query_wanted, owner.as_deref())?;
            let mut with_traits = Vec::with_capacity(nodes.len());
            for node in nodes {
                let traits = Node::traits(conn, node.id)?;
                with_traits.push((node, traits));
            }
            Ok(with_traits)
        })
        .await?;
    if nodes.is_empty() {
        return Ok(Err(if wanted.is_empty() {
            format!("no available nodes match the resource class {rc}")
        } else {
            format!("none of the requested nodes are available and match the resource class {rc}")
        }));
    }
    let traits = strings(&alloc.traits);
    let mut nodes: Vec<Node> = nodes
        .into_iter()
        .filter(|(_, have)| traits.iter().all(|t| have.contains(t)))
        .map(|(node, _)| node)
        .collect();
    if nodes.is_empty() {
        return Ok(Err(format!(
            "no suitable nodes have the requested traits {}",
            traits.join(", ")
        )));
    }
    nodes.shuffle(&mut rand::rng());
    if let Some(name) = &alloc.name
        && let Some(at) = nodes.iter().position(|n| n.name.as_ref() == Some(name))
    {
        let named = nodes.remove(at);
        nodes.insert(0, named);
    }
    Ok(Ok(nodes))
}

/// Whether the (freshly read) node still suits the allocation.
fn still_suits(node: &Node, alloc: &Allocation, traits: &[String], have: &[String]) -> bool {
    !node.maintenance
        && node.instance_uuid.is_none()
        && node.allocation_id.is_none()
        && node.provision_state == ProvisionState::Available.as_str()
        && node.resource_class == alloc.resource_class
        && traits.iter().all(|t| have.contains(t))
}

/// Tries the candidates in order, each under its lock; locked ones are
/// retried (as Ironic does, `node_locked_retry_attempts` rounds).
async fn take_one(
    ctx: &Context,
    alloc: &Allocation,
    mut nodes: Vec<Node>,
) -> Result<Result<String, String>, TaskError> {
    let traits = strings(&alloc.traits);
    let attempts = ctx.settings.node_locked_retry_attempts.max(1);
    let interval = ctx.settings.node_locked_retry_interval();
    for attempt in 0..attempts {
        let mut locked = Vec::new();
        for node in nodes {
            let Some(lock) = NodeLock::acquire(&ctx.db, &ctx.host, node.id).await? else {
                locked.push(node);
                continue;
            };
            let id = node.id;
            let fresh = ctx
                .db
                .run(move |conn| {
                    Ok(match Node::by_id(conn, id)? {
                        Some(node) => {
                            let have = Node::traits(conn, id)?;
                            Some((node, have))
                        }
                        None => None,
                    })
                })
                .await;
            let taken = match fresh {
                Ok(Some((fresh, have))) if still_suits(&fresh, alloc, &traits, &have) => {
                    let alloc2 = alloc.clone();
                    ctx.db
                        .run(move |conn| Allocation::assign(conn, &alloc2, id))
                        .await
                }
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            let _ = lock.release().await;
            if taken? {
                return Ok(Ok(node.uuid));
            }
        }
        if locked.is_empty() {
            return Ok(Err("all nodes were filtered out during reservation".into()));
        }
        nodes = locked;
        if attempt + 1 < attempts {
            tokio::time::sleep(interval).await;
        }
    }
    Ok(Err(format!(
        "could not reserve any of {} suitable nodes",
        nodes.len()
    )))
}

/// Records an allocation for a node that is already deployed, after
/// checking it matches the request (Ironic's backfill, 1.58). Whatever
/// stops it fails the allocation, as Ironic's does.
async fn backfill(
    ctx: &Context,
    alloc: &Allocation,
    node_uuid: &str,
) -> Result<TaskReply, TaskError> {
    let outcome = async {
        let Some(node) = crate::task::load(ctx, node_uuid).await? else {
            return Ok(node_not_found(node_uuid));
        };
        let task = match lock_node(ctx, &node.uuid).await? {
            Ok(task) => task,
            Err(refusal) => return Ok(refusal),
        };
        let result = backfill_locked(ctx, alloc, &task.node).await;
        task.release().await;
        result
    }
    .await;
    let refusal_text = match &outcome {
        Ok(TaskReply {
            outcome: Some(Outcome::Refused(refused)),
            ..
        }) => Some(refused.message.clone()),
        Ok(_) => None,
        Err(e) => Some(format!("Unexpected exception during allocation: {e}")),
    };
    if let Some(text) = refusal_text {
        let id = alloc.id;
        let stored = if text.starts_with("Failed to process allocation") {
            text
        } else {
            failed_text(&alloc.uuid, &text)
        };
        ctx.db
            .run(move |conn| Allocation::fail(conn, id, &stored))
            .await?;
    }
    outcome
}

/// Runs an allocation the sweep took over: the same backfill when it named
/// a node, else the search for one.
pub async fn resume(ctx: &Context, alloc: Allocation) {
    let Some(node_id) = alloc.backfill_node_id else {
        process(ctx, alloc).await;
        return;
    };
    let node = ctx.db.run(move |conn| Node::by_id(conn, node_id)).await;
    let node_uuid = match node {
        Ok(Some(node)) => node.uuid,
        Ok(None) => String::new(),
        Err(e) => {
            tracing::warn!(allocation.uuid = %alloc.uuid, error = %e, "could not resume a backfill");
            return;
        }
    };
    if let Err(e) = backfill(ctx, &alloc, &node_uuid).await {
        tracing::warn!(allocation.uuid = %alloc.uuid, error = %e, "backfill failed");
    }
}

async fn backfill_locked(
    ctx: &Context,
    alloc: &Allocation,
    node: &Node,
) -> Result<TaskReply, TaskError> {
    let id = node.id;
    let (node, have) = ctx
        .db
        .run(move |conn| Ok((Node::by_id(conn, id)?, Node::traits(conn, id)?)))
        .await?;
    let Some(node) = node else {
        return Ok(node_not_found(&alloc.uuid));
    };
    let mut errors = Vec::new();
    if node.provision_state != ProvisionState::Active.as_str() {
        errors.push(format!(
            "Node must be in the \"active\" state, but the current state is \"{}\"",
            node.provision_state
        ));
    }
    if alloc.resource_class.is_some() && node.resource_class != alloc.resource_class {
        errors.push(format!(
            "Resource class {} does not match the requested resource class {}",
            node.resource_class.as_deref().unwrap_or("None"),
            alloc.resource_class.as_deref().unwrap_or("None")
        ));
    }
    let traits = strings(&alloc.traits);
    if !traits.iter().all(|t| have.contains(t)) {
        errors.push(format!(
            "List of traits {have:?} does not match the requested traits {traits:?}"
        ));
    }
    let candidates = strings(&alloc.candidate_nodes);
    if !candidates.is_empty() && !candidates.contains(&node.uuid) {
        errors.push(format!(
            "Candidate nodes must be empty or contain the target node, but got {candidates:?}"
        ));
    }
    let error = if !errors.is_empty() {
        Some(format!(
            "Cannot backfill an allocation for node {}: {}",
            node.uuid,
            errors.join("; ")
        ))
    } else if node
        .instance_uuid
        .as_ref()
        .is_some_and(|i| *i != alloc.uuid)
        || node.allocation_id.is_some()
    {
        Some(format!(
            "Node {} is associated with instance {}",
            node.uuid,
            node.instance_uuid.as_deref().unwrap_or("None")
        ))
    } else {
        None
    };
    let alloc_id = alloc.id;
    if let Some(error) = error {
        let text = failed_text(&alloc.uuid, &error);
        let stored = text.clone();
        ctx.db
            .run(move |conn| Allocation::fail(conn, alloc_id, &stored))
            .await?;
        return Ok(refused(RefusalKind::Invalid, text));
    }
    let (alloc2, node_id) = (alloc.clone(), node.id);
    if ctx
        .db
        .run(move |conn| Allocation::assign(conn, &alloc2, node_id))
        .await?
    {
        Ok(accepted())
    } else {
        let text = failed_text(
            &alloc.uuid,
            &format!("node {} was associated meanwhile", node.uuid),
        );
        let stored = text.clone();
        ctx.db
            .run(move |conn| Allocation::fail(conn, alloc_id, &stored))
            .await?;
        Ok(refused(RefusalKind::Conflict, text))
    }
}

/// Handles `DestroyAllocation`: an allocation with a node is removed under
/// the node's lock, and only where Ironic allows it (not while the node is
/// active or changing state, unless it is in maintenance).
pub async fn destroy(
    ctx: &Context,
    node_uuid: &str,
    request: DestroyAllocation,
) -> Result<TaskReply, TaskError> {
    let Some(alloc) = load(ctx, &request.allocation_uuid).await? else {
        return Ok(not_found(&request.allocation_uuid));
    };
    let Some(node_id) = alloc.node_id else {
        let id = alloc.id;
        ctx.db
            .run(move |conn| Allocation::destroy(conn, id))
            .await?;
        return Ok(accepted());
    };
    let node = match crate::task::load(ctx, node_uuid).await? {
        Some(node) if node.id == node_id => node,
        _ => {
            let found = ctx.db.run(move |conn| Node::by_id(conn, node_id)).await?;
            match found {
                Some(node) => node,
                None => {
                    let id = alloc.id;
                    ctx.db
                        .run(move |conn| Allocation::destroy(conn, id))
                        .await?;
                    return Ok(accepted());
                }
            }
        }
    };
    let task = match lock_node(ctx, &node.uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let result = destroy_locked(ctx, &alloc, &task.node).await;
    task.release().await;
    result
}

async fn destroy_locked(
    ctx: &Context,
    alloc: &Allocation,
    node: &Node,
) -> Result<TaskReply, TaskError> {
    let Some(node) = crate::task::load(ctx, &node.uuid).await? else {
        return Ok(node_not_found(&node.uuid));
    };
    if !node.maintenance {
        let state: Option<ProvisionState> = node.provision_state.parse().ok();
        let changing = node.target_provision_state.is_some()
            && !state.is_some_and(ProvisionState::update_allowed);
        if changing {
            return Ok(refused(
                RefusalKind::Invalid,
                format!(
                    "Cannot remove allocation {} for node {}, because the node is in state {} where updates are not allowed (and maintenance mode is off)",
                    alloc.uuid, node.uuid, node.provision_state
                ),
            ));
        }
        if state == Some(ProvisionState::Active) {
            return Ok(refused(
                RefusalKind::Invalid,
                format!(
                    "Cannot remove allocation {} for node {}, because the node is active (and maintenance mode is off)",
                    alloc.uuid, node.uuid
                ),
            ));
        }
    }
    let id = alloc.id;
    ctx.db
        .run(move |conn| Allocation::destroy(conn, id))
        .await?;
    Ok(accepted())
}
