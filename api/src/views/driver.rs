//! The driver (hardware type) body, built from what alive conductors enable.

use std::collections::BTreeSet;

use ferric_common::cluster::ClusterView;
use serde_json::{Map, Value, json};

use crate::microversion::Microversion;
use crate::views::links;

/// Interface types in the order Ironic lists them in a driver body.
const DETAIL_ORDER: [&str; 13] = [
    "console",
    "power",
    "network",
    "vendor",
    "storage",
    "bios",
    "inspect",
    "raid",
    "deploy",
    "boot",
    "rescue",
    "firmware",
    "management",
];

pub fn driver_body(
    name: &str,
    hosts: &BTreeSet<String>,
    view: &ClusterView,
    base: &str,
    version: Microversion,
    detail: bool,
) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("hosts".into(), json!(hosts));
    out.insert("links".into(), links(base, &format!("drivers/{name}")));
    if version.at_least(14) {
        out.insert(
            "properties".into(),
            links(base, &format!("drivers/{name}/properties")),
        );
    }
    if version.at_least(30) {
        out.insert("type".into(), json!("dynamic"));
        if detail {
            let interfaces = view.interfaces(name);
            for iface in DETAIL_ORDER {
                if iface == "firmware" && !version.at_least(86) {
                    continue;
                }
                if iface == "bios" && !version.at_least(40) {
                    continue;
                }
                if iface == "rescue" && !version.at_least(38) {
                    continue;
                }
                if iface == "storage" && !version.at_least(33) {
                    continue;
                }
                let choice = interfaces.and_then(|i| i.get(iface));
                out.insert(
                    format!("default_{iface}_interface"),
                    json!(choice.and_then(|c| c.default.clone())),
                );
                out.insert(
                    format!("enabled_{iface}_interfaces"),
                    json!(choice.map(|c| c.enabled.clone()).unwrap_or_default()),
                );
            }
        }
    }
    Value::Object(out)
}

/// `GET /v1/drivers/{name}/properties`: the driver_info keys the hardware
/// type's default interfaces understand, with Ironic's descriptions, as
/// Ironic 39 answers them (`driver_properties.json`, read from a real one).
pub fn properties(name: &str) -> Value {
    static ALL: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        serde_json::from_str(include_str!("driver_properties.json")).unwrap_or_default()
    });
    ALL.get(name).cloned().unwrap_or_else(|| json!({}))
}
