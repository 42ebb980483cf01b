//! Takeover: nodes whose lock is held by a dead conductor move to their new
//! owner by the ring. On every periodic pass ([`crate::periodic`]) a
//! conductor looks for such nodes that it now owns, clears the dead holder's lock, and
//! settles the node as Ironic's `_check_orphan_nodes` does: a node stuck in
//! a transient state that cannot be resumed goes to its failed state with
//! `last_error` "Operation was aborted due to conductor take over", and a
//! pending power change is dropped.
//!
//! Invariant: only the ring owner (computed from alive conductors) takes a
//! node over, and it does so under its own lock, so two conductors never
//! settle one node twice; no node is taken over within a heartbeat timeout
//! of a database outage this conductor saw.

use std::time::Duration;

use ferric_common::cluster::ClusterView;
use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::db::{Db, DbError};
use ferric_common::states::{Event, ProvisionState};

/// Ironic's `last_error` for an operation its conductor died in.
pub const TAKEOVER_ERROR: &str = "Operation was aborted due to conductor take over";

/// One takeover pass; returns how many nodes were taken over.
///
/// # Errors
/// On a database failure.
pub async fn take_over_orphans(
    db: &Db,
    host: &str,
    heartbeat_timeout: Duration,
) -> Result<usize, DbError> {
    let host = host.to_owned();
    let clock = db.outage_clock();
    db.run(move |conn| {
        // Right after a database outage every conductor's heartbeat is old,
        // not only a dead one's: none is judged dead before each had a
        // heartbeat timeout to write again. Read here, once the call has a
        // connection: a pass that rode the outage out sees it.
        if clock.reachable_for() < heartbeat_timeout {
            return Ok(0);
        }
        let view = ClusterView::load(conn, heartbeat_timeout)?;
        let mut taken = 0;
        for node in Node::reserved(conn)? {
            let Some(holder) = node.reservation.as_deref() else {
                continue;
            };
            if view.is_alive(holder)
                || view.owner(&node.conductor_group, &node.driver, &node.uuid)
                    != Some(host.as_str())
            {
                continue;
            }
            // Move the dead holder's lock to us in two guarded steps.
            if !Node::release(conn, node.id, holder)? || !Node::try_reserve(conn, node.id, &host)? {
                continue;
            }
            let mut change = StateChange {
                target_power_state: Some(None),
                ..StateChange::default()
            };
            if let Ok(state) = node.provision_state.parse::<ProvisionState>()
                && state.stuck_treated_as_fail()
                && let Some(failed) = state.next(Event::Fail)
            {
                let failed_change = StateChange::provision(failed);
                change.provision_state = failed_change.provision_state;
                change.target_provision_state = failed_change.target_provision_state;
                change.provision_updated_at = failed_change.provision_updated_at;
                change.last_error = Some(Some(TAKEOVER_ERROR.to_owned()));
            }
            Node::write_state(conn, node.id, &host, &change)?;
            Node::release(conn, node.id, &host)?;
            tracing::warn!(node.uuid = %node.uuid, dead = holder, "node taken over");
            taken += 1;
        }
        Ok(taken)
    })
    .await
}
