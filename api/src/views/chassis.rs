//! The chassis body.

use ferric_common::db::models::chassis::Chassis;
use serde_json::{Map, Value, json};

use crate::views::{json_column, links, opt, timestamp};

/// Fields of a plain chassis list.
pub const DEFAULT_LIST_FIELDS: [&str; 2] = ["uuid", "description"];

/// The full chassis body (Ironic wraps the `nodes` links in a second list).
pub fn chassis_body(chassis: &Chassis, base: &str, fields: Option<&[String]>) -> Value {
    let full = [
        ("uuid", json!(chassis.uuid)),
        ("created_at", timestamp(Some(chassis.created_at))),
        ("updated_at", timestamp(chassis.updated_at)),
        ("description", opt(&chassis.description)),
        ("extra", json_column(&chassis.extra)),
        ("links", links(base, &format!("chassis/{}", chassis.uuid))),
    ];
    let mut out = Map::new();
    match fields {
        None => {
            for (k, v) in full {
                out.insert(k.into(), v);
            }
            out.insert(
                "nodes".into(),
                json!([links(base, &format!("chassis/{}/nodes", chassis.uuid))]),
            );
        }
        Some(fields) => {
            for (k, v) in full {
                if k == "links" || fields.iter().any(|f| f == k) {
                    out.insert(k.into(), v);
                }
            }
        }
    }
    Value::Object(out)
}
