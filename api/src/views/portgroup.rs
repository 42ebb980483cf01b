//! The portgroup body, gated by microversion.

use ferric_common::db::models::portgroup::Portgroup;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::{json_column, links, opt, timestamp};

/// Portgroup fields with the minor version that added each, in Ironic's order.
pub const FIELDS: &[(&str, u32)] = &[
    ("uuid", 1),
    ("created_at", 1),
    ("updated_at", 1),
    ("address", 1),
    ("extra", 1),
    ("internal_info", 1),
    ("mode", 26),
    ("name", 1),
    ("properties", 26),
    ("standalone_ports_supported", 1),
    ("node_uuid", 1),
    ("physical_network", 102),
    ("category", 103),
    ("dynamic_portgroup", 111),
    ("links", 1),
    ("ports", 1),
];

/// Fields of a plain portgroup list.
pub const DEFAULT_LIST_FIELDS: [&str; 3] = ["uuid", "address", "name"];

/// # Errors
/// 400 for unknown fields, 406 for fields above the version.
pub fn check_fields(fields: &[String], version: Microversion) -> Result<(), ApiError> {
    for f in fields {
        match FIELDS.iter().find(|(name, _)| name == f) {
            None => {
                return Err(ApiError::BadRequest(format!(
                    "Field(s) \"{f}\" are not valid"
                )));
            }
            Some((_, min)) if !version.at_least(*min) => return Err(ApiError::not_acceptable()),
            _ => {}
        }
    }
    Ok(())
}

fn value(pg: &Portgroup, node_uuid: &str, base: &str, name: &str) -> Value {
    match name {
        "uuid" => json!(pg.uuid),
        "created_at" => timestamp(Some(pg.created_at)),
        "updated_at" => timestamp(pg.updated_at),
        "address" => opt(&pg.address),
        "extra" => json_column(&pg.extra),
        "internal_info" => json_column(&pg.internal_info),
        "mode" => opt(&pg.mode),
        "name" => opt(&pg.name),
        "properties" => json_column(&pg.properties),
        "standalone_ports_supported" => json!(pg.standalone_ports_supported),
        "node_uuid" => json!(node_uuid),
        "physical_network" => opt(&pg.physical_network),
        "category" => opt(&pg.category),
        "dynamic_portgroup" => json!(pg.dynamic_portgroup),
        "links" => links(base, &format!("portgroups/{}", pg.uuid)),
        "ports" => links(base, &format!("portgroups/{}/ports", pg.uuid)),
        _ => Value::Null,
    }
}

/// The portgroup body; `fields` narrows it (links always kept).
pub fn portgroup_body(
    pg: &Portgroup,
    node_uuid: &str,
    base: &str,
    version: Microversion,
    fields: Option<&[String]>,
) -> Value {
    let mut out = Map::new();
    for (name, min) in FIELDS {
        let wanted = match fields {
            None => version.at_least(*min),
            Some(fields) => *name == "links" || fields.iter().any(|f| f == name),
        };
        if wanted {
            out.insert((*name).to_owned(), value(pg, node_uuid, base, name));
        }
    }
    Value::Object(out)
}
