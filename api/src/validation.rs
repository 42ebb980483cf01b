//! Input checks with Ironic's messages: JSON-schema-like type checks for
//! request bodies ("Schema error for node: …"), UUIDs, names, MACs, and the
//! Python `repr` Ironic puts into those messages.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// What a body key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{'type': ['string', 'null']}`
    StringOrNull,
    /// `{'type': 'string'}`
    String,
    /// `{'type': ['object', 'null']}`
    ObjectOrNull,
    /// `{'type': ['string', 'boolean', 'null']}`
    BoolLike,
    /// `{'type': 'boolean'}`
    Bool,
    /// `{'type': ['boolean', 'null']}`
    BoolOrNull,
    /// Any value; a later check looks closer.
    Any,
}

pub use ferric_common::py::py_repr;

/// Checks an object body against `schema` (additionalProperties false).
///
/// # Errors
/// 400 `Schema error for <name>: …` for the first problem, in jsonschema's words.
pub fn check_object<'a>(
    name: &str,
    body: &'a Value,
    schema: &[(&str, Kind)],
    required: &[&str],
    max_lengths: &[(&str, usize)],
) -> Result<&'a Map<String, Value>, ApiError> {
    let schema_error =
        |msg: String| ApiError::BadRequest(format!("Schema error for {name}: {msg}"));
    let map = match body {
        Value::Object(map) => map,
        Value::Null => {
            return Err(schema_error(format!(
                "'{}' is a required property",
                required.first().copied().unwrap_or("body")
            )));
        }
        other => {
            return Err(schema_error(format!(
                "{} is not of type 'object'",
                py_repr(other)
            )));
        }
    };
    let mut unexpected: Vec<&str> = map
        .keys()
        .filter(|k| !schema.iter().any(|(name, _)| name == k))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort_unstable();
        let list = unexpected
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let verb = if unexpected.len() == 1 { "was" } else { "were" };
        return Err(schema_error(format!(
            "Additional properties are not allowed ({list} {verb} unexpected)"
        )));
    }
    for key in required {
        if !map.contains_key(*key) {
            return Err(schema_error(format!("'{key}' is a required property")));
        }
    }
    for (key, value) in map {
        let Some((_, kind)) = schema.iter().find(|(name, _)| name == key) else {
            continue;
        };
        let ok = match kind {
            Kind::StringOrNull => value.is_string() || value.is_null(),
            Kind::String => value.is_string(),
            Kind::ObjectOrNull => value.is_object() || value.is_null(),
            Kind::BoolLike => value.is_string() || value.is_boolean() || value.is_null(),
            Kind::Bool => value.is_boolean(),
            Kind::BoolOrNull => value.is_boolean() || value.is_null(),
            Kind::Any => true,
        };
        if !ok {
            let types = match kind {
                Kind::StringOrNull => "'string', 'null'",
                Kind::String => "'string'",
                Kind::ObjectOrNull => "'object', 'null'",
                Kind::BoolLike => "'string', 'boolean', 'null'",
                Kind::Bool => "'boolean'",
                Kind::BoolOrNull => "'boolean', 'null'",
                Kind::Any => "",
            };
            return Err(schema_error(format!(
                "{} is not of type {types}",
                py_repr(value)
            )));
        }
        if let (Some((_, max)), Some(s)) = (
            max_lengths.iter().find(|(name, _)| name == key),
            value.as_str(),
        ) && s.chars().count() > *max
        {
            return Err(schema_error(format!("{} is too long", py_repr(value))));
        }
    }
    Ok(map)
}

/// Whether `s` is a UUID in canonical (or brace/urn-free hex) form.
pub fn is_uuid_like(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

/// Ironic's `args.uuid` check.
///
/// # Errors
/// 400 `Expected UUID for <name>: <value>`.
pub fn expect_uuid(name: &str, value: &str) -> Result<String, ApiError> {
    match uuid::Uuid::try_parse(value) {
        Ok(u) => Ok(u.hyphenated().to_string()),
        Err(_) => Err(ApiError::BadRequest(format!(
            "Expected UUID for {name}: {value}"
        ))),
    }
}

/// A valid logical name (RFC 3986 unreserved characters, at most 255).
pub fn is_valid_logical_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// Node names before 1.10: a lower-case host name.
pub fn is_valid_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 255
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Words that cannot be node names (they are sub-resources).
pub const RESERVED_NODE_NAMES: [&str; 6] = [
    "maintenance",
    "management",
    "states",
    "vendor_passthru",
    "detail",
    "validate",
];

/// Ironic's `args.boolean`: a bool, or a string strutils understands.
///
/// # Errors
/// 400 `Invalid <name>: Unrecognized value …`.
pub fn boolean(name: &str, value: &Value) -> Result<Option<bool>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Ok(Some(true)),
            "0" | "f" | "false" | "off" | "n" | "no" => Ok(Some(false)),
            _ => Err(ApiError::BadRequest(format!(
                "Invalid {name}: Unrecognized value '{s}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            ))),
        },
        other => Err(ApiError::BadRequest(format!(
            "Invalid {name}: Unrecognized value '{other}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        ))),
    }
}

/// Normalises a MAC address (lower case) or fails with Ironic's message.
///
/// # Errors
/// 400 `Expected valid MAC address for <name>: <value>`.
pub fn mac_address(name: &str, value: &str) -> Result<String, ApiError> {
    let parts: Vec<&str> = value.split(':').collect();
    let valid = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if valid {
        Ok(value.to_lowercase())
    } else {
        Err(ApiError::BadRequest(format!(
            "Expected valid MAC address for {name}: {value}"
        )))
    }
}

/// `Unexpected arguments: a, b` for keys a handler does not take.
///
/// # Errors
/// 400 when `map` has a key outside `allowed`.
pub fn no_unexpected(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    let unexpected: Vec<&str> = map
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if unexpected.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "Unexpected arguments: {}",
            unexpected.join(", ")
        )))
    }
}

