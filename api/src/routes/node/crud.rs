//! `/v1/nodes`: create, show, list (`/detail`, filters, pagination, fields),
//! JSON-PATCH update and delete. The API writes these descriptive rows
//! itself, guarded by `reservation IS NULL` (409 otherwise).

use std::collections::HashMap;

use ferric_common::db::DbError;
use ferric_common::db::models::chassis::Chassis;
use ferric_common::kernel_args::{self, KernelArgs};
use ferric_common::notify;
use ferric_common::states::ProvisionState;

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::parse_fields;

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::node::{self as node_model, Node, NodeFields, NodeFilter};
use serde_json::{Map, Value, json};

use crate::pagination::{self, Query, next_link, parse_bool, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::{
    base_url, find_node, find_node_with_context, node_context, wait_unlocked,
};
use crate::state::{AppState, no_valid_host};
use crate::validation::{
    Kind, RESERVED_NODE_NAMES, boolean, check_object, expect_uuid, is_uuid_like, is_valid_hostname,
    is_valid_logical_name,
};
use crate::views::node::{DEFAULT_LIST_FIELDS, NodeContext, check_fields, node_body};

/// Node create schema (`node_schema()`), key → kind.
const NODE_SCHEMA: &[(&str, Kind)] = &[
    ("automated_clean", Kind::BoolLike),
    ("bios_interface", Kind::StringOrNull),
    ("boot_interface", Kind::StringOrNull),
    ("boot_mode", Kind::StringOrNull),
    ("chassis_uuid", Kind::StringOrNull),
    ("conductor_group", Kind::StringOrNull),
    ("console_enabled", Kind::BoolLike),
    ("console_interface", Kind::StringOrNull),
    ("deploy_interface", Kind::StringOrNull),
    ("description", Kind::StringOrNull),
    ("disable_power_off", Kind::BoolLike),
    ("driver", Kind::String),
    ("driver_info", Kind::ObjectOrNull),
    ("extra", Kind::ObjectOrNull),
    ("firmware_interface", Kind::StringOrNull),
    ("inspect_interface", Kind::StringOrNull),
    ("instance_info", Kind::ObjectOrNull),
    ("instance_name", Kind::StringOrNull),
    ("instance_uuid", Kind::StringOrNull),
    ("lessee", Kind::StringOrNull),
    ("management_interface", Kind::StringOrNull),
    ("maintenance", Kind::BoolLike),
    ("name", Kind::StringOrNull),
    ("network_data", Kind::ObjectOrNull),
    ("network_interface", Kind::StringOrNull),
    ("owner", Kind::StringOrNull),
    ("parent_node", Kind::StringOrNull),
    ("power_interface", Kind::StringOrNull),
    ("properties", Kind::ObjectOrNull),
    ("raid_interface", Kind::StringOrNull),
    ("rescue_interface", Kind::StringOrNull),
    ("resource_class", Kind::StringOrNull),
    ("retired", Kind::BoolLike),
    ("retired_reason", Kind::StringOrNull),
    ("secure_boot", Kind::BoolLike),
    ("shard", Kind::StringOrNull),
    ("storage_interface", Kind::StringOrNull),
    ("uuid", Kind::StringOrNull),
    ("vendor_interface", Kind::StringOrNull),
];

/// Extra keys the PATCH schema allows.
const PATCH_ONLY: &[(&str, Kind)] = &[
    ("protected", Kind::BoolLike),
    ("protected_reason", Kind::StringOrNull),
];

/// Longest values, as the columns hold them (Ironic's schema or its models).
const MAX_LENGTHS: &[(&str, usize)] = &[
    ("description", 4096),
    ("resource_class", 80),
    ("parent_node", 36),
    ("instance_name", 255),
    ("name", 255),
    ("owner", 255),
    ("lessee", 255),
    ("shard", 255),
    ("conductor_group", 255),
    ("boot_mode", 16),
    ("bios_interface", 255),
    ("boot_interface", 255),
    ("console_interface", 255),
    ("deploy_interface", 255),
    ("firmware_interface", 255),
    ("inspect_interface", 255),
    ("management_interface", 255),
    ("network_interface", 255),
    ("power_interface", 255),
    ("raid_interface", 255),
    ("rescue_interface", 255),
    ("storage_interface", 255),
    ("vendor_interface", 255),
];

/// `PATCH_ALLOWED_FIELDS`, in Ironic's order (it is part of an error message).
const PATCH_ALLOWED_FIELDS: [&str; 37] = [
    "automated_clean",
    "bios_interface",
    "boot_interface",
    "chassis_uuid",
    "conductor_group",
    "console_interface",
    "deploy_interface",
    "description",
    "disable_power_off",
    "driver",
    "driver_info",
    "extra",
    "inspect_interface",
    "instance_info",
    "instance_name",
    "instance_uuid",
    "lessee",
    "maintenance",
    "management_interface",
    "name",
    "network_data",
    "network_interface",
    "owner",
    "power_interface",
    "properties",
    "protected",
    "protected_reason",
    "raid_interface",
    "rescue_interface",
    "resource_class",
    "retired",
    "retired_reason",
    "shard",
    "storage_interface",
    "vendor_interface",
    "parent_node",
    "firmware_interface",
];

/// JSON columns a node list cannot be sorted by.
const INVALID_SORT_KEYS: [&str; 12] = [
    "properties",
    "driver_info",
    "extra",
    "instance_info",
    "driver_internal_info",
    "clean_step",
    "deploy_step",
    "raid_config",
    "target_raid_config",
    "traits",
    "network_data",
    "service_step",
];

/// Interface fields and the minor version that added each.
const INTERFACE_FIELDS: [(&str, u32); 13] = [
    ("bios", 40),
    ("boot", 31),
    ("console", 31),
    ("deploy", 31),
    ("firmware", 86),
    ("inspect", 31),
    ("management", 31),
    ("network", 20),
    ("power", 31),
    ("raid", 31),
    ("rescue", 38),
    ("storage", 33),
    ("vendor", 31),
];

/// States in which interfaces (and a resource class, or an allocated
/// instance UUID) may change outside maintenance: Ironic's
/// `allowed_update_states` of a node update.
const INTERFACE_CHANGE_STATES: [&str; 5] = [
    "enroll",
    "inspecting",
    "inspect wait",
    "manageable",
    "available",
];

fn field_min_version(field: &str) -> u32 {
    crate::views::node::FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(1, |(_, min)| *min)
}

fn string_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn json_field(map: &Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".into(),
    }
}

