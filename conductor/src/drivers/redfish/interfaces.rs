//! The `redfish` power and management interfaces over [`System`], and the
//! `redfish` hardware type that enables them.
//!
//! Invariant: `validate` parses `driver_info` and never touches the BMC;
//! every other call parses it again so a changed `driver_info` takes
//! effect at once.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::driver_info::{self, RedfishInfo};
use super::{SUPPORTED_BOOT_DEVICES, System};
use crate::drivers::error::DriverError;
use crate::drivers::fake::{
    NO_BIOS, NO_CONSOLE, NO_FIRMWARE, NO_INSPECT, NO_RAID, NO_RESCUE, NO_VENDOR, NOOP,
};
use crate::drivers::interfaces::{Interface, ManagementInterface, PowerInterface};
use crate::drivers::{Choices, HardwareType, direct, pxe_boot, ramdisk, virtual_media};
use crate::task::Task;

/// The node's parsed Redfish `driver_info`.
///
/// # Errors
/// Ironic's message for a missing or invalid key.
pub fn info(task: &Task) -> Result<RedfishInfo, DriverError> {
    Ok(driver_info::parse(
        &task.node.uuid,
        &task.node.driver_info_map()?,
        task.ctx().bmcs.redfish_auth(),
    )?)
}

/// `redfish` power.
pub struct RedfishPower;

impl Interface for RedfishPower {
    fn name(&self) -> &'static str {
        "redfish"
    }

    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        info(task).map(|_| ())
    }
}

#[async_trait]
impl PowerInterface for RedfishPower {
    async fn get_power_state(&self, task: &Task) -> Result<Option<&'static str>, DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(Some(system.power_state().await?))
    }

    async fn set_power_state(
        &self,
        task: &Task,
        requested: &str,
        timeout: Duration,
    ) -> Result<&'static str, DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.set_power(requested, timeout).await?)
    }
}

/// `redfish` management, with the node's virtual media.
pub struct RedfishManagement;

impl Interface for RedfishManagement {
    fn name(&self) -> &'static str {
        "redfish"
    }

    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        info(task).map(|_| ())
    }
}

#[async_trait]
impl ManagementInterface for RedfishManagement {
    fn supported_boot_devices(&self) -> &'static [&'static str] {
        &SUPPORTED_BOOT_DEVICES
    }

    async fn get_boot_device(
        &self,
        task: &Task,
    ) -> Result<(Option<&'static str>, Option<bool>), DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.boot_device().await?)
    }

    /// Redfish keeps the system's own boot mode.
    async fn set_boot_device(
        &self,
        task: &Task,
        device: &str,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.set_boot_device(device, persistent).await?)
    }

    async fn inject_nmi(&self, task: &Task) -> Result<(), DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.inject_nmi().await?)
    }

    async fn set_boot_mode(&self, task: &Task, mode: &str) -> Result<(), DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.set_boot_mode(mode).await?)
    }

    async fn set_secure_boot(&self, task: &Task, enabled: bool) -> Result<(), DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.set_secure_boot(enabled).await?)
    }

    async fn get_virtual_media(&self, task: &Task) -> Result<Value, DriverError> {
        let info = info(task)?;
        let system = System::new(&task.ctx().bmcs.redfish, &info, &task.node.uuid);
        Ok(system.media_summary().await?)
    }

    async fn attach_virtual_media(
        &self,
        task: &Task,
        device_type: &str,
        image_url: &str,
        download_source: &str,
    ) -> Result<(), DriverError> {
        virtual_media::attach(task, device_type, image_url, download_source).await
    }

    async fn detach_virtual_media(
        &self,
        task: &Task,
        device_types: &[String],
    ) -> Result<(), DriverError> {
        virtual_media::detach(task, device_types).await
    }
}

/// `redfish`: as Ironic 39 enables it, with what Ferric implements.
pub const REDFISH: HardwareType = HardwareType {
    name: "redfish",
    bios: Choices {
        enabled: &[&NO_BIOS],
        default: "no-bios",
    },
    boot: Choices {
        enabled: &[
            &pxe_boot::IPXE,
            &pxe_boot::PXE,
            &virtual_media::RedfishVirtualMediaBoot,
        ],
        default: "ipxe",
    },
    console: Choices {
        enabled: &[&NO_CONSOLE],
        default: "no-console",
    },
    deploy: Choices {
        enabled: &[&direct::DirectDeploy, &ramdisk::RamdiskDeploy],
        default: "direct",
    },
    firmware: Choices {
        enabled: &[&NO_FIRMWARE],
        default: "no-firmware",
    },
    inspect: Choices {
        enabled: &[&NO_INSPECT],
        default: "no-inspect",
    },
    management: Choices {
        enabled: &[&RedfishManagement],
        default: "redfish",
    },
    network: Choices {
        enabled: &[&NOOP],
        default: "noop",
    },
    power: Choices {
        enabled: &[&RedfishPower],
        default: "redfish",
    },
    raid: Choices {
        enabled: &[&NO_RAID],
        default: "no-raid",
    },
    rescue: Choices {
        enabled: &[&NO_RESCUE],
        default: "no-rescue",
    },
    storage: Choices {
        enabled: &[&NOOP],
        default: "noop",
    },
    vendor: Choices {
        enabled: &[&NO_VENDOR],
        default: "no-vendor",
    },
};
