//! Typed access to a node's JSON columns (`driver_info`, `instance_info`,
//! `properties`, `driver_internal_info`).
//!
//! Invariant: a column that does not hold a JSON object is reported as
//! [`CorruptColumn`], never read as empty; an empty column or JSON `null`
//! is the empty object, as Ironic reads a NULL JSON column.

use serde_json::{Map, Value};

use crate::db::models::node::Node;

/// A node's JSON column that does not hold a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Node {node} has a corrupt {column} column: {reason}")]
pub struct CorruptColumn {
    pub node: String,
    pub column: &'static str,
    pub reason: String,
}

/// The JSON object stored in `text`, or why it is not one.
///
/// # Errors
/// [`CorruptColumn`] naming the node and the column.
pub fn json_object(
    node_uuid: &str,
    column: &'static str,
    text: &str,
) -> Result<Map<String, Value>, CorruptColumn> {
    let corrupt = |reason: String| CorruptColumn {
        node: node_uuid.to_owned(),
        column,
        reason,
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(corrupt(format!(
            "expected a JSON object, found {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

impl Node {
    /// `driver_info` as a JSON object.
    ///
    /// # Errors
    /// When the column does not hold a JSON object.
    pub fn driver_info_map(&self) -> Result<Map<String, Value>, CorruptColumn> {
        json_object(&self.uuid, "driver_info", &self.driver_info)
    }

    /// `instance_info` as a JSON object.
    ///
    /// # Errors
    /// When the column does not hold a JSON object.
    pub fn instance_info_map(&self) -> Result<Map<String, Value>, CorruptColumn> {
        json_object(&self.uuid, "instance_info", &self.instance_info)
    }

    /// `properties` as a JSON object.
    ///
    /// # Errors
    /// When the column does not hold a JSON object.
    pub fn properties_map(&self) -> Result<Map<String, Value>, CorruptColumn> {
        json_object(&self.uuid, "properties", &self.properties)
    }

    /// `driver_internal_info` as a JSON object.
    ///
    /// # Errors
    /// When the column does not hold a JSON object.
    pub fn driver_internal_info_map(&self) -> Result<Map<String, Value>, CorruptColumn> {
        json_object(
            &self.uuid,
            "driver_internal_info",
            &self.driver_internal_info,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_empty_text_and_null_read_as_objects() {
        assert_eq!(json_object("n", "c", r#"{"a":1}"#).unwrap()["a"], 1);
        assert!(json_object("n", "c", "").unwrap().is_empty());
        assert!(json_object("n", "c", "null").unwrap().is_empty());
    }

    #[test]
    fn anything_else_is_reported_with_the_node_and_column() {
        let err = json_object("n1", "driver_info", "[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Node n1 has a corrupt driver_info column: expected a JSON object, found an array"
        );
        let err = json_object("n1", "instance_info", "{oops").unwrap_err();
        assert_eq!(err.column, "instance_info");
        assert!(err.reason.contains("key must be a string"), "{err}");
    }
}
