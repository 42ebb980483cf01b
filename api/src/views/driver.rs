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
/// type understands, with Ironic's descriptions.
pub fn properties(name: &str) -> Value {
    match name {
        // FakeVendorB's properties, the only fake interface that has any.
        "fake-hardware" => json!({
            "B1": "B1 description. Required.",
            "B2": "B2 description. Required.",
        }),
        "ipmi" => Value::Object(
            IPMI_PROPERTIES
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// The `ipmi` hardware type's keys: Ironic's `ipmitool` power and
/// management interfaces' `COMMON_PROPERTIES`, with its descriptions.
const IPMI_PROPERTIES: &[(&str, &str)] = &[
    (
        "ipmi_address",
        "IP address or hostname of the node. Required.",
    ),
    ("ipmi_password", "password. Optional."),
    (
        "ipmi_hex_kg_key",
        "Kg key for IPMIv2 authentication. The key is expected in hexadecimal format. Optional.",
    ),
    ("ipmi_port", "remote IPMI RMCP port. Optional."),
    (
        "ipmi_priv_level",
        "privilege level; default is ADMINISTRATOR. One of ADMINISTRATOR, CALLBACK, OPERATOR, USER. Optional.",
    ),
    ("ipmi_username", "username; default is NULL user. Optional."),
    (
        "ipmi_bridging",
        "bridging_type; default is \"no\". One of \"single\", \"dual\", \"no\". Optional.",
    ),
    (
        "ipmi_transit_channel",
        "transit channel for bridged request. Required only if ipmi_bridging is set to \"dual\".",
    ),
    (
        "ipmi_transit_address",
        "transit address for bridged request. Required only if ipmi_bridging is set to \"dual\".",
    ),
    (
        "ipmi_target_channel",
        "destination channel for bridged request. Required only if ipmi_bridging is set to \"single\" or \"dual\".",
    ),
    (
        "ipmi_target_address",
        "destination address for bridged request. Required only if ipmi_bridging is set to \"single\" or \"dual\".",
    ),
    (
        "ipmi_local_address",
        "local IPMB address for bridged requests. Used only if ipmi_bridging is set to \"single\" or \"dual\". Optional.",
    ),
    (
        "ipmi_protocol_version",
        "the version of the IPMI protocol; default is \"2.0\". One of \"1.5\", \"2.0\". Optional.",
    ),
    (
        "ipmi_force_boot_device",
        "Whether Ironic should specify the boot device to the BMC each time the server is turned on, eg. because the BMC is not capable of remembering the selected boot device across power cycles; default value is False. Optional.",
    ),
    (
        "ipmi_disable_boot_timeout",
        "By default ironic will send a raw IPMI command to disable the 60 second timeout for booting. Setting this option to False will NOT send that command on this node. The [ipmi]disable_boot_timeout will be used if this option is not set. Optional.",
    ),
    (
        "ipmi_cipher_suite",
        "The number of a cipher suite to use. Only 3 (AES-128 with SHA1) or 17 (AES-128 with SHA256) should ever be used; 17 is preferred. The default value depends on the ipmitool version, some recent versions have switched from 3 to 17.",
    ),
];
