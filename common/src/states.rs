//! Ironic's provision and power states and the provision state machine.
//!
//! This module is pure: no IO, no clock, so it cannot fail and is tested
//! exhaustively. The table mirrors `ironic/common/state_machine.py`: the same
//! states (with the same strings the API returns), the same events and the same
//! transitions. `target_provision_state` while a node sits in an unstable state
//! is that state's [`ProvisionState::target`].

use std::fmt;
use std::str::FromStr;

/// A node's provision state, spelled as Ironic's API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProvisionState {
    Enroll,
    Verifying,
    Manageable,
    Inspecting,
    InspectWait,
    InspectFailed,
    Cleaning,
    CleanWait,
    CleanHold,
    CleanFailed,
    Available,
    Deploying,
    DeployWait,
    DeployHold,
    DeployFailed,
    Active,
    Deleting,
    Error,
    Adopting,
    AdoptFailed,
    Rescuing,
    RescueWait,
    RescueFailed,
    Rescue,
    Unrescuing,
    UnrescueFailed,
    Servicing,
    ServiceWait,
    ServiceHold,
    ServiceFailed,
}

impl ProvisionState {
    /// Every state, in declaration order.
    pub const ALL: [ProvisionState; 30] = [
        Self::Enroll,
        Self::Verifying,
        Self::Manageable,
        Self::Inspecting,
        Self::InspectWait,
        Self::InspectFailed,
        Self::Cleaning,
        Self::CleanWait,
        Self::CleanHold,
        Self::CleanFailed,
        Self::Available,
        Self::Deploying,
        Self::DeployWait,
        Self::DeployHold,
        Self::DeployFailed,
        Self::Active,
        Self::Deleting,
        Self::Error,
        Self::Adopting,
        Self::AdoptFailed,
        Self::Rescuing,
        Self::RescueWait,
        Self::RescueFailed,
        Self::Rescue,
        Self::Unrescuing,
        Self::UnrescueFailed,
        Self::Servicing,
        Self::ServiceWait,
        Self::ServiceHold,
        Self::ServiceFailed,
    ];

