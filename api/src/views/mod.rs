//! Ironic's JSON bodies, built from rows. Only this module knows which field
//! appears at which microversion and how secrets are masked.

pub mod chassis;
pub mod conductor;
pub mod driver;
pub mod masking;
pub mod node;
pub mod port;

use chrono::NaiveDateTime;
use serde_json::{Value, json};

/// `links` of a resource: `self` under `/v1`, `bookmark` without it.
pub fn links(base: &str, path: &str) -> Value {
    json!([
        {"href": format!("{base}/v1/{path}"), "rel": "self"},
        {"href": format!("{base}/{path}"), "rel": "bookmark"},
    ])
}

/// Ironic's timestamp format: ISO 8601 with microseconds and `+00:00`.
pub fn timestamp(at: Option<NaiveDateTime>) -> Value {
    match at {
        Some(at) => Value::String(format!("{}+00:00", at.format("%Y-%m-%dT%H:%M:%S%.6f"))),
        None => Value::Null,
    }
}

/// A stored JSON column as a value (`{}` if the text is not JSON).
pub fn json_column(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

/// An optional string as a JSON value.
pub fn opt(value: &Option<String>) -> Value {
    value
        .as_ref()
        .map_or(Value::Null, |v| Value::String(v.clone()))
}

/// Parses `fields=a,b` into a list (empty entries dropped).
pub fn parse_fields(raw: Option<&String>) -> Option<Vec<String>> {
    raw.map(|raw| {
        raw.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect()
    })
}
