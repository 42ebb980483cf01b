//! `validate` (`/v1/nodes/{ident}/validate` and `/v1/nodes/validate?node=`):
//! each interface's validation, as the node's conductor reports it.

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use ferric_proto::v1::ValidateInterfaces;
use ferric_proto::v1::task::Kind;
use ferric_proto::v1::task_reply::Outcome;
use serde_json::{Map, Value, json};

use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::RequestId;
use crate::routes::common::find_node;
use crate::state::AppState;

/// `GET /v1/nodes/{ident}/validate` and `GET /v1/nodes/validate?node=`.
async fn validate(
    state: web::Data<AppState>,
    request_id: RequestId,
    node: &Node,
) -> Result<HttpResponse, ApiError> {
    let kind = Kind::Validate(ValidateInterfaces {});
    let validation = state
        .ask(node, &request_id.0, kind, |reply| match reply {
            Outcome::Validation(validation) => Some(validation),
            _ => None,
        })
        .await?;
    let mut out = Map::new();
    for iface in validation.interfaces {
        let mut entry = Map::new();
        entry.insert("result".into(), json!(iface.result));
        if let Some(reason) = iface.reason {
            entry.insert("reason".into(), json!(reason));
        }
        out.insert(iface.interface, Value::Object(entry));
    }
    Ok(HttpResponse::Ok().json(Value::Object(out)))
}

pub async fn validate_node(
    Call(_, state, version, request_id): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let node = find_node(&state, &path, version).await?;
    validate(state, request_id, &node).await
}

pub async fn validate_by_query(
    Call(req, state, version, request_id): Call,
) -> Result<HttpResponse, ApiError> {
    let query = crate::pagination::parse_query(req.query_string());
    let ident = query
        .get("node")
        .or_else(|| query.get("node_uuid"))
        .ok_or_else(|| ApiError::BadRequest("Missing mandatory parameter: node".into()))?;
    let node = find_node(&state, ident, version).await?;
    validate(state, request_id, &node).await
}
