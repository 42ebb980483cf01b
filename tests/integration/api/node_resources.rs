//! Node sub-resources and small collections beyond nodes and ports:
//! `/v1/nodes/{ident}/history` (1.78), `/v1/shards` (1.82), `bios` (1.40),
//! `inventory` (1.81), `children` (1.83) — microversion gates, Ironic's key
//! sets in order, the 255-character cut, paging by `created_at`, and the
//! error texts, checked side by side against a running Ironic 39.0.0.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;
use ferric_common::db::models::history::HistoryEvent;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn node_history_is_listed_paged_and_shown_as_ironic_shows_it() {
    let app = spawn_app().await;
    let node = app.create_node("h1").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let long = "x".repeat(300);
    let db = app.embedded.as_ref().unwrap().db.clone();
    let node_id = db
        .run({
            let uuid = uuid.clone();
            move |conn| {
                Ok(ferric_common::db::models::node::Node::by_uuid(conn, &uuid)?
                    .unwrap()
                    .id)
            }
        })
        .await
        .unwrap();
    for (severity, event) in [
        ("INFO", "first"),
        ("ERROR", long.as_str()),
        ("INFO", "third"),
    ] {
        let event = event.to_owned();
        let severity = severity.to_owned();
        db.run(move |conn| {
            HistoryEvent {
                node_id,
                conductor: "c1",
                event_type: "monitoring",
                severity: &severity,
                event: &event,
                state: "available",
            }
            .record(conn)
        })
        .await
        .unwrap();
    }
    let path = format!("/v1/nodes/{uuid}/history");

    let old = app.request(Method::GET, &path, Some("1.77"), None).await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);

    let plain = app.request(Method::GET, &path, Some("1.78"), None).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    let plain = plain.json();
    let events = plain["history"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        keys(&events[0]),
        ["uuid", "created_at", "severity", "event", "links"]
    );
    assert_eq!(events[0]["event"], "first");
    let cut = events[1]["event"].as_str().unwrap();
    assert_eq!(cut.len(), 254);
    assert!(cut.ends_with("..."));
    let first_uuid = events[0]["uuid"].as_str().unwrap().to_owned();
    assert!(
        events[0]["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/nodes/{uuid}/history/{first_uuid}"))
    );
    assert!(plain.get("next").is_none());

    let detail_78 = app
        .request(
            Method::GET,
            &format!("{path}?detail=true"),
            Some("1.78"),
            None,
        )
        .await
        .json();
    assert_eq!(
        keys(&detail_78["history"][0]),
        [
            "uuid",
            "created_at",
            "severity",
            "event_type",
            "event",
            "conductor",
            "user",
            "links"
        ]
    );
    let detail = app.get(&format!("{path}?detail=true")).await.json();
    let full = &detail["history"][1];
    assert_eq!(
        keys(full),
        [
            "uuid",
            "created_at",
            "severity",
            "event_type",
            "event",
            "conductor",
            "user",
            "project",
            "state",
            "target_provision_state",
            "duration_seconds",
            "links"
        ]
    );
    assert_eq!(
        full["event"].as_str().unwrap().len(),
        300,
        "detail is not cut"
    );
    assert_eq!(full["event_type"], "monitoring");
    assert_eq!(full["conductor"], "c1");
    assert_eq!(full["state"], "available");

    // Pages of two, by created_at, with Ironic's next link.
    let page = app.get(&format!("{path}?limit=2")).await.json();
    assert_eq!(page["history"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    assert!(next.contains("sort_key=created_at&sort_dir=asc"), "{next}");
    assert!(next.contains("limit=2"), "{next}");
    let second = page["history"][1]["uuid"].as_str().unwrap().to_owned();
    assert!(next.ends_with(&format!("marker={second}")), "{next}");
    let rest = app
        .get(&format!("{path}?limit=2&marker={second}"))
        .await
        .json();
    assert_eq!(rest["history"].as_array().unwrap().len(), 1);
    assert_eq!(rest["history"][0]["event"], "third");
    let backwards = app.get(&format!("{path}?sort_dir=desc")).await.json();
    assert_eq!(backwards["history"][0]["event"], "third");

    let one = app.get(&format!("{path}/{first_uuid}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["event_type"], "monitoring");
    let missing = uuid::Uuid::new_v4();
    let unknown = app.get(&format!("{path}/{missing}")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.fault(),
        format!("Node history record {missing} could not be found.")
    );
    let bad_marker = app.get(&format!("{path}?marker={missing}")).await;
    assert_eq!(bad_marker.status, StatusCode::NOT_FOUND);
    let bad_key = app.get(&format!("{path}?sort_key=event")).await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    let no_node = app
        .get(&format!("/v1/nodes/{}/history", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(no_node.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn shards_count_nodes_most_first_from_1_82() {
    let app = spawn_app().await;
    for (name, shard) in [
        ("s-a", Some("rack1")),
        ("s-b", Some("rack1")),
        ("s-c", None),
    ] {
        let mut body = json!({"driver": "fake-hardware", "name": name});
        if let Some(shard) = shard {
            body["shard"] = json!(shard);
        }
        let reply = app.post("/v1/nodes", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let old = app
        .request(Method::GET, "/v1/shards", Some("1.81"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(old.fault(), "The API version does not allow shards");
    let shards = app.get("/v1/shards").await;
    assert_eq!(shards.status, StatusCode::OK);
    assert_eq!(
        shards.json(),
        json!({"shards": [{"name": "rack1", "count": 2}, {"name": "None", "count": 1}]})
    );
    let one = app.get("/v1/shards/rack1").await;
    assert_eq!(one.status, StatusCode::NOT_FOUND);
    assert_eq!(one.fault(), "The resource could not be found.");
    app.stop().await;
}

/// Answers checked side by side against a running Ironic 39.0.0.
#[tokio::test]
async fn bios_inventory_and_children_answer_as_ironic_does() {
    let app = spawn_app().await;
    let parent = app.create_node("par").await;
    let parent_uuid = parent["uuid"].as_str().unwrap().to_owned();
    let child = app
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": "chi", "parent_node": parent_uuid}),
        )
        .await;
    assert_eq!(child.status, StatusCode::CREATED, "{}", child.text);
    let child_uuid = child.json()["uuid"].as_str().unwrap().to_owned();

    let children = app.get("/v1/nodes/par/children").await;
    assert_eq!(children.status, StatusCode::OK);
    let children = children.json();
    assert_eq!(children["children"], json!([child_uuid]));
    assert_eq!(children["links"]["rel"], "children");
    assert!(
        children["links"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/nodes?parent_node={parent_uuid}"))
    );
    assert_eq!(
        app.get("/v1/nodes/chi/children").await.json()["children"],
        json!([])
    );
    let old = app
        .request(Method::GET, "/v1/nodes/par/children", Some("1.82"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);

    assert_eq!(
        app.get("/v1/nodes/par/bios").await.json(),
        json!({"bios": []})
    );
    let setting = app.get("/v1/nodes/par/bios/foo").await;
    assert_eq!(setting.status, StatusCode::NOT_FOUND);
    assert_eq!(
        setting.fault(),
        format!("Node {parent_uuid} doesn't have a BIOS setting 'foo'")
    );
    let old = app
        .request(Method::GET, "/v1/nodes/par/bios", Some("1.39"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);

    let inventory = app.get("/v1/nodes/par/inventory").await;
    assert_eq!(inventory.status, StatusCode::NOT_FOUND);
    assert!(
        inventory
            .fault()
            .starts_with("Node inventory record for node "),
        "{}",
        inventory.text
    );
    let old = app
        .request(Method::GET, "/v1/nodes/par/inventory", Some("1.80"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    app.stop().await;
}
