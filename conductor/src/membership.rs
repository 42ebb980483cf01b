//! Registration, heartbeat and deregistration of this conductor in the
//! `conductors` table, and the start-up sweep of what a previous run of the
//! same host left behind.
//!
//! Invariant: a registered conductor's hardware interface rows are exactly
//! the enabled hardware types' interfaces, so the API's view of what this
//! conductor can do is never wider than the code.

use std::time::Duration;

use ferric_common::db::models::conductor::{Conductor, Registration};
use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::db::{Db, DbError};
use ferric_common::states::{Event, ProvisionState};
use tokio_util::sync::CancellationToken;

use crate::drivers;

/// A hardware type name in the configuration that this build does not have.
#[derive(Debug, thiserror::Error)]
#[error(
    "configuration: invalid value for conductor.enabled_hardware_types: unknown hardware type {0:?} (known: {known})",
    known = known_hardware_types()
)]
pub struct UnknownHardwareType(pub String);

/// The names of the hardware types this build has, for the error.
fn known_hardware_types() -> String {
    drivers::HARDWARE_TYPES
        .iter()
        .map(|hw| hw.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registration row set for the enabled hardware types.
///
/// # Errors
/// When a name is not a hardware type this build implements.
pub fn registration(
    hostname: &str,
    conductor_group: &str,
    enabled: &[String],
) -> Result<Registration, UnknownHardwareType> {
    let mut interfaces = Vec::new();
    for name in enabled {
        let hw = drivers::hardware_type(name).ok_or_else(|| UnknownHardwareType(name.clone()))?;
        for (interface_type, names, default) in hw.interfaces() {
            for iface in names {
                interfaces.push((
                    hw.name.to_owned(),
                    interface_type.to_owned(),
                    iface.to_owned(),
                    iface == default,
                ));
            }
        }
    }
    Ok(Registration {
        hostname: hostname.to_owned(),
        conductor_group: conductor_group.to_lowercase(),
        hardware_types: enabled.to_vec(),
        interfaces,
    })
}

/// Clears this host's stale locks and fails nodes a previous run left in a
/// state that cannot be resumed (Ironic's `_correct_stuck_states`).
///
/// # Errors
/// On a database failure.
pub async fn sweep_after_restart(db: &Db, host: &str) -> Result<(), DbError> {
    let host = host.to_owned();
    db.run(move |conn| {
        let cleared = Node::release_all_for(conn, &host)?;
        if cleared > 0 {
            tracing::warn!(count = cleared, "cleared reservations left by a previous run");
        }
        // Allocations a previous run was filling: the sweep takes them over.
        if let Some(me) = ferric_common::db::models::conductor::Conductor::by_hostname(conn, &host)? {
            let released =
                ferric_common::db::models::allocation::Allocation::release_affinity(conn, me.id)?;
            if released > 0 {
                tracing::warn!(count = released, "released allocations left by a previous run");
            }
        }
        let stuck: Vec<&str> = ProvisionState::ALL
            .iter()
            .filter(|s| s.stuck_treated_as_fail())
            .map(|s| s.as_str())
            .collect();
        for node in Node::unreserved_in_states(conn, &stuck)? {
            let Ok(state) = node.provision_state.parse::<ProvisionState>() else {
                continue;
            };
            let Some(failed) = state.next(Event::Fail) else {
                continue;
            };
            if !Node::try_reserve(conn, node.id, &host)? {
                continue;
            }
            let mut change = StateChange::provision(failed);
            change.last_error = Some(Some(format!(
                "The {state} state can't be resumed by conductor {host}. Moving to fail state."
            )));
            Node::write_state(conn, node.id, &host, &change)?;
            Node::release(conn, node.id, &host)?;
            tracing::warn!(node.uuid = %node.uuid, from = %state, to = %failed, "failed a stuck node");
        }
        Ok(())
    })
    .await
}

/// Heartbeats every `interval` until `stop` is cancelled.
pub async fn heartbeat(db: Db, host: String, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let h = host.clone();
        if let Err(e) = db.run(move |conn| Conductor::touch(conn, &h)).await {
            tracing::warn!(error = %e, "heartbeat failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_hardware_type_is_refused_naming_every_known_one() {
        let err = registration("c1", "", &["ipmi".into(), "idrac".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration: invalid value for conductor.enabled_hardware_types: unknown hardware type \"idrac\" (known: fake-hardware, manual-management, ipmi, redfish)"
        );
    }

    #[test]
    fn registration_lists_every_interface_of_the_enabled_types_with_their_defaults() {
        let registered = registration("c1", "Group", &["redfish".into()]).unwrap();
        assert_eq!(registered.conductor_group, "group");
        let defaults: Vec<(&str, &str)> = registered
            .interfaces
            .iter()
            .filter(|(_, _, _, default)| *default)
            .map(|(_, t, name, _)| (t.as_str(), name.as_str()))
            .collect();
        assert!(defaults.contains(&("boot", "ipxe")), "{defaults:?}");
        assert!(defaults.contains(&("deploy", "direct")), "{defaults:?}");
        assert_eq!(defaults.len(), 13, "one default per interface type");
        assert!(
            registered
                .interfaces
                .iter()
                .any(|(_, t, name, _)| t == "boot" && name == "redfish-virtual-media")
        );
    }
}
