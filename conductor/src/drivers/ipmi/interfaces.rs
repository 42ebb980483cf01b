//! The `ipmitool` power, management and vendor interfaces over the IPMI
//! calls of [`super`], and the `ipmi` hardware type that enables them.
//!
//! Invariant: `validate` parses `driver_info` and never touches the BMC;
//! every other call parses it again (it is small) so a changed
//! `driver_info` takes effect at once.

use std::time::Duration;

use async_trait::async_trait;

use super::driver_info::{self, IpmiInfo};
use super::{
    SUPPORTED_BOOT_DEVICES, boot_device, inject_nmi, power_state, set_boot_device, set_power,
};
use crate::drivers::error::DriverError;
use crate::drivers::fake::NO_VENDOR;
use crate::drivers::interfaces::{Interface, ManagementInterface, PowerInterface};
use crate::drivers::{Choices, HardwareType, boot_mode_is_uefi, direct, pxe_boot, ramdisk};
use crate::task::Task;

/// The node's parsed IPMI `driver_info`.
fn info(task: &Task) -> Result<IpmiInfo, DriverError> {
    Ok(driver_info::parse(
        &task.node.uuid,
        &task.node.driver_info_map()?,
    )?)
}

/// `ipmitool` power.
pub struct IpmitoolPower;

impl Interface for IpmitoolPower {
    fn name(&self) -> &'static str {
        "ipmitool"
    }

    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        info(task).map(|_| ())
    }
}

#[async_trait]
impl PowerInterface for IpmitoolPower {
    async fn get_power_state(&self, task: &Task) -> Result<Option<&'static str>, DriverError> {
        let info = info(task)?;
        Ok(Some(power_state(&task.ctx().bmcs.ipmi, &info).await?))
    }

    async fn set_power_state(
        &self,
        task: &Task,
        requested: &str,
        timeout: Duration,
    ) -> Result<&'static str, DriverError> {
        let info = info(task)?;
        Ok(set_power(&task.ctx().bmcs.ipmi, &info, requested, timeout).await?)
    }
}

/// `ipmitool` management.
pub struct IpmitoolManagement;

impl Interface for IpmitoolManagement {
    fn name(&self) -> &'static str {
        "ipmitool"
    }

    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        info(task).map(|_| ())
    }
}

#[async_trait]
impl ManagementInterface for IpmitoolManagement {
    fn supported_boot_devices(&self) -> &'static [&'static str] {
        &SUPPORTED_BOOT_DEVICES
    }

    async fn get_boot_device(
        &self,
        task: &Task,
    ) -> Result<(Option<&'static str>, Option<bool>), DriverError> {
        let info = info(task)?;
        let (device, persistent) = boot_device(&task.ctx().bmcs.ipmi, &info).await?;
        Ok((device, Some(persistent)))
    }

    async fn set_boot_device(
        &self,
        task: &Task,
        device: &str,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let info = info(task)?;
        // IPMI's boot flags carry the boot mode.
        let uefi = boot_mode_is_uefi(&task.node)?;
        Ok(set_boot_device(&task.ctx().bmcs.ipmi, &info, device, persistent, uefi).await?)
    }

    async fn inject_nmi(&self, task: &Task) -> Result<(), DriverError> {
        let info = info(task)?;
        Ok(inject_nmi(&task.ctx().bmcs.ipmi, &info).await?)
    }
}

/// `ipmitool` vendor: no passthru methods yet; validates like the others.
pub struct IpmitoolVendor;

impl Interface for IpmitoolVendor {
    fn name(&self) -> &'static str {
        "ipmitool"
    }

    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        info(task).map(|_| ())
    }
}

/// `ipmi`: as Ironic 39 enables it by default.
pub const IPMI: HardwareType = HardwareType {
    vendor: Choices::new(&[&IpmitoolVendor, &NO_VENDOR], "ipmitool"),
    ..HardwareType::with_core(
        "ipmi",
        Choices::new(&[&pxe_boot::IPXE, &pxe_boot::PXE], "ipxe"),
        Choices::new(&[&direct::DirectDeploy, &ramdisk::RamdiskDeploy], "direct"),
        Choices::new(&[&IpmitoolManagement], "ipmitool"),
        Choices::new(&[&IpmitoolPower], "ipmitool"),
    )
};
