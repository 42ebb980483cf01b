//! The node body: every field Ironic returns, in Ironic's order, gated by
//! microversion, narrowed by `fields`, with secrets masked.

use ferric_common::db::models::node::Node;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::masking::{mask_instance_info, mask_secrets};
use crate::views::{json_column, links, opt, timestamp};

/// Every node field with the minor version that added it, in the order
/// Ironic 39 returns them.
pub const FIELDS: &[(&str, u32)] = &[
    ("uuid", 1),
    ("created_at", 1),
    ("updated_at", 1),
    ("automated_clean", 47),
    ("bios_interface", 40),
    ("boot_interface", 31),
    ("boot_mode", 75),
    ("clean_step", 7),
    ("conductor_group", 46),
    ("console_enabled", 1),
    ("console_interface", 31),
    ("disable_power_off", 95),
    ("deploy_interface", 31),
    ("deploy_step", 44),
    ("description", 51),
    ("driver", 1),
    ("driver_info", 1),
    ("driver_internal_info", 3),
    ("extra", 1),
    ("fault", 42),
    ("firmware_interface", 86),
    ("health", 109),
    ("inspection_finished_at", 6),
    ("inspection_started_at", 6),
    ("inspect_interface", 31),
    ("instance_info", 1),
    ("instance_name", 104),
    ("instance_uuid", 1),
    ("last_error", 1),
    ("lessee", 65),
    ("maintenance", 1),
    ("maintenance_reason", 1),
    ("management_interface", 31),
    ("name", 5),
    ("network_data", 66),
    ("network_interface", 20),
    ("owner", 50),
    ("parent_node", 83),
    ("power_interface", 31),
    ("power_state", 1),
    ("properties", 1),
    ("protected", 48),
    ("protected_reason", 48),
    ("provision_state", 1),
    ("provision_updated_at", 1),
    ("raid_config", 12),
    ("raid_interface", 31),
    ("rescue_interface", 38),
    ("reservation", 1),
    ("resource_class", 21),
    ("retired", 61),
    ("retired_reason", 61),
    ("secure_boot", 75),
    ("service_step", 87),
    ("shard", 82),
    ("storage_interface", 33),
    ("target_power_state", 1),
    ("target_provision_state", 1),
    ("target_raid_config", 12),
    ("traits", 37),
    ("vendor_interface", 31),
    ("links", 1),
    ("conductor", 49),
    ("allocation_uuid", 52),
    ("chassis_uuid", 1),
];

/// Link sub-resources added when `fields` is not given.
const LINK_FIELDS: &[(&str, u32)] = &[
    ("ports", 1),
    ("states", 14),
    ("portgroups", 24),
    ("volume", 32),
];

/// Fields of a plain (not detailed) node list.
pub const DEFAULT_LIST_FIELDS: [&str; 6] = [
    "instance_uuid",
    "maintenance",
    "power_state",
    "provision_state",
    "uuid",
    "name",
];

/// What a node body needs besides the row.
pub struct NodeContext<'a> {
    pub base: &'a str,
    pub version: Microversion,
    pub chassis_uuid: Option<String>,
    pub traits: Vec<String>,
    pub conductor: Option<String>,
}

/// Checks `fields=` against the known fields and the request's version.
///
/// # Errors
/// 400 for an unknown field, 406 for one newer than the request's version.
pub fn check_fields(fields: &[String], version: Microversion) -> Result<(), ApiError> {
    let unknown: Vec<&str> = fields
        .iter()
        .filter(|f| !FIELDS.iter().any(|(name, _)| name == f))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Field(s) \"{}\" are not valid",
            unknown.join(", ")
        )));
    }
    if fields.iter().any(|f| {
        FIELDS
            .iter()
            .any(|(name, min)| name == f && !version.at_least(*min))
    }) {
        return Err(ApiError::not_acceptable());
    }
    Ok(())
}

fn provision_state_for(version: Microversion, state: &str) -> Value {
    if !version.at_least(2) && state == "available" {
        return Value::Null;
    }
    if !version.at_least(39) && state == "inspect wait" {
        return Value::String("inspecting".into());
    }
    Value::String(state.to_owned())
}

