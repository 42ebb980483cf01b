//! Portgroups (1.23+): CRUD, the default mode, unique MACs and names, port
//! membership on the same node, the node's and the portgroup's sub-lists,
//! deletion refused while ports remain — as Ironic 39.0.0 answers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn portgroups_group_a_nodes_ports() {
    let app = spawn_app().await;
    let node = app.create_node("pg-node").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let other = app.create_node("other").await;

    let created = app
        .post(
            "/v1/portgroups",
            json!({"node_uuid": uuid, "name": "pg1", "address": "52:54:00:AA:BB:CC"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let pg = created.json();
    assert_eq!(
        keys(&pg),
        [
            "uuid",
            "created_at",
            "updated_at",
            "address",
            "extra",
            "internal_info",
            "mode",
            "name",
            "properties",
            "standalone_ports_supported",
            "node_uuid",
            "physical_network",
            "category",
            "dynamic_portgroup",
            "links",
            "ports"
        ]
    );
    assert_eq!(pg["address"], "52:54:00:aa:bb:cc");
    assert_eq!(pg["mode"], "active-backup");
    let pg_uuid = pg["uuid"].as_str().unwrap().to_owned();

    for (body, status, message) in [
        (
            json!({"node_uuid": uuid, "name": "pg1"}),
            StatusCode::CONFLICT,
            "A portgroup with name pg1 already exists.".to_owned(),
        ),
        (
            json!({"node_uuid": uuid, "name": "pg2", "address": "52:54:00:aa:bb:cc"}),
            StatusCode::CONFLICT,
            "A portgroup with MAC address 52:54:00:aa:bb:cc already exists.".to_owned(),
        ),
        (
            json!({"node_uuid": uuid, "name": "bad name"}),
            StatusCode::BAD_REQUEST,
            "Cannot create portgroup with invalid name 'bad name'".to_owned(),
        ),
        (
            json!({"node_uuid": uuid, "address": "zz"}),
            StatusCode::BAD_REQUEST,
            "Expected valid MAC address for address: zz".to_owned(),
        ),
    ] {
        let reply = app.post("/v1/portgroups", body).await;
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.fault(), message);
    }
    let old_mode = app
        .request(
            Method::POST,
            "/v1/portgroups",
            Some("1.25"),
            Some(&json!({"node_uuid": uuid, "mode": "802.3ad"})),
        )
        .await;
    assert_eq!(old_mode.status, StatusCode::NOT_ACCEPTABLE);

    let list = app.get("/v1/portgroups").await.json();
    assert_eq!(
        keys(&list["portgroups"][0]),
        ["uuid", "address", "name", "links"]
    );
    let for_node = app.get("/v1/nodes/pg-node/portgroups").await.json();
    assert_eq!(for_node["portgroups"][0]["uuid"], pg_uuid.as_str());
    assert!(
        app.get(&format!(
            "/v1/nodes/{}/portgroups",
            other["uuid"].as_str().unwrap()
        ))
        .await
        .json()["portgroups"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Paging keeps its place when the marker row stops matching the filter.
    let second = app
        .post("/v1/portgroups", json!({"node_uuid": uuid, "name": "pg-b"}))
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let first_page = app
        .get(&format!("/v1/portgroups?node={uuid}&limit=1"))
        .await
        .json();
    assert_eq!(first_page["portgroups"][0]["name"], "pg1");
    let next = first_page["next"].as_str().unwrap().to_owned();
    let moved_away = app
        .patch(
            "/v1/portgroups/pg1",
            json!([{"op": "replace", "path": "/node_uuid", "value": other["uuid"]}]),
        )
        .await;
    assert_eq!(moved_away.status, StatusCode::OK, "{}", moved_away.text);
    let second_page = app.get(next.trim_start_matches(&app.base)).await;
    assert_eq!(second_page.status, StatusCode::OK, "{}", second_page.text);
    assert_eq!(second_page.json()["portgroups"][0]["name"], "pg-b");
    let back = app
        .patch(
            "/v1/portgroups/pg1",
            json!([{"op": "replace", "path": "/node_uuid", "value": uuid}]),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(
        app.delete("/v1/portgroups/pg-b").await.status,
        StatusCode::NO_CONTENT
    );

    let old = app
        .request(Method::GET, "/v1/portgroups", Some("1.22"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(old.fault(), "The API is not supported for this version");

    let no_mode = app
        .patch(
            "/v1/portgroups/pg1",
            json!([{"op": "remove", "path": "/mode"}]),
        )
        .await;
    assert_eq!(
        no_mode.fault(),
        "'mode' is a mandatory attribute and can not be removed"
    );
    let patched = app
        .patch(
            "/v1/portgroups/pg1",
            json!([{"op": "replace", "path": "/mode", "value": "802.3ad"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["mode"], "802.3ad");

    // A port joins the portgroup of its own node only.
    let port = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:11:22:33", "portgroup_uuid": pg_uuid}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    assert_eq!(port.json()["portgroup_uuid"], pg_uuid.as_str());
    let foreign = app
        .post(
            "/v1/ports",
            json!({"node_uuid": other["uuid"], "address": "52:54:00:11:22:44", "portgroup_uuid": pg_uuid}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{}", foreign.text);
    let moved = app
        .patch(
            "/v1/portgroups/pg1",
            json!([{"op": "replace", "path": "/node_uuid", "value": other["uuid"]}]),
        )
        .await;
    assert_eq!(moved.status, StatusCode::BAD_REQUEST, "{}", moved.text);
    assert_eq!(
        moved.fault(),
        format!("Cannot complete the requested action because portgroup {pg_uuid} contains ports.")
    );
    let members = app.get("/v1/portgroups/pg1/ports").await.json();
    assert_eq!(members["ports"].as_array().unwrap().len(), 1);
    assert_eq!(members["ports"][0]["address"], "52:54:00:11:22:33");

    let busy = app.delete("/v1/portgroups/pg1").await;
    assert_eq!(busy.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        busy.fault(),
        format!("Cannot complete the requested action because portgroup {pg_uuid} contains ports.")
    );
    let port_uuid = port.json()["uuid"].as_str().unwrap().to_owned();
    let left = app
        .patch(
            &format!("/v1/ports/{port_uuid}"),
            json!([{"op": "remove", "path": "/portgroup_uuid"}]),
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.text);
    assert!(left.json()["portgroup_uuid"].is_null());
    assert_eq!(
        app.delete("/v1/portgroups/pg1").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/portgroups/pg1").await.fault(),
        "Portgroup pg1 could not be found."
    );
    app.stop().await;
}
