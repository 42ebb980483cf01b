//! `states/raid` (1.12): the requested layout is checked and stored as
//! `target_raid_config` (the `fake` RAID interface); `no-raid` refuses.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::NodeSettings;
use serde_json::Value;

use super::{unlocked, unsupported, write};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::validation::py_repr;

/// Checks one logical disk of a RAID layout (Ironic's
/// `raid_config_schema.json`, the parts clients trip over).
fn check_logical_disk(disk: &Value) -> Result<(), String> {
    let Value::Object(disk) = disk else {
        return Err(format!("{} is not of type 'object'", py_repr(disk)));
    };
    for key in ["raid_level", "size_gb"] {
        if !disk.contains_key(key) {
            return Err(format!("'{key}' is a required property"));
        }
    }
    const LEVELS: [&str; 9] = ["0", "1", "2", "5", "6", "1+0", "5+0", "6+0", "JBOD"];
    match disk["raid_level"].as_str() {
        Some(level) if LEVELS.contains(&level) => {}
        _ => {
            return Err(format!(
                "{} is not one of [{}]",
                py_repr(&disk["raid_level"]),
                LEVELS.map(|l| format!("'{l}'")).join(", ")
            ));
        }
    }
    match &disk["size_gb"] {
        Value::Number(n) if n.as_u64().is_some_and(|v| v > 0) => {}
        Value::String(s) if s == "MAX" => {}
        other => {
            return Err(format!(
                "{} is not valid under any of the given schemas",
                py_repr(other)
            ));
        }
    }
    Ok(())
}

/// `PUT /v1/nodes/{ident}/states/raid` (1.12): the target RAID layout.
pub async fn set_raid(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(12) {
        return Err(ApiError::not_acceptable());
    }
    let invalid = |m: String| ApiError::BadRequest(format!("RAID config validation error: {m}"));
    let Value::Object(config) = &body else {
        return Err(invalid(format!(
            "{} is not of type 'object'",
            py_repr(&body)
        )));
    };
    // An empty configuration clears the target, as in Ironic.
    let no_disks = Value::Array(Vec::new());
    let disks = match config.get("logical_disks") {
        Some(disks) => disks,
        None if config.is_empty() => &no_disks,
        None => return Err(invalid("'logical_disks' is a required property".into())),
    };
    let Value::Array(disks) = disks else {
        return Err(invalid(format!(
            "{} is not of type 'array'",
            py_repr(disks)
        )));
    };
    for disk in disks {
        check_logical_disk(disk).map_err(invalid)?;
    }
    let node = unlocked(&state, &path, version).await?;
    if node
        .raid_interface
        .as_deref()
        .is_none_or(|r| r == "no-raid")
    {
        return Err(unsupported(&node, "raid"));
    }
    write(
        &state,
        &node,
        NodeSettings {
            target_raid_config: Some(Value::Object(config.clone()).to_string()),
            ..NodeSettings::default()
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
