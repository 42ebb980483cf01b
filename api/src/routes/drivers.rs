//! `/v1/drivers`: hardware types enabled by alive conductors.

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
    let drivers: Vec<Value> = view
        .hardware_types()
        .iter()
        .map(|(name, hosts)| driver_body(name, hosts, &view, &base, version, detail))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "drivers": drivers })))
}

fn unknown_driver(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Could not find the following driver(s) or hardware type(s): {name}."
    ))
}

pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut view = state.cluster(false).await?;
    if !view.hardware_types().contains_key(path.as_str()) {
        view = state.cluster(true).await?;
    }
    let hosts = view
        .hardware_types()
        .get(path.as_str())
        .ok_or_else(|| unknown_driver(&path))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(driver_body(&path, hosts, &view, &base, version, true)))
}

pub async fn show_properties(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state.cluster(false).await?;
    if !view.hardware_types().contains_key(path.as_str()) {
        return Err(ApiError::NotFound(format!(
            "The driver '{}' is unknown.",
            path.as_str()
        )));
    }
    Ok(HttpResponse::Ok().json(properties(&path)))
}
