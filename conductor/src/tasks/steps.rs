//! Manual clean steps checked against what a node's interfaces offer, as
//! Ironic's `conductor/steps.py` checks them before running any.
//!
//! Invariant: pure; the messages are Ironic's.

use ferric_common::py::py_repr;
use serde_json::Value;

use crate::drivers::Driver;

/// Checks requested manual clean steps against what the node's interfaces
/// offer; `Err` with Ironic's reason for the first one it cannot run.
pub fn check_clean_steps(driver: &Driver, requested: &[Value]) -> Result<(), String> {
    let offered = driver.clean_steps();
    for step in requested {
        let interface = step.get("interface").and_then(Value::as_str);
        let name = step.get("step").and_then(Value::as_str);
        let Some((interface, offered_step)) = offered
            .iter()
            .find(|(i, s)| Some(*i) == interface && Some(s.step) == name)
        else {
            return Err(format!(
                "node does not support this clean step: {}",
                py_repr(step)
            ));
        };
        let args = step.get("args");
        let missing: Vec<String> = offered_step
            .required
            .iter()
            .filter(|(arg, _)| args.and_then(|args| args.get(*arg)).is_none())
            .map(|(arg, description)| format!("{arg} ({description})"))
            .collect();
        if !missing.is_empty() {
            // Ironic names the driver's step, with its own keys.
            let driver_step = serde_json::json!({
                "interface": interface,
                "step": offered_step.step,
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
