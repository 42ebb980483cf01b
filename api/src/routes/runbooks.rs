//! `/v1/runbooks` (1.92): named clean/service step lists an operator runs on
//! a node (`PUT /states/provision` with `runbook`). Before 1.112 a name is
//! a trait and the node must have that trait; from 1.112 names are free
//! (RFC 3986 unreserved characters), runbooks carry their own `traits`
//! (`/v1/runbooks/{ident}/traits`) and a `description`. A public runbook
//! has no owner.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDateTime;
use ferric_common::db::AnyConnection;
use ferric_common::db::DbError;
use ferric_common::db::models::step_template::{Runbook, RunbookFields};
use serde_json::{Map, Value, json};

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::Query;
use crate::pagination::parse_bool;
use crate::patch::{apply_patch, check_allowed_paths};
use crate::routes::common::base_url;
use crate::routes::resource::{self, Resource, unique_conflict};
use crate::routes::small_lists::{GateBody, resource_gate, sortable};
use crate::routes::step_lists::{RUNBOOK_STEPS, check_steps};
use crate::state::AppState;
use crate::validation::{Kind, check_object, check_trait, object_text, py_repr, trait_list};
use crate::views::step_template::{
    DEFAULT_LIST_FIELDS, RUNBOOK_TRAITS_VERSION, check_runbook_fields, runbook_body,
};

const VERSION: u32 = 92;

/// The schema of a runbook from 1.112; before, without `description`.
const SCHEMA_112: [(&str, Kind); 8] = [
    ("uuid", Kind::StringOrNull),
    ("name", Kind::String),
    ("steps", Kind::Any),
    ("disable_ramdisk", Kind::BoolOrNull),
    ("extra", Kind::ObjectOrNull),
    ("public", Kind::BoolOrNull),
    ("owner", Kind::StringOrNull),
    ("description", Kind::StringOrNull),
];
const SCHEMA: &[(&str, Kind)] = SCHEMA_112.split_at(7).0;

/// What a PATCH may change from 1.112; before, not `description`.
const PATCH_ALLOWED_112: [&str; 7] = [
    "disable_ramdisk",
    "extra",
    "name",
    "owner",
    "public",
    "steps",
    "description",
];
const PATCH_ALLOWED: &[&str] = PATCH_ALLOWED_112.split_at(6).0;

const SORT_KEYS: [&str; 9] = [
    "id",
    "uuid",
    "name",
    "created_at",
    "updated_at",
    "public",
    "owner",
    "disable_ramdisk",
    "description",
];

const TRAITS_USAGE: &str = "A single runbook trait may be added via PUT /v1/runbooks/<runbook identifier>/traits/<trait> with no body, or all runbook traits may be replaced via PUT /v1/runbooks/<runbook identifier>/traits with the list of traits specified in the request body.";

/// Below 1.92 the resource does not exist: 404 to a GET, 405 otherwise.
fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
    resource_gate(
        req,
        version,
        VERSION,
        "The API version does not allow runbooks",
        GateBody::Routing,
    )
}

/// The traits sub-resource appears with 1.112.
fn traits_gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
    gate(version, req)?;
    if version.at_least(RUNBOOK_TRAITS_VERSION) {
        Ok(())
    } else {
        Err(ApiError::routing(
            StatusCode::NOT_FOUND,
            "The API version does not allow runbook traits",
        ))
    }
}

sortable!(
    Runbook,
    [uuid, name, public, owner, disable_ramdisk, description]
);

/// A runbook name: a trait before 1.112, RFC 3986 unreserved characters
/// from then on.
fn check_name(value: &Value, version: Microversion) -> Result<String, ApiError> {
    if !version.at_least(RUNBOOK_TRAITS_VERSION) {
        return check_trait("runbook", value);
    }
    let name = value.as_str().unwrap_or_default();
    let err = |m: String| ApiError::BadRequest(format!("Schema error for runbook: {m}"));
    if name.is_empty() {
        return Err(err("'' should be non-empty".into()));
    }
    if name.chars().count() > 255 {
        return Err(err(format!("{} is too long", py_repr(value))));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(err(format!(
            "{} does not match '^[A-Za-z0-9\\\\-._~]+$'",
            py_repr(value)
        )));
    }
    Ok(name.to_owned())
}

