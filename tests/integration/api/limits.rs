//! Limits that keep the API serving under hostile clients: slow request
//! heads are cut off, deep JSON and huge headers are refused, and the
//! server keeps answering everyone else.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_deep_json_and_huge_headers_get_a_clear_refusal() {
    // Long enough that a loaded CI machine still reads an ordinary
    // request's head in time (the timer runs from the connection's start
    // to its first head), short enough to see the slow client cut off.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.client_request_timeout_ms = 2_000;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // A client that never finishes its request head is disconnected.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let cut_after = started.elapsed();

    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_reply = app
        .raw(reqwest::Method::POST, "/v1/nodes", deep.into_bytes())
        .await;
    let nested = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
    let nested_reply = app
        .raw(reqwest::Method::PATCH, "/v1/nodes/x", nested.into_bytes())
        .await;
    // On a connection of its own: on a kept-alive one the head's read
    // timer may already be running, and 408 would win the race with 431.
    let huge_header = reqwest::Client::new()
        .get(format!("{}/v1/nodes", app.base))
        .header("X-Junk", "a".repeat(100_000))
        .send()
        .await;
    let still_serving = app.get("/v1/nodes").await.status;

    assert!(read.is_ok(), "the slow connection was closed");
    assert!(cut_after < Duration::from_secs(8), "{cut_after:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(
        deep_reply.status,
        StatusCode::BAD_REQUEST,
        "{}",
        deep_reply.text
    );
    assert!(
        deep_reply.text.contains("faultstring"),
        "Ironic's body: {}",
        deep_reply.text
    );
    assert!(
        nested_reply.status.is_client_error(),
        "{}",
        nested_reply.status
    );
    match huge_header {
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    assert_eq!(still_serving, StatusCode::OK);
    app.stop().await;
}
