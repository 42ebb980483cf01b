//! Ironic's `fake` interfaces: they succeed at once and touch no hardware.
//!
//! Behaviour matches `ironic/drivers/modules/fake.py`: fake power records the
//! requested state; fake management supports only pxe and always reports pxe, not persistent;
//! fake deploy, clean, inspect and rescue have nothing to do.

/// Boot devices the fake management interface supports.
pub const SUPPORTED_BOOT_DEVICES: [&str; 1] = ["pxe"];

/// Boot devices `noop` management supports (none: it cannot set one).
pub const NOOP_BOOT_DEVICES: [&str; 0] = [];

/// A step an interface offers for manual cleaning: interface, name, and
/// its required arguments with their descriptions.
pub type CleanStep = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const BIOS_SETTINGS: &str =
    "List of BIOS settings, each item needs to contain a dictionary with name/value pairs";
const FIRMWARE_SETTINGS: &str =
    "List of Firmware components, each item needs to contain a dictionary with name/value pairs";

/// The manual clean steps a node's interfaces offer, as Ironic's fake
/// interfaces declare them (`@clean_step` in `drivers/modules/fake.py`; the
/// fake RAID interface's overrides are not steps).
pub fn clean_steps(node: &ferric_common::db::models::node::Node) -> Vec<CleanStep> {
    let mut steps: Vec<CleanStep> = Vec::new();
    let is_fake = |iface: &Option<String>| iface.as_deref() == Some("fake");
    if is_fake(&node.vendor_interface) {
        steps.push(("vendor", "log_passthrough", &[]));
    }
    if is_fake(&node.bios_interface) {
        steps.push((
            "bios",
            "apply_configuration",
            &[("settings", BIOS_SETTINGS)],
        ));
        steps.push(("bios", "factory_reset", &[]));
        steps.push(("bios", "cache_bios_settings", &[]));
    }
    if is_fake(&node.firmware_interface) {
        steps.push(("firmware", "update", &[("settings", FIRMWARE_SETTINGS)]));
    }
    steps
}

/// Checks requested manual clean steps against what the node offers;
/// `Err` with Ironic's reason for the first one it cannot run.
pub fn check_clean_steps(
    node: &ferric_common::db::models::node::Node,
    requested: &[serde_json::Value],
) -> Result<(), String> {
    use ferric_common::py::py_repr;
    let offered = clean_steps(node);
    for step in requested {
        let interface = step.get("interface").and_then(serde_json::Value::as_str);
        let name = step.get("step").and_then(serde_json::Value::as_str);
        let Some((interface, name, required)) = offered
            .iter()
            .find(|(i, n, _)| Some(*i) == interface && Some(*n) == name)
        else {
            return Err(format!(
                "node does not support this clean step: {}",
                py_repr(step)
            ));
        };
        let args = step.get("args");
        let missing: Vec<String> = required
            .iter()
            .filter(|(arg, _)| args.and_then(|args| args.get(*arg)).is_none())
            .map(|(arg, description)| format!("{arg} ({description})"))
            .collect();
        if !missing.is_empty() {
            // Ironic names the driver's step, with its own keys.
            let driver_step = serde_json::json!({
                "interface": interface,
                "step": name,
                "abortable": false,
                "priority": 0,
            });
            return Err(format!(
                "clean step {} is missing these required arguments: {}",
                py_repr(&driver_step),
                missing.join(", ")
            ));
        }
    }
    Ok(())
}
