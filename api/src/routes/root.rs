//! `/` and `/v1/`: version discovery, exactly as Ironic answers it.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::microversion::{MAX_MINOR, MIN_MINOR, Microversion};
use crate::routes::common::base_url;
use crate::state::AppState;
use crate::views::links;

fn version_object(base: &str) -> Value {
    json!({
        "id": "v1",
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
        "status": "CURRENT",
        "min_version": format!("1.{MIN_MINOR}"),
        "version": format!("1.{MAX_MINOR}"),
    })
}

/// `GET /`.
pub async fn root(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let base = base_url(&req, &state);
    HttpResponse::Ok().json(json!({
        "name": "OpenStack Ironic API",
        "description": "Ironic is an OpenStack project which enables the provision and management of baremetal machines.",
        "default_version": version_object(&base),
        "versions": [version_object(&base)],
    }))
}

/// Versioned sub-resources listed in `/v1/`, with the minor version that added each.
const VERSIONED_LINKS: [(&str, u32); 13] = [
    ("portgroups", 23),
    ("volume", 32),
    ("lookup", 22),
    ("heartbeat", 22),
    ("conductors", 49),
    ("allocations", 52),
    ("events", 54),
    ("deploy_templates", 55),
    ("shards", 82),
    ("runbooks", 92),
    ("inspection_rules", 96),
    ("continue_inspection", 84),
    ("", 0),
];

/// `GET /v1/`.
pub async fn v1(
    req: HttpRequest,
    state: web::Data<AppState>,
    version: Microversion,
) -> HttpResponse {
    let base = base_url(&req, &state);
    let mut out = Map::new();
    out.insert("id".into(), json!("v1"));
    out.insert(
        "links".into(),
        json!([
            {"href": format!("{base}/v1/"), "rel": "self"},
            {"href": "https://docs.openstack.org//ironic/latest/contributor//webapi.html", "rel": "describedby", "type": "text/html"},
        ]),
    );
    out.insert(
        "media_types".into(),
        json!({"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}),
    );
    for name in ["chassis", "nodes", "ports", "drivers"] {
        out.insert(name.into(), links(&base, &format!("{name}/")));
    }
    out.insert("version".into(), version_object(&base));
    for (name, min) in VERSIONED_LINKS {
        if !name.is_empty() && version.at_least(min) {
            out.insert(name.into(), links(&base, &format!("{name}/")));
        }
    }
    HttpResponse::Ok().json(Value::Object(out))
}
