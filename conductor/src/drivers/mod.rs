//! Hardware types and their interfaces, named as Ironic names them.
//!
//! A hardware type lists, for each interface type, the implementations it
//! supports and its default; the conductor registers these rows in
//! `conductor_hardware_interfaces`, which is how the API learns them.
//! Invariant: every interface name registered here has an implementation in
//! this module tree that the task handlers dispatch to.

pub mod bmc;
pub mod dhcp;
pub mod direct;
pub mod fake;
pub mod ipmi;
pub mod iso;
pub mod pxe;
pub mod ramdisk;
pub mod redfish;
pub mod virtual_media;

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

/// One hardware type: `(interface type, enabled implementations, default)`.
#[derive(Debug, Clone, Copy)]
pub struct HardwareType {
    pub name: &'static str,
    pub interfaces: &'static [(&'static str, &'static [&'static str], &'static str)],
}

/// `fake-hardware`: every interface is Ironic's `fake` (network and storage `noop`).
pub const FAKE_HARDWARE: HardwareType = HardwareType {
    name: "fake-hardware",
    interfaces: &[
        ("bios", &["no-bios", "fake"], "fake"),
        ("boot", &["fake"], "fake"),
        ("console", &["no-console", "fake"], "fake"),
        ("deploy", &["fake"], "fake"),
        ("firmware", &["no-firmware", "fake"], "fake"),
        ("inspect", &["no-inspect", "fake"], "fake"),
        ("management", &["fake"], "fake"),
        ("network", &["noop"], "noop"),
        ("power", &["fake"], "fake"),
        ("raid", &["fake", "no-raid"], "fake"),
        ("rescue", &["no-rescue", "fake"], "fake"),
        ("storage", &["noop", "fake"], "noop"),
        ("vendor", &["no-vendor", "fake"], "fake"),
    ],
};

/// `manual-management`: power is left to a person (Ironic's `fake` power),
/// management is `noop`. Boot and deploy are `fake` until the PXE interfaces land.
pub const MANUAL_MANAGEMENT: HardwareType = HardwareType {
    name: "manual-management",
    interfaces: &[
        ("bios", &["no-bios"], "no-bios"),
        ("boot", &["fake"], "fake"),
        ("console", &["no-console"], "no-console"),
        ("deploy", &["fake"], "fake"),
        ("firmware", &["no-firmware"], "no-firmware"),
        ("inspect", &["no-inspect"], "no-inspect"),
        ("management", &["noop"], "noop"),
        ("network", &["noop"], "noop"),
        ("power", &["fake"], "fake"),
        ("raid", &["no-raid"], "no-raid"),
        ("rescue", &["no-rescue"], "no-rescue"),
        ("storage", &["noop"], "noop"),
        ("vendor", &["no-vendor"], "no-vendor"),
    ],
};

/// Every hardware type this conductor can enable.
pub const HARDWARE_TYPES: [HardwareType; 4] = [
    FAKE_HARDWARE,
    MANUAL_MANAGEMENT,
    ipmi::IPMI,
    redfish::REDFISH,
];

/// Looks a hardware type up by name.
pub fn hardware_type(name: &str) -> Option<&'static HardwareType> {
    HARDWARE_TYPES.iter().find(|hw| hw.name == name)
}

/// Whether the node boots in UEFI mode, as Ironic's `get_boot_mode`:
/// `instance_info.deploy_boot_mode`, then the `boot_mode` capability, then
/// the mode last seen on the hardware, then UEFI (Ironic's default).
pub fn boot_mode_is_uefi(node: &ferric_common::db::models::node::Node) -> bool {
    let instance: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&node.instance_info).unwrap_or_default();
    if let Some(mode) = instance.get("deploy_boot_mode").and_then(|v| v.as_str()) {
        return mode != "bios";
    }
    let properties: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&node.properties).unwrap_or_default();
    if let Some(capabilities) = properties.get("capabilities").and_then(|v| v.as_str())
        && let Some(mode) = capabilities
            .split(',')
            .find_map(|c| c.trim().strip_prefix("boot_mode:"))
    {
        return mode != "bios";
    }
    node.boot_mode.as_deref() != Some("bios")
}