fn check_name(name: &str, version: Microversion, message: String) -> Result<(), ApiError> {
    let valid = if version.at_least(10) {
        is_valid_logical_name(name)
    } else {
        is_valid_hostname(name)
    };
    if !valid || is_uuid_like(name) {
        return Err(ApiError::BadRequest(message));
    }
    if RESERVED_NODE_NAMES.contains(&name) {
        return Err(ApiError::BadRequest(format!(
            "The word \"{name}\" is reserved and can not be used as a node name. Reserved words are: {}.",
            RESERVED_NODE_NAMES.join(", ")
        )));
    }
    Ok(())
}

/// Resolves interface names for `driver`: given ones must be enabled; the
/// rest take the hardware type's defaults.
async fn resolve_interfaces(
    state: &AppState,
    driver: &str,
    group: &str,
    fields: &mut NodeFields,
    reset_unset: bool,
) -> Result<(), ApiError> {
    let mut view = state.cluster(false).await?;
    if !view.has_conductor_for(group, driver) {
        view = state.cluster(true).await?;
        if !view.has_conductor_for(group, driver) {
            return Err(no_valid_host(driver, group));
        }
    }
    let choices = view.interfaces(driver).cloned().unwrap_or_default();
    for (iface, _) in INTERFACE_FIELDS {
        let slot = interface_slot(fields, iface);
        let choice = choices.get(iface).cloned().unwrap_or_default();
        match slot.clone() {
            Some(name) if choice.enabled.contains(&name) => {}
            Some(name) if !reset_unset => {
                let enabled = choice
                    .enabled
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::BadRequest(format!(
                    "Could not find the following interface in the 'ironic.hardware.interfaces.{iface}' entrypoint: {name}. Valid interfaces are [{enabled}]."
                )));
            }
            _ => {
                let Some(default) = choice.default.clone() else {
                    return Err(ApiError::BadRequest(format!(
                        "For hardware type '{driver}', no default value found for {iface} interface could be determined. Please ensure the interfaces are enabled."
                    )));
                };
                *slot = Some(default);
            }
        }
    }
    Ok(())
}

fn interface_slot<'a>(fields: &'a mut NodeFields, iface: &str) -> &'a mut Option<String> {
    match iface {
        "bios" => &mut fields.bios_interface,
        "boot" => &mut fields.boot_interface,
        "console" => &mut fields.console_interface,
        "deploy" => &mut fields.deploy_interface,
        "firmware" => &mut fields.firmware_interface,
        "inspect" => &mut fields.inspect_interface,
        "management" => &mut fields.management_interface,
        "network" => &mut fields.network_interface,
        "power" => &mut fields.power_interface,
        "raid" => &mut fields.raid_interface,
        "rescue" => &mut fields.rescue_interface,
        "storage" => &mut fields.storage_interface,
        _ => &mut fields.vendor_interface,
    }
}

async fn chassis_id_for(
    state: &AppState,
    chassis_uuid: Option<String>,
) -> Result<Option<i32>, ApiError> {
    let Some(uuid) = chassis_uuid else {
        return Ok(None);
    };
    let uuid = expect_uuid("chassis_uuid", &uuid)?;
    let key = uuid.clone();
    let chassis = state
        .db
        .run(move |conn| Chassis::by_uuid(conn, &key))
        .await?;
    chassis
        .map(|c| Some(c.id))
        .ok_or_else(|| ApiError::BadRequest(format!("Chassis {uuid} could not be found.")))
}

