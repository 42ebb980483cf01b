//! `states/console`: the `fake` console only flips `console_enabled`;
//! `fake-graphical` also records its console "container" (Ironic's fake
//! provider's 192.0.2.1:5900) and a noVNC token in `driver_internal_info`
//! and links to `[vnc] public_url`; `no-console` refuses.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::{Node, NodeSettings};
use serde_json::{Value, json};

use super::{unlocked, unsupported, write};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::pagination::parse_bool;
use crate::routes::common::{base_url, find_node};
use crate::state::AppState;
use base64::Engine as _;

/// Ironic's fake graphical console.
const GRAPHICAL: &str = "fake-graphical";

/// What Ironic's fake console container provider answers.
const FAKE_VNC: (&str, u16) = ("192.0.2.1", 5900);

/// What Python's `urllib.parse.quote` leaves as it is (its default safe
/// `/`, and the unreserved characters).
const QUOTE_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// Starts or stops the fake graphical console: its VNC endpoint and a new
/// noVNC token in `driver_internal_info` (removed when it stops), with
/// `console_enabled`, in one write that lands only on what was read.
async fn set_graphical(state: &AppState, node: &Node, enabled: bool) -> Result<(), ApiError> {
    let mut internal = node
        .driver_internal_info_map()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let keys = [
        "vnc_host",
        "vnc_port",
        "novnc_secret_token",
        "novnc_secret_token_created",
    ];
    for key in keys {
        internal.remove(key);
    }
    if enabled {
        let mut secret = [0_u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        internal.insert("vnc_host".into(), json!(FAKE_VNC.0));
        internal.insert("vnc_port".into(), json!(FAKE_VNC.1));
        internal.insert(
            "novnc_secret_token".into(),
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)),
        );
        internal.insert(
            "novnc_secret_token_created".into(),
            json!(
                ferric_common::db::now()
                    .format("%Y-%m-%dT%H:%M:%S%.6f")
                    .to_string()
            ),
        );
    }
    let (id, seen, new) = (
        node.id,
        node.driver_internal_info.clone(),
        Value::Object(internal).to_string(),
    );
    let written = state
        .db
        .run(move |conn| Node::write_console(conn, id, &seen, enabled, &new))
        .await?;
    if written {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "Node {} is changing; please retry.",
            node.uuid
        )))
    }
}

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
    let info = match (node.console_enabled, node.console_interface.as_deref()) {
        (false, _) => Value::Null,
        (true, Some(GRAPHICAL)) => {
            let internal = node.driver_internal_info_map().unwrap_or_default();
            let token = internal
                .get("novnc_secret_token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // As Ironic's vnc.get_console: the noVNC page, its path quoted.
            let path = format!("websockify?node={}&token={token}", node.uuid);
            json!({
                "type": "vnc",
                "url": format!("{}?path={}", state.settings.vnc.public_url, percent_encoding::utf8_percent_encode(&path, QUOTE_SAFE)),
            })
        }
        (true, _) => json!({}),
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
    if node.console_interface.as_deref() == Some(GRAPHICAL) {
        set_graphical(&state, &node, enabled).await?;
        let base = base_url(&req, &state);
        return Ok(HttpResponse::Accepted()
            .insert_header((
                "Location",
                format!("{base}/v1/nodes/{}/states/console", path.as_str()),
            ))
            .finish());
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