    /// The string the API returns and the database stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Verifying => "verifying",
            Self::Manageable => "manageable",
            Self::Inspecting => "inspecting",
            Self::InspectWait => "inspect wait",
            Self::InspectFailed => "inspect failed",
            Self::Cleaning => "cleaning",
            Self::CleanWait => "clean wait",
            Self::CleanHold => "clean hold",
            Self::CleanFailed => "clean failed",
            Self::Available => "available",
            Self::Deploying => "deploying",
            Self::DeployWait => "wait call-back",
            Self::DeployHold => "deploy hold",
            Self::DeployFailed => "deploy failed",
            Self::Active => "active",
            Self::Deleting => "deleting",
            Self::Error => "error",
            Self::Adopting => "adopting",
            Self::AdoptFailed => "adopt failed",
            Self::Rescuing => "rescuing",
            Self::RescueWait => "rescue wait",
            Self::RescueFailed => "rescue failed",
            Self::Rescue => "rescue",
            Self::Unrescuing => "unrescuing",
            Self::UnrescueFailed => "unrescue failed",
            Self::Servicing => "servicing",
            Self::ServiceWait => "service wait",
            Self::ServiceHold => "service hold",
            Self::ServiceFailed => "service failed",
        }
    }

    /// Stable states need an external request to change (`STABLE_STATES`).
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            Self::Enroll
                | Self::Manageable
                | Self::Available
                | Self::Active
                | Self::Error
                | Self::Rescue
        )
    }

    /// The state a node in this state is heading for (`target_provision_state`);
    /// `None` for stable states.
    pub fn target(self) -> Option<ProvisionState> {
        use ProvisionState::*;
        match self {
            Enroll | Manageable | Available | Active | Error | Rescue => None,
            Verifying | Inspecting | InspectWait | InspectFailed => Some(Manageable),
            Cleaning | CleanWait | CleanHold | CleanFailed | Deleting => Some(Available),
            Deploying | DeployWait | DeployHold | DeployFailed | Adopting | AdoptFailed
            | Unrescuing | UnrescueFailed | Servicing | ServiceWait | ServiceHold
            | ServiceFailed => Some(Active),
            Rescuing | RescueWait | RescueFailed => Some(Rescue),
        }
    }

    /// States a node may be deleted in (`DELETE_ALLOWED_STATES`); `available`
    /// only when the conductor allows deleting available nodes.
    pub fn delete_allowed(self, allow_deleting_available: bool) -> bool {
        matches!(self, Self::Manageable | Self::Enroll | Self::AdoptFailed)
            || (allow_deleting_available && self == Self::Available)
    }

    /// States in which a conductor that restarts or takes a node over cannot
    /// resume the work (`STUCK_STATES_TREATED_AS_FAIL`).
    pub fn stuck_treated_as_fail(self) -> bool {
        matches!(
            self,
            Self::Deploying
                | Self::Cleaning
                | Self::Verifying
                | Self::Inspecting
                | Self::Adopting
                | Self::Rescuing
                | Self::Unrescuing
                | Self::Deleting
                | Self::Servicing
        )
    }

    /// States in which a node's descriptive fields may be updated
    /// (`UPDATE_ALLOWED_STATES` plus the stable states).
    pub fn update_allowed(self) -> bool {
        self.is_stable()
            || matches!(
                self,
                Self::DeployFailed
                    | Self::Inspecting
                    | Self::InspectFailed
                    | Self::InspectWait
                    | Self::CleanFailed
                    | Self::Verifying
                    | Self::AdoptFailed
                    | Self::RescueFailed
                    | Self::UnrescueFailed
                    | Self::ServiceHold
                    | Self::ServiceFailed
            )
    }

    /// Moves along `event`, or `None` when the event is not allowed here.
    pub fn next(self, event: Event) -> Option<ProvisionState> {
        TRANSITIONS
            .iter()
            .find(|(from, ev, _)| *from == self && *ev == event)
            .map(|(_, _, to)| *to)
    }
}

impl fmt::Display for ProvisionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of Ironic's state, event or verb names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

impl FromStr for ProvisionState {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A state machine event (`ironic/common/fsm.py` event names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Manage,
    Provide,
    Inspect,
    Clean,
    Deploy,
    Rebuild,
    Delete,
    Abort,
    Adopt,
    Rescue,
    Unrescue,
    Unhold,
    Service,
    Done,
    Fail,
    Wait,
    Resume,
    Hold,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manage => "manage",
            Self::Provide => "provide",
            Self::Inspect => "inspect",
            Self::Clean => "clean",
            Self::Deploy => "deploy",
            Self::Rebuild => "rebuild",
            Self::Delete => "delete",
            Self::Abort => "abort",
            Self::Adopt => "adopt",
            Self::Rescue => "rescue",
            Self::Unrescue => "unrescue",
            Self::Unhold => "unhold",
            Self::Service => "service",
            Self::Done => "done",
            Self::Fail => "fail",
            Self::Wait => "wait",
            Self::Resume => "resume",
            Self::Hold => "hold",
        }
    }
}

use Event as E;
use ProvisionState as S;

