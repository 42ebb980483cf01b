//! Request bodies: read up to `[api]max_body_bytes` within
//! `[api]body_read_timeout_secs`, parse as JSON, and fail with Ironic's
//! error bodies (never actix's own) on anything else.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest provision request body (Ironic's limit for `*/states/provision`).
const PROVISION_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A parsed JSON request body.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let settings = req.app_data::<web::Data<AppState>>();
        let configured = settings.map_or(1024 * 1024, |s| s.settings.api.max_body_bytes);
        let patience =
            Duration::from_secs(settings.map_or(60, |s| s.settings.api.body_read_timeout_secs));
        // Config drives travel in provision requests: Ironic allows 64 MiB there.
        let limit = if req.path().ends_with("/states/provision") {
            configured.max(PROVISION_BODY_LIMIT)
        } else {
            configured
        };
        let mut payload = payload.take();
        Box::pin(async move {
            let mut bytes = web::BytesMut::new();
            let read = async {
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk
                        .map_err(|e| ApiError::BadRequest(format!("Invalid request body: {e}")))?;
                    if bytes.len() + chunk.len() > limit {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "Request body is larger than the limit of {limit} bytes."
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(())
            };
            tokio::time::timeout(patience, read).await.map_err(|_| {
                ApiError::RequestTimeout(format!(
                    "The request body did not arrive within {} s.",
                    patience.as_secs()
                ))
            })??;
            if bytes.is_empty() {
                return Ok(JsonBody(Value::Null));
            }
            serde_json::from_slice(&bytes)
                .map(JsonBody)
                .map_err(|e| ApiError::BadRequest(format!("Invalid JSON in request body: {e}")))
        })
    }
}
