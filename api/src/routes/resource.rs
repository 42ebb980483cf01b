//! The list/show/create/patch/delete handlers the small named resources
//! share (deploy templates, runbooks, inspection rules): each implements
//! [`Resource`] with what differs (its gate, schema, body, queries and
//! messages) and the route table names `resource::list::<Row>` and so on.
//!
//! Invariants: every handler checks the resource's microversion gate
//! first; a PATCH lands only on the row it read (409 otherwise, as
//! [`changed_meanwhile`]); unique-constraint failures become the
//! resource's own 409 message.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDateTime;
use ferric_common::db::{AnyConnection, DbError};
use serde_json::Value;

use crate::body::JsonBody;
use crate::call::Call;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, Query, parse_query};
use crate::patch::check_patch_ops;
use crate::routes::common::base_url;
use crate::routes::small_lists::{ListPage, Sortable, changed_meanwhile, echoed, respond};
use crate::state::AppState;
use crate::validation::expect_uuid;
use crate::views::parse_fields;

/// What differs between the small named resources.
pub trait Resource: Sortable + Sized + Send + 'static {
    /// Checked row fields, as the table's insert and update take them.
    type Fields: Send + Sync + 'static;
    /// The URL segment below `/v1/` and the list's key.
    const COLLECTION: &'static str;
    /// The resource's name in messages (`Deploy template`).
    const TITLE: &'static str;
    const SORT_KEYS: &'static [&'static str];
    /// Columns Ironic refuses to sort by.
    const UNSORTABLE: &'static [&'static str];
    /// The fields a list shows without `detail` or `fields`.
    const DEFAULT_LIST_FIELDS: &'static [&'static str];
    /// Query parameters a list filters by (echoed in its `next` link).
    const FILTERS: &'static [&'static str] = &[];

    /// Below the resource's microversion: 404 to a GET, 405 otherwise.
    ///
    /// # Errors
    /// As above.
    fn gate(version: Microversion, req: &HttpRequest) -> Result<(), ApiError>;

    /// Checks a `fields` parameter.
    ///
    /// # Errors
    /// 400 naming the unknown fields.
    fn check_fields(fields: &[String], version: Microversion) -> Result<(), ApiError>;

    /// Checks the list's other query parameters.
    ///
    /// # Errors
    /// 400 for a bad value.
    fn check_list_query(query: &Query) -> Result<(), ApiError> {
        let _ = query;
        Ok(())
    }

    /// Whether a row passes the list's filters.
    fn listed(&self, query: &Query) -> bool {
        let _ = query;
        true
    }

    /// The row's body, limited to `fields` when given.
    fn body(&self, base: &str, version: Microversion, fields: Option<&[String]>) -> Value;

    /// The create body checked: the row's fields and the UUID it asks for.
    ///
    /// # Errors
    /// 400 with Ironic's schema message.
    fn create_fields(
        body: &Value,
        version: Microversion,
    ) -> Result<(Self::Fields, Option<String>), ApiError>;

    /// Checks the paths of the JSON-PATCH `ops` (before the row is read).
    ///
    /// # Errors
    /// 400 for a path that cannot be patched.
    fn check_patch_paths(ops: &[Value], version: Microversion) -> Result<(), ApiError>;

    /// The row after the JSON-PATCH `ops`, checked as a whole.
    ///
    /// # Errors
    /// 400 for a path that cannot be patched or a result that is invalid.
    fn patched(&self, ops: &[Value], version: Microversion) -> Result<Self::Fields, ApiError>;

    /// The 409 of a unique-constraint failure (or the database's error).
    fn duplicate(e: DbError, fields: &Self::Fields, uuid: &str) -> ApiError;

    fn updated_at(&self) -> Option<NaiveDateTime>;
    fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Self>, DbError>;
    fn all(conn: &mut AnyConnection) -> Result<Vec<Self>, DbError>;
    fn insert(conn: &mut AnyConnection, uuid: &str, fields: &Self::Fields)
    -> Result<Self, DbError>;
    /// Writes `fields` over the row if it is unchanged since `seen`.
    fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &Self::Fields,
    ) -> Result<Option<Self>, DbError>;
    fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError>;

    /// Ironic's NotFound for the resource.
    fn not_found(ident: &str) -> ApiError {
        ApiError::NotFound(format!("{} {ident} could not be found.", Self::TITLE))
    }
}