/// Every transition of Ironic's provision state machine: `(from, event, to)`.
pub const TRANSITIONS: &[(ProvisionState, Event, ProvisionState)] = &[
    // Deploy.
    (S::Available, E::Deploy, S::Deploying),
    (S::Deploying, E::Fail, S::DeployFailed),
    (S::DeployFailed, E::Rebuild, S::Deploying),
    (S::DeployFailed, E::Deploy, S::Deploying),
    (S::Deploying, E::Wait, S::DeployWait),
    (S::Deploying, E::Hold, S::DeployHold),
    (S::DeployWait, E::Hold, S::DeployHold),
    (S::DeployWait, E::Resume, S::Deploying),
    (S::DeployWait, E::Fail, S::DeployFailed),
    (S::DeployHold, E::Unhold, S::DeployWait),
    (S::DeployHold, E::Abort, S::DeployFailed),
    (S::DeployWait, E::Abort, S::DeployFailed),
    (S::Deploying, E::Done, S::Active),
    (S::Active, E::Rebuild, S::Deploying),
    // Undeploy.
    (S::Active, E::Delete, S::Deleting),
    (S::DeployWait, E::Delete, S::Deleting),
    (S::DeployFailed, E::Delete, S::Deleting),
    (S::Deleting, E::Fail, S::Error),
    (S::Deleting, E::Clean, S::Cleaning),
    // Cleaning.
    (S::Cleaning, E::Done, S::Available),
    (S::Cleaning, E::Fail, S::CleanFailed),
    (S::CleanWait, E::Fail, S::CleanFailed),
    (S::CleanWait, E::Abort, S::CleanFailed),
    (S::Cleaning, E::Wait, S::CleanWait),
    (S::Cleaning, E::Hold, S::CleanHold),
    (S::CleanWait, E::Hold, S::CleanHold),
    (S::CleanWait, E::Resume, S::Cleaning),
    (S::CleanHold, E::Abort, S::CleanFailed),
    (S::CleanHold, E::Unhold, S::CleanWait),
    (S::CleanFailed, E::Manage, S::Manageable),
    (S::Manageable, E::Provide, S::Cleaning),
    (S::Manageable, E::Clean, S::Cleaning),
    (S::Cleaning, E::Manage, S::Manageable),
    (S::Available, E::Manage, S::Manageable),
    // Error recovery.
    (S::Error, E::Rebuild, S::Deploying),
    (S::Error, E::Delete, S::Deleting),
    // Inspection.
    (S::Manageable, E::Inspect, S::Inspecting),
    (S::Inspecting, E::Done, S::Manageable),
    (S::Inspecting, E::Fail, S::InspectFailed),
    (S::Inspecting, E::Wait, S::InspectWait),
    (S::InspectWait, E::Done, S::Manageable),
    (S::InspectWait, E::Fail, S::InspectFailed),
    (S::InspectWait, E::Abort, S::InspectFailed),
    (S::InspectWait, E::Resume, S::Inspecting),
    (S::InspectFailed, E::Manage, S::Manageable),
    (S::InspectFailed, E::Inspect, S::Inspecting),
    // Rescue.
    (S::Active, E::Rescue, S::Rescuing),
    (S::Rescuing, E::Done, S::Rescue),
    (S::Rescuing, E::Wait, S::RescueWait),
    (S::RescueWait, E::Resume, S::Rescuing),
    (S::Rescue, E::Rescue, S::Rescuing),
    (S::Rescue, E::Delete, S::Deleting),
    (S::RescueWait, E::Fail, S::RescueFailed),
    (S::Rescuing, E::Fail, S::RescueFailed),
    (S::RescueWait, E::Abort, S::RescueFailed),
    (S::RescueFailed, E::Rescue, S::Rescuing),
    (S::RescueFailed, E::Unrescue, S::Unrescuing),
    (S::RescueFailed, E::Delete, S::Deleting),
    (S::RescueWait, E::Delete, S::Deleting),
    (S::Rescue, E::Unrescue, S::Unrescuing),
    (S::Unrescuing, E::Done, S::Active),
    (S::Unrescuing, E::Fail, S::UnrescueFailed),
    (S::UnrescueFailed, E::Rescue, S::Rescuing),
    (S::UnrescueFailed, E::Unrescue, S::Unrescuing),
    (S::UnrescueFailed, E::Delete, S::Deleting),
    // Enroll and verify.
    (S::Enroll, E::Manage, S::Verifying),
    (S::Verifying, E::Done, S::Manageable),
    (S::Verifying, E::Fail, S::Enroll),
    // Adopt.
    (S::Manageable, E::Adopt, S::Adopting),
    (S::Adopting, E::Done, S::Active),
    (S::Adopting, E::Fail, S::AdoptFailed),
    (S::AdoptFailed, E::Adopt, S::Adopting),
    (S::AdoptFailed, E::Manage, S::Manageable),
    // Service.
    (S::Servicing, E::Done, S::Active),
    (S::Active, E::Service, S::Servicing),
    (S::Servicing, E::Fail, S::ServiceFailed),
    (S::Servicing, E::Wait, S::ServiceWait),
    (S::Servicing, E::Hold, S::ServiceHold),
    (S::ServiceWait, E::Hold, S::ServiceHold),
    (S::ServiceHold, E::Service, S::Servicing),
    (S::ServiceHold, E::Unhold, S::ServiceWait),
    (S::ServiceWait, E::Resume, S::Servicing),
    (S::ServiceWait, E::Fail, S::ServiceFailed),
    (S::ServiceHold, E::Fail, S::ServiceFailed),
    (S::ServiceWait, E::Abort, S::ServiceFailed),
    (S::ServiceHold, E::Abort, S::ServiceFailed),
    (S::ServiceFailed, E::Service, S::Servicing),
    (S::ServiceFailed, E::Rescue, S::Rescuing),
    (S::ServiceFailed, E::Wait, S::ServiceWait),
    (S::ServiceFailed, E::Hold, S::ServiceHold),
    (S::ServiceFailed, E::Delete, S::Deleting),
    (S::ServiceFailed, E::Abort, S::Active),
    (S::ServiceWait, E::Delete, S::Deleting),
];

