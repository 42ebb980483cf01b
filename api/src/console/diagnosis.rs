//! The diagnosis line of a node page: in words, why the node is where it
//! is, built only from what Ferric recorded (the node's row, its agent's
//! last heartbeat, the conductors' heartbeats, the DHCP files) — never a
//! guess. Pure: the page gathers the [`Facts`], this turns them into
//! sentences.

use std::time::Duration;

use super::human;

/// What the DHCP host files say of a node's PXE-enabled ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpFacts {
    /// PXE-enabled ports.
    pub ports: usize,
    /// Of those, with a host entry that answers.
    pub answering: usize,
    /// Of those, with an entry set to `ignore` (cleaned up).
    pub ignored: usize,
}

/// Everything the diagnosis may use.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub provision_state: &'a str,
    pub target_provision_state: Option<&'a str>,
    /// Since the provision state last changed.
    pub in_state_for: Option<Duration>,
    pub power_state: Option<&'a str>,
    pub target_power_state: Option<&'a str>,
    pub maintenance: bool,
    pub maintenance_reason: Option<&'a str>,
    pub fault: Option<&'a str>,
    pub last_error: Option<&'a str>,
    /// The conductor holding the node's lock, and whether it heartbeats.
    pub lock: Option<(&'a str, bool)>,
    /// The conductor the hash ring gives the node to, if any is alive.
    pub owner: Option<&'a str>,
    pub driver: &'a str,
    /// Since the agent's last heartbeat, and its version.
    pub agent: Option<(Duration, Option<&'a str>)>,
    /// The step running (`interface.step`).
    pub step: Option<String>,
    /// Bytes written of the total, from the agent's report.
    pub progress: Option<(u64, Option<u64>)>,
    /// How long the node may wait in a `wait` state.
    pub wait_timeout: Option<Duration>,
    /// `None` when Ferric does not manage DHCP (or cannot read its files).
    pub dhcp: Option<DhcpFacts>,
    /// The last file Ferric's boot-file server gave the node since it
    /// entered its state, and how long ago.
    pub boot_fetch: Option<(&'a str, Duration)>,
    /// Whether this process knows Ferric serves the boot files (so their
    /// absence means something).
    pub serves_boot_files: bool,
}

fn waits_for_agent(state: &str) -> bool {
    matches!(
        state,
        "wait call-back" | "clean wait" | "inspect wait" | "rescue wait" | "service wait"
    )
}

fn failed(state: &str) -> bool {
    state.ends_with(" failed") || state == "error"
}

/// What an operator can do next from a failed state.
fn next_step(state: &str) -> &'static str {
    match state {
        "deploy failed" => "undeploy it, or deploy again",
        "clean failed" => "fix the cause, then manage it (it stays in maintenance until then)",
        "inspect failed" => "inspect again, or manage it",
        "rescue failed" => "unrescue it, or rescue again",
        "error" => "undeploy it (or rebuild)",
        _ => "see the timeline",
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// The diagnosis: one sentence per finding, the most pressing first.
pub fn diagnose(f: &Facts<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let held = f.in_state_for.map(human);
    let for_how_long = held
        .as_deref()
        .map(|h| format!(" for {h}"))
        .unwrap_or_default();
    if f.maintenance {
        out.push(format!(
            "In maintenance{}: Ferric takes no action on it until maintenance is turned off.",
            f.maintenance_reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if let Some(fault) = f.fault {
        out.push(format!("Ferric recorded the fault \"{fault}\"."));
    }
    match f.lock {
        Some((holder, false)) => out.push(format!(
            "Locked by conductor {holder}, which no longer heartbeats: another conductor takes the node over (and fails the operation it was running) once the heartbeat timeout passes."
        )),
        Some((holder, true)) => out.push(format!("Conductor {holder} holds its lock and is alive.")),
        None => {}
    }
    if f.owner.is_none() {
        out.push(format!(
            "No live conductor serves the driver {} in its conductor group: nothing will move until one starts.",
            f.driver
        ));
    }
    let state = f.provision_state;
    if waits_for_agent(state) {
        match f.agent {
            None => out.push(format!(
                "Waiting for the agent's first heartbeat{for_how_long}{}.",
                timeout_clause(f)
            )),
            Some((since, version)) => out.push(format!(
                "Waiting on the agent{}{for_how_long}; its last heartbeat was {} ago{}.",
                version
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default(),
                human(since),
                timeout_clause(f)
            )),
        }
        match (f.boot_fetch, f.agent) {
            (Some((file, ago)), _) => out.push(format!(
                "It last fetched {file} from Ferric's boot-file server {} ago.",
                human(ago)
            )),
            (None, None) if f.serves_boot_files => out.push(
                "It has fetched no boot file from Ferric's boot-file server since: it has not network-booted (check its boot order, DHCP and the network)."
                    .into(),
            ),
            (None, _) => {}
        }
        if let Some(step) = &f.step {
            out.push(format!("The step running is {step}."));
        }
        if let Some((bytes, total)) = f.progress {
            out.push(match total {
                Some(total) if total > 0 => format!(
                    "The agent reports {} of {} written ({}%).",
                    gib(bytes),
                    gib(total),
                    bytes.saturating_mul(100) / total
                ),
                _ => format!("The agent reports {} written.", gib(bytes)),
            });
        }
    } else if failed(state) {
        out.push(format!(
            "Failed{}: {}. Next: {}.",
            held.as_deref()
                .map(|h| format!(" {h} ago"))
                .unwrap_or_default(),
            f.last_error.unwrap_or("no error was recorded"),
            next_step(state)
        ));
    } else if let Some(target) = f.target_provision_state {
        let step = f
            .step
            .as_deref()
            .map(|s| format!(", running {s}"))
            .unwrap_or_default();
        out.push(format!(
            "In {state}{for_how_long}, on its way to {target}{step}."
        ));
    } else {
        out.push(format!("Stable in {state}{for_how_long}."));
        if state == "enroll" {
            out.push("Not managed yet: manage it to check its BMC credentials.".into());
        }
    }
    match (f.power_state, f.target_power_state) {
        (_, Some(target)) => out.push(format!(
            "A power change to {target} is under way (last recorded power: {}).",
            f.power_state.unwrap_or("unknown")
        )),
        (Some(power), None) => out.push(format!("The BMC last reported {power}.")),
        (None, None) => out.push("Its power state has not been read from the BMC yet.".into()),
    }
    if let Some(dhcp) = f.dhcp {
        out.push(match dhcp {
            DhcpFacts { ports: 0, .. } => "No PXE-enabled port: it cannot network boot.".into(),
            DhcpFacts {
                ports, answering, ..
            } if answering == ports => format!(
                "The DHCP host entr{} for its PXE port{} exist{}.",
                if ports == 1 { "y" } else { "ies" },
                if ports == 1 { "" } else { "s" },
                if ports == 1 { "s" } else { "" }
            ),
            DhcpFacts {
                ports,
                answering,
                ignored,
            } => format!(
                "DHCP answers {answering} of its {ports} PXE port{} ({ignored} set to ignore).",
                if ports == 1 { "" } else { "s" }
            ),
        });
    }
    out
}

fn timeout_clause(f: &Facts<'_>) -> String {
    match (f.wait_timeout, f.in_state_for) {
        (Some(limit), Some(held)) if limit > held => {
            format!("; it times out in {}", human(limit - held))
        }
        (Some(_), Some(_)) => "; its wait timeout has passed, the next check fails it".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Facts<'static> {
        Facts {
            provision_state: "wait call-back",
            target_provision_state: Some("active"),
            in_state_for: Some(Duration::from_secs(240)),
            power_state: Some("power on"),
            owner: Some("c1"),
            driver: "ipmi",
            wait_timeout: Some(Duration::from_secs(1800)),
            dhcp: Some(DhcpFacts {
                ports: 1,
                answering: 1,
                ignored: 0,
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn a_node_whose_agent_never_called_says_so_with_the_time_left() {
        let text = diagnose(&waiting()).join(" ");
        assert!(
            text.contains(
                "Waiting for the agent's first heartbeat for 4 min; it times out in 26 min."
            ),
            "{text}"
        );
        assert!(text.contains("The BMC last reported power on."), "{text}");
        assert!(
            text.contains("The DHCP host entry for its PXE port exists."),
            "{text}"
        );
    }

    #[test]
    fn a_heartbeating_agent_shows_its_age_step_and_progress() {
        let facts = Facts {
            agent: Some((Duration::from_secs(12), Some("13.0.0"))),
            step: Some("deploy.write_image".into()),
            progress: Some((1 << 30, Some(4 << 30))),
            ..waiting()
        };
        let text = diagnose(&facts).join(" ");
        assert!(text.contains("(version 13.0.0)"), "{text}");
        assert!(text.contains("last heartbeat was 12 s ago"), "{text}");
        assert!(text.contains("deploy.write_image"), "{text}");
        assert!(text.contains("1.0 GiB of 4.0 GiB written (25%)"), "{text}");
    }

    #[test]
    fn a_dead_lock_holder_and_a_missing_conductor_come_first() {
        let facts = Facts {
            lock: Some(("c9", false)),
            owner: None,
            ..waiting()
        };
        let lines = diagnose(&facts);
        assert!(
            lines[0].contains("c9, which no longer heartbeats"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("No live conductor serves the driver ipmi"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_failure_names_its_error_and_what_to_do() {
        let facts = Facts {
            provision_state: "deploy failed",
            target_provision_state: None,
            last_error: Some("Timeout reached while waiting for callback"),
            dhcp: Some(DhcpFacts {
                ports: 2,
                answering: 0,
                ignored: 2,
            }),
            ..waiting()
        };
        let text = diagnose(&facts).join(" ");
        assert!(
            text.contains("Failed 4 min ago: Timeout reached while waiting for callback. Next: undeploy it, or deploy again."),
            "{text}"
        );
        assert!(
            text.contains("DHCP answers 0 of its 2 PXE ports (2 set to ignore)."),
            "{text}"
        );
    }

    #[test]
    fn a_stable_node_and_its_power() {
        let facts = Facts {
            provision_state: "available",
            target_provision_state: None,
            power_state: None,
            dhcp: None,
            ..waiting()
        };
        let text = diagnose(&facts).join(" ");
        assert_eq!(
            text,
            "Stable in available for 4 min. Its power state has not been read from the BMC yet."
        );
    }
}
