//! `vendor_passthru/methods` and `vendor_passthru`: the `fake` vendor
//! interface's methods.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::unsupported;
use crate::call::Call;
use crate::error::ApiError;
use crate::routes::common::find_node;

/// The `fake` vendor interface's passthru methods.
fn fake_vendor_methods() -> Value {
    let method = |description: &str, is_async: bool, exclusive: bool| {
        json!({
            "http_methods": ["POST"],
            "async": is_async,
            "description": description,
            "attach": false,
            "require_exclusive_lock": exclusive,
        })
    };
    json!({
        "fourth_method_shared_lock": method("Test if the value of bar is woof", true, false),
        "log_passthrough": method("Test pass-through to wait.", true, true),
        "second_method": method("Test if the value of bar is kazoo", true, true),
        "third_method_sync": method("Test if the value of bar is meow", false, true),
    })
}

/// `GET /v1/nodes/{ident}/vendor_passthru/methods`.
pub async fn vendor_methods(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    match node.vendor_interface.as_deref() {
        Some("fake") => Ok(HttpResponse::Ok().json(fake_vendor_methods())),
        _ => Ok(HttpResponse::Ok().json(json!({}))),
    }
}

/// `/v1/nodes/{ident}/vendor_passthru?method=…`: Ferric runs no vendor
/// methods yet; an unknown one gets Ironic's message.
pub async fn vendor_passthru(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = crate::pagination::parse_query(req.query_string());
    let node = find_node(&state, &path, version).await?;
    let Some(method) = query.get("method") else {
        return Err(ApiError::BadRequest("Method not specified".into()));
    };
    let methods = match node.vendor_interface.as_deref() {
        Some("fake") => fake_vendor_methods(),
        _ => json!({}),
    };
    if methods.get(method).is_none() {
        return Err(ApiError::BadRequest(format!(
            "No handler for method {method}"
        )));
    }
    Err(unsupported(
        &node,
        &format!("vendor passthru method {method}"),
    ))
}