/// Maps a unique violation on insert/update to Ironic's 409.
fn duplicate(e: DbError, name: Option<&str>, uuid: &str, instance_uuid: Option<&str>) -> ApiError {
    if !e.is_unique_violation() {
        return e.into();
    }
    let detail = e.violation_detail();
    if detail.contains("instance_uuid") {
        ApiError::Conflict(format!(
            "Instance {} is already associated with a node, it cannot be associated with this other node {uuid}",
            instance_uuid.unwrap_or_default()
        ))
    } else if detail.contains("name") {
        ApiError::Conflict(format!(
            "A node with name {} already exists.",
            name.unwrap_or_default()
        ))
    } else {
        ApiError::Conflict(format!("A node with UUID {uuid} already exists."))
    }
}

/// The node's values that end up on a kernel command line in a boot file
/// (`instance_info/ramdisk_kernel_arguments`,
/// `driver_info/kernel_append_params`): words of printable ASCII, nothing
/// any boot file format reads as syntax. Ferric goes beyond Ironic here,
/// which writes them into its templates as they are.
///
/// # Errors
/// 400 naming the field and the character.
fn check_kernel_args(map: &Map<String, Value>) -> Result<(), ApiError> {
    for (column, key) in [
        ("instance_info", "ramdisk_kernel_arguments"),
        ("driver_info", "kernel_append_params"),
    ] {
        if let Some(text) = map
            .get(column)
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            && let Err(e) = KernelArgs::parse(text)
        {
            return Err(ApiError::BadRequest(kernel_args::refusal(
                &format!("{column}/{key}"),
                text,
                &e,
            )));
        }
    }
    Ok(())
}

/// Turns a validated body (create) or patched document into row fields.
fn fields_from_map(map: &Map<String, Value>, base: NodeFields) -> Result<NodeFields, ApiError> {
    check_kernel_args(map)?;
    let mut f = base;
    let opt_bool = |key: &str| -> Result<Option<bool>, ApiError> {
        match map.get(key) {
            Some(v) => boolean(key, v),
            None => Ok(None),
        }
    };
    f.driver = string_field(map, "driver").unwrap_or_default();
    f.name = string_field(map, "name");
    f.description = string_field(map, "description");
    f.instance_uuid = match string_field(map, "instance_uuid") {
        Some(u) => Some(expect_uuid("instance_uuid", &u)?),
        None => None,
    };
    f.instance_name = string_field(map, "instance_name");
    f.instance_info = json_field(map, "instance_info");
    f.properties = json_field(map, "properties");
    f.driver_info = json_field(map, "driver_info");
    f.extra = json_field(map, "extra");
    f.network_data = json_field(map, "network_data");
    f.resource_class = string_field(map, "resource_class");
    f.conductor_group = string_field(map, "conductor_group")
        .unwrap_or_default()
        .to_lowercase();
    f.owner = string_field(map, "owner");
    f.lessee = string_field(map, "lessee");
    f.shard = string_field(map, "shard");
    f.parent_node = string_field(map, "parent_node");
    f.retired_reason = string_field(map, "retired_reason");
    f.protected_reason = string_field(map, "protected_reason");
    f.automated_clean = opt_bool("automated_clean")?;
    f.maintenance = opt_bool("maintenance")?.unwrap_or(false);
    f.retired = opt_bool("retired")?.unwrap_or(false);
    f.protected = opt_bool("protected")?.unwrap_or(false);
    f.disable_power_off = opt_bool("disable_power_off")?.unwrap_or(false);
    opt_bool("console_enabled")?;
    opt_bool("secure_boot")?;
    for (iface, _) in INTERFACE_FIELDS {
        *interface_slot(&mut f, iface) = string_field(map, &format!("{iface}_interface"));
    }
    Ok(f)
}

/// A new node for a machine nobody enrolled that posted its inspection
/// data (`[auto_discovery]`): the configured driver with its default
/// interfaces, in `enroll`, as Ironic creates it. Any failure is a bare 500,
/// as Ironic answers, telling the unauthenticated caller nothing (the log
/// says why).
pub(crate) async fn enroll_discovered(state: &AppState) -> Result<Node, ApiError> {
    let driver = state
        .settings
        .auto_discovery
        .driver
        .clone()
        .unwrap_or_default();
    let refused = |e: ApiError| {
        tracing::error!(error = %e, %driver, "auto-discovery could not enroll a node");
        ApiError::Internal("An unknown exception occurred.".into())
    };
    let mut fields = NodeFields {
        driver: driver.clone(),
        ..NodeFields::default()
    };
    let group = fields.conductor_group.clone();
    resolve_interfaces(state, &driver, &group, &mut fields, false)
        .await
        .map_err(refused)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let node = state
        .db
        .run(move |conn| Node::insert(conn, &uuid, ProvisionState::Enroll.as_str(), None, &fields))
        .await
        .map_err(|e| refused(e.into()))?;
    state
        .notifier
        .send(notify::node_crud(&node, "create", None));
    Ok(node)
}

