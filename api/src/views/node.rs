//! The node body: every field Ironic returns, in Ironic's order, gated by
//! microversion, narrowed by `fields`, with secrets masked.

use ferric_common::db::models::node::Node;
use serde::{Serialize, Serializer, ser::SerializeMap as _};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::masking::{mask_instance_info, mask_secrets};
use crate::views::{JsonColumn, Links, Timestamp, json_column, opt, timestamp};

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
    crate::validation::check_known_fields(fields, |f| FIELDS.iter().any(|(name, _)| *name == f))?;
    if fields.iter().any(|f| {
        FIELDS
            .iter()
            .any(|(name, min)| name == f && !version.at_least(*min))
    }) {
        return Err(ApiError::not_acceptable());
    }
    Ok(())
}

fn provision_state_for(version: Microversion, state: &str) -> Option<&str> {
    if !version.at_least(2) && state == "available" {
        return None;
    }
    if !version.at_least(39) && state == "inspect wait" {
        return Some("inspecting");
    }
    Some(state)
}

/// One node field, serialised straight from the row (no intermediate
/// `Value` tree: a 1,000-node detail list is 69,000 of these).
struct FieldValue<'a> {
    node: &'a Node,
    ctx: &'a NodeContext<'a>,
    name: &'a str,
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (node, ctx) = (self.node, self.ctx);
        match self.name {
            "uuid" => s.serialize_str(&node.uuid),
            "created_at" => Timestamp(Some(node.created_at)).serialize(s),
            "updated_at" => Timestamp(node.updated_at).serialize(s),
            "automated_clean" => node.automated_clean.serialize(s),
            "bios_interface" => node.bios_interface.serialize(s),
            "boot_interface" => node.boot_interface.serialize(s),
            "boot_mode" => node.boot_mode.serialize(s),
            "clean_step" => JsonColumn(&node.clean_step).serialize(s),
            "conductor_group" => s.serialize_str(&node.conductor_group),
            "console_enabled" => s.serialize_bool(node.console_enabled),
            "console_interface" => node.console_interface.serialize(s),
            "disable_power_off" => node.disable_power_off.serialize(s),
            "deploy_interface" => node.deploy_interface.serialize(s),
            "deploy_step" => JsonColumn(&node.deploy_step).serialize(s),
            "description" => node.description.serialize(s),
            "driver" => s.serialize_str(&node.driver),
            "driver_info" => {
                let mut v = json_column(&node.driver_info);
                mask_secrets(&mut v);
                v.serialize(s)
            }
            "driver_internal_info" => {
                let mut v = json_column(&node.driver_internal_info);
                mask_secrets(&mut v);
                v.serialize(s)
            }
            "extra" => JsonColumn(&node.extra).serialize(s),
            "fault" => node.fault.serialize(s),
            "firmware_interface" => node.firmware_interface.serialize(s),
            "health" => node.health.serialize(s),
            "inspection_finished_at" => Timestamp(node.inspection_finished_at).serialize(s),
            "inspection_started_at" => Timestamp(node.inspection_started_at).serialize(s),
            "inspect_interface" => node.inspect_interface.serialize(s),
            "instance_info" => {
                let mut v = json_column(&node.instance_info);
                mask_instance_info(&mut v);
                v.serialize(s)
            }
            "instance_name" => node.instance_name.serialize(s),
            "instance_uuid" => node.instance_uuid.serialize(s),
            "last_error" => node
                .last_error
                .as_deref()
                .map(ferric_common::redact::url_credentials)
                .serialize(s),
            "lessee" => node.lessee.serialize(s),
            "maintenance" => s.serialize_bool(node.maintenance),
            "maintenance_reason" => node.maintenance_reason.serialize(s),
            "management_interface" => node.management_interface.serialize(s),
            "name" => node.name.serialize(s),
            "network_data" => JsonColumn(&node.network_data).serialize(s),
            "network_interface" => node.network_interface.serialize(s),
            "owner" => node.owner.serialize(s),
            "parent_node" => node.parent_node.serialize(s),
            "power_interface" => node.power_interface.serialize(s),
            "power_state" => node.power_state.serialize(s),
            "properties" => JsonColumn(&node.properties).serialize(s),
            "protected" => s.serialize_bool(node.protected),
            "protected_reason" => node.protected_reason.serialize(s),
            "provision_state" => {
                provision_state_for(ctx.version, &node.provision_state).serialize(s)
            }
            "provision_updated_at" => Timestamp(node.provision_updated_at).serialize(s),
            "raid_config" => JsonColumn(&node.raid_config).serialize(s),
            "raid_interface" => node.raid_interface.serialize(s),
            "rescue_interface" => node.rescue_interface.serialize(s),
            "reservation" => node.reservation.serialize(s),
            "resource_class" => node.resource_class.serialize(s),
            "retired" => node.retired.serialize(s),
            "retired_reason" => node.retired_reason.serialize(s),
            "secure_boot" => node.secure_boot.serialize(s),
            "service_step" => JsonColumn(&node.service_step).serialize(s),
            "shard" => node.shard.serialize(s),
            "storage_interface" => node.storage_interface.serialize(s),
            "target_power_state" => node.target_power_state.serialize(s),
            "target_provision_state" => node.target_provision_state.serialize(s),
            "target_raid_config" => JsonColumn(&node.target_raid_config).serialize(s),
            "traits" => ctx.traits.serialize(s),
            "vendor_interface" => node.vendor_interface.serialize(s),
            "links" => Links {
                base: ctx.base,
                path: format_args!("nodes/{}", node.uuid),
            }
            .serialize(s),
            "conductor" => ctx.conductor.serialize(s),
            "chassis_uuid" => ctx.chassis_uuid.serialize(s),
            // A node's allocation always carries the node's instance UUID.
            "allocation_uuid" => match node.allocation_id {
                Some(_) => node.instance_uuid.serialize(s),
                None => s.serialize_none(),
            },
            _ => s.serialize_none(),
        }
    }
}

