//! `/v1/drivers`: hardware types enabled by alive conductors, their
//! properties, their RAID interface's logical disk properties and their
//! driver-level vendor methods.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::call::Call;
use crate::error::ApiError;
use crate::pagination::{parse_bool, parse_query};
use crate::routes::common::base_url;
use crate::state::AppState;
use crate::validation::no_unexpected;
use crate::views::driver::{driver_body, properties};

pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    no_unexpected(
        &query.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
        &["type", "detail", "fields"],
    )?;
    if (query.contains_key("type") || query.contains_key("detail")) && !version.at_least(30) {
        return Err(ApiError::NotAcceptable(
            "Request not acceptable. The minimal required API version should be 1.30".into(),
        ));
    }
    let detail = match query.get("detail") {
        Some(v) => parse_bool("detail", v)?,
        None => false,
    };
    let fields = driver_fields(query.get("fields"), version)?;
    if fields.is_some() && detail {
        return Err(ApiError::BadRequest(
            "Can not specify ?detail=True and fields in the same request.".into(),
        ));
    }
    match query.get("type").map(String::as_str) {
        None | Some("dynamic") => {}
        Some("classic") => return Ok(HttpResponse::Ok().json(json!({"drivers": []}))),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "\"type\" filter must be one of \"classic\" or \"dynamic\", if specified.".into(),
            ));
        }
    }
    let view = state.cluster(false).await?;
    let base = base_url(&req, &state);
    let drivers = view
        .hardware_types()
        .iter()
        .map(|(name, hosts)| {
            let body = driver_body(
                name,
                hosts,
                &view,
                &base,
                version,
                detail || fields.is_some(),
            );
            only_fields(body, fields.as_deref())
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(HttpResponse::Ok().json(json!({ "drivers": drivers })))
}

fn unknown_driver(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Could not find the following driver(s) or hardware type(s): {name}."
    ))
}

/// `?fields=` of a driver request (1.77; 406 below).
fn driver_fields(
    raw: Option<&String>,
    version: crate::microversion::Microversion,
) -> Result<Option<Vec<String>>, ApiError> {
    let fields = crate::views::parse_fields(raw);
    if fields.is_some() && !version.at_least(77) {
        return Err(ApiError::not_acceptable());
    }
    Ok(fields)
}

/// `body` with only `fields` (and its links), as Ironic's
/// `sanitize_dict`; a field the driver does not have is a 400.
fn only_fields(body: Value, fields: Option<&[String]>) -> Result<Value, ApiError> {
    let (Some(fields), Value::Object(map)) = (fields, &body) else {
        return Ok(body);
    };
    let invalid: Vec<&str> = fields
        .iter()
        .filter(|f| !map.contains_key(f.as_str()))
        .map(String::as_str)
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Field(s) \"{}\" are not valid",
            invalid.join(", ")
        )));
    }
    Ok(Value::Object(
        map.iter()
            .filter(|(k, _)| k.as_str() == "links" || fields.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    let fields = driver_fields(query.get("fields"), version)?;
    let view = known_driver(&state, &path).await?;
    let hosts = view
        .hardware_types()
        .get(path.as_str())
        .ok_or_else(|| unknown_driver(&path))?;
    let base = base_url(&req, &state);
    let body = driver_body(&path, hosts, &view, &base, version, true);
    Ok(HttpResponse::Ok().json(only_fields(body, fields.as_deref())?))
}

pub async fn show_properties(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    known_driver(&state, &path)
        .await
        .map_err(|_| driver_unknown(&path))?;
    Ok(HttpResponse::Ok().json(properties(&path)))
}

/// The driver, refreshed from the database when the cached view lacks it.
async fn known_driver(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<ferric_common::cluster::ClusterView>, ApiError> {
    let mut view = state.cluster(false).await?;
    if !view.hardware_types().contains_key(name) {
        view = state.cluster(true).await?;
    }
    if view.hardware_types().contains_key(name) {
        Ok(view)
    } else {
        Err(unknown_driver(name))
    }
}

/// What a logical disk of `target_raid_config` may say, with Ironic's
/// descriptions (its `raid_config_schema.json`, the schema every RAID
/// interface validates against).
const LOGICAL_DISK_PROPERTIES: [(&str, &str); 10] = [
    (
        "raid_level",
        "RAID level for the logical disk. Valid values are 'JBOD', '0', '1', '2', '5', '6', '1+0', '5+0' and '6+0'. Required.",
    ),
    (
        "size_gb",
        "Size in GiB (Integer) for the logical disk. Use 'MAX' as size_gb if this logical disk is supposed to use the rest of the space available. Required.",
    ),
    (
        "volume_name",
        "Name of the volume to be created. If this is not specified, it will be auto-generated. Optional.",
    ),
    (
        "is_root_volume",
        "Specifies whether this disk is a root volume. By default, this is False. Optional.",
    ),
    (
        "share_physical_disks",
        "Specifies whether other logical disks can share physical disks with this logical disk. By default, this is False. Optional.",
    ),
    (
        "disk_type",
        "The type of disk preferred. Valid values are 'hdd' and 'ssd'. If this is not specified, disk type will not be a selection criterion for choosing backing physical disks. Optional.",
    ),
    (
        "interface_type",
        "The interface type of disk. Valid values are 'sata', 'scsi' and 'sas'. If this is not specified, interface type will not be a selection criterion for choosing backing physical disks. Optional.",
    ),
    (
        "number_of_physical_disks",
        "Number of physical disks to use for this logical disk. By default, the driver uses the minimum number of disks required for that RAID level. Optional.",
    ),
    (
        "controller",
        "Controller to use for this logical disk. If not specified, the driver will choose a suitable RAID controller on the bare metal node. Optional.",
    ),
    (
        "physical_disks",
        "The physical disks to use for this logical disk. If not specified, the driver will choose suitable physical disks to use. Optional.",
    ),
];

/// Ironic's answer for a driver no conductor offers, on the paths that
/// ask a conductor about it.
fn driver_unknown(name: &str) -> ApiError {
    ApiError::NotFound(format!("The driver '{name}' is unknown."))
}

/// `GET /v1/drivers/{name}/raid/logical_disk_properties` (1.12): the
/// properties the driver's default RAID interface takes; 404 when it has
/// none (`no-raid`), as Ironic.
pub async fn raid_logical_disk_properties(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(12) {
        return Err(ApiError::not_acceptable());
    }
    let view = known_driver(&state, &path)
        .await
        .map_err(|_| driver_unknown(&path))?;
    let raid = view
        .interfaces(&path)
        .and_then(|i| i.get("raid"))
        .and_then(|c| c.default.clone());
    if raid.as_deref().is_none_or(|r| r == "no-raid") {
        return Err(ApiError::NotFound(format!(
            "Driver {} does not support raid (disabled or not implemented).",
            path.as_str()
        )));
    }
    let table: serde_json::Map<String, Value> = LOGICAL_DISK_PROPERTIES
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    Ok(HttpResponse::Ok().json(table))
}

/// `GET /v1/drivers/{name}/vendor_passthru/methods`: the driver-level
/// methods of its default vendor interface; none of Ferric's vendor
/// interfaces has any (their methods are per node), as Ironic's `fake`,
/// `ipmitool` and `redfish` ones.
pub async fn vendor_methods(
    Call(_, state, _, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    known_driver(&state, &path)
        .await
        .map_err(|_| driver_unknown(&path))?;
    Ok(HttpResponse::Ok().json(json!({})))
}