/// `POST /v1/nodes`.
pub async fn create(
    Call(req, state, version, _): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body = if body.is_null() { json!({}) } else { body };
    let map = check_object("node", &body, NODE_SCHEMA, &["driver"], MAX_LENGTHS)?;
    for (key, value) in map {
        let present = match value {
            Value::Null => false,
            Value::String(s) => !(key == "conductor_group" && s.is_empty()),
            _ => true,
        };
        if present && !version.at_least(field_min_version(key)) {
            return Err(ApiError::not_acceptable());
        }
    }
    let uuid = match string_field(map, "uuid") {
        Some(u) => expect_uuid("uuid", &u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mut fields = fields_from_map(map, NodeFields::default())?;
    if fields.protected || fields.protected_reason.is_some() {
        return Err(ApiError::BadRequest(
            "Schema error for node: Additional properties are not allowed ('protected' was unexpected)".into(),
        ));
    }
    if let Some(name) = &fields.name {
        check_name(
            name,
            version,
            format!("Cannot create node with invalid name '{name}'"),
        )?;
    }
    let chassis_uuid = string_field(map, "chassis_uuid");
    fields.chassis_id = chassis_id_for(&state, chassis_uuid).await?;
    let group = fields.conductor_group.clone();
    let driver = fields.driver.clone();
    resolve_interfaces(&state, &driver, &group, &mut fields, false).await?;
    let provision_state = if version.at_least(11) {
        ProvisionState::Enroll
    } else {
        ProvisionState::Available
    };
    let (name, instance_uuid) = (fields.name.clone(), fields.instance_uuid.clone());
    let key = uuid.clone();
    let node = state
        .db
        .run(move |conn| Node::insert(conn, &key, provision_state.as_str(), None, &fields))
        .await
        .map_err(|e| duplicate(e, name.as_deref(), &uuid, instance_uuid.as_deref()))?;
    let base = base_url(&req, &state);
    let ctx = node_context(&state, &node, &base, version).await?;
    state.notifier.send(notify::node_crud(
        &node,
        "create",
        ctx.chassis_uuid.as_deref(),
    ));
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("{base}/v1/nodes/{}", node.uuid)))
        .json(node_body(&node, &ctx, None)))
}

/// `GET /v1/nodes/{ident}`.
pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    crate::validation::no_unexpected(
        &query.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
        &["fields"],
    )?;
    let fields = parse_fields(query.get("fields"));
    if let Some(fields) = &fields {
        if !version.at_least(8) {
            return Err(ApiError::not_acceptable());
        }
        if let Some(bad) = fields
            .iter()
            .find(|f| !crate::views::node::FIELDS.iter().any(|(n, _)| n == f))
        {
            return Err(ApiError::BadRequest(format!(
                "Field {bad} is not a valid field."
            )));
        }
        check_fields(fields, version)?;
    }
    let base = base_url(&req, &state);
    let (node, ctx) = find_node_with_context(&state, &path, &base, version).await?;
    Ok(HttpResponse::Ok().json(node_body(&node, &ctx, fields.as_deref())))
}

/// Query parameters a node list takes (besides pagination and fields).
const LIST_PARAMS: [&str; 26] = [
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "fields",
    "detail",
    "driver",
    "provision_state",
    "maintenance",
    "associated",
    "instance_uuid",
    "resource_class",
    "chassis_uuid",
    "conductor_group",
    "conductor",
    "owner",
    "lessee",
    "project",
    "fault",
    "description_contains",
    "shard",
    "sharded",
    "retired",
    "parent_node",
    "include_children",
    "instance_name",
];

fn gate(version: Microversion, minor: u32) -> Result<(), ApiError> {
    if version.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable(format!(
            "Request not acceptable. The minimal required API version should be 1.{minor}"
        )))
    }
}