/// jsonschema's "Additional properties are not allowed ('a', 'b' were
/// unexpected)" for keys of `map` outside `allowed` (sorted, as Python
/// prints them).
///
/// # Errors
/// That text, for the caller to wrap in its schema error.
pub fn additional_properties(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    let mut unexpected: Vec<&String> = map
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if unexpected.is_empty() {
        return Ok(());
    }
    unexpected.sort();
    let list: Vec<String> = unexpected.iter().map(|k| format!("'{k}'")).collect();
    let verb = if list.len() == 1 { "was" } else { "were" };
    Err(format!(
        "Additional properties are not allowed ({} {verb} unexpected)",
        list.join(", ")
    ))
}

/// A `fields` parameter checked against what a resource shows.
///
/// # Errors
/// Ironic's 400 naming the unknown fields.
pub fn check_known_fields(fields: &[String], known: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    let bad: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| !known(f))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "Field(s) \"{}\" are not valid",
            bad.join(", ")
        )))
    }
}

/// The body of a `PUT …/traits`: `{"traits": [...]}`, each a valid trait,
/// duplicates dropped; `usage` is the 400 for any other shape.
///
/// # Errors
/// `usage`, or Ironic's schema error.
pub fn trait_list(body: &Value, usage: &str) -> Result<Vec<String>, ApiError> {
    let map = match body {
        Value::Object(map) if map.contains_key("traits") => map,
        _ => return Err(ApiError::BadRequest(usage.to_owned())),
    };
    if let Some(key) = map.keys().find(|k| *k != "traits") {
        return Err(ApiError::BadRequest(format!(
            "Schema error for body: Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let Value::Array(items) = &map["traits"] else {
        return Err(ApiError::BadRequest(format!(
            "Schema error for body: {} is not of type 'array'",
            py_repr(&map["traits"])
        )));
    };
    let mut traits: Vec<String> = Vec::new();
    for item in items {
        let t = check_trait("body", item)?;
        if !traits.contains(&t) {
            traits.push(t);
        }
    }
    Ok(traits)
}

/// A checked body's object field as stored JSON text (`{}` when absent
/// or null).
pub fn object_text(map: &Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".into(),
    }
}

/// `Schema error for <name>`, or plain `Schema error` for Ironic's newer
/// request-schema checks (an empty name).
fn schema_prefix(name: &str) -> String {
    if name.is_empty() {
        "Schema error".into()
    } else {
        format!("Schema error for {name}")
    }
}

/// Traits: `CUSTOM_*` or a standard trait name (upper case, digits, `_`).
pub fn check_trait(name_in_error: &str, value: &Value) -> Result<String, ApiError> {
    let Some(s) = value.as_str() else {
        return Err(ApiError::BadRequest(format!(
            "{}: {} is not of type 'string'",
            schema_prefix(name_in_error),
            py_repr(value)
        )));
    };
    let valid = !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "{}: '{s}' is not valid under any of the given schemas. Possible root cause: '{s}' does not match '^CUSTOM_[A-Z0-9_]+$'",
            schema_prefix(name_in_error)
        )));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_repr_of_values() {
        assert_eq!(py_repr(&json!([1, 2])), "[1, 2]");
        assert_eq!(py_repr(&json!({"a": "b"})), "{'a': 'b'}");
        assert_eq!(py_repr(&json!(null)), "None");
        assert_eq!(py_repr(&json!(true)), "True");
    }

    #[test]
    fn schema_errors_read_like_ironics() {
        let schema = [("driver", Kind::String), ("name", Kind::StringOrNull)];
        let err = |body| {
            check_object("node", &body, &schema, &["driver"], &[])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(json!({"driver": "x", "foo": 1})),
            "Schema error for node: Additional properties are not allowed ('foo' was unexpected)"
        );
        assert_eq!(
            err(json!({})),
            "Schema error for node: 'driver' is a required property"
        );
        assert_eq!(
            err(json!({"driver": "x", "name": 5})),
            "Schema error for node: 5 is not of type 'string', 'null'"
        );
        assert_eq!(
            err(json!([1, 2])),
            "Schema error for node: [1, 2] is not of type 'object'"
        );
    }

    #[test]
    fn macs_and_names() {
        assert_eq!(
            mac_address("address", "52:54:00:AA:bb:01").unwrap(),
            "52:54:00:aa:bb:01"
        );
        assert!(mac_address("address", "zz").is_err());
        assert!(is_valid_logical_name("cli-node_1.a~b"));
        assert!(!is_valid_logical_name("bad name"));
    }
}
