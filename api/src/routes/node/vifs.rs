//! `vifs` (1.28) with the `noop` network interface: attach and detach are
//! accepted and change nothing, the list is empty (a locked node still
//! answers 409).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::{unknown_path, unlocked};
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::routes::common::find_node;
use crate::validation::py_repr;

/// `GET /v1/nodes/{ident}/vifs`: `noop` networking records no VIFs.
pub async fn list_vifs(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(28) {
        return Err(unknown_path());
    }
    find_node(&state, &path, version).await?;
    Ok(HttpResponse::Ok().json(json!({ "vifs": [] })))
}

/// `POST /v1/nodes/{ident}/vifs` with `{"id": …}`.
pub async fn attach_vif(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(28) {
        return Err(unknown_path());
    }
    let schema_error = |m: String| ApiError::BadRequest(format!("Schema error for vif: {m}"));
    let Value::Object(map) = &body else {
        return Err(schema_error(format!(
            "{} is not of type 'object'",
            py_repr(&body)
        )));
    };
    match map.get("id") {
        None => return Err(schema_error("'id' is a required property".into())),
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(schema_error(format!(
                "{} is not of type 'string'",
                py_repr(other)
            )));
        }
    }
    unlocked(&state, &path, version).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v1/nodes/{ident}/vifs/{vif}`.
pub async fn detach_vif(
    Call(_, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    if !version.at_least(28) {
        return Err(unknown_path());
    }
    let (ident, _vif) = path.into_inner();
    unlocked(&state, &ident, version).await?;
    Ok(HttpResponse::NoContent().finish())
}
