//! `/v1/deploy_templates` (1.55): named deploy step lists a node runs when
//! its instance asks for a trait of the same name. Names are traits
//! (`CUSTOM_*` or standard), unique; steps as [`step_lists`] checks them.

use actix_web::{HttpRequest, HttpResponse, web};
use ferric_common::db::DbError;
use ferric_common::db::models::step_template::{DeployTemplate, DeployTemplateFields};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, parse_query};
use crate::patch::{apply_patch, check_allowed_paths, check_patch_ops};
use crate::routes::common::base_url;
use crate::routes::small_lists::{
    GateBody, ListPage, Sortable, changed_meanwhile, echoed, resource_gate, respond, time_value,
};
use crate::routes::step_lists::{DEPLOY_TEMPLATE_STEPS, check_steps};
use crate::state::AppState;
use crate::validation::{Kind, check_object, check_trait, expect_uuid, object_text};
use crate::views::parse_fields;
use crate::views::step_template::{
    DEFAULT_LIST_FIELDS, check_deploy_template_fields, deploy_template_body,
};

const VERSION: u32 = 55;

const SCHEMA: &[(&str, Kind)] = &[
    ("description", Kind::StringOrNull),
    ("extra", Kind::ObjectOrNull),
    ("name", Kind::String),
    ("steps", Kind::Any),
    ("uuid", Kind::StringOrNull),
];

const PATCH_ALLOWED: [&str; 4] = ["extra", "name", "steps", "description"];

const SORT_KEYS: [&str; 5] = ["id", "uuid", "name", "created_at", "updated_at"];

/// Below 1.55 the resource does not exist: 404 to a GET, 405 otherwise.
fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
    resource_gate(
        req,
        version,
        VERSION,
        "The API version does not allow deploy templates",
        GateBody::Routing,
    )
}

fn not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Deploy template {ident} could not be found."))
}

fn duplicate(e: DbError, name: &str, uuid: &str) -> ApiError {
    if !e.is_unique_violation() {
        return e.into();
    }
    if e.violation_detail().contains("name") {
        ApiError::Conflict(format!(
            "A deploy template with name {name} already exists."
        ))
    } else {
        ApiError::Conflict(format!(
            "A deploy template with UUID {uuid} already exists."
        ))
    }
}

impl Sortable for DeployTemplate {
    fn id(&self) -> i32 {
        self.id
    }
    fn uuid(&self) -> &str {
        &self.uuid
    }
    fn sort_value(&self, key: &str) -> Value {
        match key {
            "uuid" => json!(self.uuid),
            "name" => json!(self.name),
            "created_at" => time_value(Some(self.created_at)),
            "updated_at" => time_value(self.updated_at),
            _ => json!(self.id),
        }
    }
}

/// Checks a whole template document (after a create body or a patch).
fn fields_from(map: &Map<String, Value>) -> Result<DeployTemplateFields, ApiError> {
    let name = check_trait("template", &map["name"])?;
    let steps = check_steps("template", DEPLOY_TEMPLATE_STEPS, &map["steps"])?;
    if let Some(d) = map.get("description").and_then(Value::as_str)
        && d.chars().count() > 255
    {
        return Err(ApiError::BadRequest(format!(
            "Schema error for template: {} is too long",
            crate::validation::py_repr(&map["description"])
        )));
    }
    let extra = object_text(map, "extra");
    Ok(DeployTemplateFields {
        name,
        extra,
        steps: steps.to_string(),
    })
}

async fn find(state: &AppState, ident: &str) -> Result<DeployTemplate, ApiError> {
    let key = ident.to_owned();
    state
        .db
        .run(move |conn| DeployTemplate::by_ident(conn, &key))
        .await?
        .ok_or_else(|| not_found(ident))
}

/// `GET /v1/deploy_templates`.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let query = parse_query(req.query_string());
    if let Some(fields) = parse_fields(query.get("fields")) {
        check_deploy_template_fields(&fields)?;
    }
    let shape = pagination::list_shape(&query, version, false, &DEFAULT_LIST_FIELDS)?;
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        &SORT_KEYS,
        &["extra", "steps"],
    )?;
    let rows = state.db.run(DeployTemplate::all).await?;
    let base = base_url(&req, &state);
    let page = ListPage {
        key: "deploy_templates",
        path: "deploy_templates",
        base: &base,
        fields: shape.fields.as_deref(),
        filters: &echoed(&query, &["detail"]),
        bytes_per_item: 512,
    };
    respond(
        rows,
        |_| true,
        &pagination,
        &page,
        not_found,
        |t| deploy_template_body(t, &base, shape.fields.as_deref()),
    )
}

/// `GET /v1/deploy_templates/{ident}`.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        check_deploy_template_fields(f)?;
    }
    let template = find(&state, &path).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(deploy_template_body(&template, &base, fields.as_deref())))
}

/// `POST /v1/deploy_templates`.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let map = check_object("template", &body, SCHEMA, &["steps", "name"], &[])?;
    let fields = fields_from(map)?;
    let uuid = match map.get("uuid").and_then(Value::as_str) {
        Some(u) => expect_uuid("uuid", u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let (name, key) = (fields.name.clone(), uuid.clone());
    let template = state
        .db
        .run(move |conn| DeployTemplate::insert(conn, &key, &fields))
        .await
        .map_err(|e| duplicate(e, &name, &uuid))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("{base}/v1/deploy_templates/{}", template.uuid),
        ))
        .json(deploy_template_body(&template, &base, None)))
}

/// `PATCH /v1/deploy_templates/{ident}`.
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let ops = check_patch_ops(&body)?;
    check_allowed_paths(ops, &PATCH_ALLOWED)?;
    let template = find(&state, &path).await?;
    let mut doc = json!({
        "name": template.name,
        "extra": serde_json::from_str::<Value>(&template.extra).unwrap_or_else(|_| json!({})),
        "steps": serde_json::from_str::<Value>(&template.steps).unwrap_or_else(|_| json!([])),
    });
    apply_patch(&mut doc, ops)?;
    let map = check_object("template", &doc, SCHEMA, &["steps", "name"], &[])?;
    let fields = fields_from(map)?;
    let (name, uuid, id, seen) = (
        fields.name.clone(),
        template.uuid.clone(),
        template.id,
        template.updated_at,
    );
    let updated = state
        .db
        .run(move |conn| DeployTemplate::update(conn, id, seen, &fields))
        .await
        .map_err(|e| duplicate(e, &name, &uuid))?
        .ok_or_else(|| changed_meanwhile("Deploy template", &template.uuid))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(deploy_template_body(&updated, &base, None)))
}

/// `DELETE /v1/deploy_templates/{ident}`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gate(version, &req)?;
    let template = find(&state, &path).await?;
    let id = template.id;
    if !state
        .db
        .run(move |conn| DeployTemplate::delete(conn, id))
        .await?
    {
        return Err(not_found(&path));
    }
    Ok(HttpResponse::NoContent().finish())
}
