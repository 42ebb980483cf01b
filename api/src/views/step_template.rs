//! Deploy template and runbook bodies: steps with secret-looking `args`
//! masked, a runbook's `description` and `traits` only from 1.112.

use ferric_common::db::models::step_template::{DeployTemplate, Runbook};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::views::masking::mask_secrets;
use crate::views::{json_column, links, opt, timestamp};

/// Fields `?fields=` may name on a deploy template (its request schema).
pub const DEPLOY_TEMPLATE_FIELDS: [&str; 8] = [
    "created_at",
    "description",
    "extra",
    "links",
    "name",
    "steps",
    "updated_at",
    "uuid",
];

/// Fields a plain list shows.
pub const DEFAULT_LIST_FIELDS: [&str; 2] = ["uuid", "name"];

/// Runbook traits, `description` and relaxed names arrive with 1.112.
pub const RUNBOOK_TRAITS_VERSION: u32 = 112;

/// # Errors
/// 400 naming the first field a deploy template does not have, as
/// Ironic's query schema words it.
pub fn check_deploy_template_fields(fields: &[String]) -> Result<(), ApiError> {
    match fields
        .iter()
        .find(|f| !DEPLOY_TEMPLATE_FIELDS.contains(&f.as_str()))
    {
        Some(bad) => Err(ApiError::BadRequest(format!(
            "Schema error: '{bad}' is not one of [{}]",
            DEPLOY_TEMPLATE_FIELDS.map(|f| format!("'{f}'")).join(", ")
        ))),
        None => Ok(()),
    }
}

fn runbook_field_names(version: Microversion) -> Vec<&'static str> {
    let mut names = vec![
        "uuid",
        "created_at",
        "updated_at",
        "name",
        "extra",
        "public",
        "owner",
        "disable_ramdisk",
    ];
    if version.at_least(RUNBOOK_TRAITS_VERSION) {
        names.push("description");
    }
    names.extend(["links", "steps"]);
    if version.at_least(RUNBOOK_TRAITS_VERSION) {
        names.push("traits");
    }
    names
}

/// # Errors
/// 400 `Field(s) "x" are not valid` for a field the runbook body does not
/// have at this version.
pub fn check_runbook_fields(fields: &[String], version: Microversion) -> Result<(), ApiError> {
    let names = runbook_field_names(version);
    crate::validation::check_known_fields(fields, |f| names.contains(&f))
}

fn masked_steps(stored: &str) -> Value {
    let mut steps = json_column(stored);
    mask_secrets(&mut steps);
    steps
}

/// Keeps the requested fields (and `links`, always).
fn narrow(mut body: Map<String, Value>, fields: Option<&[String]>) -> Value {
    if let Some(fields) = fields {
        body.retain(|k, _| k == "links" || fields.iter().any(|f| f == k));
    }
    Value::Object(body)
}

pub fn deploy_template_body(t: &DeployTemplate, base: &str, fields: Option<&[String]>) -> Value {
    let mut body = Map::new();
    body.insert("uuid".into(), json!(t.uuid));
    body.insert("created_at".into(), timestamp(Some(t.created_at)));
    body.insert("updated_at".into(), timestamp(t.updated_at));
    body.insert("name".into(), json!(t.name));
    body.insert("extra".into(), json_column(&t.extra));
    body.insert(
        "links".into(),
        links(base, &format!("deploy_templates/{}", t.uuid)),
    );
    body.insert("steps".into(), masked_steps(&t.steps));
    narrow(body, fields)
}

pub fn runbook_body(
    r: &Runbook,
    base: &str,
    version: Microversion,
    fields: Option<&[String]>,
) -> Value {
    let mut body = Map::new();
    for name in runbook_field_names(version) {
        let value = match name {
            "uuid" => json!(r.uuid),
            "created_at" => timestamp(Some(r.created_at)),
            "updated_at" => timestamp(r.updated_at),
            "name" => json!(r.name),
            "extra" => json_column(&r.extra),
            "public" => json!(r.public),
            "owner" => opt(&r.owner),
            "disable_ramdisk" => json!(r.disable_ramdisk),
            "description" => opt(&r.description),
            "links" => links(base, &format!("runbooks/{}", r.uuid)),
            "steps" => masked_steps(&r.steps),
            "traits" => json_column(&r.traits),
            _ => Value::Null,
        };
        body.insert(name.into(), value);
    }
    narrow(body, fields)
}
