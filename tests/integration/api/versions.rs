//! Version discovery and microversion negotiation.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_lists_v1_and_answers_at_1_1_without_a_header() {
    let app = spawn_app().await;

    let reply = app.request(Method::GET, "/", None, None).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-openstack-ironic-api-version"), Some("1.1"));
    assert_eq!(
        reply.header("x-openstack-ironic-api-minimum-version"),
        Some("1.1")
    );
    assert_eq!(
        reply.header("x-openstack-ironic-api-maximum-version"),
        Some("1.115")
    );
    let body = reply.json();
    assert_eq!(body["default_version"]["version"], "1.115");
    assert_eq!(
        body["versions"][0]["links"][0]["href"],
        format!("{}/v1/", app.base)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_links_appear_only_at_their_version() {
    let app = spawn_app().await;

    let old = app.request(Method::GET, "/v1/", None, None).await.json();
    let new = app
        .request(Method::GET, "/v1/", Some("latest"), None)
        .await
        .json();

    assert!(
        old.get("conductors").is_none(),
        "conductors link needs 1.49"
    );
    assert!(new.get("conductors").is_some());
    assert!(new.get("deploy_templates").is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_versions_get_406_with_the_range() {
    let app = spawn_app().await;
    for bad in ["1.999", "2.0", "1.0", "banana"] {
        let reply = app.request(Method::GET, "/v1/nodes", Some(bad), None).await;

        assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE, "version {bad}");
        assert!(
            reply.header("x-openstack-ironic-api-version").is_none(),
            "{bad}"
        );
        assert_eq!(
            reply.header("x-openstack-ironic-api-maximum-version"),
            Some("1.115")
        );
    }
    let reply = app
        .request(Method::GET, "/v1/nodes", Some("1.999"), None)
        .await;
    assert_eq!(
        reply.fault(),
        "Version 1.999 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.115]."
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;

    let ok = app.get("/v1/nodes").await;
    let missing = app.get("/v1/nodes/nope").await;

    for reply in [&ok, &missing] {
        let id = reply.header("x-openstack-request-id").expect("request id");
        assert!(id.starts_with("req-"), "{id}");
        assert_eq!(reply.header("openstack-request-id"), Some(id));
    }
    assert_ne!(
        ok.header("x-openstack-request-id"),
        missing.header("x-openstack-request-id")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_ironics_404_body() {
    let app = spawn_app().await;

    let reply = app.get("/v1/no-such-thing").await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json()["error_message"],
        r#"{"code": 404, "title": "Not Found", "description": ""}"#
    );
    let wrong_method = app
        .request(Method::PUT, "/v1/nodes", Some("latest"), None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;
}
