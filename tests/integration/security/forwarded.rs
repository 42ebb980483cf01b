//! `X-Forwarded-*` headers are a client's claim: links follow them only
//! when `[api] enable_proxy_headers_parsing` says a trusted proxy sets them.
//! The `Host` header is a claim too: without a public endpoint, links name
//! the address the client reached.

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, spawn_app_with};

async fn root_link(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/v1", app.base))
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Host", "evil.example:6385")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    body["links"][0]["href"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_ignored_unless_configured() {
    let plain = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let proxied = spawn_app_with(Backend::Sqlite, |s| {
        s.api.enable_proxy_headers_parsing = true;
    })
    .await;

    let ignored = root_link(&plain).await;
    let honoured = root_link(&proxied).await;

    assert!(
        ignored.starts_with(&format!("{}/v1", plain.base)),
        "{ignored}"
    );
    assert!(
        honoured.starts_with("https://evil.example/v1"),
        "{honoured}"
    );
    plain.stop().await;
    proxied.stop().await;
}
