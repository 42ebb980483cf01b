//! `ApiError`: the one place Ironic's error bodies are built.
//!
//! Ironic wraps every error as `{"error_message": "<JSON string>"}` where the
//! string holds `{"faultcode": "Client"|"Server", "faultstring": …,
//! "debuginfo": null}` serialised the way Python's `json.dumps` does (", " and
//! ": " separators, non-ASCII escaped). Version negotiation errors carry
//! `{"code", "title", "description"}` instead.

use std::io;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use ferric_common::db::DbError;
use serde_json::{Value, json};

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: invalid input or an invalid state for the request.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the operation is not permitted (e.g. a protected node).
    #[error("{0}")]
    Forbidden(String),
    /// 404: the resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 406: the microversion does not allow this field or verb.
    #[error("{0}")]
    NotAcceptable(String),
    /// An error raised while routing (unknown path, wrong method, bad
    /// identifier in the path, version negotiation): webob's
    /// `{"code", "title", "description"}` body instead of a fault.
    #[error("{description}")]
    Routing {
        status: StatusCode,
        description: String,
    },
    /// 405 with a fault body: a resource method the request's version
    /// does not have (allocations below their version).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: locked node, duplicate, or a conflicting state.
    #[error("{0}")]
    Conflict(String),
    /// 408: the body did not arrive within `[api]body_read_timeout_secs`.
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: the body is over `[api]max_body_bytes`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429: this source is over a rate or backing off; retry after the
    /// seconds given (sent as `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 503: a dependency (database, conductor) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug; the message is logged, not shown in full.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Ironic's generic 406 for fields or verbs above the request's version.
    pub fn not_acceptable() -> ApiError {
        ApiError::NotAcceptable("Request not acceptable.".into())
    }

    pub fn node_not_found(ident: &str) -> ApiError {
        ApiError::NotFound(format!("Node {ident} could not be found."))
    }

    pub fn node_locked(node: &str, host: &str) -> ApiError {
        ApiError::Conflict(format!(
            "Node {node} is locked by host {host}, please retry after the current operation is completed."
        ))
    }
}

impl ApiError {
    /// A routing error with webob's body.
    pub fn routing(status: StatusCode, description: impl Into<String>) -> ApiError {
        ApiError::Routing {
            status,
            description: description.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            // No connection, or the connection died under the query.
            e if e.is_transient() => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable("The database is temporarily unavailable.".into())
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::Internal("An internal error occurred.".into())
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Routing { status, .. } => *status,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let inner = match self {
            ApiError::Routing { description, .. } => json!({
                "code": status.as_u16(),
                "title": status.canonical_reason().unwrap_or_default(),
                "description": description,
            }),
            other => json!({
                "faultcode": if status.is_server_error() { "Server" } else { "Client" },
                "faultstring": other.to_string(),
                "debuginfo": Value::Null,
            }),
        };
        let body = json!({ "error_message": python_json(&inner) });
        let mut response = HttpResponse::build(status);
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        response
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(body.to_string())
    }
}

/// Serialises like Python's `json.dumps` with default arguments.
pub fn python_json(value: &Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    if serde::Serialize::serialize(value, &mut serializer).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// `", "` and `": "` separators and `\uXXXX` escapes for non-ASCII.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_matches_json_dumps() {
        let v = json!({"faultcode": "Client", "faultstring": "Node \"x\" é", "debuginfo": null});
        assert_eq!(
            python_json(&v),
            r#"{"faultcode": "Client", "faultstring": "Node \"x\" \u00e9", "debuginfo": null}"#
        );
    }

    #[test]
    fn not_found_body_is_double_encoded() {
        let resp = ApiError::node_not_found("does-not-exist").error_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}