/// A verb of `PUT /v1/nodes/{id}/states/provision` (`states.VERBS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Active,
    Deploy,
    Rebuild,
    Deleted,
    Undeploy,
    Manage,
    Provide,
    Inspect,
    Abort,
    Clean,
    Adopt,
    Rescue,
    Unrescue,
    Unhold,
    Service,
}

impl Verb {
    pub const ALL: [Verb; 15] = [
        Self::Active,
        Self::Deploy,
        Self::Rebuild,
        Self::Deleted,
        Self::Undeploy,
        Self::Manage,
        Self::Provide,
        Self::Inspect,
        Self::Abort,
        Self::Clean,
        Self::Adopt,
        Self::Rescue,
        Self::Unrescue,
        Self::Unhold,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deploy => "deploy",
            Self::Rebuild => "rebuild",
            Self::Deleted => "deleted",
            Self::Undeploy => "undeploy",
            Self::Manage => "manage",
            Self::Provide => "provide",
            Self::Inspect => "inspect",
            Self::Abort => "abort",
            Self::Clean => "clean",
            Self::Adopt => "adopt",
            Self::Rescue => "rescue",
            Self::Unrescue => "unrescue",
            Self::Unhold => "unhold",
            Self::Service => "service",
        }
    }

    /// The state machine event the verb fires.
    pub fn event(self) -> Event {
        match self {
            Self::Active | Self::Deploy => Event::Deploy,
            Self::Rebuild => Event::Rebuild,
            Self::Deleted | Self::Undeploy => Event::Delete,
            Self::Manage => Event::Manage,
            Self::Provide => Event::Provide,
            Self::Inspect => Event::Inspect,
            Self::Abort => Event::Abort,
            Self::Clean => Event::Clean,
            Self::Adopt => Event::Adopt,
            Self::Rescue => Event::Rescue,
            Self::Unrescue => Event::Unrescue,
            Self::Unhold => Event::Unhold,
            Self::Service => Event::Service,
        }
    }

    /// The smallest API minor version that accepts the verb
    /// (`MIN_VERB_VERSIONS`, plus the verbs added later).
    pub fn min_minor_version(self) -> u32 {
        match self {
            Self::Active | Self::Rebuild | Self::Deleted => 1,
            Self::Manage | Self::Provide => 4,
            Self::Inspect => 6,
            Self::Abort => 13,
            Self::Clean => 15,
            Self::Adopt => 17,
            Self::Rescue | Self::Unrescue => 38,
            Self::Deploy | Self::Undeploy => 73,
            Self::Unhold => 85,
            Self::Service => 87,
        }
    }

    /// The operation name Ironic's NodeInMaintenance message uses when the
    /// verb is refused in maintenance; `None` when maintenance allows it.
    pub fn refused_in_maintenance(self) -> Option<&'static str> {
        match self {
            Self::Active | Self::Deploy | Self::Rebuild => Some("provisioning"),
            Self::Clean => Some("cleaning"),
            Self::Rescue => Some("rescuing"),
            Self::Unrescue => Some("unrescuing"),
            Self::Service => Some("service"),
            _ => None,
        }
    }

    /// Verbs refused on a protected node (NodeProtected, 403).
    pub fn refused_when_protected(self) -> bool {
        matches!(self, Self::Rebuild | Self::Deleted | Self::Undeploy)
    }

    /// Abort is only allowed from some states at some versions: `inspect
    /// wait` from 1.41, `wait call-back` from 1.110.
    pub fn allowed_from(self, state: ProvisionState, minor: u32) -> bool {
        if self != Self::Abort {
            return true;
        }
        match state {
            ProvisionState::InspectWait => minor >= 41,
            ProvisionState::DeployWait => minor >= 110,
            _ => true,
        }
    }
}