async fn build_filter(
    state: &AppState,
    query: &Query,
    version: Microversion,
) -> Result<(NodeFilter, Vec<(&'static str, String)>), ApiError> {
    let mut filter = NodeFilter::default();
    let mut echo: Vec<(&'static str, String)> = Vec::new();
    if let Some(v) = query.get("driver") {
        gate(version, 16)?;
        filter.driver = Some(v.clone());
    }
    if let Some(v) = query.get("provision_state") {
        if !version.at_least(9) {
            return Err(ApiError::not_acceptable());
        }
        if v.parse::<ProvisionState>().is_err() {
            return Err(ApiError::BadRequest(format!(
                "Provision state \"{v}\" is not valid"
            )));
        }
        filter.provision_state = Some(v.clone());
    }
    if let Some(v) = query.get("maintenance") {
        filter.maintenance = Some(parse_bool("maintenance", v)?);
        echo.push(("maintenance", v.clone()));
    }
    if let Some(v) = query.get("associated") {
        filter.associated = Some(parse_bool("associated", v)?);
        echo.push(("associated", v.clone()));
    }
    if let Some(v) = query.get("retired") {
        gate(version, 61)?;
        filter.retired = Some(parse_bool("retired", v)?);
        echo.push(("retired", v.clone()));
    }
    if let Some(v) = query.get("instance_uuid") {
        filter.instance_uuid = Some(expect_uuid("instance_uuid", v)?);
    }
    if let Some(v) = query.get("resource_class") {
        gate(version, 21)?;
        filter.resource_class = Some(v.clone());
    }
    if let Some(v) = query.get("chassis_uuid") {
        let uuid = expect_uuid("chassis_uuid", v)?;
        let key = uuid.clone();
        let chassis = state
            .db
            .run(move |conn| Chassis::by_uuid(conn, &key))
            .await?;
        let chassis = chassis
            .ok_or_else(|| ApiError::NotFound(format!("Chassis {uuid} could not be found.")))?;
        filter.chassis_id = Some(chassis.id);
    }
    if let Some(v) = query.get("conductor_group") {
        gate(version, 46)?;
        filter.conductor_group = Some(v.clone());
    }
    if query.contains_key("conductor") {
        gate(version, 49)?;
    }
    if let Some(v) = query.get("owner") {
        gate(version, 50)?;
        filter.owner = Some(v.clone());
    }
    if let Some(v) = query.get("lessee") {
        gate(version, 65)?;
        filter.lessee = Some(v.clone());
    }
    if let Some(v) = query.get("project") {
        filter.project = Some(v.clone());
    }
    if let Some(v) = query.get("fault") {
        gate(version, 42)?;
        const FAULTS: [&str; 4] = [
            "power failure",
            "clean failure",
            "rescue abort failure",
            "service failure",
        ];
        if !FAULTS.contains(&v.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "Unrecognized fault \"{v}\" is specified, allowed faults are ('power failure', 'clean failure', 'rescue abort failure', 'service failure')"
            )));
        }
        filter.fault = Some(v.clone());
    }
    if let Some(v) = query.get("description_contains") {
        gate(version, 51)?;
        filter.description_contains = Some(v.clone());
    }
    if let Some(v) = query.get("shard") {
        gate(version, 82)?;
        filter.shards = Some(v.split(',').map(|s| s.trim().to_owned()).collect());
    }
    if let Some(v) = query.get("sharded") {
        gate(version, 82)?;
        filter.sharded = Some(parse_bool("sharded", v)?);
    }
    if let Some(v) = query.get("parent_node") {
        gate(version, 83)?;
        filter.parent_node = Some(v.clone());
    }
    let include_children = match query.get("include_children") {
        Some(v) => {
            gate(version, 83)?;
            echo.push(("include_children", v.clone()));
            parse_bool("include_children", v)?
        }
        None => false,
    };
    filter.without_children =
        version.at_least(83) && !include_children && filter.parent_node.is_none();
    if let Some(v) = query.get("instance_name") {
        if !version.at_least(104) {
            return Err(ApiError::NotAcceptable(
                "instance_name is not acceptable in this API version".into(),
            ));
        }
        filter.instance_name = Some(v.clone());
    }
    Ok((filter, echo))
}