/// A node body; `fields` narrows it (uuid first, then the rest in the
/// order asked, each once, then links), as Ironic does.
pub struct NodeBody<'a> {
    node: &'a Node,
    ctx: &'a NodeContext<'a>,
    fields: Option<&'a [String]>,
}

/// The body of `node` as the request's version and `fields` want it.
pub fn node_body<'a>(
    node: &'a Node,
    ctx: &'a NodeContext<'a>,
    fields: Option<&'a [String]>,
) -> NodeBody<'a> {
    NodeBody { node, ctx, fields }
}

impl Serialize for NodeBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (node, ctx) = (self.node, self.ctx);
        let field = |name| FieldValue { node, ctx, name };
        let mut map = s.serialize_map(None)?;
        match self.fields {
            None => {
                for (name, min) in FIELDS {
                    if ctx.version.at_least(*min) {
                        map.serialize_entry(name, &field(name))?;
                    }
                }
                for (name, min) in LINK_FIELDS {
                    if ctx.version.at_least(*min) {
                        let path = format_args!("nodes/{}/{name}", node.uuid);
                        map.serialize_entry(
                            name,
                            &Links {
                                base: ctx.base,
                                path,
                            },
                        )?;
                    }
                }
            }
            Some(fields) => {
                if fields.iter().any(|f| f == "uuid") {
                    map.serialize_entry("uuid", &field("uuid"))?;
                }
                for (i, name) in fields.iter().enumerate() {
                    let allowed = FIELDS
                        .iter()
                        .any(|(known, min)| known == name && ctx.version.at_least(*min));
                    if name != "uuid" && name != "links" && allowed && !fields[..i].contains(name) {
                        map.serialize_entry(name, &field(name))?;
                    }
                }
                map.serialize_entry("links", &field("links"))?;
            }
        }
        map.end()
    }
}

/// `GET /v1/nodes/{id}/states`.
pub fn states_body(node: &Node, version: Microversion) -> Value {
    let mut out = Map::new();
    out.insert("console_enabled".into(), json!(node.console_enabled));
    let last_error = node
        .last_error
        .as_deref()
        .map(|e| ferric_common::redact::url_credentials(e).into_owned());
    out.insert("last_error".into(), opt(&last_error));
    out.insert("power_state".into(), opt(&node.power_state));
    out.insert(
        "provision_state".into(),
        json!(provision_state_for(version, &node.provision_state)),
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
