//! `POST /v1/events` (1.54): external (Neutron port) events. Ironic only
//! checks and logs them; so does Ferric, which has no network service to
//! wait on.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::Value;

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::validation::{is_uuid_like, mac_address, py_repr};

const EVENT_TYPES: [&str; 3] = [
    "network.bind_port",
    "network.unbind_port",
    "network.delete_port",
];

const KEYS: [&str; 7] = [
    "event",
    "port_id",
    "mac_address",
    "status",
    "device_id",
    "binding:host_id",
    "binding:vnic_type",
];

fn schema_error(message: String) -> ApiError {
    ApiError::BadRequest(format!("Schema error: {message}"))
}

fn check_event(event: &Value) -> Result<(), ApiError> {
    let Value::Object(map) = event else {
        return Err(schema_error(format!(
            "{} is not of type 'object'",
            py_repr(event)
        )));
    };
    if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(schema_error(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    for key in ["event", "port_id", "mac_address", "status"] {
        if !map.contains_key(key) {
            return Err(schema_error(format!("'{key}' is a required property")));
        }
    }
    let kind = &map["event"];
    if !kind.as_str().is_some_and(|k| EVENT_TYPES.contains(&k)) {
        return Err(schema_error(format!(
            "{} is not one of [{}]",
            py_repr(kind),
            EVENT_TYPES.map(|t| format!("'{t}'")).join(", ")
        )));
    }
    for key in ["port_id", "device_id", "binding:host_id"] {
        match map.get(key) {
            None | Some(Value::Null) if key != "port_id" => {}
            Some(Value::String(s)) if is_uuid_like(s) => {}
            Some(other) => {
                return Err(schema_error(format!("{} is not a 'uuid'", py_repr(other))));
            }
            None => {}
        }
    }
    match &map["mac_address"] {
        Value::String(mac) => {
            mac_address("mac_address", mac)?;
        }
        other => {
            return Err(schema_error(format!(
                "{} is not of type 'string'",
                py_repr(other)
            )));
        }
    }
    Ok(())
}

/// `POST /v1/events`: 204 once every event is well formed.
pub async fn post(
    version: Microversion,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(54) {
        return Err(ApiError::routing(StatusCode::NOT_FOUND, ""));
    }
    let events = match body.get("events") {
        Some(Value::Array(events)) => events,
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'array'",
                py_repr(other)
            )));
        }
        None => return Err(schema_error("'events' is a required property".into())),
    };
    if events.is_empty() {
        return Err(schema_error("[] should be non-empty".into()));
    }
    for event in events {
        check_event(event)?;
    }
    for event in events {
        tracing::info!(event = %event, "external event received");
    }
    Ok(HttpResponse::NoContent().finish())
}
