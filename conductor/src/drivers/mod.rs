//! Hardware types and the interface implementations they enable, named as
//! Ironic names them, and the composition of a node's [`Driver`] from its
//! hardware type and its `*_interface` fields (Ironic's `driver_factory`).
//!
//! A hardware type lists, for each interface type, its implementations
//! (the values themselves, so a name without an implementation cannot be
//! registered) and its default; the conductor registers these rows in
//! `conductor_hardware_interfaces`, which is how the API learns them.
//!
//! Invariants: implementations live in the modules below and are reached
//! only through the traits of [`interfaces`]; a node whose interface names
//! an implementation its hardware type does not enable gets
//! [`fake::NO_INTERFACE`] there, which refuses every call.

pub mod agent_clean;
pub mod agent_client;
pub mod agent_inspect;
pub mod agent_tls;
pub mod bmc;
pub mod configdrive;
pub mod dhcp;
pub mod direct;
pub mod error;
pub mod fake;
pub mod interfaces;
pub mod ipmi;
pub mod iso;
pub mod power_actions;
pub mod pxe;
pub mod pxe_boot;
pub mod ramdisk;
pub mod redfish;
pub mod virtual_media;

use ferric_common::db::models::node::Node;
use ferric_common::kernel_args::{self, KernelArgs};

pub use self::error::DriverError;
use self::interfaces::{
    BootInterface, CleanStep, DeployInterface, InspectInterface, Interface, ManagementInterface,
    PowerInterface,
};
/// The boot files this host keeps, by node (the periodic pass removes
/// those of nodes that no longer exist).
pub use self::pxe::{node_dirs as nodes_with_boot_files, remove_orphan as remove_boot_files_of};

/// Ironic's interface types, in the order its API lists them.
pub const INTERFACE_TYPES: [&str; 13] = [
    "bios",
    "boot",
    "console",
    "deploy",
    "firmware",
    "inspect",
    "management",
    "network",
    "power",
    "raid",
    "rescue",
    "storage",
    "vendor",
];

/// The implementations a hardware type enables for one interface type, and
/// the name of its default.
pub struct Choices<T: ?Sized + 'static> {
    pub enabled: &'static [&'static T],
    pub default: &'static str,
}

impl<T: ?Sized + 'static> Choices<T> {
    pub const fn new(enabled: &'static [&'static T], default: &'static str) -> Choices<T> {
        Choices { enabled, default }
    }
}

impl<T: ?Sized + Interface + 'static> Choices<T> {
    /// The implementation named `name`, when enabled.
    fn find(&self, name: Option<&str>) -> Option<&'static T> {
        let name = name?;
        self.enabled.iter().copied().find(|i| i.name() == name)
    }

    fn names(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|i| i.name()).collect()
    }
}

/// One hardware type.
pub struct HardwareType {
    pub name: &'static str,
    pub bios: Choices<dyn Interface>,
    pub boot: Choices<dyn BootInterface>,
    pub console: Choices<dyn Interface>,
    pub deploy: Choices<dyn DeployInterface>,
    pub firmware: Choices<dyn Interface>,
    pub inspect: Choices<dyn InspectInterface>,
    pub management: Choices<dyn ManagementInterface>,
    pub network: Choices<dyn Interface>,
    pub power: Choices<dyn PowerInterface>,
    pub raid: Choices<dyn Interface>,
    pub rescue: Choices<dyn Interface>,
    pub storage: Choices<dyn Interface>,
    pub vendor: Choices<dyn Interface>,
}

