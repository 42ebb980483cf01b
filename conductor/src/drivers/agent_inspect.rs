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

use super::direct::{boot_ramdisk, leave_ramdisk};
use super::error::DriverError;
use super::interfaces::{InspectInterface, Inspected, Interface};
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
        // Inspection never fast-tracks: no agent of a former boot.
        let change = boot_ramdisk(
            task,
            &format!("ipa-inspection-callback-url={api}/v1/continue_inspection ipa-api-url={api}"),
        )
        .await?;
        Ok(Inspected::Waiting(Box::new(change)))
    }

    /// Powers the node off and undoes the ramdisk's boot; the agent's keys
    /// go.
    async fn clean_up(&self, task: &Task) -> StateChange {
        leave_ramdisk(task).await
    }
}
