//! Ironic's JSON bodies, built from rows. Only this module knows which field
//! appears at which microversion and how secrets are masked.

pub mod allocation;
pub mod chassis;
pub mod conductor;
pub mod driver;
pub mod history;
pub mod masking;
pub mod node;
pub mod port;
pub mod portgroup;
pub mod step_template;

use chrono::NaiveDateTime;
use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

/// `links` of a resource: `self` under `/v1`, `bookmark` without it.
pub fn links(base: &str, path: &str) -> Value {
    let path = format_args!("{path}");
    serde_json::to_value(Links { base, path }).unwrap_or(Value::Null)
}

/// [`links`], serialised in place.
pub struct Links<'a> {
    pub base: &'a str,
    pub path: std::fmt::Arguments<'a>,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Link<'a>(std::fmt::Arguments<'a>, &'static str);
        impl Serialize for Link<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("href", &Display(self.0))?;
                map.serialize_entry("rel", self.1)?;
                map.end()
            }
        }
        let (base, path) = (self.base, self.path);
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Link(format_args!("{base}/v1/{path}"), "self"))?;
        seq.serialize_element(&Link(format_args!("{base}/{path}"), "bookmark"))?;
        seq.end()
    }
}

/// Anything `Display` as a JSON string, written without a temporary.
struct Display<T>(T);

impl<T: std::fmt::Display> Serialize for Display<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Ironic's timestamp format: ISO 8601 with microseconds and `+00:00`.
pub fn timestamp(at: Option<NaiveDateTime>) -> Value {
    serde_json::to_value(Timestamp(at)).unwrap_or(Value::Null)
}

/// [`timestamp`], serialised in place.
pub struct Timestamp(pub Option<NaiveDateTime>);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(at) => s.collect_str(&format_args!(
                "{}+00:00",
                at.format("%Y-%m-%dT%H:%M:%S%.6f")
            )),
            None => s.serialize_none(),
        }
    }
}

/// A stored JSON column as a value (`{}` if the text is not JSON).
pub fn json_column(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

/// A stored JSON column written as stored (it was written by us, compact),
/// checked but not rebuilt; `{}` if the text is not JSON.
pub struct JsonColumn<'a>(pub &'a str);

impl Serialize for JsonColumn<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&serde_json::value::RawValue>(self.0) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_map(Some(0))?.end(),
        }
    }
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
