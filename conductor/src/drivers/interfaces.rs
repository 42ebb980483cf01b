//! One trait per Ironic interface type (`ironic/drivers/base.py`): what the
//! conductor's flows may ask of a node's power, management, boot, deploy
//! and inspect interfaces; the other types (bios, console, firmware,
//! network, raid, rescue, storage, vendor) are plain [`Interface`]s, which
//! here offer only validation and manual clean steps.
//!
//! Invariants: every method takes the [`Task`] (node, driver, services) and
//! none takes a lock or writes a provision state except through the task;
//! a method an implementation does not override answers Ironic's
//! UnsupportedDriverExtension ([`DriverError::NotSupported`]).

use std::time::Duration;

use async_trait::async_trait;
use ferric_common::db::models::node::StateChange;
use ferric_common::kernel_args::KernelArgs;
use serde_json::Value;

use super::error::DriverError;
use crate::task::Task;

/// A step an interface offers for manual cleaning: its name and its
/// required arguments with their descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStep {
    pub step: &'static str,
    pub required: &'static [(&'static str, &'static str)],
}

/// What every interface implementation is.
pub trait Interface: Send + Sync {
    /// The implementation's name, as Ironic names it (`ipmitool`, `ipxe`, …).
    fn name(&self) -> &'static str;

    /// `false` for Ironic's `no-*` implementations (and a name this
    /// conductor does not know): `validate` reports the interface as not
    /// supported.
    fn supported(&self) -> bool {
        true
    }

    /// Checks the node's settings for this interface without touching the
    /// hardware (Ironic's `validate`).
    ///
    /// # Errors
    /// Ironic's message for what is missing or invalid.
    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        let _ = task;
        Ok(())
    }

    /// The manual clean steps this implementation offers.
    fn clean_steps(&self) -> &'static [CleanStep] {
        &[]
    }
}

/// Ironic's `PowerInterface`.
#[async_trait]
pub trait PowerInterface: Interface {
    /// Whether the periodic power sync reads this interface (`false` for
    /// interfaces whose state is only what Ferric recorded).
    fn syncs_power_state(&self) -> bool {
        true
    }

    /// The power state (`power on` / `power off`); `None` when it is not
    /// known (a fake interface with nothing recorded).
    ///
    /// # Errors
    /// The hardware's failure.
    async fn get_power_state(&self, task: &Task) -> Result<Option<&'static str>, DriverError> {
        Err(DriverError::not_supported(&task.node, "power"))
    }

    /// Carries out `requested` (one of Ironic's power targets) and waits
    /// for the hardware at most `timeout`; returns the state it is left in.
    ///
    /// # Errors
    /// The hardware's failure, or a timeout.
    async fn set_power_state(
        &self,
        task: &Task,
        requested: &str,
        timeout: Duration,
    ) -> Result<&'static str, DriverError> {
        let _ = (requested, timeout);
        Err(DriverError::not_supported(&task.node, "power"))
    }
}

/// Ironic's `ManagementInterface`.
#[async_trait]
pub trait ManagementInterface: Interface {
    /// The boot devices `set_boot_device` takes (none: it cannot set one).
    fn supported_boot_devices(&self) -> &'static [&'static str] {
        &[]
    }

    /// The next boot device and whether it persists (each when known).
    ///
    /// # Errors
    /// The hardware's failure.
    async fn get_boot_device(
        &self,
        task: &Task,
    ) -> Result<(Option<&'static str>, Option<bool>), DriverError> {
        Err(DriverError::not_supported(&task.node, "management"))
    }

    /// Sets the next boot device.
    ///
    /// # Errors
    /// An unsupported device, or the hardware's failure.
    async fn set_boot_device(
        &self,
        task: &Task,
        device: &str,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let _ = (device, persistent);
        Err(DriverError::not_supported(&task.node, "management"))
    }

    /// Injects a non-maskable interrupt.
    ///
    /// # Errors
    /// The hardware's failure.
    async fn inject_nmi(&self, task: &Task) -> Result<(), DriverError> {
        Err(DriverError::not_supported(&task.node, "inject_nmi"))
    }

    /// Sets the boot mode (`bios` / `uefi`).
    ///
    /// # Errors
    /// The hardware's failure.
    async fn set_boot_mode(&self, task: &Task, mode: &str) -> Result<(), DriverError> {
        let _ = mode;
        Err(DriverError::not_supported(&task.node, "set_boot_mode"))
    }

    /// Turns secure boot on or off.
    ///
    /// # Errors
    /// The hardware's failure.
    async fn set_secure_boot(&self, task: &Task, enabled: bool) -> Result<(), DriverError> {
        let _ = enabled;
        Err(DriverError::not_supported(
            &task.node,
            "set_secure_boot_state",
        ))
    }

    /// The virtual media devices, as the vmedia API lists them.
    ///
    /// # Errors
    /// The hardware's failure.
    async fn get_virtual_media(&self, task: &Task) -> Result<Value, DriverError> {
        Err(DriverError::not_supported(&task.node, "get_virtual_media"))
    }

    /// Inserts `image_url` into the `device_type` device (`download_source`
    /// `local`: published by Ferric first; `http`: handed to the BMC).
    ///
    /// # Errors
    /// The image's or the hardware's failure.
    async fn attach_virtual_media(
        &self,
        task: &Task,
        device_type: &str,
        image_url: &str,
        download_source: &str,
    ) -> Result<(), DriverError> {
        let _ = (device_type, image_url, download_source);
        Err(DriverError::not_supported(
            &task.node,
            "attach_virtual_media",
        ))
    }

    /// Ejects `device_types` (every device when empty).
    ///
    /// # Errors
    /// The hardware's failure.
    async fn detach_virtual_media(
        &self,
        task: &Task,
        device_types: &[String],
    ) -> Result<(), DriverError> {
        let _ = device_types;
        Err(DriverError::not_supported(
            &task.node,
            "detach_virtual_media",
        ))
    }
}

