//! The `ramdisk` deploy interface, as Ironic's `RamdiskDeploy`: the boot
//! interface makes the node boot the instance's ramdisk (`instance_info`
//! `kernel`/`ramdisk` or `boot_iso`) every time, the node is rebooted into
//! it and is `active`; undeploy powers it off and undoes its boot.
//!
//! Invariant: a failed deploy leaves no boot files, DHCP entries or
//! inserted media behind (the boot interface's promise, and its
//! `clean_up_instance` when the reboot fails).

use async_trait::async_trait;
use ferric_common::db::models::node::StateChange;

use super::error::DriverError;
use super::interfaces::{DeployInterface, Deployed, InstanceBoot, Interface};
use super::power_actions;
use crate::task::Task;

/// `ramdisk`.
pub struct RamdiskDeploy;

impl Interface for RamdiskDeploy {
    fn name(&self) -> &'static str {
        "ramdisk"
    }
}

#[async_trait]
impl DeployInterface for RamdiskDeploy {
    async fn deploy(&self, task: &mut Task) -> Result<Deployed, DriverError> {
        let boot = task.driver.boot;
        boot.prepare_instance(task, InstanceBoot::Ramdisk).await?;
        match power_actions::reboot(task).await {
            Ok(power_state) => Ok(Deployed::Done(StateChange {
                power_state: Some(Some(power_state.to_owned())),
                deploy_step: Some("{}".into()),
                ..StateChange::default()
            })),
            Err(e) => {
                if let Err(undo) = boot.clean_up_instance(task).await {
                    tracing::warn!(node.uuid = %task.node.uuid, error = %undo, "could not undo the instance's boot");
                }
                Err(e)
            }
        }
    }

    async fn tear_down(&self, task: &mut Task) -> Result<Option<&'static str>, DriverError> {
        power_actions::tear_down(task).await
    }
}
