//! `states/console`: the `fake` console only flips `console_enabled`;
//! `no-console` refuses.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::{Node, NodeSettings};
use serde_json::{Value, json};

use super::{unlocked, unsupported, write};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::pagination::parse_bool;
use crate::routes::common::{base_url, find_node};

fn console_supported(node: &Node) -> bool {
    node.console_interface
        .as_deref()
        .is_some_and(|c| c != "no-console")
}

/// `GET /v1/nodes/{ident}/states/console`.
pub async fn get_console(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    if !console_supported(&node) {
        return Err(unsupported(&node, "console"));
    }
    let info = if node.console_enabled {
        json!({})
    } else {
        Value::Null
    };
    Ok(HttpResponse::Ok().json(json!({
        "console_enabled": node.console_enabled,
        "console_info": info,
    })))
}

/// `PUT /v1/nodes/{ident}/states/console` with `{"enabled": bool}`: 202.
pub async fn set_console(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let enabled = match body.get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => parse_bool("enabled", s).map_err(|_| {
            ApiError::BadRequest(format!(
                "Invalid enabled: Unrecognized value '{s}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            ))
        })?,
        _ => {
            return Err(ApiError::BadRequest(
                "Missing argument: \"enabled\"".into(),
            ));
        }
    };
    let node = unlocked(&state, &path, version).await?;
    if !console_supported(&node) {
        return Err(unsupported(&node, "console"));
    }
    write(
        &state,
        &node,
        NodeSettings {
            console_enabled: Some(enabled),
            ..NodeSettings::default()
        },
    )
    .await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Accepted()
        .insert_header((
            "Location",
            format!("{base}/v1/nodes/{}/states/console", path.as_str()),
        ))
        .finish())
}
