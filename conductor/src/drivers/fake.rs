//! Ironic's `fake` interfaces: they succeed at once and touch no hardware.
//!
//! Behaviour matches `ironic/drivers/modules/fake.py`: fake power records the
//! requested state; fake management supports only pxe and always reports pxe, not persistent;
//! fake deploy, clean, inspect and rescue have nothing to do.

/// Boot devices the fake management interface supports.
pub const SUPPORTED_BOOT_DEVICES: [&str; 1] = ["pxe"];

/// Boot devices `noop` management supports (none: it cannot set one).
pub const NOOP_BOOT_DEVICES: [&str; 0] = [];

/// A step an interface offers for manual cleaning: interface, name and
/// the arguments it requires.
pub type CleanStep = (&'static str, &'static str, &'static [&'static str]);

/// The manual clean steps a node's interfaces offer, as Ironic's fake
/// interfaces declare them (`@clean_step` in `drivers/modules/fake.py`, and
/// the RAID interface's base steps).
pub fn clean_steps(node: &ferric_common::db::models::node::Node) -> Vec<CleanStep> {
    let mut steps = Vec::new();
    let is_fake = |iface: &Option<String>| iface.as_deref() == Some("fake");
    if is_fake(&node.vendor_interface) {
        steps.push(("vendor", "log_passthrough", &[][..]));
    }
    if is_fake(&node.bios_interface) {
        steps.push(("bios", "apply_configuration", &["settings"][..]));
        steps.push(("bios", "factory_reset", &[][..]));
        steps.push(("bios", "cache_bios_settings", &[][..]));
    }
    if is_fake(&node.firmware_interface) {
        steps.push(("firmware", "update", &["settings"][..]));
    }
    if is_fake(&node.raid_interface) {
        steps.push(("raid", "create_configuration", &[][..]));
        steps.push(("raid", "delete_configuration", &[][..]));
    }
    steps
}

/// Checks requested manual clean steps against what the node offers;
/// `Err` with Ironic's reason for the first one it cannot run.
pub fn check_clean_steps(
    node: &ferric_common::db::models::node::Node,
    requested: &[serde_json::Value],
) -> Result<(), String> {
    let offered = clean_steps(node);
    for step in requested {
        let interface = step.get("interface").and_then(serde_json::Value::as_str);
        let name = step.get("step").and_then(serde_json::Value::as_str);
        let Some((_, _, required)) = offered
            .iter()
            .find(|(i, n, _)| Some(*i) == interface && Some(*n) == name)
        else {
            return Err(format!(
                "node does not support this clean step: {}",
                ferric_common::py::py_repr(step)
            ));
        };
        let args = step.get("args");
        let missing: Vec<&str> = required
            .iter()
            .filter(|a| args.and_then(|args| args.get(**a)).is_none())
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "clean step {} is missing the following required arguments: {}",
                ferric_common::py::py_repr(step),
                missing.join(", ")
            ));
        }
    }
    Ok(())
}