/// `GET /v1/nodes` and `GET /v1/nodes/detail`.
async fn list_nodes(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    detail_path: bool,
    chassis_id: Option<i32>,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    let unexpected: Vec<&str> = query
        .keys()
        .filter(|k| !LIST_PARAMS.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Unexpected arguments: {}",
            unexpected.join(", ")
        )));
    }
    let shape = pagination::list_shape(&query, version, detail_path, 43, &DEFAULT_LIST_FIELDS)?;
    if query.contains_key("fields")
        && let Some(f) = &shape.fields
    {
        check_fields(f, version)?;
    }
    let (detail, fields) = (shape.detail, shape.fields);
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        node_model::SORT_KEYS,
        &INVALID_SORT_KEYS,
    )?;
    if !version.at_least(field_min_version(&pagination.page.sort_key)) {
        return Err(ApiError::not_acceptable());
    }
    let (mut filter, mut echo) = build_filter(&state, &query, version).await?;
    if let Some(raw) = query.get("detail") {
        echo.push(("detail", raw.clone()));
    }
    if chassis_id.is_some() {
        filter.chassis_id = chassis_id;
    }
    let marker = match &pagination.marker {
        Some(m) => {
            let uuid = expect_uuid("marker", m)?;
            let key = uuid.clone();
            let node = state.db.run(move |conn| Node::by_uuid(conn, &key)).await?;
            Some(
                node.ok_or_else(|| ApiError::NotFound(format!("Node {uuid} could not be found.")))?,
            )
        }
        None => None,
    };
    let page = pagination.page.clone();
    let want_traits = detail
        || fields
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == "traits"));
    let want_chassis = detail
        || fields
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == "chassis_uuid"));
    let (nodes, traits, chassis) = state
        .db
        .run(move |conn| {
            let nodes = Node::list(conn, &filter, &page, marker.as_ref())?;
            let ids: Vec<i32> = nodes.iter().map(|n| n.id).collect();
            let traits = if want_traits {
                Node::traits_of(conn, &ids)?
            } else {
                HashMap::new()
            };
            let chassis_ids: Vec<i32> = nodes.iter().filter_map(|n| n.chassis_id).collect();
            let chassis = if want_chassis && !chassis_ids.is_empty() {
                Chassis::uuids(conn, &chassis_ids)?
            } else {
                HashMap::new()
            };
            Ok((nodes, traits, chassis))
        })
        .await?;
    let view = state.cluster(false).await?;
    let conductor_filter = query.get("conductor");
    let base = base_url(&req, &state);
    let mut contexts = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let conductor = view
            .owner(&node.conductor_group, &node.driver, &node.uuid)
            .map(str::to_owned);
        if let Some(wanted) = conductor_filter
            && conductor.as_deref() != Some(wanted.as_str())
        {
            continue;
        }
        let ctx = NodeContext {
            base: &base,
            version,
            chassis_uuid: node.chassis_id.and_then(|id| chassis.get(&id).cloned()),
            traits: traits.get(&node.id).cloned().unwrap_or_default(),
            conductor,
        };
        contexts.push((node, ctx));
    }
    let items: Vec<_> = contexts
        .iter()
        .map(|(node, ctx)| node_body(node, ctx, fields.as_deref()))
        .collect();
    // Ironic never pages a list filtered by instance_uuid.
    let last = nodes
        .last()
        .map(|n| n.uuid.as_str())
        .filter(|_| !query.contains_key("instance_uuid"));
    let next = next_link(
        &base,
        path,
        &pagination,
        fields.as_deref(),
        &echo,
        nodes.len(),
        last,
    );
    // About 2.5 KB per detailed node, 0.4 KB per node of a plain list.
    let per_item = if detail { 2600 } else { 400 };
    pagination::collection("nodes", items, next).respond(per_item)
}

pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_nodes(req, state, version, false, None, "nodes").await
}

pub async fn list_detail(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_nodes(req, state, version, true, None, "nodes/detail").await
}

/// `GET /v1/chassis/{uuid}/nodes`.
pub async fn list_in_chassis(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uuid = expect_uuid("chassis_uuid", &path)?;
    let key = uuid.clone();
    let chassis = state
        .db
        .run(move |conn| Chassis::by_uuid(conn, &key))
        .await?;
    let chassis =
        chassis.ok_or_else(|| ApiError::NotFound(format!("Chassis {uuid} could not be found.")))?;
    let path = format!("chassis/{uuid}/nodes");
    list_nodes(req, state, version, false, Some(chassis.id), &path).await
}

/// The patchable document of a node, as Ironic builds it before applying a patch.
fn patch_document(node: &Node, chassis_uuid: Option<String>) -> Value {
    let f = NodeFields::from_node(node);
    let mut doc = Map::new();
    let s = |v: &Option<String>| v.as_ref().map_or(Value::Null, |v| json!(v));
    let j = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| json!({}));
    doc.insert("automated_clean".into(), json!(f.automated_clean));
    doc.insert("chassis_uuid".into(), s(&chassis_uuid));
    doc.insert("conductor_group".into(), json!(f.conductor_group));
    doc.insert("description".into(), s(&f.description));
    doc.insert("disable_power_off".into(), json!(f.disable_power_off));
    doc.insert("driver".into(), json!(f.driver));
    doc.insert("driver_info".into(), j(&f.driver_info));
    doc.insert("extra".into(), j(&f.extra));
    doc.insert("instance_info".into(), j(&f.instance_info));
    doc.insert("instance_name".into(), s(&f.instance_name));
    doc.insert("instance_uuid".into(), s(&f.instance_uuid));
    doc.insert("lessee".into(), s(&f.lessee));
    doc.insert("maintenance".into(), json!(f.maintenance));
    doc.insert("name".into(), s(&f.name));
    doc.insert("network_data".into(), j(&f.network_data));
    doc.insert("owner".into(), s(&f.owner));
    doc.insert("properties".into(), j(&f.properties));
    doc.insert("protected".into(), json!(f.protected));
    doc.insert("protected_reason".into(), s(&f.protected_reason));
    doc.insert("resource_class".into(), s(&f.resource_class));
    doc.insert("retired".into(), json!(f.retired));
    doc.insert("retired_reason".into(), s(&f.retired_reason));
    doc.insert("shard".into(), s(&f.shard));
    doc.insert("parent_node".into(), s(&f.parent_node));
    let mut fields = f;
    for (iface, _) in INTERFACE_FIELDS {
        doc.insert(
            format!("{iface}_interface"),
            s(interface_slot(&mut fields, iface)),
        );
    }
    Value::Object(doc)
}

