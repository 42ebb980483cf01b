//! Agent inspection without an agent process: the data an agent posts to
//! `POST /v1/continue_inspection` — its versions and answers, a machine
//! found by its BMC address, inventories that are not IPA's shape, a
//! ramdisk's own error, a node not waiting — and the waits that end without
//! data (abort, `inspect_wait_timeout`).
//! The real ironic-python-agent's inspection is in `ipa.rs`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

const MAC: &str = "52:54:00:1e:00:01";

/// A `manual-management` node with `agent` inspection and a port, waiting
/// in `inspect wait`.
async fn waiting_node(app: &TestApp, mac: &str) -> String {
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "inspect_interface": "agent"}),
            Some(mac),
        )
        .await;
    app.provision(&uuid, "inspect").await;
    app.wait_for_state(&uuid, "inspect wait").await;
    uuid
}

fn inventory(mac: &str) -> Value {
    json!({
        "interfaces": [{"name": "eth0", "mac_address": mac, "ipv4_address": "192.0.2.9"},
                       {"name": "eth1", "mac_address": "52:54:00:1e:00:99", "ipv4_address": null}],
        "cpu": {"architecture": "aarch64", "count": 2},
        "memory": {"physical_mb": 2048},
        "disks": [{"name": "/dev/sda", "size": 10_737_418_240_u64}],
        "boot": {"current_boot_mode": "bios", "pxe_interface": mac},
    })
}

async fn post(
    app: &TestApp,
    version: Option<&str>,
    query: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let reply = app
        .request(
            Method::POST,
            &format!("/v1/continue_inspection{query}"),
            version,
            Some(body),
        )
        .await;
    (
        reply.status,
        serde_json::from_str(&reply.text).unwrap_or(Value::Null),
    )
}

fn fault(body: &Value) -> String {
    let raw = body["error_message"].as_str().unwrap_or_default();
    serde_json::from_str::<Value>(raw).map_or_else(
        |_| raw.to_owned(),
        |v| v["faultstring"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_inspection_data_is_checked_and_processed_as_ironic_does() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let uuid = waiting_node(&app, MAC).await;

    // Not an inventory: 400, and the node still waits.
    for (body, says) in [
        (json!({"logs": "x"}), "'inventory' is a required property"),
        (json!({"inventory": {"interfaces": []}}), "non-empty list"),
        (
            json!({"inventory": {"interfaces": [{"name": "eth0"}]}}),
            "mac_address",
        ),
        (
            json!({"inventory": {"interfaces": [{"mac_address": MAC}], "bmc_address": 7}}),
            "bmc_address",
        ),
    ] {
        let (status, answer) = post(&app, None, "", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(fault(&answer).contains(says), "{}", fault(&answer));
    }
    // Only the base version (ironic-inspector's clients) and 1.84+.
    let (status, answer) = post(
        &app,
        Some("1.80"),
        "",
        &json!({"inventory": inventory(MAC)}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(fault(&answer), "API version 1.84 or newer is required");
    // MACs nobody owns: 404.
    let (status, _) = post(
        &app,
        None,
        "",
        &json!({"inventory": inventory("52:54:00:1e:00:77")}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["provision_state"],
        "inspect wait"
    );

    // At 1.84 the answer is the node and the agent's configuration.
    let (status, answer) = post(
        &app,
        Some("1.84"),
        "",
        &json!({"inventory": inventory(MAC), "extra": {"x": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["node"]["uuid"], uuid);
    assert!(answer["config"]["agent_token"].as_str().unwrap().len() >= 32);
    let node = app.wait_for_state(&uuid, "manageable").await;
    assert_eq!(node["properties"]["cpu_arch"], "aarch64");
    assert_eq!(node["properties"]["memory_mb"], 2048);
    assert_eq!(node["properties"]["local_gb"], 9);
    assert_eq!(node["properties"]["capabilities"], "boot_mode:bios");
    assert_eq!(node["power_state"], "power off");
    let stored = app.get(&format!("/v1/nodes/{uuid}/inventory")).await.json();
    assert_eq!(stored["inventory"]["cpu"]["architecture"], "aarch64");
    assert_eq!(stored["plugin_data"]["extra"], json!({"x": 1}));
    assert_eq!(stored["plugin_data"]["macs"], json!([MAC]));

    // Data for a node no longer waiting: 404, nothing changes.
    let (status, _) = post(&app, None, "", &json!({"inventory": inventory(MAC)})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramdisk_error_fails_the_inspection_and_records_nothing_of_it() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let uuid = waiting_node(&app, MAC).await;
    let (status, answer) = post(
        &app,
        None,
        "",
        &json!({"inventory": inventory(MAC), "error": "The following errors were encountered:\n* collector default failed"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({"uuid": uuid}));
    let node = app.wait_for_state(&uuid, "inspect failed").await;
    assert!(
        node["last_error"]
            .as_str()
            .unwrap()
            .starts_with("Failed to finish inspection: failed to run inspection hooks: Ramdisk reported error: The following errors"),
        "{}",
        node["last_error"]
    );
    assert!(node["properties"].get("cpu_arch").is_none());
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}/inventory")).await.status,
        StatusCode::NOT_FOUND
    );
    let ports = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();
    assert_eq!(ports["ports"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspection_without_data_is_aborted_or_times_out() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.check_provision_state_interval_secs = 1;
        s.conductor.inspect_wait_timeout_secs = 1;
    })
    .await;
    let uuid = waiting_node(&app, MAC).await;
    let node = wait_until(
        Duration::from_secs(20),
        "the inspection to time out",
        || async {
            let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            (node["provision_state"] == "inspect failed" && node["reservation"].is_null())
                .then_some(node)
        },
    )
    .await;
    assert_eq!(
        node["last_error"],
        "Timeout reached while inspecting the node"
    );
    assert_eq!(node["power_state"], "power off");

    // No timeout meanwhile: another Ferric, with Ironic's 30 minutes.
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let other = waiting_node(&app, "52:54:00:1e:00:02").await;
    app.provision(&other, "abort").await;
    let node = app.wait_for_state(&other, "inspect failed").await;
    assert_eq!(node["last_error"], "Inspection was aborted by request.");
    assert_eq!(node["power_state"], "power off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_whose_macs_are_unknown_is_found_by_its_bmc_address() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let uuid = app
        .manageable_node(
            json!({"driver": "manual-management", "inspect_interface": "agent",
                   "driver_info": {"ipmi_address": "192.0.2.77"}}),
            None,
        )
        .await;
    app.provision(&uuid, "inspect").await;
    app.wait_for_state(&uuid, "inspect wait").await;
    let mac = "52:54:00:1e:00:42";
    let mut data = inventory(mac);
    data["bmc_address"] = json!("192.0.2.99");
    let (status, _) = post(&app, None, "", &json!({"inventory": data})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another BMC: not this node");
    data["bmc_address"] = json!("192.0.2.77");
    let (status, answer) = post(&app, None, "", &json!({"inventory": data})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["uuid"], uuid);
    app.wait_for_state(&uuid, "manageable").await;
    // The machine's PXE MAC is now a port of the node.
    let ports = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();
    assert_eq!(ports["ports"][0]["address"], mac, "{ports}");
}
