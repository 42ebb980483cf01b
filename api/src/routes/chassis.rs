//! `/v1/chassis`: racks or enclosures grouping nodes.

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::models::chassis::{Chassis, ChassisFields};
use ferric_common::db::models::node::Node;
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, next_link, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::base_url;
use crate::state::AppState;
use crate::validation::{Kind, check_object, expect_uuid};
use crate::views::chassis::{DEFAULT_LIST_FIELDS, chassis_body};
use crate::views::parse_fields;

const CHASSIS_SCHEMA: &[(&str, Kind)] = &[
    ("uuid", Kind::StringOrNull),
    ("extra", Kind::ObjectOrNull),
    ("description", Kind::StringOrNull),
];

fn fields_from(map: &Map<String, Value>) -> ChassisFields {
    ChassisFields {
        extra: match map.get("extra") {
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => "{}".into(),
        },
        description: map
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

async fn find(state: &AppState, ident: &str) -> Result<Chassis, ApiError> {
    let uuid = expect_uuid("chassis_uuid", ident)?;
    let key = uuid.clone();
    let chassis = state
        .db
        .run(move |conn| Chassis::by_uuid(conn, &key))
        .await?;
    chassis.ok_or_else(|| ApiError::NotFound(format!("Chassis {uuid} could not be found.")))
}

pub async fn create(
    Call(req, state, _, _): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body = if body.is_null() { json!({}) } else { body };
    let map = check_object(
        "chassis",
        &body,
        CHASSIS_SCHEMA,
        &[],
        &[("description", 255)],
    )?;
    let uuid = match map.get("uuid").and_then(Value::as_str) {
        Some(u) => expect_uuid("uuid", u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let fields = fields_from(map);
    let key = uuid.clone();
    let chassis = state
        .db
        .run(move |conn| Chassis::insert(conn, &key, &fields))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::Conflict(format!("A chassis with UUID {uuid} already exists."))
            } else {
                e.into()
            }
        })?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("{base}/v1/chassis/{}", chassis.uuid)))
        .json(chassis_body(&chassis, &base, None)))
}

pub async fn show(
    Call(req, state, _, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let chassis = find(&state, &path).await?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(chassis_body(&chassis, &base, fields.as_deref())))
}

async fn list_chassis(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    detail_path: bool,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string());
    let shape = pagination::list_shape(&query, version, detail_path, 43, &DEFAULT_LIST_FIELDS)?;
    let fields = shape.fields;
    let pagination =
        pagination::pagination(&query, state.settings.api.max_limit, &["id"], &["extra"])?;
    let marker = match &pagination.marker {
        Some(m) => Some(find(&state, m).await?),
        None => None,
    };
    let page = pagination.page.clone();
    let rows = state
        .db
        .run(move |conn| Chassis::list(conn, &page, marker.as_ref()))
        .await?;
    let base = base_url(&req, &state);
    let items: Vec<Value> = rows
        .iter()
        .map(|c| chassis_body(c, &base, fields.as_deref()))
        .collect();
    let path = if detail_path {
        "chassis/detail"
    } else {
        "chassis"
    };
    let last = rows.last().map(|c| c.uuid.as_str());
    let next = next_link(
        &base,
        path,
        &pagination,
        fields.as_deref(),
        &[],
        rows.len(),
        last,
    );
    Ok(HttpResponse::Ok().json(pagination::collection("chassis", items, next)))
}

pub async fn list(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_chassis(req, state, version, false).await
}

pub async fn list_detail(Call(req, state, version, _): Call) -> Result<HttpResponse, ApiError> {
    list_chassis(req, state, version, true).await
}

pub async fn update(
    Call(req, state, _, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    const ALLOWED: [&str; 3] = ["uuid", "extra", "description"];
    let ops = check_patch_ops(&body)?;
    check_allowed_paths(ops, &ALLOWED)?;
    let chassis = find(&state, &path).await?;
    let mut doc = json!({
        "uuid": chassis.uuid,
        "extra": serde_json::from_str::<Value>(&chassis.extra).unwrap_or_else(|_| json!({})),
        "description": chassis.description,
    });
    apply_patch(&mut doc, ops)?;
    if doc.get("uuid").and_then(Value::as_str) != Some(chassis.uuid.as_str()) {
        return Err(ApiError::BadRequest(
            "Cannot overwrite UUID for an existing Chassis.".into(),
        ));
    }
    let map = check_object("patch", &doc, CHASSIS_SCHEMA, &[], &[("description", 255)])?;
    let fields = fields_from(map);
    let id = chassis.id;
    let updated = state
        .db
        .run(move |conn| Chassis::update(conn, id, &fields))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("Chassis {} could not be found.", chassis.uuid))
        })?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(chassis_body(&updated, &base, None)))
}

pub async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let chassis = find(&state, &path).await?;
    let id = chassis.id;
    let deleted = state
        .db
        .run(move |conn| {
            if Node::count_in_chassis(conn, id)? > 0 {
                return Ok(false);
            }
            Chassis::delete(conn, id)
        })
        .await?;
    if !deleted {
        return Err(ApiError::BadRequest(format!(
            "Cannot complete the requested action because chassis {} contains nodes.",
            chassis.uuid
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}
