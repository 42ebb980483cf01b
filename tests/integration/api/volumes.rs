//! Volume connectors and targets (1.32): CRUD globally and under a node,
//! unique (type, connector id) and per-node boot index, masked target
//! properties, changes only while the node is powered off — as Ironic
//! 39.0.0 answers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn volume_connectors_and_targets_are_managed_per_node() {
    let app = spawn_app().await;
    let node = app.create_node("vol").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();

    let root = app.get("/v1/volume").await.json();
    assert_eq!(keys(&root), ["links", "connectors", "targets"]);
    let old = app
        .request(Method::GET, "/v1/volume", Some("1.31"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(old.fault(), "The API is not supported for this version");

    let iqn = "iqn.2017-05.org.openstack:01:d9a51732c3f";
    let connector = app
        .post(
            "/v1/volume/connectors",
            json!({"node_uuid": uuid, "type": "iqn", "connector_id": iqn}),
        )
        .await;
    assert_eq!(connector.status, StatusCode::CREATED, "{}", connector.text);
    let connector = connector.json();
    assert_eq!(
        keys(&connector),
        [
            "uuid",
            "created_at",
            "updated_at",
            "connector_id",
            "extra",
            "type",
            "links",
            "node_uuid"
        ]
    );
    let dup = app
        .post(
            "/v1/volume/connectors",
            json!({"node_uuid": uuid, "type": "iqn", "connector_id": iqn}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(
        dup.fault(),
        format!("A volume connector with type iqn and connector ID {iqn} already exists.")
    );
    let by_name = app
        .post(
            "/v1/volume/connectors",
            json!({"node_uuid": "vol", "type": "iqn", "connector_id": "x"}),
        )
        .await;
    assert_eq!(by_name.fault(), "Expected UUID for node_uuid: vol");
    let missing_node = "5d7c3ab8-c362-443c-b67d-5af579088beb";
    let unknown_node = app
        .post(
            "/v1/volume/connectors",
            json!({"node_uuid": missing_node, "type": "iqn", "connector_id": "x"}),
        )
        .await;
    assert_eq!(
        unknown_node.fault(),
        format!("Invalid input for field/attribute node_uuid. Value: '{missing_node}'. ")
    );

    let target = app
        .post(
            "/v1/volume/targets",
            json!({"node_uuid": uuid, "volume_type": "iscsi", "boot_index": 0,
                   "volume_id": "04452bed-5367-4202-8bf5-de4335ac56d2",
                   "properties": {"auth_password": "s3cret"}}),
        )
        .await;
    assert_eq!(target.status, StatusCode::CREATED, "{}", target.text);
    let target = target.json();
    assert_eq!(target["properties"], json!({"auth_password": "******"}));
    let same_index = app
        .post(
            "/v1/volume/targets",
            json!({"node_uuid": uuid, "volume_type": "iscsi", "boot_index": 0, "volume_id": "x"}),
        )
        .await;
    assert_eq!(same_index.status, StatusCode::CONFLICT);
    assert_eq!(
        same_index.fault(),
        "A volume target with boot index '0' for the same node already exists."
    );
    let missing = app
        .post("/v1/volume/targets", json!({"node_uuid": uuid}))
        .await;
    assert_eq!(
        missing.fault(),
        "Schema error for target: 'boot_index' is a required property"
    );

    let list = app.get("/v1/volume/connectors").await.json();
    assert_eq!(
        keys(&list["connectors"][0]),
        ["uuid", "connector_id", "type", "links", "node_uuid"]
    );
    let targets = app.get("/v1/nodes/vol/volume/targets").await.json();
    assert_eq!(targets["targets"].as_array().unwrap().len(), 1);
    assert_eq!(
        keys(&targets["targets"][0]),
        [
            "uuid",
            "boot_index",
            "volume_id",
            "volume_type",
            "links",
            "node_uuid"
        ]
    );
    let bad_uuid = app.get("/v1/volume/connectors/nope").await;
    assert_eq!(bad_uuid.fault(), "Expected UUID for connector_uuid: nope");

    // A node whose power state is not "power off" keeps its volumes.
    let connector_path = format!(
        "/v1/volume/connectors/{}",
        connector["uuid"].as_str().unwrap()
    );
    let patch = json!([{"op": "add", "path": "/extra/rack", "value": "r1"}]);
    let refused = app.patch(&connector_path, patch.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.fault(),
        format!(
            "The requested action \"volume connector update\" can not be performed on node \"{uuid}\" while it is in state \"None\"."
        )
    );
    app.power_off(&uuid).await;
    let patched = app.patch(&connector_path, patch).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["extra"], json!({"rack": "r1"}));
    assert_eq!(
        app.delete(&connector_path).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&connector_path).await.fault(),
        format!(
            "Volume connector {} could not be found.",
            connector["uuid"].as_str().unwrap()
        )
    );
    app.stop().await;
}
