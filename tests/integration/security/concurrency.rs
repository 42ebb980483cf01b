//! Concurrent writers on one node: every answer is a success or a 409, and
//! no accepted update is lost.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_patches_and_state_changes_lose_no_update() {
    let app = spawn_app().await;
    let node = app.create_node("contended").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/nodes/{uuid}");

    let patches = (0..80).map(|i| {
        app.patch(
            &path,
            json!([{"op": "add", "path": format!("/extra/k{i}"), "value": i}]),
        )
    });
    let provision = format!("{path}/states/provision");
    let changes = (0..20).map(|i| {
        let target = if i % 2 == 0 { "manage" } else { "provide" };
        app.put(&provision, json!({"target": target}))
    });
    let (patched, changed) = tokio::join!(join_all(patches), join_all(changes));
    crate::helpers::wait_until(
        std::time::Duration::from_secs(20),
        "the node to settle",
        || async {
            let n = app.get(&path).await.json();
            n["reservation"].is_null().then_some(())
        },
    )
    .await;
    let after = app.get(&path).await.json();

    let accepted: Vec<usize> = patched
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == StatusCode::OK)
        .map(|(i, _)| i)
        .collect();
    for reply in patched.iter().chain(changed.iter()) {
        assert!(
            [
                StatusCode::OK,
                StatusCode::ACCEPTED,
                StatusCode::CONFLICT,
                StatusCode::BAD_REQUEST
            ]
            .contains(&reply.status),
            "{} {}",
            reply.status,
            reply.text
        );
        assert!(reply.status != StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert!(!accepted.is_empty(), "some patches got through");
    for i in &accepted {
        assert_eq!(
            after["extra"][format!("k{i}")],
            json!(i),
            "accepted update k{i} is there"
        );
    }
    let stored = after["extra"].as_object().unwrap().len();
    assert_eq!(stored, accepted.len(), "nothing but the accepted updates");
    assert!(
        ["enroll", "verifying", "manageable", "cleaning", "available"]
            .contains(&after["provision_state"].as_str().unwrap()),
        "{after}"
    );
    app.stop().await;
}
