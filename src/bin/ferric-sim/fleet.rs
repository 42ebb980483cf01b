//! The simulated machines: each BMC's address, credentials, power state,
//! boot override, virtual media, and the faults it is told to show
//! (latency, an error rate, hanging), plus what it was asked.
//!
//! A machine powered on (off → on) boots: a one-time boot override is
//! spent, and when it boots from the network the machine's PXE boot is
//! announced (to the simulated agents, when there are any).
//!
//! Invariants: a BMC's state changes only under its own lock, held for no
//! await; the error rate is exact and repeatable (request n fails when
//! `floor((n + 1) · rate)` passes an integer), not random; each boot has
//! its own number, so whatever ran in an earlier boot can tell it is gone.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use serde::Serialize;
use serde_json::{Value, json};

/// One machine's BMC.
pub struct Bmc {
    pub index: usize,
    pub address: SocketAddr,
    pub username: String,
    pub password: String,
    /// The machine's NIC (what an agent looks its node up by).
    pub mac: String,
    state: Mutex<State>,
    /// Where a boot from the network is announced: (index, boot number).
    pxe_boots: OnceLock<UnboundedSender<(usize, u64)>>,
}

/// The NIC address of machine `index`: locally administered, unique for
/// 16 million machines.
pub fn mac_of(index: usize) -> String {
    let b = (index as u32).to_be_bytes();
    format!("02:fe:51:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

/// What a BMC holds and reports.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub power_on: bool,
    /// Redfish `BootSourceOverrideTarget` (`None`, `Pxe`, `Hdd`, `Cd`, …).
    pub boot_target: String,
    /// `Disabled`, `Once` or `Continuous`.
    pub boot_enabled: String,
    /// `UEFI` or `Legacy`.
    pub boot_mode: String,
    /// The virtual CD's image URL, when one is inserted.
    pub media: Option<String>,
    /// Power transitions so far (on→off and off→on).
    pub power_changes: u64,
    /// Boots so far (off→on transitions); the current boot's number.
    pub boots: u64,
    pub faults: Faults,
    /// Requests answered (any outcome).
    pub requests: u64,
    /// Requests failed on purpose.
    pub injected_errors: u64,
}

/// The faults a BMC shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Faults {
    /// Added before every answer.
    pub latency_ms: u64,
    /// The share of requests answered 500 (0.0–1.0).
    pub error_rate: f64,
    /// Never answers (until the client gives up).
    pub hang: bool,
}

/// What to do with one request.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Answer after `delay`.
    Serve { delay: Duration },
    /// Answer 500 after `delay`.
    Fail { delay: Duration },
    /// Do not answer.
    Hang,
}

/// Whether request `n` (0-based) is one of the failed ones at `rate`.
pub fn fails(n: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let rate = rate.min(1.0);
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let (before, after) = ((n as f64 * rate).floor(), ((n + 1) as f64 * rate).floor());
    after > before
}

impl Bmc {
    pub fn new(index: usize, address: SocketAddr, username: &str, password: &str) -> Bmc {
        Bmc {
            index,
            address,
            username: username.to_owned(),
            password: password.to_owned(),
            mac: mac_of(index),
            pxe_boots: OnceLock::new(),
            state: Mutex::new(State {
                power_on: false,
                boot_target: "None".into(),
                boot_enabled: "Disabled".into(),
                boot_mode: "UEFI".into(),
                media: None,
                power_changes: 0,
                boots: 0,
                faults: Faults::default(),
                requests: 0,
                injected_errors: 0,
            }),
        }
    }

