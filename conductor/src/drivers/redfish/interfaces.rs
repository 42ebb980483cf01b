//! The `redfish` power and management interfaces over [`System`], and the
//! `redfish` hardware type that enables them.
//!
//! Invariant: `validate` parses `driver_info` and never touches the BMC;
//! every other call parses it again so a changed `driver_info` takes
//! effect at once.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::client::RedfishError;
use super::driver_info::{self, RedfishInfo};
use super::{SUPPORTED_BOOT_DEVICES, System};
use crate::drivers::error::DriverError;
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

/// Runs `f` on the node's Redfish system.
///
/// # Errors
/// The node's `driver_info`, or `f`'s failure.
pub async fn with_system<T>(
    task: &Task,
    f: impl AsyncFnOnce(System<'_>) -> Result<T, RedfishError>,
) -> Result<T, DriverError> {
    let info = info(task)?;
    Ok(f(System::new(
        &task.ctx().bmcs.redfish,
        &info,
        &task.node.uuid,
    ))
    .await?)
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
        with_system(task, async |system| system.power_state().await.map(Some)).await
    }

    async fn set_power_state(
        &self,
        task: &Task,
        requested: &str,
        timeout: Duration,
    ) -> Result<&'static str, DriverError> {
        with_system(task, async |system| {
            system.set_power(requested, timeout).await
        })
        .await
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
        with_system(task, async |system| system.boot_device().await).await
    }

    /// Redfish keeps the system's own boot mode.
    async fn set_boot_device(
        &self,
        task: &Task,
        device: &str,
        persistent: bool,
    ) -> Result<(), DriverError> {
        with_system(task, async |system| {
            system.set_boot_device(device, persistent).await
        })
        .await
    }

    async fn inject_nmi(&self, task: &Task) -> Result<(), DriverError> {
        with_system(task, async |system| system.inject_nmi().await).await
    }

    async fn set_boot_mode(&self, task: &Task, mode: &str) -> Result<(), DriverError> {
        with_system(task, async |system| system.set_boot_mode(mode).await).await
    }

    async fn set_secure_boot(&self, task: &Task, enabled: bool) -> Result<(), DriverError> {
        with_system(task, async |system| system.set_secure_boot(enabled).await).await
    }

    async fn get_virtual_media(&self, task: &Task) -> Result<Value, DriverError> {
        with_system(task, async |system| system.media_summary().await).await
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
pub const REDFISH: HardwareType = HardwareType::with_core(
    "redfish",
    Choices::new(
        &[
            &pxe_boot::IPXE,
            &pxe_boot::PXE,
            &virtual_media::RedfishVirtualMediaBoot,
        ],
        "ipxe",
    ),
    Choices::new(&[&direct::DirectDeploy, &ramdisk::RamdiskDeploy], "direct"),
    Choices::new(&[&RedfishManagement], "redfish"),
    Choices::new(&[&RedfishPower], "redfish"),
);