impl FromStr for Verb {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|verb| verb.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// Power states as stored in `nodes.power_state` / `target_power_state`.
pub mod power {
    pub const POWER_ON: &str = "power on";
    pub const POWER_OFF: &str = "power off";
    pub const REBOOT: &str = "rebooting";
    pub const SOFT_REBOOT: &str = "soft rebooting";
    pub const SOFT_POWER_OFF: &str = "soft power off";
    pub const ERROR: &str = "error";

    /// Targets accepted by `PUT /states/power`, with the minor version that
    /// added each.
    pub const TARGETS: [(&str, u32); 5] = [
        (POWER_ON, 1),
        (POWER_OFF, 1),
        (REBOOT, 1),
        (SOFT_REBOOT, 27),
        (SOFT_POWER_OFF, 27),
    ];

    /// The stable power state a target ends in.
    pub fn settles_to(target: &str) -> &'static str {
        match target {
            POWER_OFF | SOFT_POWER_OFF => POWER_OFF,
            _ => POWER_ON,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_string() {
        for state in ProvisionState::ALL {
            assert_eq!(state.as_str().parse::<ProvisionState>(), Ok(state));
        }
        assert!("nope".parse::<ProvisionState>().is_err());
    }

    #[test]
    fn every_verb_round_trips_through_its_string() {
        for verb in Verb::ALL {
            assert_eq!(verb.as_str().parse::<Verb>(), Ok(verb));
        }
    }

    #[test]
    fn table_has_no_duplicate_state_event_pairs() {
        for (i, (from, ev, _)) in TRANSITIONS.iter().enumerate() {
            for (from2, ev2, _) in &TRANSITIONS[i + 1..] {
                assert!(
                    !(from == from2 && ev == ev2),
                    "{from} --{}--> defined twice",
                    ev.as_str()
                );
            }
        }
    }

    #[test]
    fn stable_states_have_no_target_and_unstable_ones_do() {
        for state in ProvisionState::ALL {
            assert_eq!(state.is_stable(), state.target().is_none(), "{state}");
        }
    }

    #[test]
    fn every_state_is_reachable_from_enroll() {
        let mut seen = vec![ProvisionState::Enroll];
        let mut i = 0;
        while i < seen.len() {
            let state = seen[i];
            for (from, _, to) in TRANSITIONS {
                if *from == state && !seen.contains(to) {
                    seen.push(*to);
                }
            }
            i += 1;
        }
        for state in ProvisionState::ALL {
            assert!(seen.contains(&state), "{state} unreachable");
        }
    }

    /// The whole matrix of state × verb, against an independent list of the
    /// verbs Ironic accepts in each state.
    #[test]
    fn verbs_are_allowed_exactly_where_ironic_allows_them() {
        use ProvisionState::*;
        let allowed: &[(ProvisionState, &[&str])] = &[
            (Enroll, &["manage"]),
            (Verifying, &[]),
            (Manageable, &["provide", "clean", "inspect", "adopt"]),
            (Inspecting, &[]),
            (InspectWait, &["abort"]),
            (InspectFailed, &["manage", "inspect"]),
            (Cleaning, &["manage"]),
            (CleanWait, &["abort"]),
            (CleanHold, &["abort", "unhold"]),
            (CleanFailed, &["manage"]),
            (Available, &["active", "deploy", "manage"]),
            (Deploying, &[]),
            (DeployWait, &["abort", "deleted", "undeploy"]),
            (DeployHold, &["abort", "unhold"]),
            (
                DeployFailed,
                &["active", "deploy", "rebuild", "deleted", "undeploy"],
            ),
            (
                Active,
                &["rebuild", "deleted", "undeploy", "rescue", "service"],
            ),
            // `clean` is the internal event that follows a tear-down.
            (Deleting, &["clean"]),
            (Error, &["rebuild", "deleted", "undeploy"]),
            (Adopting, &[]),
            (AdoptFailed, &["adopt", "manage"]),
            (Rescuing, &[]),
            (RescueWait, &["abort", "deleted", "undeploy"]),
            (RescueFailed, &["rescue", "unrescue", "deleted", "undeploy"]),
            (Rescue, &["rescue", "unrescue", "deleted", "undeploy"]),
            (Unrescuing, &[]),
            (
                UnrescueFailed,
                &["rescue", "unrescue", "deleted", "undeploy"],
            ),
            (Servicing, &[]),
            (ServiceWait, &["abort", "deleted", "undeploy"]),
            (ServiceHold, &["abort", "unhold", "service"]),
            (
                ServiceFailed,
                &["abort", "service", "rescue", "deleted", "undeploy"],
            ),
        ];
        assert_eq!(allowed.len(), ProvisionState::ALL.len());
        for (state, verbs) in allowed {
            for verb in Verb::ALL {
                let expected = verbs.contains(&verb.as_str());
                assert_eq!(
                    state.next(verb.event()).is_some(),
                    expected,
                    "verb {} from {state}",
                    verb.as_str()
                );
            }
        }
    }

    #[test]
    fn the_happy_path_reaches_active_and_back() {
        use ProvisionState::*;
        let path = [
            (Enroll, Event::Manage, Verifying),
            (Verifying, Event::Done, Manageable),
            (Manageable, Event::Provide, Cleaning),
            (Cleaning, Event::Done, Available),
            (Available, Event::Deploy, Deploying),
            (Deploying, Event::Done, Active),
            (Active, Event::Delete, Deleting),
            (Deleting, Event::Clean, Cleaning),
        ];
        for (from, event, to) in path {
            assert_eq!(from.next(event), Some(to), "{from} --{}-->", event.as_str());
        }
        assert_eq!(Deploying.target(), Some(Active));
        assert_eq!(Deleting.target(), Some(Available));
        assert_eq!(Verifying.target(), Some(Manageable));
    }

    #[test]
    fn abort_from_wait_call_back_needs_1_110() {
        assert!(!Verb::Abort.allowed_from(ProvisionState::DeployWait, 109));
        assert!(Verb::Abort.allowed_from(ProvisionState::DeployWait, 110));
        assert!(!Verb::Abort.allowed_from(ProvisionState::InspectWait, 40));
        assert!(Verb::Abort.allowed_from(ProvisionState::CleanWait, 13));
    }
}