impl HardwareType {
    /// A hardware type with the given core interfaces, `noop` network and
    /// storage, `no-inspect` (and `agent`) inspection, and Ironic's `no-*`
    /// for every other optional interface; a type that offers more
    /// overrides those fields.
    pub const fn with_core(
        name: &'static str,
        boot: Choices<dyn BootInterface>,
        deploy: Choices<dyn DeployInterface>,
        management: Choices<dyn ManagementInterface>,
        power: Choices<dyn PowerInterface>,
    ) -> HardwareType {
        use self::fake::{
            NO_BIOS, NO_CONSOLE, NO_FIRMWARE, NO_INSPECT, NO_RAID, NO_RESCUE, NO_VENDOR, NOOP,
        };
        HardwareType {
            name,
            bios: Choices::new(&[&NO_BIOS], "no-bios"),
            boot,
            console: Choices::new(&[&NO_CONSOLE], "no-console"),
            deploy,
            firmware: Choices::new(&[&NO_FIRMWARE], "no-firmware"),
            inspect: Choices::new(&[&NO_INSPECT, &agent_inspect::AgentInspect], "no-inspect"),
            management,
            network: Choices::new(&[&NOOP], "noop"),
            power,
            raid: Choices::new(&[&NO_RAID], "no-raid"),
            rescue: Choices::new(&[&NO_RESCUE], "no-rescue"),
            storage: Choices::new(&[&NOOP], "noop"),
            vendor: Choices::new(&[&NO_VENDOR], "no-vendor"),
        }
    }

    /// `(interface type, enabled implementation names, default)` in
    /// Ironic's order of interface types: what a conductor registers.
    pub fn interfaces(&self) -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
        INTERFACE_TYPES
            .iter()
            .map(|t| {
                let (names, default) = match *t {
                    "bios" => (self.bios.names(), self.bios.default),
                    "boot" => (self.boot.names(), self.boot.default),
                    "console" => (self.console.names(), self.console.default),
                    "deploy" => (self.deploy.names(), self.deploy.default),
                    "firmware" => (self.firmware.names(), self.firmware.default),
                    "inspect" => (self.inspect.names(), self.inspect.default),
                    "management" => (self.management.names(), self.management.default),
                    "network" => (self.network.names(), self.network.default),
                    "power" => (self.power.names(), self.power.default),
                    "raid" => (self.raid.names(), self.raid.default),
                    "rescue" => (self.rescue.names(), self.rescue.default),
                    "storage" => (self.storage.names(), self.storage.default),
                    _ => (self.vendor.names(), self.vendor.default),
                };
                (*t, names, default)
            })
            .collect()
    }
}

/// Every hardware type this conductor can enable.
pub const HARDWARE_TYPES: [&HardwareType; 4] = [
    &fake::FAKE_HARDWARE,
    &fake::MANUAL_MANAGEMENT,
    &ipmi::IPMI,
    &redfish::REDFISH,
];

/// Looks a hardware type up by name.
pub fn hardware_type(name: &str) -> Option<&'static HardwareType> {
    HARDWARE_TYPES.iter().copied().find(|hw| hw.name == name)
}

/// The names of power implementations the periodic power sync reads.
pub fn synced_power_interfaces() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = HARDWARE_TYPES
        .iter()
        .flat_map(|hw| hw.power.enabled.iter())
        .filter(|p| p.syncs_power_state())
        .map(|p| p.name())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// A node's driver (Ironic's `task.driver`): one implementation per
/// interface type.
#[derive(Clone, Copy)]
pub struct Driver {
    pub bios: &'static dyn Interface,
    pub boot: &'static dyn BootInterface,
    pub console: &'static dyn Interface,
    pub deploy: &'static dyn DeployInterface,
    pub firmware: &'static dyn Interface,
    pub inspect: &'static dyn InspectInterface,
    pub management: &'static dyn ManagementInterface,
    pub network: &'static dyn Interface,
    pub power: &'static dyn PowerInterface,
    pub raid: &'static dyn Interface,
    pub rescue: &'static dyn Interface,
    pub storage: &'static dyn Interface,
    pub vendor: &'static dyn Interface,
}

impl Driver {
    /// Composes the node's driver from its hardware type and its
    /// `*_interface` fields.
    pub fn for_node(node: &Node) -> Driver {
        let hw = hardware_type(&node.driver);
        macro_rules! pick {
            ($slot:ident, $field:ident) => {
                hw.and_then(|hw| hw.$slot.find(node.$field.as_deref()))
                    .unwrap_or(&fake::NO_INTERFACE)
            };
        }
        Driver {
            bios: pick!(bios, bios_interface),
            boot: pick!(boot, boot_interface),
            console: pick!(console, console_interface),
            deploy: pick!(deploy, deploy_interface),
            firmware: pick!(firmware, firmware_interface),
            inspect: pick!(inspect, inspect_interface),
            management: pick!(management, management_interface),
            network: pick!(network, network_interface),
            power: pick!(power, power_interface),
            raid: pick!(raid, raid_interface),
            rescue: pick!(rescue, rescue_interface),
            storage: pick!(storage, storage_interface),
            vendor: pick!(vendor, vendor_interface),
        }
    }

