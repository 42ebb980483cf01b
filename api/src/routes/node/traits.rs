//! `traits` (1.37): list, replace, add one, remove one or all; at most 50.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use serde_json::json;

use super::unlocked;
use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::routes::common::{base_url, find_node};
use crate::validation::{check_trait, trait_list};

const NODE_TRAITS_USAGE: &str = "A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> with no body, or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits with the list of traits specified in the request body.";

/// Most traits a node may have.
const MAX_TRAITS: usize = 50;

/// Below 1.37 a node has no traits: Ironic answers as its releases before
/// them did, 406 to a GET, 405 to a PUT and 404 to a DELETE.
fn traits_gate(version: Microversion) -> Result<(), ApiError> {
    if version.at_least(37) {
        Ok(())
    } else {
        Err(ApiError::not_acceptable())
    }
}

/// A PUT below 1.37 meets no route (405, routing body); a DELETE falls
/// through to the node controller, which finds nothing (404 fault body).
fn traits_write_gate(version: Microversion, method: StatusCode) -> Result<(), ApiError> {
    if version.at_least(37) {
        Ok(())
    } else if method == StatusCode::NOT_FOUND {
        Err(ApiError::NotFound("Resource could not be found.".into()))
    } else {
        Err(ApiError::routing(method, ""))
    }
}

pub async fn get_traits(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version)?;
    let node = find_node(&state, &path, version).await?;
    let id = node.id;
    let traits = state.db.run(move |conn| Node::traits(conn, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "traits": traits })))
}

pub async fn set_traits(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    traits_write_gate(version, StatusCode::METHOD_NOT_ALLOWED)?;
    let traits = trait_list(&body, NODE_TRAITS_USAGE)?;
    let node = unlocked(&state, &path, version).await?;
    if traits.len() > MAX_TRAITS {
        return Err(ApiError::BadRequest(format!(
            "Could not modify traits for node {} as it would exceed the maximum number of traits per node ({} vs. {MAX_TRAITS})",
            node.id,
            traits.len()
        )));
    }
    let id = node.id;
    state
        .db
        .run(move |conn| Node::set_traits(conn, id, &traits))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::Conflict(format!(
                    "The traits of node {} were changed by another request; please retry.",
                    node.uuid
                ))
            } else {
                e.into()
            }
        })?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn add_trait(
    Call(req, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    traits_write_gate(version, StatusCode::METHOD_NOT_ALLOWED)?;
    let (ident, name) = path.into_inner();
    let name = check_trait("trait", &json!(name))?;
    let node = unlocked(&state, &ident, version).await?;
    let id = node.id;
    let key = name.clone();
    let count = state
        .db
        .run(move |conn| {
            let mut traits = Node::traits(conn, id)?;
            if !traits.contains(&key) {
                traits.push(key.clone());
            }
            Ok(traits.len())
        })
        .await?;
    if count > MAX_TRAITS {
        return Err(ApiError::BadRequest(format!(
            "Could not modify traits for node {id} as it would exceed the maximum number of traits per node ({count} vs. {MAX_TRAITS})"
        )));
    }
    let key = name.clone();
    state
        .db
        .run(move |conn| Node::add_trait(conn, id, &key))
        .await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::NoContent()
        .insert_header(("Location", format!("{base}/v1/nodes/{ident}/traits/{name}")))
        .finish())
}

pub async fn delete_traits(
    Call(_, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    traits_write_gate(version, StatusCode::NOT_FOUND)?;
    let node = unlocked(&state, &path, version).await?;
    let id = node.id;
    state
        .db
        .run(move |conn| Node::set_traits(conn, id, &[]))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_trait(
    Call(_, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    traits_write_gate(version, StatusCode::NOT_FOUND)?;
    let (ident, name) = path.into_inner();
    let node = unlocked(&state, &ident, version).await?;
    let id = node.id;
    let key = name.clone();
    let removed = state
        .db
        .run(move |conn| Node::remove_trait(conn, id, &key))
        .await?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "Node {} doesn't have a trait '{name}'",
            node.uuid
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}
