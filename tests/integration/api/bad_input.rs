//! Bad input gets Ironic's 4xx and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mistyped_bodies_are_refused_without_a_row() {
    let app = spawn_app().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "Invalid JSON in request body"),
        (
            br#"{"driver": 5}"#.to_vec(),
            "Schema error for node: 5 is not of type 'string'",
        ),
        (
            br#"{"driver": "fake-hardware", "foo": 1}"#.to_vec(),
            "Schema error for node: Additional properties are not allowed ('foo' was unexpected)",
        ),
        (
            br#"{"name": "x"}"#.to_vec(),
            "Schema error for node: 'driver' is a required property",
        ),
        (
            br#"{"driver": "fake-hardware", "uuid": "not-a-uuid"}"#.to_vec(),
            "Expected UUID for uuid: not-a-uuid",
        ),
        (
            br#"{"driver": "fake-hardware", "chassis_uuid": "bad"}"#.to_vec(),
            "Expected UUID for chassis_uuid: bad",
        ),
        (
            br#"{"driver": "fake-hardware", "maintenance": "maybe"}"#.to_vec(),
            "Invalid maintenance: Unrecognized value 'maybe'",
        ),
        (
            br#"{"driver": "fake-hardware", "name": "bad name"}"#.to_vec(),
            "Cannot create node with invalid name 'bad name'",
        ),
        (
            br#"{"driver": "fake-hardware", "name": "detail"}"#.to_vec(),
            "The word \"detail\" is reserved",
        ),
        (
            br#"[1, 2]"#.to_vec(),
            "Schema error for node: [1, 2] is not of type 'object'",
        ),
        (
            br#"{"driver": "fake-hardware", "name": "x'; DROP TABLE nodes; --"}"#.to_vec(),
            "Cannot create node with invalid name",
        ),
    ];
    for (body, expected) in cases {
        let reply = app.raw(Method::POST, "/v1/nodes", body.clone()).await;

        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            reply.fault().starts_with(expected),
            "{} -> {}",
            String::from_utf8_lossy(&body),
            reply.fault()
        );
    }
    assert_eq!(app.get("/v1/nodes").await.json()["nodes"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let app = spawn_app().await;
    let huge = format!(
        r#"{{"driver": "fake-hardware", "extra": {{"blob": "{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );

    let reply = app.raw(Method::POST, "/v1/nodes", huge.into_bytes()).await;

    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.get("/v1/nodes").await.json()["nodes"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_patches_and_bad_identifiers_are_refused() {
    let app = spawn_app().await;
    let node = app.create_node("n").await;
    let uuid = node["uuid"].as_str().unwrap();
    let cases = [
        (
            json!({"op": "replace"}),
            "Schema error for patch: {'op': 'replace'} is not of type 'array'",
        ),
        (
            json!([{"op": "move", "path": "/extra/a", "value": 1}]),
            "Schema error for patch: 'move' is not one of ['add', 'replace', 'remove']",
        ),
        (
            json!([{"path": "/extra"}]),
            "Schema error for patch: 'op' is a required property",
        ),
        (
            json!([{"op": "add", "path": "/extra/a/b", "value": 1}]),
            "Couldn't apply patch",
        ),
        (
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
            "Cannot patch /uuid.",
        ),
        (
            json!([{"op": "replace", "path": "/driver_info", "value": "str"}]),
            "Schema error for patch: 'str' is not of type 'object', 'null'",
        ),
        (
            json!([{"op": "replace", "path": "/name", "value": "bad name"}]),
            "Node ",
        ),
    ];
    for (patch, expected) in cases {
        let reply = app.patch(&format!("/v1/nodes/{uuid}"), patch.clone()).await;

        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{patch}");
        assert!(
            reply.fault().starts_with(expected),
            "{patch} -> {}",
            reply.fault()
        );
    }
    let after = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(after["updated_at"], node["updated_at"], "no row changed");
    assert_eq!(
        app.get("/v1/nodes/does-not-exist").await.fault(),
        "Node does-not-exist could not be found."
    );
    assert_eq!(
        app.get("/v1/nodes?limit=0").await.fault(),
        "Limit must be positive"
    );
    assert_eq!(
        app.get("/v1/nodes?limit=abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/v1/nodes?marker=nope").await.fault(),
        "Expected UUID for marker: nope"
    );
    assert_eq!(
        app.get("/v1/nodes?foo=bar").await.fault(),
        "Unexpected arguments: foo"
    );
    assert_eq!(
        app.get("/v1/nodes/bad%20name").await.status,
        StatusCode::BAD_REQUEST
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_and_power_requests_are_checked_before_any_task() {
    let app = spawn_app().await;
    let node = app.create_node("s").await;
    let uuid = node["uuid"].as_str().unwrap();
    let path = format!("/v1/nodes/{uuid}/states/provision");

    let bad_transition = app.put(&path, json!({"target": "active"})).await;
    let missing = app.put(&path, json!({})).await;
    let unexpected = app.put(&path, json!({"target": "manage", "foo": 1})).await;
    let old_verb = app
        .request(
            Method::PUT,
            &path,
            Some("1.3"),
            Some(&json!({"target": "manage"})),
        )
        .await;
    let clean_without_steps = app.put(&path, json!({"target": "clean"})).await;
    let power_bad = app
        .put(
            &format!("/v1/nodes/{uuid}/states/power"),
            json!({"target": "power sideways"}),
        )
        .await;

    assert_eq!(bad_transition.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_transition.fault(),
        format!(
            "The requested action \"active\" can not be performed on node \"{uuid}\" while it is in state \"enroll\"."
        )
    );
    assert_eq!(missing.fault(), "Missing mandatory parameter: target");
    assert_eq!(unexpected.fault(), "Unexpected arguments: foo");
    assert_eq!(old_verb.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(clean_without_steps.status, StatusCode::BAD_REQUEST);
    assert_eq!(power_bad.status, StatusCode::BAD_REQUEST);
    let after = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(after["provision_state"], "enroll");
    assert!(
        after["provision_updated_at"].is_null(),
        "no transition happened"
    );
    app.stop().await;
}