/// Checks a whole runbook document (a create body or a patched runbook);
/// `traits` are kept from `current` (they change only through `/traits`).
fn fields_from(map: &Map<String, Value>, version: Microversion) -> Result<RunbookFields, ApiError> {
    let name = check_name(&map["name"], version)?;
    let steps = check_steps("runbook", RUNBOOK_STEPS, &map["steps"])?;
    let s = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    for (key, max) in [("owner", 255), ("description", 255)] {
        if let Some(v) = s(key)
            && v.chars().count() > max
        {
            return Err(ApiError::BadRequest(format!(
                "Schema error for runbook: {} is too long",
                py_repr(&map[key])
            )));
        }
    }
    let public = map.get("public").and_then(Value::as_bool).unwrap_or(false);
    let owner = s("owner");
    if public && owner.is_some() {
        return Err(ApiError::BadRequest(
            "There cannot be an owner for a public runbook".into(),
        ));
    }
    let extra = object_text(map, "extra");
    Ok(RunbookFields {
        name,
        description: s("description"),
        steps: steps.to_string(),
        disable_ramdisk: map
            .get("disable_ramdisk")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        public,
        owner,
        extra,
    })
}

/// The schema of a runbook at `version` (`description` from 1.112).
fn schema(version: Microversion) -> &'static [(&'static str, Kind)] {
    if version.at_least(RUNBOOK_TRAITS_VERSION) {
        &SCHEMA_112
    } else {
        SCHEMA
    }
}

/// Looks a runbook up by UUID or name.
///
/// # Errors
/// 404 when none matches.
pub async fn find(state: &AppState, ident: &str) -> Result<Runbook, ApiError> {
    resource::find(state, ident).await
}

impl Resource for Runbook {
    type Fields = RunbookFields;
    const COLLECTION: &'static str = "runbooks";
    const TITLE: &'static str = "Runbook";
    const SORT_KEYS: &'static [&'static str] = &SORT_KEYS;
    const UNSORTABLE: &'static [&'static str] = &["extra", "steps", "traits"];
    const DEFAULT_LIST_FIELDS: &'static [&'static str] = &DEFAULT_LIST_FIELDS;

    fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError> {
        gate(version, req)
    }

    fn check_fields(fields: &[String], version: Microversion) -> Result<(), ApiError> {
        check_runbook_fields(fields, version)
    }

    /// `project` narrows to the caller's project; an operator (the only
    /// caller Ferric knows) sees every runbook either way.
    fn check_list_query(query: &Query) -> Result<(), ApiError> {
        if let Some(project) = query.get("project") {
            parse_bool("project", project)?;
        }
        Ok(())
    }

    fn body(&self, base: &str, version: Microversion, fields: Option<&[String]>) -> Value {
        runbook_body(self, base, version, fields)
    }

    fn create_fields(
        body: &Value,
        version: Microversion,
    ) -> Result<(RunbookFields, Option<String>), ApiError> {
        let map = check_object("runbook", body, schema(version), &["steps", "name"], &[])?;
        let uuid = map.get("uuid").and_then(Value::as_str).map(str::to_owned);
        Ok((fields_from(map, version)?, uuid))
    }

    fn check_patch_paths(ops: &[Value], version: Microversion) -> Result<(), ApiError> {
        patch_paths(ops, version).map(|_| ())
    }

    fn patched(&self, ops: &[Value], version: Microversion) -> Result<RunbookFields, ApiError> {
        let at_112 = version.at_least(RUNBOOK_TRAITS_VERSION);
        let touched = patch_paths(ops, version)?;
        let patch_value = |field: &str| {
            ops.iter()
                .find(|op| op.get("path").and_then(Value::as_str) == Some(&format!("/{field}")))
                .and_then(|op| op.get("value"))
        };
        let new_owner = patch_value("owner").filter(|v| !v.is_null());
        let new_public = patch_value("public");
        if new_owner.is_some() {
            let public_after = new_public.and_then(Value::as_bool).unwrap_or(false);
            if (self.public && new_public.is_none()) || public_after {
                return Err(ApiError::BadRequest(format!(
                    "Couldn't apply patch '{}'. Reason: There cannot be an owner for a public runbook",
                    py_repr(&Value::Array(ops.to_vec()))
                )));
            }
        }
        let mut doc = json!({
            "name": self.name,
            "steps": serde_json::from_str::<Value>(&self.steps).unwrap_or_else(|_| json!([])),
            "disable_ramdisk": self.disable_ramdisk,
            "extra": serde_json::from_str::<Value>(&self.extra).unwrap_or_else(|_| json!({})),
            "public": self.public,
            // Making a runbook public drops its owner, as Ironic does.
            "owner": if touched.iter().any(|t| t == "public") { None } else { self.owner.clone() },
        });
        if at_112 {
            doc["description"] = json!(self.description);
        }
        apply_patch(&mut doc, ops)?;
        let map = check_object("runbook", &doc, schema(version), &["steps", "name"], &[])?;
        let mut fields = fields_from(map, version)?;
        if !at_112 {
            fields.description = self.description.clone();
        }
        Ok(fields)
    }

    fn duplicate(e: DbError, fields: &RunbookFields, uuid: &str) -> ApiError {
        unique_conflict(
            e,
            &[(
                "name",
                format!("A runbook with name {} already exists.", fields.name),
            )],
            format!("A runbook with UUID {uuid} already exists."),
        )
    }

    fn updated_at(&self) -> Option<NaiveDateTime> {
        self.updated_at
    }
    fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Self>, DbError> {
        Runbook::by_ident(conn, ident)
    }
    fn all(conn: &mut AnyConnection) -> Result<Vec<Self>, DbError> {
        Runbook::all(conn, None)
    }
    fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &RunbookFields,
    ) -> Result<Self, DbError> {
        Runbook::insert(conn, uuid, fields)
    }
    fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &RunbookFields,
    ) -> Result<Option<Self>, DbError> {
        Runbook::update(conn, id, seen, fields)
    }
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        Runbook::delete(conn, id)
    }
}

