//! Ironic's `fake`, `noop` and `no-*` interfaces, and the two hardware
//! types made of them (`fake-hardware`, `manual-management`).
//!
//! Behaviour matches `ironic/drivers/modules/fake.py` and `noop.py`: fake
//! power records the requested state and reports what was recorded; fake
//! management supports only pxe and always reports pxe, not persistent;
//! fake boot, deploy and inspect succeed at once and touch no hardware;
//! `noop` management can set nothing; `no-*` refuses everything.

use async_trait::async_trait;
use ferric_common::db::models::node::StateChange;
use ferric_common::kernel_args::KernelArgs;
use ferric_common::states::power;
use serde_json::Value;

use super::error::DriverError;
use super::interfaces::{
    BootInterface, CleanStep, DeployInterface, Deployed, InspectInterface, Inspected, InstanceBoot,
    Interface, ManagementInterface, PowerInterface,
};
use super::{Choices, HardwareType};
use crate::task::Task;

/// Ironic's `no-*` implementations, and what a node gets for an
/// implementation its hardware type does not enable: every call is
/// refused as not supported.
pub struct NoInterface {
    name: &'static str,
}

/// What a node gets for an implementation its hardware type lacks.
pub const NO_INTERFACE: NoInterface = NoInterface { name: "" };
pub const NO_BIOS: NoInterface = NoInterface { name: "no-bios" };
pub const NO_CONSOLE: NoInterface = NoInterface { name: "no-console" };
pub const NO_FIRMWARE: NoInterface = NoInterface {
    name: "no-firmware",
};
pub const NO_INSPECT: NoInterface = NoInterface { name: "no-inspect" };
pub const NO_RAID: NoInterface = NoInterface { name: "no-raid" };
pub const NO_RESCUE: NoInterface = NoInterface { name: "no-rescue" };
pub const NO_VENDOR: NoInterface = NoInterface { name: "no-vendor" };

impl Interface for NoInterface {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supported(&self) -> bool {
        false
    }
}

impl PowerInterface for NoInterface {}
impl ManagementInterface for NoInterface {}
impl BootInterface for NoInterface {}
impl InspectInterface for NoInterface {}

#[async_trait]
impl DeployInterface for NoInterface {
    async fn deploy(&self, task: &mut Task) -> Result<Deployed, DriverError> {
        Err(DriverError::not_supported(&task.node, "deploy"))
    }

    async fn tear_down(&self, task: &mut Task) -> Result<Option<&'static str>, DriverError> {
        Err(DriverError::not_supported(&task.node, "deploy"))
    }
}

/// `noop` (network, storage): accepted, does nothing.
pub struct Noop;

pub const NOOP: Noop = Noop;

impl Interface for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }
}

/// `noop` management (Ironic's `NoopManagement`): the machine's boot order
/// is set up by hand to try the network first, then the disk, so setting
/// `pxe` or `disk` succeeds without doing anything and the boot device
/// always reads `pxe`, persistent.
pub struct NoopManagement;

impl Interface for NoopManagement {
    fn name(&self) -> &'static str {
        "noop"
    }
}

#[async_trait]
impl ManagementInterface for NoopManagement {
    fn supported_boot_devices(&self) -> &'static [&'static str] {
        &["pxe", "disk"]
    }

    async fn get_boot_device(
        &self,
        _task: &Task,
    ) -> Result<(Option<&'static str>, Option<bool>), DriverError> {
        Ok((Some("pxe"), Some(true)))
    }

    async fn set_boot_device(
        &self,
        task: &Task,
        device: &str,
        _persistent: bool,
    ) -> Result<(), DriverError> {
        if self.supported_boot_devices().contains(&device) {
            tracing::debug!(node.uuid = %task.node.uuid, device, "noop management: the boot order is configured by hand");
            Ok(())
        } else {
            Err(DriverError::InvalidParameter(format!(
                "Invalid boot device {device} specified, supported are pxe, disk."
            )))
        }
    }
}

/// `fake` for the interface types that only offer steps (bios, console,
/// firmware, raid, rescue, storage, vendor).
pub struct Fake {
    steps: &'static [CleanStep],
}

const BIOS_SETTINGS: &str =
    "List of BIOS settings, each item needs to contain a dictionary with name/value pairs";
const FIRMWARE_SETTINGS: &str =
    "List of Firmware components, each item needs to contain a dictionary with name/value pairs";

pub const FAKE: Fake = Fake { steps: &[] };
/// Ironic's `FakeBIOS` steps (`@clean_step` in `fake.py`).
pub const FAKE_BIOS: Fake = Fake {
    steps: &[
        CleanStep {
            step: "apply_configuration",
            required: &[("settings", BIOS_SETTINGS)],
        },
        CleanStep {
            step: "factory_reset",
            required: &[],
        },
        CleanStep {
            step: "cache_bios_settings",
            required: &[],
        },
    ],
};
/// Ironic's `FakeFirmware` step.
pub const FAKE_FIRMWARE: Fake = Fake {
    steps: &[CleanStep {
        step: "update",
        required: &[("settings", FIRMWARE_SETTINGS)],
    }],
};
/// Ironic's `FakeVendorB` step (the fake RAID interface's overrides are
/// not steps).
pub const FAKE_VENDOR: Fake = Fake {
    steps: &[CleanStep {
        step: "log_passthrough",
        required: &[],
    }],
};

impl Interface for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn clean_steps(&self) -> &'static [CleanStep] {
        self.steps
    }
}

/// `fake-graphical`: Ironic's fake graphical console, whose console
/// "container" is always at 192.0.2.1:5900 (the API records and clears
/// it, with the noVNC token, as the console is enabled and disabled).
pub struct FakeGraphicalConsole;

