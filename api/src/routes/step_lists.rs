//! What deploy templates and runbooks share: the validation of their step
//! lists (Ironic's `DEPLOY_STEP_SCHEMA` / `RUNBOOK_STEP_SCHEMA` and
//! `duplicate_steps`) and their storage form.
//!
//! Invariant: a stored step list is valid and normalised — every step has
//! `interface`, `step`, `args` (an object) and an integer `priority` or
//! `order`, and no interface/step pair appears twice.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::validation::additional_properties;
use crate::validation::py_repr;

/// The step interfaces a deploy template or runbook may name
/// (`DEPLOYING_INTERFACE_PRIORITY` = `CLEANING_INTERFACE_PRIORITY`).
const INTERFACES: [&str; 7] = [
    "vendor",
    "power",
    "management",
    "firmware",
    "deploy",
    "bios",
    "raid",
];

/// Which kind of list: the key steps are ordered by, and whether `args`
/// may be left out.
#[derive(Debug, Clone, Copy)]
pub struct StepKind {
    /// `priority` (deploy templates) or `order` (runbooks).
    pub rank: &'static str,
    pub args_required: bool,
    /// What the duplicate-step error calls the resource.
    pub invalid_prefix: &'static str,
}

pub const DEPLOY_TEMPLATE_STEPS: StepKind = StepKind {
    rank: "priority",
    args_required: true,
    invalid_prefix: "Deploy template invalid",
};

pub const RUNBOOK_STEPS: StepKind = StepKind {
    rank: "order",
    args_required: false,
    invalid_prefix: "Runbook invalid",
};

/// Validates a `steps` value and returns it normalised (ranks as integers,
/// `args` present), in the order given.
///
/// # Errors
/// 400 `Schema error for <schema_name>: …` in jsonschema's words, or the
/// duplicate-steps message.
pub fn check_steps(schema_name: &str, kind: StepKind, steps: &Value) -> Result<Value, ApiError> {
    let err = |m: String| ApiError::BadRequest(format!("Schema error for {schema_name}: {m}"));
    let Value::Array(items) = steps else {
        return Err(err(format!("{} is not of type 'array'", py_repr(steps))));
    };
    if items.is_empty() {
        return Err(err("[] should be non-empty".into()));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(step) = item else {
            return Err(err(format!("{} is not of type 'object'", py_repr(item))));
        };
        let required: &[&str] = if kind.args_required {
            &["interface", "step", "args", kind.rank]
        } else {
            &["interface", "step", kind.rank]
        };
        if let Some(missing) = required.iter().find(|k| !step.contains_key(**k)) {
            return Err(err(format!("'{missing}' is a required property")));
        }
        let allowed = ["args", "interface", "step", kind.rank];
        additional_properties(step, &allowed).map_err(err)?;
        let interface = &step["interface"];
        match interface.as_str() {
            Some(i) if INTERFACES.contains(&i) => {}
            Some(_) => {
                return Err(err(format!(
                    "{} is not one of [{}]",
                    py_repr(interface),
                    INTERFACES.map(|i| format!("'{i}'")).join(", ")
                )));
            }
            None => {
                return Err(err(format!(
                    "{} is not of type 'string'",
                    py_repr(interface)
                )));
            }
        }
        let name = &step["step"];
        match name.as_str() {
            Some("") => return Err(err("'' should be non-empty".into())),
            Some(_) => {}
            None => return Err(err(format!("{} is not of type 'string'", py_repr(name)))),
        }
        let args = step.get("args").cloned().unwrap_or_else(|| json!({}));
        if !args.is_object() {
            return Err(err(format!("{} is not of type 'object'", py_repr(&args))));
        }
        let rank = &step[kind.rank];
        let rank_value = match rank {
            Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
                Some(v) if v < 0 => {
                    return Err(err(format!("{v} is less than the minimum of 0")));
                }
                Some(v) => v,
                None => return Err(err(format!("{n} is too large"))),
            },
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
                .parse::<i64>()
                .map_err(|_| err(format!("{s} is too large")))?,
            other => {
                return Err(err(format!(
                    "{} is not valid under any of the given schemas",
                    py_repr(other)
                )));
            }
        };
        let mut normalised = Map::new();
        normalised.insert("interface".into(), interface.clone());
        normalised.insert("step".into(), name.clone());
        normalised.insert("args".into(), args);
        normalised.insert(kind.rank.into(), json!(rank_value));
        out.push(Value::Object(normalised));
    }
    let mut duplicates: Vec<String> = Vec::new();
    for (i, a) in out.iter().enumerate() {
        let key = (&a["interface"], &a["step"]);
        if out[..i]
            .iter()
            .any(|b| (&b["interface"], &b["step"]) == key)
        {
            let text = format!(
                "interface: {}, step: {}",
                key.0.as_str().unwrap_or_default(),
                key.1.as_str().unwrap_or_default()
            );
            if !duplicates.contains(&text) {
                duplicates.push(text);
            }
        }
    }
    if !duplicates.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{}: Duplicate deploy steps. A template cannot have multiple deploy steps with the same interface and step. Duplicates: {}.",
            kind.invalid_prefix,
            duplicates.join("; ")
        )));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: StepKind, steps: Value) -> Result<Value, String> {
        check_steps("template", kind, &steps).map_err(|e| e.to_string())
    }

    #[test]
    fn steps_are_normalised() {
        let steps = check(
            DEPLOY_TEMPLATE_STEPS,
            json!([{"interface": "bios", "step": "apply", "args": {}, "priority": "10"}]),
        )
        .unwrap();
        assert_eq!(steps[0]["priority"], json!(10));
        let steps = check(
            RUNBOOK_STEPS,
            json!([{"interface": "deploy", "step": "erase", "order": 0}]),
        )
        .unwrap();
        assert_eq!(steps[0]["args"], json!({}));
    }

    #[test]
    fn bad_steps_get_ironics_messages() {
        let cases = [
            (
                json!([]),
                "Schema error for template: [] should be non-empty",
            ),
            (
                json!([{"interface": "boot", "step": "x", "args": {}, "priority": 1}]),
                "Schema error for template: 'boot' is not one of ['vendor', 'power', 'management', 'firmware', 'deploy', 'bios', 'raid']",
            ),
            (
                json!([{"interface": "bios", "step": "x", "priority": 1}]),
                "Schema error for template: 'args' is a required property",
            ),
            (
                json!([{"interface": "bios", "step": "x", "args": {}, "priority": -1}]),
                "Schema error for template: -1 is less than the minimum of 0",
            ),
            (
                json!([
                    {"interface": "bios", "step": "x", "args": {}, "priority": 1},
                    {"interface": "bios", "step": "x", "args": {}, "priority": 2}
                ]),
                "Deploy template invalid: Duplicate deploy steps. A template cannot have multiple deploy steps with the same interface and step. Duplicates: interface: bios, step: x.",
            ),
        ];
        for (steps, message) in cases {
            assert_eq!(check(DEPLOY_TEMPLATE_STEPS, steps).unwrap_err(), message);
        }
        assert_eq!(
            check(
                RUNBOOK_STEPS,
                json!([{"interface": "deploy", "step": "x", "priority": 1}])
            )
            .unwrap_err(),
            "Schema error for template: 'order' is a required property"
        );
    }
}