/// The fields a PATCH at `version` touches, each one Ironic lets change.
fn patch_paths(ops: &[Value], version: Microversion) -> Result<Vec<String>, ApiError> {
    if version.at_least(RUNBOOK_TRAITS_VERSION) {
        check_allowed_paths(ops, &PATCH_ALLOWED_112)
    } else {
        check_allowed_paths(ops, PATCH_ALLOWED)
    }
}

fn stored_traits(runbook: &Runbook) -> Vec<String> {
    serde_json::from_str(&runbook.traits).unwrap_or_default()
}

/// Applies `change` to a runbook's traits without losing a concurrent
/// change: the write only lands if the traits are still what was read.
async fn change_traits(
    state: &AppState,
    ident: &str,
    change: impl Fn(&mut Vec<String>),
) -> Result<(), ApiError> {
    for _ in 0..5 {
        let runbook = find(state, ident).await?;
        let mut traits = stored_traits(&runbook);
        change(&mut traits);
        let new = serde_json::to_string(&traits).map_err(|e| ApiError::Internal(e.to_string()))?;
        if new == runbook.traits {
            return Ok(());
        }
        let (id, old) = (runbook.id, runbook.traits);
        if state
            .db
            .run(move |conn| Runbook::replace_traits(conn, id, &old, &new))
            .await?
        {
            return Ok(());
        }
    }
    Err(ApiError::Conflict(format!(
        "The traits of runbook {ident} were changed by another request; please retry."
    )))
}

/// `GET /v1/runbooks/{ident}/traits` (1.112).
pub async fn get_traits(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version, &req)?;
    let runbook = find(&state, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "traits": stored_traits(&runbook) })))
}

/// `PUT /v1/runbooks/{ident}/traits` with `{"traits": [...]}`: replaces them.
pub async fn set_traits(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version, &req)?;
    let traits = trait_list(&body, TRAITS_USAGE)?;
    change_traits(&state, &path, |current| current.clone_from(&traits)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /v1/runbooks/{ident}/traits/{trait}`: adds one, with no body.
pub async fn add_trait(
    Call(req, state, version, _): Call,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version, &req)?;
    let (ident, name) = path.into_inner();
    let name = check_trait("trait", &json!(name))?;
    if serde_json::from_slice::<Value>(&body).is_ok_and(|v| !v.is_null()) {
        return Err(ApiError::BadRequest(
            "No body should be provided when adding a trait".into(),
        ));
    }
    change_traits(&state, &ident, |traits| {
        if !traits.contains(&name) {
            traits.push(name.clone());
        }
    })
    .await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::NoContent()
        .insert_header((
            "Location",
            format!("{base}/v1/runbooks/{ident}/traits/{name}"),
        ))
        .finish())
}

/// `DELETE /v1/runbooks/{ident}/traits`: removes them all.
pub async fn delete_traits(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version, &req)?;
    change_traits(&state, &path, Vec::clear).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v1/runbooks/{ident}/traits/{trait}`: removes one; a trait the
/// runbook lacks is not an error (as in Ironic).
pub async fn delete_trait(
    Call(req, state, version, _): Call,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    traits_gate(version, &req)?;
    let (ident, name) = path.into_inner();
    change_traits(&state, &ident, |traits| traits.retain(|t| *t != name)).await?;
    Ok(HttpResponse::NoContent().finish())
}