/// `PATCH /v1/nodes/{ident}`.
pub async fn update(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let ops = check_patch_ops(&body)?.clone();
    let touched = check_allowed_paths(&ops, &PATCH_ALLOWED_FIELDS)?;
    for op in &ops {
        let p = op["path"].as_str().unwrap_or_default();
        let field = p.split('/').nth(1).unwrap_or_default();
        let truthy = op
            .get("value")
            .is_some_and(|v| !(v.is_null() || v == &json!("") || v == &json!(false)));
        if p == format!("/{field}") && truthy && !version.at_least(field_min_version(field)) {
            return Err(ApiError::not_acceptable());
        }
    }
    let query = parse_query(req.query_string());
    let reset_interfaces = match query.get("reset_interfaces") {
        None => false,
        Some(_) if !version.at_least(45) => return Err(ApiError::not_acceptable()),
        Some(v) => parse_bool("reset_interfaces", v)?,
    };
    let ident = path.into_inner();
    // A conductor's operation that just ended (a power action) is waited
    // for, as Ironic's lock retry; one that stays is a 409.
    let node = wait_unlocked(&state, find_node(&state, &ident, version).await?).await?;
    let current: ProvisionState = node
        .provision_state
        .parse()
        .unwrap_or(ProvisionState::Error);
    if node.target_provision_state.is_some() && !current.update_allowed() {
        return Err(ApiError::Conflict(format!(
            "Node {ident} can not be updated while a state transition is in progress."
        )));
    }
    let chassis_id = node.chassis_id;
    let chassis_uuid = match chassis_id {
        Some(id) => state
            .db
            .run(move |conn| Chassis::by_id(conn, id))
            .await?
            .map(|c| c.uuid),
        None => None,
    };
    let mut doc = patch_document(&node, chassis_uuid.clone());
    apply_patch(&mut doc, &ops)?;
    let schema: Vec<(&str, Kind)> = NODE_SCHEMA.iter().chain(PATCH_ONLY).copied().collect();
    let map = check_object("patch", &doc, &schema, &["driver"], MAX_LENGTHS)?;
    let mut fields = fields_from_map(map, NodeFields::from_node(&node))?;
    // Maintenance off clears its reason and fault; on keeps the reason.
    if node.maintenance && !fields.maintenance {
        fields.maintenance_reason = None;
        fields.fault = None;
    }
    if !fields.protected {
        if fields.protected_reason.is_some() && touched.iter().any(|t| t == "protected_reason") {
            return Err(ApiError::BadRequest(
                "The protected_reason field can only be set when protected is True".into(),
            ));
        }
        fields.protected_reason = None;
    } else if !node.protected && !matches!(current, ProvisionState::Active | ProvisionState::Rescue)
    {
        return Err(ApiError::Conflict(format!(
            "Node {} can only be made protected in provision states 'active' or 'rescue', the current state is '{}'",
            node.uuid, node.provision_state
        )));
    }
    if !fields.retired {
        if fields.retired_reason.is_some() && touched.iter().any(|t| t == "retired_reason") {
            return Err(ApiError::BadRequest(
                "The retired_reason field can only be set when retired is True".into(),
            ));
        }
        fields.retired_reason = None;
    } else if !node.retired && current == ProvisionState::Available {
        return Err(ApiError::Conflict(format!(
            "Node {} can not have 'retired' set in provision state 'available', the current state is 'available'",
            node.uuid
        )));
    }
    // As Ironic, for forward compatibility: a changed instance_info's
    // display_name becomes instance_name unless one is set.
    if fields.instance_info != node.instance_info
        && fields.instance_name.is_none()
        && let Ok(Value::Object(info)) = serde_json::from_str::<Value>(&fields.instance_info)
        && let Some(Value::String(display_name)) = info.get("display_name")
    {
        fields.instance_name = Some(display_name.clone());
    }
    if let Some(name) = &fields.name
        && fields.name != node.name
    {
        check_name(
            name,
            version,
            format!("Node {ident}: Cannot change name to invalid name '{name}'"),
        )?;
    }
    let new_chassis = map
        .get("chassis_uuid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if new_chassis.is_none() && chassis_uuid.is_some() && !version.at_least(25) {
        return Err(ApiError::not_acceptable());
    }
    fields.chassis_id = if new_chassis == chassis_uuid {
        node.chassis_id
    } else {
        chassis_id_for(&state, new_chassis).await?
    };
    let interfaces_changed = INTERFACE_FIELDS.iter().any(|(iface, _)| {
        let field = format!("{iface}_interface");
        touched.contains(&field)
    });
    if interfaces_changed
        && !node.maintenance
        && !INTERFACE_CHANGE_STATES.contains(&node.provision_state.as_str())
    {
        let field = touched
            .iter()
            .find(|t| t.ends_with("_interface"))
            .cloned()
            .unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "Node {} can not have {field} updated unless it is in one of allowed (enroll, inspecting, inspect wait, manageable, available) states or in maintenance mode. Current state is '{}'.",
            node.uuid, node.provision_state
        )));
    }
    if reset_interfaces {
        if fields.driver == node.driver {
            return Err(ApiError::BadRequest(
                "The reset_interfaces parameter can only be used when changing the node's driver."
                    .into(),
            ));
        }
        // Every interface this request does not name takes the new
        // hardware type's default.
        for (iface, _) in INTERFACE_FIELDS {
            if !touched.contains(&format!("{iface}_interface")) {
                *interface_slot(&mut fields, iface) = None;
            }
        }
    }
    if fields.driver != node.driver
        || interfaces_changed
        || fields.conductor_group != node.conductor_group
    {
        let (driver, group) = (fields.driver.clone(), fields.conductor_group.clone());
        resolve_interfaces(&state, &driver, &group, &mut fields, false).await?;
    }
    if node.instance_uuid.is_some()
        && fields.instance_uuid.is_some()
        && fields.instance_uuid != node.instance_uuid
    {
        return Err(ApiError::Conflict(format!(
            "Node {} is associated with instance {}.",
            node.uuid,
            node.instance_uuid.as_deref().unwrap_or_default()
        )));
    }
    if node.allocation_id.is_some()
        && fields.instance_uuid.is_none()
        && !node.maintenance
        && !INTERFACE_CHANGE_STATES.contains(&node.provision_state.as_str())
    {
        return Err(ApiError::Conflict(format!(
            "Node {} with an allocation can not have instance_uuid removed unless it is in one of allowed ({}) states or in maintenance mode. Current state is '{}'.",
            node.uuid,
            INTERFACE_CHANGE_STATES.join(", "),
            node.provision_state
        )));
    }
    let (name, instance_uuid, uuid) = (
        fields.name.clone(),
        fields.instance_uuid.clone(),
        node.uuid.clone(),
    );
    let seen = node.clone();
    let updated = state
        .db
        .run(move |conn| Node::update_fields(conn, &seen, &fields))
        .await
        .map_err(|e| duplicate(e, name.as_deref(), &uuid, instance_uuid.as_deref()))?;
    let Some(updated) = updated else {
        return Err(changed_meanwhile(&state, &node, version).await);
    };
    let base = base_url(&req, &state);
    let ctx = node_context(&state, &updated, &base, version).await?;
    state.notifier.send(notify::node_crud(
        &updated,
        "update",
        ctx.chassis_uuid.as_deref(),
    ));
    Ok(HttpResponse::Ok().json(node_body(&updated, &ctx, None)))
}