fn field_value(node: &Node, ctx: &NodeContext<'_>, name: &str) -> Value {
    match name {
        "uuid" => json!(node.uuid),
        "created_at" => timestamp(Some(node.created_at)),
        "updated_at" => timestamp(node.updated_at),
        "automated_clean" => json!(node.automated_clean),
        "bios_interface" => opt(&node.bios_interface),
        "boot_interface" => opt(&node.boot_interface),
        "boot_mode" => opt(&node.boot_mode),
        "clean_step" => json_column(&node.clean_step),
        "conductor_group" => json!(node.conductor_group),
        "console_enabled" => json!(node.console_enabled),
        "console_interface" => opt(&node.console_interface),
        "disable_power_off" => json!(node.disable_power_off),
        "deploy_interface" => opt(&node.deploy_interface),
        "deploy_step" => json_column(&node.deploy_step),
        "description" => opt(&node.description),
        "driver" => json!(node.driver),
        "driver_info" => {
            let mut v = json_column(&node.driver_info);
            mask_secrets(&mut v);
            v
        }
        "driver_internal_info" => {
            let mut v = json_column(&node.driver_internal_info);
            mask_secrets(&mut v);
            v
        }
        "extra" => json_column(&node.extra),
        "fault" => opt(&node.fault),
        "firmware_interface" => opt(&node.firmware_interface),
        "health" => opt(&node.health),
        "inspection_finished_at" => timestamp(node.inspection_finished_at),
        "inspection_started_at" => timestamp(node.inspection_started_at),
        "inspect_interface" => opt(&node.inspect_interface),
        "instance_info" => {
            let mut v = json_column(&node.instance_info);
            mask_instance_info(&mut v);
            v
        }
        "instance_name" => opt(&node.instance_name),
        "instance_uuid" => opt(&node.instance_uuid),
        "last_error" => opt(&node.last_error),
        "lessee" => opt(&node.lessee),
        "maintenance" => json!(node.maintenance),
        "maintenance_reason" => opt(&node.maintenance_reason),
        "management_interface" => opt(&node.management_interface),
        "name" => opt(&node.name),
        "network_data" => json_column(&node.network_data),
        "network_interface" => opt(&node.network_interface),
        "owner" => opt(&node.owner),
        "parent_node" => opt(&node.parent_node),
        "power_interface" => opt(&node.power_interface),
        "power_state" => opt(&node.power_state),
        "properties" => json_column(&node.properties),
        "protected" => json!(node.protected),
        "protected_reason" => opt(&node.protected_reason),
        "provision_state" => provision_state_for(ctx.version, &node.provision_state),
        "provision_updated_at" => timestamp(node.provision_updated_at),
        "raid_config" => json_column(&node.raid_config),
        "raid_interface" => opt(&node.raid_interface),
        "rescue_interface" => opt(&node.rescue_interface),
        "reservation" => opt(&node.reservation),
        "resource_class" => opt(&node.resource_class),
        "retired" => json!(node.retired),
        "retired_reason" => opt(&node.retired_reason),
        "secure_boot" => json!(node.secure_boot),
        "service_step" => json_column(&node.service_step),
        "shard" => opt(&node.shard),
        "storage_interface" => opt(&node.storage_interface),
        "target_power_state" => opt(&node.target_power_state),
        "target_provision_state" => opt(&node.target_provision_state),
        "target_raid_config" => json_column(&node.target_raid_config),
        "traits" => json!(ctx.traits),
        "vendor_interface" => opt(&node.vendor_interface),
        "links" => links(ctx.base, &format!("nodes/{}", node.uuid)),
        "conductor" => opt(&ctx.conductor),
        "allocation_uuid" => Value::Null,
        "chassis_uuid" => opt(&ctx.chassis_uuid),
        _ => Value::Null,
    }
}

/// The node body; `fields` narrows it (uuid first, then the rest in the
/// order asked, then links), as Ironic does.
pub fn node_body(node: &Node, ctx: &NodeContext<'_>, fields: Option<&[String]>) -> Value {
    let mut out = Map::new();
    match fields {
        None => {
            for (name, min) in FIELDS {
                if ctx.version.at_least(*min) {
                    out.insert((*name).to_owned(), field_value(node, ctx, name));
                }
            }
            for (name, min) in LINK_FIELDS {
                if ctx.version.at_least(*min) {
                    out.insert(
                        (*name).to_owned(),
                        links(ctx.base, &format!("nodes/{}/{name}", node.uuid)),
                    );
                }
            }
        }
        Some(fields) => {
            let allowed = |f: &str| {
                FIELDS
                    .iter()
                    .any(|(name, min)| *name == f && ctx.version.at_least(*min))
            };
            if fields.iter().any(|f| f == "uuid") {
                out.insert("uuid".into(), json!(node.uuid));
            }
            for field in fields {
                if field != "uuid" && field != "links" && allowed(field) {
                    out.insert(field.clone(), field_value(node, ctx, field));
                }
            }
            out.insert("links".into(), field_value(node, ctx, "links"));
        }
    }
    Value::Object(out)
}

/// `GET /v1/nodes/{id}/states`.
pub fn states_body(node: &Node, version: Microversion) -> Value {
    let mut out = Map::new();
    out.insert("console_enabled".into(), json!(node.console_enabled));
    out.insert("last_error".into(), opt(&node.last_error));
    out.insert("power_state".into(), opt(&node.power_state));
    out.insert(
        "provision_state".into(),
        provision_state_for(version, &node.provision_state),
    );
    out.insert("target_power_state".into(), opt(&node.target_power_state));
    out.insert(
        "target_provision_state".into(),
        opt(&node.target_provision_state),
    );
    out.insert(
        "provision_updated_at".into(),
        timestamp(node.provision_updated_at),
    );
    if version.at_least(12) {
        out.insert("raid_config".into(), json_column(&node.raid_config));
        out.insert(
            "target_raid_config".into(),
            json_column(&node.target_raid_config),
        );
    }
    if version.at_least(75) {
        out.insert("boot_mode".into(), opt(&node.boot_mode));
        out.insert("secure_boot".into(), json!(node.secure_boot));
    }
    Value::Object(out)
}
