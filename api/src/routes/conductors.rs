//! `/v1/conductors` (1.49+).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{parse_bool, parse_query};
use crate::routes::common::base_url;
use crate::views::conductor::conductor_body;

fn gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(49) {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "The API is not supported for this version".into(),
        ))
    }
}

pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let query = parse_query(req.query_string());
    let detail = match query.get("detail") {
        Some(v) => parse_bool("detail", v)?,
        None => false,
    };
    let view = state.cluster(true).await?;
    let base = base_url(&req, &state);
    let items: Vec<Value> = view
        .conductors()
        .iter()
        .map(|c| conductor_body(c, &view, &base, detail))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "conductors": items })))
}

pub async fn show(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version)?;
    let view = state.cluster(true).await?;
    let conductor = view
        .conductors()
        .iter()
        .find(|c| c.hostname == *path)
        .ok_or_else(|| {
            ApiError::NotFound(format!("Conductor {} could not be found.", path.as_str()))
        })?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(conductor_body(conductor, &view, &base, true)))
}
