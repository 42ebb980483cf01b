//! The allocation body: `owner` from 1.60, `node_uuid` last.

use ferric_common::db::models::allocation::Allocation;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::{json_column, links, opt, timestamp};

/// `owner` appears with 1.60.
pub const OWNER_VERSION: u32 = 60;

/// Fields `?fields=` may name, in the order Ironic's schema lists them.
const FIELDS: [&str; 12] = [
    "candidate_nodes",
    "created_at",
    "extra",
    "last_error",
    "links",
    "name",
    "node_uuid",
    "resource_class",
    "state",
    "traits",
    "updated_at",
    "uuid",
];

/// # Errors
/// 400 naming the first field an allocation does not have at this version.
pub fn check_fields(fields: &[String], version: Microversion) -> Result<(), ApiError> {
    let mut known: Vec<&str> = FIELDS.to_vec();
    if version.at_least(OWNER_VERSION) {
        known.push("owner");
    }
    match fields.iter().find(|f| !known.contains(&f.as_str())) {
        Some(bad) => Err(ApiError::BadRequest(format!(
            "Schema error: '{bad}' is not one of [{}]",
            known
                .iter()
                .map(|f| format!("'{f}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Ok(()),
    }
}

pub fn allocation_body(
    a: &Allocation,
    node_uuid: Option<&str>,
    base: &str,
    version: Microversion,
    fields: Option<&[String]>,
) -> Value {
    let mut body = Map::new();
    body.insert("uuid".into(), json!(a.uuid));
    body.insert("created_at".into(), timestamp(Some(a.created_at)));
    body.insert("updated_at".into(), timestamp(a.updated_at));
    body.insert("candidate_nodes".into(), json_column(&a.candidate_nodes));
    body.insert("extra".into(), json_column(&a.extra));
    body.insert("last_error".into(), opt(&a.last_error));
    body.insert("name".into(), opt(&a.name));
    if version.at_least(OWNER_VERSION) {
        body.insert("owner".into(), opt(&a.owner));
    }
    body.insert("resource_class".into(), opt(&a.resource_class));
    body.insert("state".into(), json!(a.state));
    body.insert("traits".into(), json_column(&a.traits));
    body.insert(
        "links".into(),
        links(base, &format!("allocations/{}", a.uuid)),
    );
    body.insert("node_uuid".into(), json!(node_uuid));
    if let Some(fields) = fields {
        body.retain(|k, _| k == "links" || fields.iter().any(|f| f == k));
    }
    Value::Object(body)
}
