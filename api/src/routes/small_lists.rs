//! Lists of the small tables (deploy templates, runbooks, allocations,
//! portgroups, volume connectors and targets, inspection rules): all rows
//! are loaded, sorted by any column, filtered, paged after a marker and
//! answered with Ironic's `next` link here. Also the version gate these
//! resources share.
//!
//! Invariant: a page is sorted by the requested key, then by id, so paging
//! with a marker never skips or repeats a row.

use std::cmp::Ordering;

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use chrono::NaiveDateTime;
use ferric_common::db::models::SortDir;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::pagination::{self, Pagination, Query, next_link};

/// One row as the list code sees it: its id, UUID and the value of each
/// sortable column.
pub trait Sortable {
    fn id(&self) -> i32;
    fn uuid(&self) -> &str;
    /// The value of a sortable column, as JSON so every column compares.
    fn sort_value(&self, key: &str) -> Value;
}

/// Implements [`Sortable`] for a row with `id`, `uuid`, `created_at` and
/// `updated_at`: each listed column sorts by its value (`"key" => field`
/// where the key is not the field's name); any other key sorts by id.
macro_rules! sortable {
    ($row:ty, [$($column:ident),* $(,)?] $(, {$($key:literal => $field:ident),* $(,)?})?) => {
        impl $crate::routes::small_lists::Sortable for $row {
            fn id(&self) -> i32 {
                self.id
            }
            fn uuid(&self) -> &str {
                &self.uuid
            }
            fn sort_value(&self, key: &str) -> serde_json::Value {
                $(if key == stringify!($column) {
                    return serde_json::json!(self.$column);
                })*
                $($(if key == $key {
                    return serde_json::json!(self.$field);
                })*)?
                match key {
                    "created_at" => $crate::routes::small_lists::time_value(Some(self.created_at)),
                    "updated_at" => $crate::routes::small_lists::time_value(self.updated_at),
                    _ => serde_json::json!(self.id),
                }
            }
        }
    };
}
pub(crate) use sortable;

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a
            .as_str()
            .unwrap_or_default()
            .cmp(b.as_str().unwrap_or_default()),
    }
}

/// Sorts every row by the page's key (then id), and takes the page of rows
/// that `keep` (the request's filters) after the marker row (a UUID). The
/// marker is looked up among all rows, so a marker row that no longer
/// matches the filters still marks its place, as in Ironic.
///
/// # Errors
/// 404 `<not_found>` when the marker is unknown.
pub fn page_of<T: Sortable>(
    mut rows: Vec<T>,
    keep: impl Fn(&T) -> bool,
    pagination: &Pagination,
    not_found: impl FnOnce(&str) -> ApiError,
) -> Result<Vec<T>, ApiError> {
    let key = pagination.page.sort_key.as_str();
    rows.sort_by(|a, b| {
        let order = compare(&a.sort_value(key), &b.sort_value(key)).then(a.id().cmp(&b.id()));
        match pagination.page.sort_dir {
            SortDir::Asc => order,
            SortDir::Desc => order.reverse(),
        }
    });
    let start = match &pagination.marker {
        Some(marker) => {
            let at = rows
                .iter()
                .position(|r| r.uuid() == marker)
                .ok_or_else(|| not_found(marker))?;
            at + 1
        }
        None => 0,
    };
    let limit = usize::try_from(pagination.page.limit).unwrap_or(usize::MAX);
    Ok(rows
        .into_iter()
        .skip(start)
        .filter(|r| keep(r))
        .take(limit)
        .collect())
}

/// A timestamp as a sort value (microseconds; `null` sorts first).
pub fn time_value(at: Option<NaiveDateTime>) -> Value {
    at.map_or(Value::Null, |t| json!(t.and_utc().timestamp_micros()))
}

/// Where a page is answered from and how its items look.
pub struct ListPage<'a> {
    /// The collection's key (`deploy_templates`, …).
    pub key: &'a str,
    /// The path the `next` link repeats, below `/v1/`.
    pub path: &'a str,
    pub base: &'a str,
    pub fields: Option<&'a [String]>,
    /// The query's filters, echoed in the `next` link.
    pub filters: &'a [(&'a str, String)],
    /// Bytes to reserve per item when serialising.
    pub bytes_per_item: usize,
}

/// Sorts and pages `rows` (all of the table), keeping those `keep`
/// accepts, then answers the collection of their bodies.
///
/// # Errors
/// 404 `not_found(marker)` for an unknown marker.
pub fn respond<T: Sortable>(
    rows: Vec<T>,
    keep: impl Fn(&T) -> bool,
    pagination: &Pagination,
    page: &ListPage<'_>,
    not_found: impl FnOnce(&str) -> ApiError,
    body: impl Fn(&T) -> Value,
) -> Result<HttpResponse, ApiError> {
    let rows = page_of(rows, keep, pagination, not_found)?;
    let items: Vec<Value> = rows.iter().map(&body).collect();
    let next = next_link(
        page.base,
        page.path,
        pagination,
        page.fields,
        page.filters,
        rows.len(),
        rows.last().map(Sortable::uuid),
    );
    pagination::collection(page.key, items, next).respond(page.bytes_per_item)
}

/// The query parameters among `keys` the request used, for the `next` link.
pub fn echoed<'k>(query: &Query, keys: &[&'k str]) -> Vec<(&'k str, String)> {
    keys.iter()
        .filter_map(|k| query.get(*k).map(|v| (*k, v.clone())))
        .collect()
}

/// How a resource below its microversion answers.
#[derive(Debug, Clone, Copy)]
pub enum GateBody {
    /// Ironic's fault body (`validation.api_version`).
    Fault,
    /// webob's routing body (a controller's `_route`).
    Routing,
}

/// The gate of a resource introduced at 1.`min`: below it a GET gets 404
/// and any other method 405, with `message`.
///
/// # Errors
/// As above.
pub fn resource_gate(
    req: &HttpRequest,
    version: Microversion,
    min: u32,
    message: &str,
    body: GateBody,
) -> Result<(), ApiError> {
    if version.at_least(min) {
        return Ok(());
    }
    let get = req.method() == actix_web::http::Method::GET;
    Err(match (body, get) {
        (GateBody::Fault, true) => ApiError::NotFound(message.to_owned()),
        (GateBody::Fault, false) => ApiError::MethodNotAllowed(message.to_owned()),
        (GateBody::Routing, true) => ApiError::routing(StatusCode::NOT_FOUND, message),
        (GateBody::Routing, false) => ApiError::routing(StatusCode::METHOD_NOT_ALLOWED, message),
    })
}

/// The 409 of a PATCH whose row changed (or went) after it was read.
pub fn changed_meanwhile(what: &str, uuid: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{what} {uuid} was changed or deleted by another request; please retry."
    ))
}