    /// Runs `f` on the state under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic while holding the lock cannot leave a half-written state
        // worth refusing: every change is one field assignment.
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut state)
    }

    /// Counts a request and decides its fate.
    pub fn admit(&self) -> Verdict {
        self.with(|s| {
            let n = s.requests;
            s.requests += 1;
            let delay = Duration::from_millis(s.faults.latency_ms);
            if s.faults.hang {
                Verdict::Hang
            } else if fails(n, s.faults.error_rate) {
                s.injected_errors += 1;
                Verdict::Fail { delay }
            } else {
                Verdict::Serve { delay }
            }
        })
    }

    /// Announces this machine's boots from the network on `to`.
    pub fn announce_pxe_boots(&self, to: UnboundedSender<(usize, u64)>) {
        let _ = self.pxe_boots.set(to);
    }

    /// Sets the power, counting a change; off → on boots the machine.
    pub fn set_power(&self, on: bool) {
        let pxe_boot = self.with(|s| {
            if s.power_on == on {
                return None;
            }
            s.power_changes += 1;
            s.power_on = on;
            if !on {
                return None;
            }
            s.boots += 1;
            let from_network = s.boot_enabled != "Disabled" && s.boot_target == "Pxe";
            if s.boot_enabled == "Once" {
                s.boot_enabled = "Disabled".into();
                s.boot_target = "None".into();
            }
            from_network.then_some(s.boots)
        });
        if let (Some(boot), Some(to)) = (pxe_boot, self.pxe_boots.get()) {
            let _ = to.send((self.index, boot));
        }
    }

    /// Whether the machine is still in boot `boot`.
    pub fn in_boot(&self, boot: u64) -> bool {
        self.with(|s| s.power_on && s.boots == boot)
    }

    /// The state and faults, for the control API.
    pub fn report(&self) -> Value {
        let state = self.with(|s| s.clone());
        json!({
            "index": self.index,
            "address": self.address.to_string(),
            "state": state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_rate_is_exact_and_repeatable() {
        let failed = |rate| (0..1000).filter(|n| fails(*n, rate)).count();
        assert_eq!(failed(0.0), 0);
        assert_eq!(failed(0.1), 100);
        assert_eq!(failed(0.25), 250);
        assert_eq!(failed(1.0), 1000);
        assert_eq!(failed(3.0), 1000);
        // A quarter: every fourth request.
        let which: Vec<u64> = (0..8).filter(|n| fails(*n, 0.25)).collect();
        assert_eq!(which, [3, 7]);
    }

    #[test]
    fn a_bmc_counts_requests_and_shows_its_faults() {
        let bmc = Bmc::new(0, "127.0.0.1:1".parse().unwrap(), "admin", "pw");
        assert_eq!(
            bmc.admit(),
            Verdict::Serve {
                delay: Duration::ZERO
            }
        );
        bmc.with(|s| {
            s.faults = Faults {
                latency_ms: 5,
                error_rate: 1.0,
                hang: false,
            }
        });
        assert_eq!(
            bmc.admit(),
            Verdict::Fail {
                delay: Duration::from_millis(5)
            }
        );
        bmc.with(|s| s.faults.hang = true);
        assert_eq!(bmc.admit(), Verdict::Hang);
        let report = bmc.report();
        assert_eq!(report["state"]["requests"], 3);
        assert_eq!(report["state"]["injected_errors"], 1);
        bmc.set_power(true);
        bmc.set_power(true);
        assert_eq!(bmc.with(|s| s.power_changes), 1);
    }

    #[test]
    fn a_boot_spends_a_one_time_override_and_announces_a_network_boot() {
        let bmc = Bmc::new(7, "127.0.0.1:1".parse().unwrap(), "admin", "pw");
        let (to, mut boots) = tokio::sync::mpsc::unbounded_channel();
        bmc.announce_pxe_boots(to);
        bmc.with(|s| {
            s.boot_target = "Pxe".into();
            s.boot_enabled = "Once".into();
        });
        bmc.set_power(true);
        assert_eq!(boots.try_recv().unwrap(), (7, 1));
        assert!(bmc.in_boot(1));
        assert_eq!(
            bmc.with(|s| (s.boot_target.clone(), s.boot_enabled.clone())),
            ("None".to_owned(), "Disabled".to_owned())
        );
        // The override was spent: the next boot is from disk.
        bmc.set_power(false);
        assert!(!bmc.in_boot(1));
        bmc.set_power(true);
        assert!(boots.try_recv().is_err());
        // A continuous PXE override boots from the network every time.
        bmc.with(|s| {
            s.boot_target = "Pxe".into();
            s.boot_enabled = "Continuous".into();
        });
        bmc.set_power(false);
        bmc.set_power(true);
        assert_eq!(boots.try_recv().unwrap(), (7, 3));
        assert_eq!(mac_of(7), "02:fe:51:00:00:07");
        assert_eq!(mac_of(70_000), "02:fe:51:01:11:70");
    }
}
