//! JSON-PATCH (RFC 6902, the `json-patch` crate) as Ironic accepts it: the
//! patch document is validated first (`add`/`replace`/`remove` only, paths
//! of word characters), then only the paths a resource allows, then the
//! operations are applied one at a time so an error names the failing one.

use serde_json::Value;

use crate::error::ApiError;
use crate::validation::py_repr;

/// Validates the patch document itself (`args.patch`).
pub fn check_patch_ops(body: &Value) -> Result<&Vec<Value>, ApiError> {
    let err = |m: String| ApiError::BadRequest(format!("Schema error for patch: {m}"));
    let ops = match body {
        Value::Array(ops) => ops,
        Value::Null => return Err(err("{} is not of type 'array'".into())),
        other => return Err(err(format!("{} is not of type 'array'", py_repr(other)))),
    };
    for op in ops {
        let Value::Object(map) = op else {
            return Err(err(format!("{} is not of type 'object'", py_repr(op))));
        };
        for key in map.keys() {
            if !["op", "path", "value"].contains(&key.as_str()) {
                return Err(err(format!(
                    "Additional properties are not allowed ('{key}' was unexpected)"
                )));
            }
        }
        for key in ["path", "op"] {
            if !map.contains_key(key) {
                return Err(err(format!("'{key}' is a required property")));
            }
        }
        let op_name = map.get("op").and_then(Value::as_str).unwrap_or_default();
        if !["add", "replace", "remove"].contains(&op_name) {
            return Err(err(format!(
                "{} is not one of ['add', 'replace', 'remove']",
                py_repr(&map["op"])
            )));
        }
        let path = map.get("path").and_then(Value::as_str).unwrap_or_default();
        let valid_path = path.starts_with('/')
            && path[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            });
        if !valid_path {
            return Err(err(format!(
                "{} does not match '^(/[\\\\w-]+)+$'",
                py_repr(&map["path"])
            )));
        }
        if op_name != "remove" && !map.contains_key("value") {
            return Err(err("'value' is a required property".into()));
        }
    }
    Ok(ops)
}

/// Applies a validated patch one op at a time, with Ironic's error text.
pub fn apply_patch(doc: &mut Value, ops: &[Value]) -> Result<(), ApiError> {
    for op in ops {
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(vec![op.clone()]))
            .map_err(|e| ApiError::BadRequest(format!("Invalid patch: {e}")))?;
        json_patch::patch(doc, &patch).map_err(|e| {
            ApiError::BadRequest(format!(
                "Couldn't apply patch '{}'. Reason: {e}",
                py_repr(op)
            ))
        })?;
    }
    Ok(())
}

/// Refuses a path whose first segment is not in `allowed`.
///
/// # Errors
/// 400 `Cannot patch <path>. Only the following can be updated: …`.
pub fn check_allowed_paths(ops: &[Value], allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    let mut touched = Vec::new();
    for op in ops {
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let field = path.split('/').nth(1).unwrap_or_default();
        if !allowed.contains(&field) {
            return Err(ApiError::BadRequest(format!(
                "Cannot patch {path}. Only the following can be updated: {}",
                allowed.join(", ")
            )));
        }
        touched.push(field.to_owned());
    }
    Ok(touched)
}