/// The 409 for a guarded write that found the node locked or changed
/// since it was read.
pub async fn changed_meanwhile(state: &AppState, node: &Node, version: Microversion) -> ApiError {
    match find_node(state, &node.uuid, version).await {
        Ok(latest) => match latest.reservation {
            Some(holder) => ApiError::node_locked(&node.uuid, &holder),
            None => ApiError::Conflict(format!(
                "Node {} was modified by another request; please retry.",
                node.uuid
            )),
        },
        Err(e) => e,
    }
}

/// `DELETE /v1/nodes/{ident}`.
pub async fn delete(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = wait_unlocked(&state, find_node(&state, &path, version).await?).await?;
    if !node.maintenance
        && let Some(instance) = &node.instance_uuid
    {
        return Err(ApiError::Conflict(format!(
            "Node {} is associated with instance {instance}.",
            node.uuid
        )));
    }
    if node.protected {
        return Err(ApiError::Forbidden(format!(
            "Node {} is protected and cannot be undeployed, rebuilt or deleted",
            node.uuid
        )));
    }
    let allow_available = state.settings.conductor.allow_deleting_available_nodes;
    let current = node.provision_state.parse::<ProvisionState>().ok();
    if !node.maintenance && !current.is_some_and(|s| s.delete_allowed(allow_available)) {
        let valid = if allow_available {
            "('manageable', 'enroll', 'adopt failed', 'available')"
        } else {
            "('manageable', 'enroll', 'adopt failed')"
        };
        return Err(ApiError::Conflict(format!(
            "Can not delete node \"{}\" while it is in provision state \"{}\". Valid provision states to perform deletion are: \"{valid}\", or set the node into maintenance mode",
            node.uuid, node.provision_state
        )));
    }
    let seen = node.clone();
    let deleted = state
        .db
        .run(move |conn| Node::delete_unchanged(conn, &seen))
        .await?;
    if !deleted {
        return Err(changed_meanwhile(&state, &node, version).await);
    }
    state
        .notifier
        .send(notify::node_crud(&node, "delete", None));
    Ok(HttpResponse::NoContent().finish())
}