/// The 409 of a unique-constraint failure: the message of the first
/// `(column, message)` whose column the violation names, else `otherwise`;
/// any other database error as it is.
pub fn unique_conflict(e: DbError, by_column: &[(&str, String)], otherwise: String) -> ApiError {
    if !e.is_unique_violation() {
        return e.into();
    }
    let detail = e.violation_detail();
    let message = by_column
        .iter()
        .find(|(column, _)| detail.contains(column))
        .map_or(otherwise, |(_, message)| message.clone());
    ApiError::Conflict(message)
}

/// Looks a row up by UUID (or name, where the resource has names).
///
/// # Errors
/// 404 when none matches.
pub async fn find<R: Resource>(state: &AppState, ident: &str) -> Result<R, ApiError> {
    let key = ident.to_owned();
    state
        .db
        .run(move |conn| R::by_ident(conn, &key))
        .await?
        .ok_or_else(|| R::not_found(ident))
}

/// `GET /v1/<collection>`.
pub async fn list<R: Resource>(
    Call(req, state, version, _): Call,
) -> Result<HttpResponse, ApiError> {
    R::gate(version, &req)?;
    let query = parse_query(req.query_string());
    R::check_list_query(&query)?;
    let shape = pagination::list_shape(&query, version, false, 43, R::DEFAULT_LIST_FIELDS)?;
    if let Some(fields) = &shape.fields {
        R::check_fields(fields, version)?;
    }
    let pagination = pagination::pagination(
        &query,
        state.settings.api.max_limit,
        R::SORT_KEYS,
        R::UNSORTABLE,
    )?;
    let rows = state.db.run(R::all).await?;
    let base = base_url(&req, &state);
    let mut echo: Vec<&str> = R::FILTERS.to_vec();
    echo.push("detail");
    let page = ListPage {
        key: R::COLLECTION,
        path: R::COLLECTION,
        base: &base,
        fields: shape.fields.as_deref(),
        filters: &echoed(&query, &echo),
        bytes_per_item: 512,
    };
    respond(
        rows,
        |row| row.listed(&query),
        &pagination,
        &page,
        R::not_found,
        |row| row.body(&base, version, shape.fields.as_deref()),
    )
}

/// `GET /v1/<collection>/{ident}`.
pub async fn show<R: Resource>(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    R::gate(version, &req)?;
    let query = parse_query(req.query_string());
    let fields = parse_fields(query.get("fields"));
    if let Some(f) = &fields {
        R::check_fields(f, version)?;
    }
    let row: R = find(&state, &path).await?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(row.body(&base, version, fields.as_deref())))
}

/// `POST /v1/<collection>`: 201 with the row and its `Location`.
pub async fn create<R: Resource>(
    Call(req, state, version, _): Call,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    R::gate(version, &req)?;
    let (fields, asked) = R::create_fields(&body, version)?;
    let uuid = match asked {
        Some(u) => expect_uuid("uuid", &u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let key = uuid.clone();
    let fields = std::sync::Arc::new(fields);
    let written = fields.clone();
    let row = state
        .db
        .run(move |conn| Ok(R::insert(conn, &key, &written)))
        .await?;
    let row = row.map_err(|e| R::duplicate(e, &fields, &uuid))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("{base}/v1/{}/{}", R::COLLECTION, row.uuid()),
        ))
        .json(row.body(&base, version, None)))
}

/// `PATCH /v1/<collection>/{ident}`.
pub async fn update<R: Resource>(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    R::gate(version, &req)?;
    let ops = check_patch_ops(&body)?;
    R::check_patch_paths(ops, version)?;
    let row: R = find(&state, &path).await?;
    let fields = row.patched(ops, version)?;
    let (id, seen, uuid) = (row.id(), row.updated_at(), row.uuid().to_owned());
    let fields = std::sync::Arc::new(fields);
    let patched = fields.clone();
    let written = state
        .db
        .run(move |conn| Ok(R::update(conn, id, seen, &patched)))
        .await?;
    let updated = written
        .map_err(|e| R::duplicate(e, &fields, &uuid))?
        .ok_or_else(|| changed_meanwhile(R::TITLE, &uuid))?;
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(updated.body(&base, version, None)))
}

/// `DELETE /v1/<collection>/{ident}`: 204.
pub async fn delete<R: Resource>(
    Call(req, state, version, _): Call,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    R::gate(version, &req)?;
    let row: R = find(&state, &path).await?;
    let id = row.id();
    if !state.db.run(move |conn| R::delete(conn, id)).await? {
        return Err(R::not_found(&path));
    }
    Ok(HttpResponse::NoContent().finish())
}
