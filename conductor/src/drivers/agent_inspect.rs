//! The `agent` inspect interface (Ironic's built-in in-band inspection):
//! `inspecting` boots the deploy ramdisk through the node's boot interface
//! with `ipa-inspection-callback-url` pointing at Ferric's
//! `/v1/continue_inspection`, reboots the node and leaves it in
//! `inspect wait`, unlocked. The agent posts its inventory there; the
//! conductor processes it (the `continue_inspection` task), then
//! [`InspectInterface::clean_up`] powers the node off and undoes the
//! ramdisk's boot. No data within `[conductor] inspect_wait_timeout_secs`
//! ends in `inspect failed` (the periodic pass).

use async_trait::async_trait;
use ferric_common::db::models::node::StateChange;

use super::direct::without_agent;
use super::error::DriverError;
use super::interfaces::{InspectInterface, Inspected, Interface};
use super::{deploy_kernel_args, power_actions};
use crate::task::Task;

/// `agent`.
pub struct AgentInspect;

impl Interface for AgentInspect {
    fn name(&self) -> &'static str {
        "agent"
    }
}

#[async_trait]
impl InspectInterface for AgentInspect {
    async fn inspect_hardware(&self, task: &mut Task) -> Result<Inspected, DriverError> {
        let api = task.ctx().boot.api_url.clone();
        let params = deploy_kernel_args(&format!(
            "ipa-inspection-callback-url={api}/v1/continue_inspection ipa-api-url={api}"
        ))?;
        let boot = task.driver.boot;
        boot.prepare_ramdisk(task, &params).await?;
        match power_actions::reboot(task).await {
            Ok(power_state) => Ok(Inspected::Waiting(Box::new(StateChange {
                power_state: Some(Some(power_state.to_owned())),
                // Inspection never fast-tracks: no agent of a former boot.
                driver_internal_info: Some(without_agent(&task.node)?),
                ..StateChange::default()
            }))),
            Err(e) => {
                boot.clean_up_ramdisk(task).await;
                Err(e)
            }
        }
    }

    /// Powers the node off and undoes the ramdisk's boot; the agent's keys
    /// go.
    async fn clean_up(&self, task: &Task) -> StateChange {
        let power_state = match power_actions::power_off(task).await {
            Ok(state) => Some(Some(state.to_owned())),
            Err(e) => {
                tracing::warn!(node.uuid = %task.node.uuid, error = %e, "could not power the node off after its inspection");
                None
            }
        };
        task.driver.boot.clean_up_ramdisk(task).await;
        StateChange {
            power_state,
            driver_internal_info: without_agent(&task.node).ok(),
            ..StateChange::default()
        }
    }
}
