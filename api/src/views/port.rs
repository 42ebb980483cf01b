//! The port body, gated by microversion.

use ferric_common::db::models::port::Port;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::{json_column, links, opt, timestamp};

/// Port fields with the minor version that added each, in Ironic's order.
pub const FIELDS: &[(&str, u32)] = &[
    ("uuid", 1),
    ("created_at", 1),
    ("updated_at", 1),
    ("address", 1),
    ("extra", 1),
    ("internal_info", 18),
    ("is_smartnic", 53),
    ("local_link_connection", 19),
    ("physical_network", 34),
    ("pxe_enabled", 19),
    ("node_uuid", 1),
    ("name", 88),
    ("description", 97),
    ("vendor", 100),
    ("category", 101),
    ("available_for_dynamic_portgroup", 111),
    ("links", 1),
    ("portgroup_uuid", 24),
];

/// Fields of a plain port list.
pub const DEFAULT_LIST_FIELDS: [&str; 2] = ["uuid", "address"];

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

fn value(port: &Port, owners: &PortOwners<'_>, base: &str, name: &str) -> Value {
    match name {
        "uuid" => json!(port.uuid),
        "created_at" => timestamp(Some(port.created_at)),
        "updated_at" => timestamp(port.updated_at),
        "address" => json!(port.address),
        "extra" => json_column(&port.extra),
        "internal_info" => json_column(&port.internal_info),
        "is_smartnic" => json!(port.is_smartnic),
        "local_link_connection" => json_column(&port.local_link_connection),
        "physical_network" => opt(&port.physical_network),
        "pxe_enabled" => json!(port.pxe_enabled),
        "node_uuid" => json!(owners.node_uuid),
        "portgroup_uuid" => json!(owners.portgroup_uuid),
        "name" => opt(&port.name),
        "description" => opt(&port.description),
        "vendor" => opt(&port.vendor),
        "category" => opt(&port.category),
        "available_for_dynamic_portgroup" => json!(port.available_for_dynamic_portgroup),
        "links" => links(base, &format!("ports/{}", port.uuid)),
        _ => Value::Null,
    }
}

/// The UUIDs of a port's node and portgroup, for its body.
#[derive(Debug, Clone, Copy)]
pub struct PortOwners<'a> {
    pub node_uuid: &'a str,
    pub portgroup_uuid: Option<&'a str>,
}

/// The port body; `fields` narrows it like node bodies.
pub fn port_body(
    port: &Port,
    owners: PortOwners<'_>,
    base: &str,
    version: Microversion,
    fields: Option<&[String]>,
) -> Value {
    let mut out = Map::new();
    match fields {
        None => {
            for (name, min) in FIELDS {
                if version.at_least(*min) {
                    out.insert((*name).to_owned(), value(port, &owners, base, name));
                }
            }
        }
        Some(fields) => {
            if fields.iter().any(|f| f == "uuid") {
                out.insert("uuid".into(), json!(port.uuid));
            }
            for f in fields {
                if f != "uuid" && f != "links" {
                    out.insert(f.clone(), value(port, &owners, base, f));
                }
            }
            out.insert("links".into(), value(port, &owners, base, "links"));
        }
    }
    Value::Object(out)
}
