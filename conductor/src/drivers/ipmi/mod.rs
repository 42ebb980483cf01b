//! The `ipmi` hardware type: Ironic's `ipmitool` power and management
//! interfaces, spoken natively over IPMI-over-LAN with ipmi-rs instead of
//! by running ipmitool, so every Ironic client and driver_info works
//! unchanged.
//!
//! Semantics follow `ironic/drivers/modules/ipmitool.py`: a power action is
//! sent, then the power state is polled until it is the target or
//! `power_state_change_timeout` passes (Ironic's PowerStateFailure); reboot
//! is off (unless already off) then on; validate checks `driver_info` and
//! never touches the BMC.

pub mod bmc;
pub mod driver_info;
pub mod interfaces;
pub mod sessions;

pub use self::interfaces::IPMI;

use std::time::{Duration, Instant};

use ferric_common::states::power;

use self::bmc::{BOOT_DEVICES, BmcError, ChassisControl};
use self::driver_info::IpmiInfo;
use self::sessions::Sessions;

/// Boot devices the `ipmitool` management interface supports, in Ironic's order.
pub const SUPPORTED_BOOT_DEVICES: [&str; 5] = ["pxe", "disk", "cdrom", "bios", "safe"];

/// How often a power action polls for its target state.
const POWER_POLL: Duration = Duration::from_secs(1);

/// An `ipmitool` interface failure, worded as Ironic words it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IpmiError {
    #[error(transparent)]
    Bmc(#[from] BmcError),
    /// Ironic's PowerStateFailure.
    #[error("Failed to set node power state to {0}.")]
    PowerStateFailure(&'static str),
    /// Ironic's InvalidParameterValue for a boot device.
    #[error("Invalid boot device {0} specified.")]
    InvalidBootDevice(String),
}

/// The power state the BMC reports (`power on` / `power off`).
///
/// # Errors
/// When the BMC does not answer.
pub async fn power_state(sessions: &Sessions, info: &IpmiInfo) -> Result<&'static str, IpmiError> {
    let on = sessions.call(info, |s| s.power_is_on()).await?;
    Ok(if on {
        power::POWER_ON
    } else {
        power::POWER_OFF
    })
}

async fn control(
    sessions: &Sessions,
    info: &IpmiInfo,
    action: ChassisControl,
) -> Result<(), IpmiError> {
    sessions
        .call(info, move |s| s.chassis_control(action))
        .await?;
    Ok(())
}

/// Polls until the BMC reports `target` or `timeout` passes.
async fn wait_for(
    sessions: &Sessions,
    info: &IpmiInfo,
    target: &'static str,
    timeout: Duration,
) -> Result<(), IpmiError> {
    let deadline = Instant::now() + timeout;
    loop {
        if power_state(sessions, info).await? == target {
            return Ok(());
        }
        if Instant::now() + POWER_POLL > deadline {
            return Err(IpmiError::PowerStateFailure(target));
        }
        tokio::time::sleep(POWER_POLL).await;
    }
}

/// Carries out `requested` (one of Ironic's power targets) and waits for
/// the hardware; returns the state the node is left in.
///
/// # Errors
/// The BMC's failure, or PowerStateFailure when the target state was not
/// reached within `timeout` (each half of a reboot gets the whole timeout).
pub async fn set_power(
    sessions: &Sessions,
    info: &IpmiInfo,
    requested: &str,
    timeout: Duration,
) -> Result<&'static str, IpmiError> {
    let (on, off) = (power::POWER_ON, power::POWER_OFF);
    match requested {
        power::POWER_ON => {
            control(sessions, info, ChassisControl::PowerUp).await?;
            wait_for(sessions, info, on, timeout).await?;
            Ok(on)
        }
        power::SOFT_POWER_OFF => {
            control(sessions, info, ChassisControl::SoftShutdown).await?;
            wait_for(sessions, info, off, timeout).await?;
            Ok(off)
        }
        power::REBOOT | power::SOFT_REBOOT => {
            if power_state(sessions, info).await? != off {
                let action = if requested == power::REBOOT {
                    ChassisControl::PowerDown
                } else {
                    ChassisControl::SoftShutdown
                };
                control(sessions, info, action).await?;
                wait_for(sessions, info, off, timeout).await?;
            }
            control(sessions, info, ChassisControl::PowerUp).await?;
            wait_for(sessions, info, on, timeout).await?;
            Ok(on)
        }
        _ => {
            control(sessions, info, ChassisControl::PowerDown).await?;
            wait_for(sessions, info, off, timeout).await?;
            Ok(off)
        }
    }
}

/// Injects a non-maskable interrupt ("power diag").
///
/// # Errors
/// The BMC's failure (some BMCs, ipmi_sim among them, do not support it).
pub async fn inject_nmi(sessions: &Sessions, info: &IpmiInfo) -> Result<(), IpmiError> {
    control(sessions, info, ChassisControl::Pulse).await
}

/// Sets the next boot device.
///
/// # Errors
/// InvalidBootDevice for a device `ipmitool` management does not support,
/// or the BMC's failure.
pub async fn set_boot_device(
    sessions: &Sessions,
    info: &IpmiInfo,
    device: &str,
    persistent: bool,
    uefi: bool,
) -> Result<(), IpmiError> {
    let Some((_, selector)) = BOOT_DEVICES.iter().find(|(name, _)| *name == device) else {
        return Err(IpmiError::InvalidBootDevice(device.to_owned()));
    };
    let selector = *selector;
    sessions
        .call(info, move |s| s.set_boot_device(selector, persistent, uefi))
        .await?;
    Ok(())
}

/// The boot device the BMC will use and whether it is persistent.
///
/// # Errors
/// The BMC's failure.
pub async fn boot_device(
    sessions: &Sessions,
    info: &IpmiInfo,
) -> Result<(Option<&'static str>, bool), IpmiError> {
    Ok(sessions.call(info, |s| s.boot_device()).await?)
}
