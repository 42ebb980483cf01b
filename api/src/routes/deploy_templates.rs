//! `/v1/deploy_templates` (1.55): named deploy step lists a node runs when
//! its instance asks for a trait of the same name. Names are traits
//! (`CUSTOM_*` or standard), unique; steps as [`step_lists`] checks them.

use actix_web::HttpRequest;
use chrono::NaiveDateTime;
use ferric_common::db::models::step_template::{DeployTemplate, DeployTemplateFields};
use ferric_common::db::{AnyConnection, DbError};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::patch::{apply_patch, check_allowed_paths};
use crate::routes::resource::{Resource, unique_conflict};
use crate::routes::small_lists::{GateBody, resource_gate, sortable};
use crate::routes::step_lists::{DEPLOY_TEMPLATE_STEPS, check_steps};
use crate::validation::{Kind, check_object, check_trait, object_text};
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

sortable!(DeployTemplate, [uuid, name]);

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

impl Resource for DeployTemplate {
    type Fields = DeployTemplateFields;
    const COLLECTION: &'static str = "deploy_templates";
    const TITLE: &'static str = "Deploy template";
    const SORT_KEYS: &'static [&'static str] = &SORT_KEYS;
    const UNSORTABLE: &'static [&'static str] = &["extra", "steps"];
    const DEFAULT_LIST_FIELDS: &'static [&'static str] = &DEFAULT_LIST_FIELDS;

    fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
        resource_gate(
            req,
            version,
            VERSION,
            "The API version does not allow deploy templates",
            GateBody::Routing,
        )
    }

    fn check_fields(fields: &[String], _: Microversion) -> Result<(), ApiError> {
        check_deploy_template_fields(fields)
    }

    fn body(&self, base: &str, _: Microversion, fields: Option<&[String]>) -> Value {
        deploy_template_body(self, base, fields)
    }

    fn create_fields(
        body: &Value,
        _: Microversion,
    ) -> Result<(DeployTemplateFields, Option<String>), ApiError> {
        let map = check_object("template", body, SCHEMA, &["steps", "name"], &[])?;
        let uuid = map.get("uuid").and_then(Value::as_str).map(str::to_owned);
        Ok((fields_from(map)?, uuid))
    }

    fn check_patch_paths(ops: &[Value], _: Microversion) -> Result<(), ApiError> {
        check_allowed_paths(ops, &PATCH_ALLOWED).map(|_| ())
    }

    fn patched(&self, ops: &[Value], _: Microversion) -> Result<DeployTemplateFields, ApiError> {
        let mut doc = json!({
            "name": self.name,
            "extra": serde_json::from_str::<Value>(&self.extra).unwrap_or_else(|_| json!({})),
            "steps": serde_json::from_str::<Value>(&self.steps).unwrap_or_else(|_| json!([])),
        });
        apply_patch(&mut doc, ops)?;
        let map = check_object("template", &doc, SCHEMA, &["steps", "name"], &[])?;
        fields_from(map)
    }

    fn duplicate(e: DbError, fields: &DeployTemplateFields, uuid: &str) -> ApiError {
        unique_conflict(
            e,
            &[(
                "name",
                format!(
                    "A deploy template with name {} already exists.",
                    fields.name
                ),
            )],
            format!("A deploy template with UUID {uuid} already exists."),
        )
    }

    fn updated_at(&self) -> Option<NaiveDateTime> {
        self.updated_at
    }
    fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Self>, DbError> {
        DeployTemplate::by_ident(conn, ident)
    }
    fn all(conn: &mut AnyConnection) -> Result<Vec<Self>, DbError> {
        DeployTemplate::all(conn)
    }
    fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &DeployTemplateFields,
    ) -> Result<Self, DbError> {
        DeployTemplate::insert(conn, uuid, fields)
    }
    fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &DeployTemplateFields,
    ) -> Result<Option<Self>, DbError> {
        DeployTemplate::update(conn, id, seen, fields)
    }
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        DeployTemplate::delete(conn, id)
    }
}
