//! The node lock: while a conductor works on a node, other changes get 409
//! and nothing changes; the lock is released when the work ends.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_being_deployed_refuses_other_changes_with_409() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.fake_step_delay_ms = 1500;
        s.conductor.node_locked_retry_attempts = 1;
    })
    .await;
    let node = app.available_node("busy").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let host = app.settings.conductor.host.clone().unwrap();

    app.provision(&uuid, "active").await;
    let during = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    let power = app
        .put(
            &format!("/v1/nodes/{uuid}/states/power"),
            json!({"target": "power on"}),
        )
        .await;
    let patch = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/extra/x", "value": 1}]),
        )
        .await;
    let again = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "active"}),
        )
        .await;
    let done = app.wait_for_state(&uuid, "active").await;

    assert_eq!(during["provision_state"], "deploying");
    assert_eq!(during["target_provision_state"], "active");
    assert_eq!(during["reservation"], host);
    assert_eq!(power.status, StatusCode::CONFLICT);
    assert_eq!(
        power.fault(),
        format!(
            "Node {uuid} is locked by host {host}, please retry after the current operation is completed."
        )
    );
    assert_eq!(patch.status, StatusCode::CONFLICT);
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "a locked node answers NodeLocked"
    );
    assert_eq!(
        done["extra"],
        json!({}),
        "the refused patch changed nothing"
    );
    assert!(
        done["power_state"].is_null(),
        "the refused power action changed nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_node_start_exactly_one_task() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.conductor.fake_step_delay_ms = 500).await;
    let node = app.available_node("race").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/nodes/{uuid}/states/provision");

    let replies = futures_join(&app, &path).await;
    app.wait_for_state(&uuid, "active").await;

    let accepted = replies
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1, "{replies:?}");
    assert!(
        replies.iter().all(|s| *s == StatusCode::ACCEPTED
            || *s == StatusCode::CONFLICT
            || *s == StatusCode::BAD_REQUEST),
        "{replies:?}"
    );
    app.stop().await;
}

async fn futures_join(app: &crate::helpers::TestApp, path: &str) -> Vec<StatusCode> {
    let body = json!({"target": "active"});
    let requests = (0..8).map(|_| app.put(path, body.clone()));
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|reply| reply.status)
        .collect()
}