impl Interface for FakeGraphicalConsole {
    fn name(&self) -> &'static str {
        "fake-graphical"
    }
}

/// `fake` power: the recorded state is the hardware's.
pub struct FakePower;

impl Interface for FakePower {
    fn name(&self) -> &'static str {
        "fake"
    }
}

#[async_trait]
impl PowerInterface for FakePower {
    fn syncs_power_state(&self) -> bool {
        false
    }

    async fn get_power_state(&self, task: &Task) -> Result<Option<&'static str>, DriverError> {
        Ok(match task.node.power_state.as_deref() {
            Some(power::POWER_ON) => Some(power::POWER_ON),
            Some(power::POWER_OFF) => Some(power::POWER_OFF),
            _ => None,
        })
    }

    async fn set_power_state(
        &self,
        _task: &Task,
        requested: &str,
        _timeout: std::time::Duration,
    ) -> Result<&'static str, DriverError> {
        Ok(power::settles_to(requested))
    }
}

/// `fake` management.
pub struct FakeManagement;

impl Interface for FakeManagement {
    fn name(&self) -> &'static str {
        "fake"
    }
}

#[async_trait]
impl ManagementInterface for FakeManagement {
    fn supported_boot_devices(&self) -> &'static [&'static str] {
        &["pxe"]
    }

    async fn get_boot_device(
        &self,
        _task: &Task,
    ) -> Result<(Option<&'static str>, Option<bool>), DriverError> {
        Ok((Some("pxe"), Some(false)))
    }

    async fn set_boot_device(
        &self,
        _task: &Task,
        _device: &str,
        _persistent: bool,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn set_boot_mode(&self, _task: &Task, _mode: &str) -> Result<(), DriverError> {
        Ok(())
    }

    async fn set_secure_boot(&self, _task: &Task, _enabled: bool) -> Result<(), DriverError> {
        Ok(())
    }
}

/// `fake` boot.
pub struct FakeBoot;

impl Interface for FakeBoot {
    fn name(&self) -> &'static str {
        "fake"
    }
}

#[async_trait]
impl BootInterface for FakeBoot {
    async fn prepare_ramdisk(&self, _task: &Task, _params: &KernelArgs) -> Result<(), DriverError> {
        Ok(())
    }

    async fn prepare_instance(&self, _task: &Task, _boot: InstanceBoot) -> Result<(), DriverError> {
        Ok(())
    }
}

/// `fake` deploy: its steps finish at once.
pub struct FakeDeploy;

impl Interface for FakeDeploy {
    fn name(&self) -> &'static str {
        "fake"
    }
}

#[async_trait]
impl DeployInterface for FakeDeploy {
    async fn deploy(&self, task: &mut Task) -> Result<Deployed, DriverError> {
        let mut internal = task.node.driver_internal_info_map()?;
        internal.insert("deploy_steps".into(), Value::Null);
        Ok(Deployed::Done(StateChange {
            deploy_step: Some("{}".into()),
            driver_internal_info: Some(Value::Object(internal).to_string()),
            ..StateChange::default()
        }))
    }

    async fn tear_down(&self, _task: &mut Task) -> Result<Option<&'static str>, DriverError> {
        Ok(None)
    }
}

/// `fake` inspect: finishes at once.
pub struct FakeInspect;

impl Interface for FakeInspect {
    fn name(&self) -> &'static str {
        "fake"
    }
}

#[async_trait]
impl InspectInterface for FakeInspect {
    async fn inspect_hardware(&self, _task: &mut Task) -> Result<Inspected, DriverError> {
        Ok(Inspected::Done)
    }
}

/// `fake-hardware`: every interface is Ironic's `fake` (network and storage `noop`).
pub const FAKE_HARDWARE: HardwareType = HardwareType {
    name: "fake-hardware",
    bios: Choices::new(&[&NO_BIOS, &FAKE_BIOS], "fake"),
    boot: Choices::new(&[&FakeBoot], "fake"),
    console: Choices::new(&[&NO_CONSOLE, &FAKE, &FakeGraphicalConsole], "fake"),
    deploy: Choices::new(&[&FakeDeploy], "fake"),
    firmware: Choices::new(&[&NO_FIRMWARE, &FAKE_FIRMWARE], "fake"),
    inspect: Choices::new(&[&NO_INSPECT, &FakeInspect], "fake"),
    management: Choices::new(&[&FakeManagement], "fake"),
    network: Choices::new(&[&NOOP], "noop"),
    power: Choices::new(&[&FakePower], "fake"),
    raid: Choices::new(&[&FAKE, &NO_RAID], "fake"),
    rescue: Choices::new(&[&NO_RESCUE, &FAKE], "fake"),
    storage: Choices::new(&[&NOOP, &FAKE], "noop"),
    vendor: Choices::new(&[&NO_VENDOR, &FAKE_VENDOR], "fake"),
};

/// `manual-management`: power is left to a person (Ironic's `fake` power),
/// management is `noop`; boot and deploy default to `fake`, and as in
/// Ironic a node may network-boot a real ramdisk (`pxe`, `ipxe`) and deploy
/// through its agent (`direct`, `ramdisk`).
pub const MANUAL_MANAGEMENT: HardwareType = HardwareType::with_core(
    "manual-management",
    Choices::new(
        &[&FakeBoot, &super::pxe_boot::IPXE, &super::pxe_boot::PXE],
        "fake",
    ),
    Choices::new(
        &[
            &FakeDeploy,
            &super::direct::DirectDeploy,
            &super::ramdisk::RamdiskDeploy,
        ],
        "fake",
    ),
    Choices::new(&[&NoopManagement], "noop"),
    Choices::new(&[&FakePower], "fake"),
);