/// How an instance boots once deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceBoot {
    /// From its disk (a whole-disk image written by an agent).
    Disk,
    /// From the network or virtual media, every time (the `ramdisk`
    /// deploy: `instance_info` `boot_iso`, or `kernel` and `ramdisk`).
    Ramdisk,
}

/// Ironic's `BootInterface`: how the node boots the deploy ramdisk and
/// the instance. Preparing sets the boot device; the deploy interface
/// powers the node.
#[async_trait]
pub trait BootInterface: Interface {
    /// Makes the node boot the deploy ramdisk (`driver_info`
    /// `deploy_kernel`/`deploy_ramdisk`, or `deploy_iso`) with
    /// `kernel_params` (then `driver_info` `kernel_append_params`).
    ///
    /// # Errors
    /// What failed; nothing is left behind.
    async fn prepare_ramdisk(
        &self,
        task: &Task,
        kernel_params: &KernelArgs,
    ) -> Result<(), DriverError> {
        let _ = kernel_params;
        Err(DriverError::not_supported(&task.node, "boot"))
    }

    /// Removes what booted the deploy ramdisk (best effort).
    async fn clean_up_ramdisk(&self, task: &Task) {
        let _ = task;
    }

    /// Makes the node boot its instance.
    ///
    /// # Errors
    /// What failed; nothing is left behind.
    async fn prepare_instance(&self, task: &Task, boot: InstanceBoot) -> Result<(), DriverError> {
        let _ = boot;
        Err(DriverError::not_supported(&task.node, "boot"))
    }

    /// Removes what booted the instance.
    ///
    /// # Errors
    /// The hardware's failure (files are removed anyway).
    async fn clean_up_instance(&self, task: &Task) -> Result<(), DriverError> {
        let _ = task;
        Ok(())
    }
}

/// What a deploy came to.
pub enum Deployed {
    /// The instance is deployed (`active`); the change to record with it.
    Done(StateChange),
    /// The node waits for its agent (`wait call-back`, unlocked); the
    /// change to record with it. Heartbeats carry the deploy on.
    Waiting(StateChange),
}

/// Ironic's `DeployInterface`.
#[async_trait]
pub trait DeployInterface: Interface {
    /// Whether deploying boots a deploy ramdisk (an agent), so the boot
    /// interface needs one configured.
    fn boots_deploy_ramdisk(&self) -> bool {
        false
    }

    /// `deploying`: deploys, or starts deploying and waits for an agent.
    ///
    /// # Errors
    /// What failed; the node is left as it was before.
    async fn deploy(&self, task: &mut Task) -> Result<Deployed, DriverError>;

    /// A heartbeat of the node's agent while it waits in `wait call-back`
    /// or `clean wait`, under the node's lock.
    ///
    /// # Errors
    /// When the deploy could not be carried on or failed.
    async fn heartbeat(&self, task: &mut Task) -> Result<(), DriverError> {
        let _ = task;
        Ok(())
    }

    /// `cleaning` with steps only an agent runs (automated cleaning, or a
    /// manual clean naming `deploy` steps): boots the ramdisk and returns
    /// the change to record as the node waits in `clean wait`; `None` when
    /// this interface has no agent (the other interfaces' steps run at
    /// once). Heartbeats in `clean wait` carry the cleaning on.
    ///
    /// # Errors
    /// What failed; the node is left as it was before.
    async fn prepare_cleaning(&self, task: &mut Task) -> Result<Option<StateChange>, DriverError> {
        let _ = task;
        Ok(None)
    }

    /// `deleting`: undeploys; returns the power state the node is left in,
    /// when this changed it.
    ///
    /// # Errors
    /// When the node could not be powered off or its boot undone.
    async fn tear_down(&self, task: &mut Task) -> Result<Option<&'static str>, DriverError>;

    /// After a failed or timed-out deploy: undoes what the deploy started
    /// (power, boot files) and returns what to record with the failure.
    async fn clean_up(&self, task: &Task) -> StateChange {
        let _ = task;
        StateChange::default()
    }
}

/// How an inspection went on.
pub enum Inspected {
    /// Done: the node goes back to `manageable`.
    Done,
    /// The node waits for its agent's data (`inspect wait`, unlocked); the
    /// change to record with it.
    Waiting(Box<StateChange>),
}

/// Ironic's `InspectInterface`.
#[async_trait]
pub trait InspectInterface: Interface {
    /// `inspecting`: inspects the hardware, or starts an inspection whose
    /// data an agent will post.
    ///
    /// # Errors
    /// What failed.
    async fn inspect_hardware(&self, task: &mut Task) -> Result<Inspected, DriverError> {
        Err(DriverError::not_supported(&task.node, "inspect"))
    }

    /// After a failed, aborted or timed-out inspection (or once its data is
    /// in): undoes what it started and returns what to record.
    async fn clean_up(&self, task: &Task) -> StateChange {
        let _ = task;
        StateChange::default()
    }
}
