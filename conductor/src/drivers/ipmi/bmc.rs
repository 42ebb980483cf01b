//! One IPMI-over-LAN session with a BMC (ipmi-rs, blocking) and the chassis
//! commands ipmi-rs lacks, sent raw: Get Chassis Status, Chassis Control,
//! Set/Get System Boot Options. Reply parsing is pure and unit-tested.
//!
//! Invariants: a session raises its privilege level right after it is
//! activated (ipmi-rs stops at the channel's default, and chassis control
//! needs more); every reply's completion code is checked; nothing here
//! formats the password. All calls block: run them off the async workers
//! ([`super::sessions`]).

use std::time::Duration;

use ipmi_rs::connection::{
    IpmiConnection, LogicalUnit, Message, Request, RequestTargetAddress, Response,
};
use ipmi_rs::rmcp::{ActivationError, Rmcp, V2_0ActivationError};
use secrecy::ExposeSecret;

use super::driver_info::IpmiInfo;

const NETFN_CHASSIS: u8 = 0x00;
const NETFN_APP: u8 = 0x06;
const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
const CMD_CHASSIS_CONTROL: u8 = 0x02;
const CMD_SET_BOOT_OPTIONS: u8 = 0x08;
const CMD_GET_BOOT_OPTIONS: u8 = 0x09;
const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3B;
/// Boot options parameter 5: boot flags.
const BOOT_FLAGS: u8 = 0x05;

/// Chassis Control actions (IPMI 2.0 §28.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisControl {
    PowerDown = 0,
    PowerUp = 1,
    PowerCycle = 2,
    HardReset = 3,
    Pulse = 4,
    SoftShutdown = 5,
}

/// Boot devices as Ironic names them, and the boot flags' selector.
pub const BOOT_DEVICES: [(&str, u8); 5] = [
    ("pxe", 0x04),
    ("disk", 0x08),
    ("safe", 0x0c),
    ("cdrom", 0x14),
    ("bios", 0x18),
];

