//! Ports, chassis, drivers and conductors.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_validate_mac_and_refuse_duplicates() {
    let app = spawn_app().await;
    let node = app.create_node("n").await;
    let uuid = node["uuid"].as_str().unwrap();

    let created = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:AA:BB:01"}),
        )
        .await;
    let duplicate = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:aa:bb:01"}),
        )
        .await;
    let bad_mac = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": "zz"}))
        .await;
    let no_node = app
        .post("/v1/ports", json!({"node_uuid": "7f811b5f-4312-430c-9b9e-02ef2ea49110", "address": "52:54:00:aa:bb:02"}))
        .await;
    let listed = app.get(&format!("/v1/nodes/{uuid}/ports")).await.json();

    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let port = created.json();
    assert_eq!(port["address"], "52:54:00:aa:bb:01");
    assert_eq!(port["pxe_enabled"], true);
    assert_eq!(port["node_uuid"], uuid);
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(
        duplicate.fault(),
        "A port with MAC address 52:54:00:aa:bb:01 already exists."
    );
    assert_eq!(
        bad_mac.fault(),
        "Expected valid MAC address for address: zz"
    );
    assert_eq!(
        no_node.fault(),
        "Node 7f811b5f-4312-430c-9b9e-02ef2ea49110 could not be found."
    );
    assert_eq!(listed["ports"].as_array().unwrap().len(), 1);
    let keys: Vec<&String> = listed["ports"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["uuid", "address", "links"]);

    let port_uuid = port["uuid"].as_str().unwrap();
    let patched = app
        .patch(
            &format!("/v1/ports/{port_uuid}"),
            json!([{"op": "replace", "path": "/pxe_enabled", "value": false}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["pxe_enabled"], false);
    assert_eq!(
        app.delete(&format!("/v1/ports/{port_uuid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/v1/ports/{port_uuid}")).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chassis_with_nodes_cannot_be_deleted() {
    let app = spawn_app().await;
    let chassis = app
        .post("/v1/chassis", json!({"description": "rack 1"}))
        .await;
    assert_eq!(chassis.status, StatusCode::CREATED);
    let chassis_uuid = chassis.json()["uuid"].as_str().unwrap().to_owned();
    let node = app
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "chassis_uuid": chassis_uuid}),
        )
        .await
        .json();

    let refused = app.delete(&format!("/v1/chassis/{chassis_uuid}")).await;
    let nodes = app
        .get(&format!("/v1/chassis/{chassis_uuid}/nodes"))
        .await
        .json();
    app.delete(&format!("/v1/nodes/{}", node["uuid"].as_str().unwrap()))
        .await;
    let deleted = app.delete(&format!("/v1/chassis/{chassis_uuid}")).await;

    assert_eq!(node["chassis_uuid"], chassis_uuid);
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.fault(),
        format!(
            "Cannot complete the requested action because chassis {chassis_uuid} contains nodes."
        )
    );
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_and_conductors_reflect_the_running_conductor() {
    let app = spawn_app().await;
    let host = app.settings.conductor.host.clone().unwrap();

    let drivers = app.get("/v1/drivers").await.json();
    let fake = app.get("/v1/drivers/fake-hardware").await.json();
    let missing = app.get("/v1/drivers/nope").await;
    let conductors = app.get("/v1/conductors").await.json();
    let conductor = app.get(&format!("/v1/conductors/{host}")).await.json();

    let names: Vec<&str> = drivers["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["fake-hardware", "ipmi", "manual-management", "redfish"]
    );
    assert_eq!(drivers["drivers"][0]["hosts"], json!([host]));
    assert_eq!(fake["default_power_interface"], "fake");
    assert_eq!(fake["enabled_network_interfaces"], json!(["noop"]));
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(conductors["conductors"][0]["hostname"], host);
    assert_eq!(conductors["conductors"][0]["alive"], true);
    assert_eq!(
        conductor["drivers"],
        json!(["fake-hardware", "ipmi", "manual-management", "redfish"])
    );
    app.stop().await;
}