    /// The implementation of `interface_type` (one of [`INTERFACE_TYPES`]).
    pub fn interface(&self, interface_type: &str) -> Option<&'static dyn Interface> {
        Some(match interface_type {
            "bios" => self.bios,
            "boot" => self.boot,
            "console" => self.console,
            "deploy" => self.deploy,
            "firmware" => self.firmware,
            "inspect" => self.inspect,
            "management" => self.management,
            "network" => self.network,
            "power" => self.power,
            "raid" => self.raid,
            "rescue" => self.rescue,
            "storage" => self.storage,
            "vendor" => self.vendor,
            _ => return None,
        })
    }

    /// Every manual clean step the node's interfaces offer, with the
    /// interface type offering it.
    pub fn clean_steps(&self) -> Vec<(&'static str, CleanStep)> {
        INTERFACE_TYPES
            .iter()
            .filter_map(|t| self.interface(t).map(|i| (*t, i)))
            .flat_map(|(t, i)| i.clean_steps().iter().map(move |s| (t, *s)))
            .collect()
    }
}

/// The kernel arguments a node keeps at `column`/`key` (e.g.
/// `driver_info/kernel_append_params`), checked before they reach a boot
/// file; none when absent.
///
/// # Errors
/// [`DriverError::InvalidParameter`] naming the field and the character.
pub fn node_kernel_args(
    map: &serde_json::Map<String, serde_json::Value>,
    column: &str,
    key: &str,
) -> Result<KernelArgs, DriverError> {
    let Some(text) = map.get(key).and_then(serde_json::Value::as_str) else {
        return Ok(KernelArgs::default());
    };
    KernelArgs::parse(text).map_err(|e| {
        DriverError::InvalidParameter(kernel_args::refusal(&format!("{column}/{key}"), text, &e))
    })
}

/// Kernel arguments a deploy interface passes to the deploy ramdisk,
/// checked (they come from Ferric's own settings).
///
/// # Errors
/// [`DriverError::InvalidParameter`] naming the character.
pub fn deploy_kernel_args(text: &str) -> Result<KernelArgs, DriverError> {
    KernelArgs::parse(text).map_err(|e| {
        DriverError::InvalidParameter(kernel_args::refusal(
            "the deploy ramdisk's arguments",
            text,
            &e,
        ))
    })
}

/// Whether the node boots in UEFI mode, as Ironic's `get_boot_mode`:
/// `instance_info.deploy_boot_mode`, then the `boot_mode` capability, then
/// the mode last seen on the hardware, then UEFI (Ironic's default).
///
/// # Errors
/// When `instance_info` or `properties` is corrupt.
pub fn boot_mode_is_uefi(node: &Node) -> Result<bool, DriverError> {
    let instance = node.instance_info_map()?;
    if let Some(mode) = instance.get("deploy_boot_mode").and_then(|v| v.as_str()) {
        return Ok(mode != "bios");
    }
    let properties = node.properties_map()?;
    if let Some(capabilities) = properties.get("capabilities").and_then(|v| v.as_str())
        && let Some(mode) = capabilities
            .split(',')
            .find_map(|c| c.trim().strip_prefix("boot_mode:"))
    {
        return Ok(mode != "bios");
    }
    Ok(node.boot_mode.as_deref() != Some("bios"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_an_enabled_implementation() {
        for hw in HARDWARE_TYPES {
            for (interface_type, names, default) in hw.interfaces() {
                assert!(
                    names.contains(&default),
                    "{}: the default {interface_type} interface {default} is not enabled ({names:?})",
                    hw.name
                );
                let mut unique = names.clone();
                unique.sort_unstable();
                unique.dedup();
                assert_eq!(
                    unique.len(),
                    names.len(),
                    "{}: {interface_type} names twice",
                    hw.name
                );
            }
        }
    }

    #[test]
    fn only_fake_power_is_left_out_of_the_power_sync() {
        assert_eq!(synced_power_interfaces(), ["ipmitool", "redfish"]);
    }
}
