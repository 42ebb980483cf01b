//! Allocations (1.52+): a conductor picks a matching available node and
//! reserves it (node `allocation_uuid` and `instance_uuid` set together),
//! backfill of a deployed node (1.58), deletion freeing the node, tear-down
//! ending the allocation, concurrent allocations never sharing a node, the
//! sweep filling an abandoned allocation — with Ironic 39.0.0's bodies and
//! messages.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with, wait_until};

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

async fn gold_node(app: &TestApp, name: &str, traits: &[&str]) -> String {
    let node = app.available_node(name).await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/resource_class", "value": "gold"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    // Allocations take only nodes with a known power state (as Ironic's
    // `with_power_state` filter); a fresh fake node has none until synced.
    app.power_off(&uuid).await;
    if !traits.is_empty() {
        let reply = app
            .put(
                &format!("/v1/nodes/{uuid}/traits"),
                json!({"traits": traits}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }
    uuid
}

/// Waits until the allocation leaves `allocating`; returns its body.
async fn settled(app: &TestApp, ident: &str) -> Value {
    wait_until(
        Duration::from_secs(20),
        &format!("allocation {ident} to settle"),
        || async {
            let body = app.get(&format!("/v1/allocations/{ident}")).await.json();
            (body["state"] != "allocating").then_some(body)
        },
    )
    .await
}

#[tokio::test]
async fn an_allocation_reserves_a_matching_node_and_deleting_it_frees_the_node() {
    let app = spawn_app().await;
    let missing_rc = app.post("/v1/allocations", json!({})).await;
    assert_eq!(missing_rc.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing_rc.fault(),
        "The resource_class field is mandatory when not backfilling"
    );

    let none = app
        .post(
            "/v1/allocations",
            json!({"resource_class": "gold", "name": "a1"}),
        )
        .await;
    assert_eq!(none.status, StatusCode::CREATED, "{}", none.text);
    let body = none.json();
    assert_eq!(
        keys(&body),
        [
            "uuid",
            "created_at",
            "updated_at",
            "candidate_nodes",
            "extra",
            "last_error",
            "name",
            "owner",
            "resource_class",
            "state",
            "traits",
            "links",
            "node_uuid"
        ]
    );
    let a1 = settled(&app, "a1").await;
    assert_eq!(a1["state"], "error");
    assert_eq!(
        a1["last_error"],
        format!(
            "Failed to process allocation {}: no available nodes match the resource class gold.",
            body["uuid"].as_str().unwrap()
        )
    );

    let node = gold_node(&app, "n1", &["CUSTOM_X"]).await;
    let wrong_traits = app
        .post(
            "/v1/allocations",
            json!({"resource_class": "gold", "name": "a2", "traits": ["CUSTOM_Y"]}),
        )
        .await;
    assert_eq!(wrong_traits.status, StatusCode::CREATED);
    let a2 = settled(&app, "a2").await;
    assert!(
        a2["last_error"]
            .as_str()
            .unwrap()
            .ends_with("no suitable nodes have the requested traits CUSTOM_Y."),
        "{a2}"
    );

    let good = app
        .post(
            "/v1/allocations",
            json!({"resource_class": "gold", "name": "a3", "traits": ["CUSTOM_X"], "extra": {"k": 1}}),
        )
        .await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.text);
    // Answered as created, as Ironic: the conductor fills it afterwards.
    assert_eq!(good.json()["state"], "allocating", "{}", good.text);
    assert!(good.json()["node_uuid"].is_null(), "{}", good.text);
    let a3 = settled(&app, "a3").await;
    assert_eq!(a3["state"], "active", "{a3}");
    assert_eq!(a3["node_uuid"], node.as_str());
    assert!(a3["last_error"].is_null());
    let a3_uuid = a3["uuid"].as_str().unwrap().to_owned();
    let node_body = app.get(&format!("/v1/nodes/{node}")).await.json();
    assert_eq!(node_body["allocation_uuid"], a3_uuid.as_str());
    assert_eq!(node_body["instance_uuid"], a3_uuid.as_str());
    let via_node = app.get(&format!("/v1/nodes/{node}/allocation")).await;
    assert_eq!(via_node.json()["uuid"], a3_uuid.as_str());
    let listed = app.get("/v1/allocations?node=n1").await.json();
    assert_eq!(listed["allocations"].as_array().unwrap().len(), 1);
    let errors = app
        .get("/v1/allocations?state=error&fields=uuid,state")
        .await
        .json();
    assert_eq!(errors["allocations"].as_array().unwrap().len(), 2);
    assert_eq!(keys(&errors["allocations"][0]), ["uuid", "state", "links"]);
    let unknown_node = app.get("/v1/allocations?node=nope").await;
    assert_eq!(unknown_node.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown_node.fault(), "Node nope could not be found.");

    // The node is taken: another allocation finds nothing.
    app.post(
        "/v1/allocations",
        json!({"resource_class": "gold", "name": "a4"}),
    )
    .await;
    assert_eq!(settled(&app, "a4").await["state"], "error");

    let patched = app
        .patch(
            "/v1/allocations/a3",
            json!([{"op": "replace", "path": "/name", "value": "b3"},
                   {"op": "add", "path": "/extra/y", "value": 2}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["extra"], json!({"k": 1, "y": 2}));
    let rc_patch = app
        .patch(
            "/v1/allocations/b3",
            json!([{"op": "replace", "path": "/resource_class", "value": "x"}]),
        )
        .await;
    assert_eq!(
        rc_patch.fault(),
        "Cannot patch /resource_class. Only the following can be updated: name, extra"
    );
    let dup = app
        .patch(
            "/v1/allocations/b3",
            json!([{"op": "replace", "path": "/name", "value": "a1"}]),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.fault(), "An allocation with name a1 already exists.");

    assert_eq!(
        app.delete("/v1/allocations/b3").await.status,
        StatusCode::NO_CONTENT
    );
    let freed = app.get(&format!("/v1/nodes/{node}")).await.json();
    assert!(freed["allocation_uuid"].is_null() && freed["instance_uuid"].is_null());
    let gone = app.get(&format!("/v1/nodes/{node}/allocation")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone.fault(),
        format!("Allocation for node {node} was not found")
    );
    assert_eq!(
        app.get("/v1/allocations/b3").await.fault(),
        "Allocation b3 could not be found."
    );

    // Removing the instance UUID of an available node ends its allocation.
    app.post(
        "/v1/allocations",
        json!({"resource_class": "gold", "name": "a5"}),
    )
    .await;
    assert_eq!(settled(&app, "a5").await["node_uuid"], node.as_str());
    let removed = app
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([{"op": "remove", "path": "/instance_uuid"}]),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert!(removed.json()["allocation_uuid"].is_null());
    assert_eq!(
        app.get("/v1/allocations/a5").await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn allocation_input_and_versions_are_checked() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"resource_class": "gold", "candidate_nodes": ["nope"]}),
            "Nodes cannot be found: nope",
        ),
        (
            json!({"resource_class": "gold", "name": "bad name"}),
            "Cannot create allocation with invalid name 'bad name'",
        ),
        (
            json!({"resource_class": "gold", "traits": ["bad"]}),
            "Schema error: 'bad' is not valid under any of the given schemas. Possible root cause: 'bad' does not match '^CUSTOM_[A-Z0-9_]+$'",
        ),
        (
            json!({"resource_class": "gold", "bogus": 1}),
            "Schema error: Additional properties are not allowed ('bogus' was unexpected)",
        ),
    ];
    for (body, message) in cases {
        let reply = app.post("/v1/allocations", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.fault(), message);
    }
    let no_backfill = app
        .request(
            Method::POST,
            "/v1/allocations",
            Some("1.57"),
            Some(&json!({"node": "n1"})),
        )
        .await;
    assert_eq!(
        no_backfill.fault(),
        "Schema error: Additional properties are not allowed ('node' was unexpected)"
    );
    let old_get = app
        .request(Method::GET, "/v1/allocations", Some("1.51"), None)
        .await;
    assert_eq!(old_get.status, StatusCode::NOT_FOUND);
    assert_eq!(
        old_get.fault(),
        "The API version does not allow allocations"
    );
    let old_post = app
        .request(
            Method::POST,
            "/v1/allocations",
            Some("1.51"),
            Some(&json!({"resource_class": "x"})),
        )
        .await;
    assert_eq!(old_post.status, StatusCode::METHOD_NOT_ALLOWED);
    let old_owner = app
        .request(Method::GET, "/v1/allocations?owner=x", Some("1.59"), None)
        .await;
    assert_eq!(old_owner.status, StatusCode::NOT_ACCEPTABLE);
    let old_fields = app
        .request(
            Method::GET,
            "/v1/allocations?fields=bogus",
            Some("1.59"),
            None,
        )
        .await;
    assert!(
        old_fields
            .fault()
            .starts_with("Schema error: 'bogus' is not one of ['candidate_nodes'")
    );
    assert!(
        app.get("/v1/allocations").await.json()["allocations"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a refused request stores nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deployed_node_is_backfilled_and_tear_down_ends_its_allocation() {
    let app = spawn_app().await;
    let node = gold_node(&app, "bf", &[]).await;
    let refused = app
        .post("/v1/allocations", json!({"node": "bf", "name": "early"}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.fault().ends_with(&format!(
            "Cannot backfill an allocation for node {node}: Node must be in the \"active\" state, but the current state is \"available\"."
        )),
        "{}",
        refused.fault()
    );
    assert_eq!(
        app.get("/v1/allocations/early").await.json()["state"],
        "error"
    );

    app.provision(&node, "active").await;
    app.wait_for_state(&node, "active").await;
    let backfilled = app
        .post("/v1/allocations", json!({"node": "bf", "name": "late"}))
        .await;
    assert_eq!(
        backfilled.status,
        StatusCode::CREATED,
        "{}",
        backfilled.text
    );
    let body = backfilled.json();
    assert_eq!(body["state"], "active");
    assert_eq!(body["node_uuid"], node.as_str());
    assert_eq!(body["resource_class"], "gold");
    let alloc_uuid = body["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/v1/nodes/{node}")).await.json()["allocation_uuid"],
        alloc_uuid.as_str()
    );
    // An active node's allocation stays.
    let busy = app.delete(&format!("/v1/nodes/{node}/allocation")).await;
    assert_eq!(busy.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        busy.fault(),
        format!(
            "Cannot remove allocation {alloc_uuid} for node {node}, because the node is active (and maintenance mode is off)"
        )
    );

    app.provision(&node, "deleted").await;
    let after = app.wait_for_state(&node, "available").await;
    assert!(after["allocation_uuid"].is_null() && after["instance_uuid"].is_null());
    assert_eq!(
        app.get("/v1/allocations/late").await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_allocations_never_share_a_node() {
    let app = spawn_app_with(Backend::Postgres, |_| {}).await;
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(gold_node(&app, &format!("c{i}"), &[]).await);
    }
    let requests = (0..7).map(|i| {
        app.post(
            "/v1/allocations",
            json!({"resource_class": "gold", "name": format!("x{i}")}),
        )
    });
    for reply in futures_util::future::join_all(requests).await {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let mut taken = Vec::new();
    let mut failed = 0;
    for i in 0..7 {
        let alloc = settled(&app, &format!("x{i}")).await;
        match alloc["state"].as_str() {
            Some("active") => taken.push(alloc["node_uuid"].as_str().unwrap().to_owned()),
            _ => failed += 1,
        }
    }
    taken.sort();
    let mut expected = nodes.clone();
    expected.sort();
    assert_eq!(taken, expected, "every node taken exactly once");
    assert_eq!(failed, 3);
    app.stop().await;
}

#[tokio::test]
async fn an_abandoned_allocation_is_filled_by_the_sweep() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.check_provision_state_interval_secs = 1;
        s.conductor.heartbeat_interval_secs = 1;
        s.conductor.heartbeat_timeout_secs = 2;
    })
    .await;
    let node = gold_node(&app, "sw", &[]).await;
    let db = app.embedded.as_ref().unwrap().db.clone();
    let uuid = uuid::Uuid::new_v4().to_string();
    let key = uuid.clone();
    // As left by an API whose task no conductor answered: no affinity,
    // created a while ago.
    db.run(move |conn| {
        use ferric_common::db::models::allocation::{Allocation, NewAllocation};
        use ferric_common::db::schema::allocations;
        let alloc = Allocation::insert(
            conn,
            &NewAllocation {
                uuid: key.clone(),
                name: None,
                state: "allocating".into(),
                owner: None,
                resource_class: Some("gold".into()),
                traits: "[]".into(),
                candidate_nodes: "[]".into(),
                extra: "{}".into(),
                backfill_node_id: None,
            },
        )?;
        let long_ago = ferric_common::db::now() - chrono::Duration::minutes(5);
        diesel::update(allocations::table.find(alloc.id))
            .set(allocations::created_at.eq(long_ago))
            .execute(conn)?;
        Ok(())
    })
    .await
    .unwrap();
    let alloc = settled(&app, &uuid).await;
    assert_eq!(alloc["state"], "active", "{alloc}");
    assert_eq!(alloc["node_uuid"], node.as_str());
    app.stop().await;
}