/// What went wrong talking to a BMC.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BmcError {
    /// The session could not be opened (unreachable, refused).
    #[error("could not open an IPMI session with {address}: {reason}")]
    Session { address: String, reason: String },
    /// The BMC refused the user name or password (not retried).
    #[error(
        "could not open an IPMI session with {address}: authentication failed (wrong user name or password)"
    )]
    Unauthorized { address: String },
    /// A command got no usable reply.
    #[error("IPMI call failed: {cmd}: {reason}")]
    Command { cmd: &'static str, reason: String },
    /// The BMC answered with a completion code other than success.
    #[error("IPMI call failed: {cmd}: completion code 0x{code:02x}")]
    Completion { cmd: &'static str, code: u8 },
    /// The reply's data is not what the command returns.
    #[error("IPMI call failed: {cmd}: malformed reply {data:02x?}")]
    Malformed { cmd: &'static str, data: Vec<u8> },
}

impl BmcError {
    /// Whether the session should be dropped and a fresh one tried: every
    /// transport or session failure; a completion code is the BMC's answer.
    pub fn needs_new_session(&self) -> bool {
        matches!(self, BmcError::Session { .. } | BmcError::Command { .. })
    }

    /// Whether trying again may help (not for refused credentials or a
    /// completion code).
    pub fn retryable(&self) -> bool {
        self.needs_new_session()
    }
}

/// An active session.
pub struct BmcSession {
    rmcp: Rmcp,
}

impl BmcSession {
    /// Opens (activates) a session and raises its privilege level.
    ///
    /// # Errors
    /// [`BmcError::Session`] when the BMC is unreachable or refuses.
    pub fn open(info: &IpmiInfo, reply_timeout: Duration) -> Result<BmcSession, BmcError> {
        let failed = |reason: String| BmcError::Session {
            address: format!("{}:{}", info.address, info.port),
            reason,
        };
        let mut rmcp = Rmcp::new((info.address.as_str(), info.port), reply_timeout)
            .map_err(|e| failed(e.to_string()))?;
        let password = info.password.expose_secret();
        rmcp.activate(
            info.lanplus,
            info.username.as_deref(),
            (!password.is_empty()).then_some(password.as_bytes()),
        )
        .map_err(|e| match e {
            ActivationError::V2_0(V2_0ActivationError::ServerAuthenticationFailed) => {
                BmcError::Unauthorized {
                    address: format!("{}:{}", info.address, info.port),
                }
            }
            other => failed(activation_reason(&other)),
        })?;
        let mut session = BmcSession { rmcp };
        session
            .call(
                "set session privilege",
                NETFN_APP,
                CMD_SET_SESSION_PRIVILEGE,
                vec![info.priv_level as u8],
            )
            .map_err(|e| failed(e.to_string()))?;
        Ok(session)
    }

    fn call(
        &mut self,
        cmd: &'static str,
        netfn: u8,
        code: u8,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, BmcError> {
        let mut request = Request::new(
            Message::new_raw(netfn, code, data),
            RequestTargetAddress::Bmc(LogicalUnit::Zero),
        );
        let response: Response =
            self.rmcp
                .send_recv(&mut request)
                .map_err(|e| BmcError::Command {
                    cmd,
                    reason: format!("{e:?}"),
                })?;
        if response.cmd() != code {
            return Err(BmcError::Malformed {
                cmd,
                data: response.data().to_vec(),
            });
        }
        match response.cc() {
            0 => Ok(response.data().to_vec()),
            code => Err(BmcError::Completion { cmd, code }),
        }
    }

    /// Whether the chassis is powered on.
    ///
    /// # Errors
    /// A [`BmcError`] when the BMC does not answer properly.
    pub fn power_is_on(&mut self) -> Result<bool, BmcError> {
        let data = self.call(
            "power status",
            NETFN_CHASSIS,
            CMD_GET_CHASSIS_STATUS,
            Vec::new(),
        )?;
        parse_chassis_status(&data).ok_or(BmcError::Malformed {
            cmd: "power status",
            data,
        })
    }

    /// Sends a Chassis Control action.
    ///
    /// # Errors
    /// A [`BmcError`] when the BMC does not accept it.
    pub fn chassis_control(&mut self, action: ChassisControl) -> Result<(), BmcError> {
        let cmd = match action {
            ChassisControl::PowerDown => "power off",
            ChassisControl::PowerUp => "power on",
            ChassisControl::PowerCycle => "power cycle",
            ChassisControl::HardReset => "power reset",
            ChassisControl::Pulse => "power diag",
            ChassisControl::SoftShutdown => "power soft",
        };
        self.call(cmd, NETFN_CHASSIS, CMD_CHASSIS_CONTROL, vec![action as u8])
            .map(|_| ())
    }

    /// Sets the next boot device (`persistent`: for every boot, not just
    /// the next; `uefi`: the EFI boot type bit).
    ///
    /// # Errors
    /// A [`BmcError`] when the BMC does not accept it.
    pub fn set_boot_device(
        &mut self,
        selector: u8,
        persistent: bool,
        uefi: bool,
    ) -> Result<(), BmcError> {
        let mut flags = 0x80;
        if persistent {
            flags |= 0x40;
        }
        if uefi {
            flags |= 0x20;
        }
        self.call(
            "chassis bootdev",
            NETFN_CHASSIS,
            CMD_SET_BOOT_OPTIONS,
            vec![BOOT_FLAGS, flags, selector, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// The boot device and whether it is persistent (`None` device: none set).
    ///
    /// # Errors
    /// A [`BmcError`] when the BMC does not answer properly.
    pub fn boot_device(&mut self) -> Result<(Option<&'static str>, bool), BmcError> {
        let data = self.call(
            "chassis bootparam get 5",
            NETFN_CHASSIS,
            CMD_GET_BOOT_OPTIONS,
            vec![BOOT_FLAGS, 0, 0],
        )?;
        parse_boot_flags(&data).ok_or(BmcError::Malformed {
            cmd: "chassis bootparam get 5",
            data,
        })
    }
}

/// A readable reason for a failed activation, without secrets (ipmi-rs's
/// errors carry none).
fn activation_reason(e: &ActivationError) -> String {
    match e {
        ActivationError::PongReceive(io) | ActivationError::PingSend(io) => {
            format!("no answer to the RMCP presence ping ({io})")
        }
        other => format!("{other:?}"),
    }
}

/// Get Chassis Status reply: byte 0 bit 0 is "power is on".
pub fn parse_chassis_status(data: &[u8]) -> Option<bool> {
    data.first().map(|b| b & 0x01 == 0x01)
}

/// Get System Boot Options reply for parameter 5: `[version, 5, flags,
/// selector, ...]`. The device is `None` when no override is set.
pub fn parse_boot_flags(data: &[u8]) -> Option<(Option<&'static str>, bool)> {
    let (param, flags, selector) = (*data.get(1)?, *data.get(2)?, *data.get(3)?);
    if param & 0x7f != BOOT_FLAGS {
        return None;
    }
    let device = BOOT_DEVICES
        .iter()
        .find(|(_, s)| *s == selector & 0x3c)
        .map(|(name, _)| *name);
    Some((device, flags & 0x40 == 0x40))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a BMC answers, parsing gives a value or `None`, never a panic.
        #[test]
        fn bmc_replies_never_panic_the_parsers(data in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_chassis_status(&data);
            let _ = parse_boot_flags(&data);
        }

        #[test]
        fn every_boot_device_reads_back(index in 0usize..5, persistent in any::<bool>()) {
            let (name, selector) = BOOT_DEVICES[index];
            let flags = 0x80 | if persistent { 0x40 } else { 0 };
            prop_assert_eq!(
                parse_boot_flags(&[0x01, 0x05, flags, selector, 0, 0, 0]),
                Some((Some(name), persistent))
            );
        }
    }

    #[test]
    fn chassis_status_reads_the_power_bit() {
        assert_eq!(parse_chassis_status(&[0x01, 0x00, 0x40]), Some(true));
        assert_eq!(parse_chassis_status(&[0x60]), Some(false));
        assert_eq!(parse_chassis_status(&[]), None);
    }

    #[test]
    fn boot_flags_give_device_and_persistence() {
        assert_eq!(
            parse_boot_flags(&[0x01, 0x05, 0xc0, 0x04, 0, 0, 0]),
            Some((Some("pxe"), true))
        );
        assert_eq!(
            parse_boot_flags(&[0x01, 0x05, 0x80, 0x08, 0, 0, 0]),
            Some((Some("disk"), false))
        );
        assert_eq!(
            parse_boot_flags(&[0x01, 0x05, 0x00, 0x00, 0, 0, 0]),
            Some((None, false))
        );
        assert_eq!(parse_boot_flags(&[0x01, 0x04, 0x00, 0x04]), None);
        assert_eq!(parse_boot_flags(&[0x01]), None);
    }
}
