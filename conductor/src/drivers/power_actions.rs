//! The power actions a deploy interface takes through the node's power
//! interface (Ironic's `manager_utils.node_power_action` as the deploys
//! call it), with Ironic's wording for their failures, and the tear-down
//! both agent and ramdisk deploys share.
//!
//! Invariant: every error keeps the power interface's kind
//! ([`DriverError::prefixed`]).

use ferric_common::states::power;

use super::error::DriverError;
use crate::task::Task;

/// Reboots the node (powers it on when off); the state it is left in.
///
/// # Errors
/// The power interface's failure, worded as Ironic's.
pub async fn reboot(task: &Task) -> Result<&'static str, DriverError> {
    let timeout = task.ctx().settings.power_state_change_timeout();
    task.driver
        .power
        .set_power_state(task, power::REBOOT, timeout)
        .await
        .map_err(|e| e.prefixed("Failed to change power state to 'power on' by 'rebooting': "))
}

/// Powers the node on.
///
/// # Errors
/// The power interface's failure, worded as Ironic's.
pub async fn power_on(task: &Task) -> Result<&'static str, DriverError> {
    let timeout = task.ctx().settings.power_state_change_timeout();
    task.driver
        .power
        .set_power_state(task, power::POWER_ON, timeout)
        .await
        .map_err(|e| e.prefixed("Failed to change power state to 'power on' by 'power on': "))
}

/// Powers the node off.
///
/// # Errors
/// The power interface's failure, worded as Ironic's.
pub async fn power_off(task: &Task) -> Result<&'static str, DriverError> {
    let timeout = task.ctx().settings.power_state_change_timeout();
    task.driver
        .power
        .set_power_state(task, power::POWER_OFF, timeout)
        .await
        .map_err(|e| e.prefixed("Failed to change power state to 'power off' by 'power off': "))
}

/// Undeploys (Ironic's `tear_down` of the agent and ramdisk deploys):
/// powers off, then undoes the instance's boot even when that failed;
/// returns the power state.
///
/// # Errors
/// The power off's or the boot interface's failure (both, joined).
pub async fn tear_down(task: &Task) -> Result<Option<&'static str>, DriverError> {
    let off = power_off(task).await;
    let cleaned = task.driver.boot.clean_up_instance(task).await;
    match (off, cleaned) {
        (Ok(off), Ok(())) => Ok(Some(off)),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(off), Err(boot)) => Err(DriverError::Bmc(format!("{off}; {boot}"))),
    }
}
