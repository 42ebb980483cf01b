//! Microversion negotiation (`X-OpenStack-Ironic-API-Version`) and the headers
//! Ironic puts on every response, plus the request id.
//!
//! Invariants: every response carries the minimum and maximum version
//! headers and the request id; every response but a version 406 carries the
//! negotiated version. No header means 1.1; `latest` means the maximum.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use std::future::{Ready, ready};
use tracing::Instrument as _;

use crate::error::ApiError;

/// The smallest minor version served.
pub const MIN_MINOR: u32 = 1;
/// The largest minor version served (Ironic 39.0.0's).
pub const MAX_MINOR: u32 = 115;

const VERSION_HEADER: &str = "x-openstack-ironic-api-version";

/// The negotiated version of a request: `1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u32);

impl Microversion {
    pub fn minor(self) -> u32 {
        self.0
    }

    /// Whether the request's version is at least `1.<minor>`.
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= minor
    }
}

/// The request id (`req-<uuid>`) of the current request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Parses the header value; `Err` carries the 406 description.
pub fn parse(value: Option<&str>) -> Result<Microversion, String> {
    let Some(raw) = value.map(str::trim) else {
        return Ok(Microversion(MIN_MINOR));
    };
    if raw.eq_ignore_ascii_case("latest") {
        return Ok(Microversion(MAX_MINOR));
    }
    let invalid = || "Invalid value for X-OpenStack-Ironic-API-Version header".to_owned();
    let (major, minor) = raw.split_once('.').ok_or_else(invalid)?;
    let major: u32 = major.parse().map_err(|_| invalid())?;
    let minor: u32 = minor.parse().map_err(|_| invalid())?;
    if major != 1 {
        return Err(format!(
            "Mutually exclusive versions requested. Version {raw} requested but not supported by this service. The supported version range is: [1.{MIN_MINOR}, 1.{MAX_MINOR}]."
        ));
    }
    if !(MIN_MINOR..=MAX_MINOR).contains(&minor) {
        return Err(format!(
            "Version {raw} was requested but the minor version is not supported by this service. The supported version range is: [1.{MIN_MINOR}, 1.{MAX_MINOR}]."
        ));
    }
    Ok(Microversion(minor))
}

/// Middleware: negotiates the version and adds Ironic's headers.
/// The microversion from which a trailing `.json` is part of a name (1.91).
pub const DOT_JSON_MINOR: u32 = 91;

/// Paths outside every API version that Ferric serves as they are (and
/// everything under `/console/`).
const UNVERSIONED: [&str; 4] = ["/", "/metrics", "/healthz", "/readyz"];

/// The path a request is routed by, as Ironic's root controller and
/// `JsonExtensionMiddleware` route it: a path without the version element
/// is served by v1 (`/nodes` is `/v1/nodes`); a trailing `/` is dropped
/// (`/v1/` stays); and below 1.91, asked for with Ironic's own version
/// header, a trailing `.json` is dropped too (for clients of the pecan
/// days; without the header, or from 1.91, it is part of the path).
fn routed_path(path: &str, ironic_header: Option<&str>) -> Option<String> {
    // The operator console is Ferric's own, outside the API's versions.
    if path == "/console" || path.starts_with("/console/") {
        return None;
    }
    let versioned = path == "/v1" || path.starts_with("/v1/");
    // Nearly every request: nothing to rewrite, nothing allocated.
    if (versioned || UNVERSIONED.contains(&path))
        && (path.len() <= "/v1/".len() || !path.ends_with('/'))
        && !path.ends_with(".json")
    {
        return None;
    }
    let mut routed = path.to_owned();
    if !versioned && !UNVERSIONED.contains(&path) {
        routed = format!("/v1{path}");
    }
    if routed.len() > "/v1/".len() && routed.ends_with('/') {
        routed = routed.trim_end_matches('/').to_owned();
    }
    let below_91 = ironic_header
        .filter(|h| h.trim() != "latest")
        .and_then(|h| parse(Some(h)).ok())
        .is_some_and(|v| v.0 < DOT_JSON_MINOR);
    if below_91 && let Some(stripped) = routed.strip_suffix(".json") {
        routed = stripped.to_owned();
    }
    (routed != path).then_some(routed)
}

/// Rewrites the request's path to [`routed_path`]'s, before routing.
fn reroute(req: &mut ServiceRequest, ironic_header: Option<&str>) {
    let Some(path) = routed_path(req.path(), ironic_header) else {
        return;
    };
    let target = match req.query_string() {
        "" => path,
        query => format!("{path}?{query}"),
    };
    let Ok(uri) = target.parse::<actix_web::http::Uri>() else {
        return;
    };
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
}

