//! `limit`, `marker`, `sort_key`, `sort_dir` and `fields` query parameters,
//! and the `next` link of a full page.

use actix_web::HttpResponse;
use serde::Serialize;
use std::collections::BTreeMap;

use ferric_common::db::models::{Page, SortDir};

use crate::error::ApiError;
use crate::microversion::Microversion;

/// The query string as a map (last value wins).
pub type Query = BTreeMap<String, String>;

/// Parses a query string.
pub fn parse_query(query: &str) -> Query {
    url_decode_pairs(query)
}

fn url_decode_pairs(query: &str) -> Query {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Pagination parameters of one list request.
#[derive(Debug, Clone)]
pub struct Pagination {
    pub page: Page,
    pub marker: Option<String>,
}

/// Parses `limit`, `marker`, `sort_key` and `sort_dir`.
///
/// # Errors
/// 400 with Ironic's messages for a bad limit, sort key or direction.
pub fn pagination(
    query: &Query,
    max_limit: usize,
    sort_keys: &[&str],
    refused_sort_keys: &[&str],
) -> Result<Pagination, ApiError> {
    let limit = match query.get("limit") {
        None => max_limit as i64,
        Some(raw) => {
            let limit: i64 = raw.trim().parse().map_err(|_| {
                ApiError::BadRequest(format!("Expected an integer for limit: {raw}"))
            })?;
            if limit <= 0 {
                return Err(ApiError::BadRequest("Limit must be positive".into()));
            }
            limit.min(max_limit as i64)
        }
    };
    let sort_dir = match query.get("sort_dir").map(String::as_str) {
        None | Some("asc") => SortDir::Asc,
        Some("desc") => SortDir::Desc,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )));
        }
    };
    let sort_key = query
        .get("sort_key")
        .cloned()
        .unwrap_or_else(|| "id".into());
    if refused_sort_keys.contains(&sort_key.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "The sort_key value {sort_key} is an invalid field for sorting"
        )));
    }
    if !sort_keys.contains(&sort_key.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "The sort_key value \"{sort_key}\" is an invalid field for sorting"
        )));
    }
    Ok(Pagination {
        page: Page {
            limit,
            sort_key,
            sort_dir,
        },
        marker: query.get("marker").cloned(),
    })
}

/// The `next` link, present only when `n_rows` filled the page (Ironic's
/// rule, even when nothing follows). Ironic echoes sort_key, sort_dir,
/// fields (if any), then the filters, limit and marker.
pub fn next_link(
    base: &str,
    path: &str,
    pagination: &Pagination,
    fields: Option<&[String]>,
    filters: &[(&str, String)],
    n_rows: usize,
    last_marker: Option<&str>,
) -> Option<String> {
    let last_marker = last_marker.filter(|_| n_rows as i64 == pagination.page.limit)?;
    let mut q = format!(
        "sort_key={}&sort_dir={}",
        percent_encode(&pagination.page.sort_key),
        match pagination.page.sort_dir {
            SortDir::Asc => "asc",
            SortDir::Desc => "desc",
        }
    );
    if let Some(fields) = fields {
        q.push_str("&fields=");
        q.push_str(&percent_encode(&fields.join(",")));
    }
    for (key, value) in filters {
        q.push_str(&format!("&{key}={}", percent_encode(value)));
    }
    q.push_str(&format!(
        "&limit={}&marker={}",
        pagination.page.limit,
        percent_encode(last_marker)
    ));
    Some(format!("{base}/v1/{path}?{q}"))
}

/// A list body: `{"<key>": [...]}` plus `next` when there is one.
pub fn collection<T: Serialize>(
    key: &str,
    items: Vec<T>,
    next: Option<String>,
) -> Collection<'_, T> {
    Collection { key, items, next }
}

/// What [`collection`] returns: serialised in place, items and all.
pub struct Collection<'a, T> {
    key: &'a str,
    items: Vec<T>,
    next: Option<String>,
}

impl<T: Serialize> Collection<'_, T> {
    /// The 200 response, serialised into one buffer sized up front from
    /// `bytes_per_item` (a 1,000-node detail list is 2.5 MB; growing a
    /// buffer by doubling copies it twice over).
    ///
    /// # Errors
    /// 500 if an item cannot be serialised.
    pub fn respond(&self, bytes_per_item: usize) -> Result<HttpResponse, ApiError> {
        let mut body = Vec::with_capacity(256 + self.items.len() * bytes_per_item);
        serde_json::to_writer(&mut body, self).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(body))
    }
}

impl<T: Serialize> Serialize for Collection<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(self.key, &self.items)?;
        if let Some(next) = &self.next {
            map.serialize_entry("next", next)?;
        }
        map.end()
    }
}

/// What a list returns: full bodies (`detail`) or these fields.
#[derive(Debug, Clone)]
pub struct ListShape {
    pub detail: bool,
    /// The fields asked for, or the resource's default list fields; `None`
    /// with `detail`.
    pub fields: Option<Vec<String>>,
}

/// Parses `detail` and `fields` of a list request, with Ironic's version
/// gates (`fields` 1.8, `detail` from `detail_since`: 1.43 for the
/// resources that predate it, none for volumes, which always had it) and
/// defaults.
///
/// # Errors
/// 400 for a bad `detail` or both at once, 406 for `fields` below 1.8.
pub fn list_shape(
    query: &Query,
    version: Microversion,
    detail_path: bool,
    detail_since: u32,
    default_fields: &[&str],
) -> Result<ListShape, ApiError> {
    let detail_param = match query.get("detail") {
        Some(v) => {
            let detail = parse_bool("detail", v)?;
            if !version.at_least(detail_since) {
                return Err(ApiError::BadRequest(format!(
                    "Invalid query parameter ?detail={} received.",
                    if detail { "True" } else { "False" }
                )));
            }
            detail
        }
        None => false,
    };
    let detail = detail_path || detail_param;
    let fields = crate::views::parse_fields(query.get("fields"));
    if fields.is_some() {
        if !version.at_least(8) {
            return Err(ApiError::not_acceptable());
        }
        if detail {
            return Err(ApiError::BadRequest(
                "Can not specify ?detail=True and fields in the same request.".into(),
            ));
        }
    }
    let fields = match fields {
        None if !detail => Some(default_fields.iter().map(|f| (*f).to_owned()).collect()),
        other => other,
    };
    Ok(ListShape { detail, fields })
}

/// Parses a boolean query value the way Ironic's `strutils.bool_from_string`
/// (strict) does.
///
/// # Errors
/// 400 naming the parameter.
pub fn parse_bool(name: &str, raw: &str) -> Result<bool, ApiError> {
    match raw.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "Invalid {name}: Unrecognized value '{raw}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_zero_is_refused_and_big_limits_are_capped() {
        let q = parse_query("limit=0");
        assert!(pagination(&q, 1000, &["id"], &[]).is_err());
        let q = parse_query("limit=5000");
        assert_eq!(pagination(&q, 1000, &["id"], &[]).unwrap().page.limit, 1000);
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = parse_query("provision_state=clean%20wait&fields=a,b");
        assert_eq!(q["provision_state"], "clean wait");
        assert_eq!(q["fields"], "a,b");
    }
}