pub async fn negotiate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let limit = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map_or(usize::MAX, |s| s.settings.api.max_header_bytes);
    let head: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if head > limit {
        return Err(crate::error::ApiError::routing(
            actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("The request headers are larger than {limit} bytes."),
        )
        .into());
    }
    let ironic_header = req
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    reroute(&mut req, ironic_header.as_deref());
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    // Ironic's own header, else the generic `OpenStack-API-Version: baremetal 1.x`.
    let header = req
        .headers()
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        .or_else(|| {
            req.headers()
                .get("openstack-api-version")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().strip_prefix("baremetal "))
                .map(str::to_owned)
        });
    // One span per request, the child of the caller's `traceparent` if it
    // sent one; every task it publishes carries this span's context.
    let span = tracing::info_span!(
        "api.request",
        request_id = %request_id,
        http.method = %method,
        http.path = %path,
        http.status = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    ferric_common::telemetry::set_remote_parent(&span, |key| {
        req.headers()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let parsed = parse(header.as_deref());
    let mut response = match parsed {
        Ok(version) => {
            req.extensions_mut().insert(version);
            let mut res = next
                .call(req)
                .instrument(span.clone())
                .await?
                .map_into_boxed_body();
            insert(&mut res, VERSION_HEADER, &format!("1.{}", version.0));
            res
        }
        Err(description) => {
            let (http_req, _) = req.into_parts();
            let res = ApiError::routing(actix_web::http::StatusCode::NOT_ACCEPTABLE, description)
                .error_response();
            ServiceResponse::new(http_req, res)
        }
    };
    insert(
        &mut response,
        "x-openstack-ironic-api-minimum-version",
        &format!("1.{MIN_MINOR}"),
    );
    insert(
        &mut response,
        "x-openstack-ironic-api-maximum-version",
        &format!("1.{MAX_MINOR}"),
    );
    insert(&mut response, "x-openstack-request-id", &request_id);
    insert(&mut response, "openstack-request-id", &request_id);
    insert(&mut response, "server", "ferric");
    let took = started.elapsed();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    ferric_common::metrics::global().api_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        took,
    );
    span.record("http.status", response.status().as_u16());
    let _entered = span.enter();
    tracing::info!(
        request_id = %request_id,
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        duration_ms = took.as_secs_f64() * 1000.0,
        "api.request"
    );
    Ok(response)
}

fn insert<B>(res: &mut ServiceResponse<B>, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        res.headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

impl FromRequest for Microversion {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<Microversion>()
            .copied()
            .unwrap_or(Microversion(MIN_MINOR))))
    }
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| {
                RequestId(format!("req-{}", uuid::Uuid::new_v4()))
            })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_header_is_1_1_and_latest_is_max() {
        assert_eq!(parse(None), Ok(Microversion(1)));
        assert_eq!(parse(Some("latest")), Ok(Microversion(MAX_MINOR)));
        assert_eq!(parse(Some("1.46")), Ok(Microversion(46)));
    }

    #[test]
    fn out_of_range_and_malformed_versions_are_refused() {
        let err = parse(Some("1.999")).unwrap_err();
        assert_eq!(
            err,
            "Version 1.999 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.115]."
        );
        assert!(parse(Some("2.1")).is_err());
        assert!(parse(Some("1.0")).is_err());
        assert!(parse(Some("abc")).is_err());
        assert!(parse(Some("1.")).is_err());
    }

    #[test]
    fn paths_are_routed_as_ironics_root_controller_routes_them() {
        let r = |p: &str, h: Option<&str>| routed_path(p, h);
        assert_eq!(
            r("/nodes/x/allocation", None).as_deref(),
            Some("/v1/nodes/x/allocation")
        );
        assert_eq!(r("/drivers", None).as_deref(), Some("/v1/drivers"));
        assert_eq!(r("/console/", None), None);
        assert_eq!(r("/console/nodes/x", None), None);
        assert_eq!(r("/v1/nodes/", None).as_deref(), Some("/v1/nodes"));
        assert_eq!(
            r("/v1/nodes/x.json", Some("1.90")).as_deref(),
            Some("/v1/nodes/x")
        );
        assert_eq!(
            r("/nodes/x.json/", Some("1.2")).as_deref(),
            Some("/v1/nodes/x")
        );
        assert_eq!(r("/v1/nodes/x.json", Some("1.91")), None);
        assert_eq!(r("/v1/nodes/x.json", Some("latest")), None);
        assert_eq!(r("/v1/nodes/x.json", None), None);
        for unchanged in [
            "/",
            "/v1",
            "/v1/",
            "/metrics",
            "/healthz",
            "/readyz",
            "/v1/nodes",
        ] {
            assert_eq!(r(unchanged, None), None, "{unchanged}");
        }
    }
}
