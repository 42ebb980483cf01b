//! A corpus of hostile requests: every answer is a 4xx with Ironic's error
//! body, never a 500, and nothing in the database changes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let node = app.create_node("target").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let port_body = json!({"node_uuid": uuid, "address": "52:54:00:aa:bb:cc"});
    let port = app.post("/v1/ports", port_body).await.json();
    let before_nodes = app.get("/v1/nodes/detail").await.text;
    let before_ports = app.get("/v1/ports/detail").await.text;

    let sqlish = "x' OR '1'='1'; DROP TABLE nodes; --";
    let traversal = "../../../../etc/passwd";
    let huge = "9".repeat(400);
    let node_path = format!("/v1/nodes/{uuid}");
    let mut corpus: Vec<(Method, String, Vec<u8>)> = vec![
        (Method::POST, "/v1/nodes".into(), b"{".to_vec()),
        (
            Method::POST,
            "/v1/nodes".into(),
            b"\xff\xfe\x00garbage".to_vec(),
        ),
        (Method::POST, "/v1/nodes".into(), b"null".to_vec()),
        (
            Method::POST,
            "/v1/nodes".into(),
            format!("{{\"driver\": {huge}}}").into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": "fake-hardware", "name": sqlish})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": "fake-hardware", "name": traversal})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": "fake-hardware", "name": "nœud-💥"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": traversal}).to_string().into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": "fake-hardware", "uuid": sqlish})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": "fake-hardware", "uuid": uuid})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/nodes".into(),
            json!({"driver": "fake-hardware", "properties": "not an object"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/ports".into(),
            json!({"node_uuid": uuid, "address": "zz:zz:zz:zz:zz:zz"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/ports".into(),
            json!({"node_uuid": uuid, "address": sqlish})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/ports".into(),
            json!({"node_uuid": sqlish, "address": "52:54:00:aa:bb:cd"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/ports".into(),
            json!({"node_uuid": uuid, "address": "52:54:00:aa:bb:cc"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PATCH,
            node_path.clone(),
            json!([{"op": "replace", "path": "/uuid", "value": sqlish}])
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PATCH,
            node_path.clone(),
            json!([{"op": "replace", "path": "/name", "value": traversal}])
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PATCH,
            node_path.clone(),
            json!([{"op": "add", "path": "/instance_info/../../x", "value": 1}])
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PATCH,
            node_path.clone(),
            json!([{"op": "move", "from": "/driver", "path": "/name"}])
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PATCH,
            node_path.clone(),
            json!({"op": "add"}).to_string().into_bytes(),
        ),
        (
            Method::PATCH,
            node_path.clone(),
            format!("[{{\"op\": \"add\", \"path\": \"/extra/a\", \"value\": {huge}}}]")
                .into_bytes(),
        ),
        (
            Method::PUT,
            format!("{node_path}/states/provision"),
            json!({"target": sqlish}).to_string().into_bytes(),
        ),
        (
            Method::PUT,
            format!("{node_path}/states/provision"),
            json!({"target": "active", "configdrive": 7})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PUT,
            format!("{node_path}/states/power"),
            json!({"target": traversal}).to_string().into_bytes(),
        ),
        (
            Method::PUT,
            format!("{node_path}/states/power"),
            json!({"target": "power on", "timeout": -1})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::PUT,
            format!("{node_path}/management/boot_device"),
            json!({"boot_device": traversal}).to_string().into_bytes(),
        ),
        (Method::GET, format!("/v1/nodes?limit={huge}"), Vec::new()),
        (Method::GET, "/v1/nodes?limit=-5".into(), Vec::new()),
        (
            Method::GET,
            format!("/v1/nodes?sort_key={sqlish}"),
            Vec::new(),
        ),
        (
            Method::GET,
            "/v1/nodes?marker=not-a-uuid".into(),
            Vec::new(),
        ),
        (
            Method::GET,
            "/v1/nodes/%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
            Vec::new(),
        ),
        (
            Method::GET,
            format!("/v1/ports?address={sqlish}"),
            Vec::new(),
        ),
        (
            Method::DELETE,
            "/v1/nodes/not%20a%20node".into(),
            Vec::new(),
        ),
        (
            Method::DELETE,
            format!("/v1/ports/{}", "f".repeat(300)),
            Vec::new(),
        ),
    ];
    corpus.push((
        Method::PATCH,
        format!("/v1/ports/{}", port["uuid"].as_str().unwrap()),
        json!([{"op": "replace", "path": "/address", "value": "not-a-mac"}])
            .to_string()
            .into_bytes(),
    ));

    let mut problems = Vec::new();
    for (method, path, body) in &corpus {
        let reply = app.raw(method.clone(), path, body.clone()).await;
        let parsed: Value = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
        let ironic_body = parsed.get("error_message").is_some() || parsed.get("error").is_some();
        if !reply.status.is_client_error() || !ironic_body {
            problems.push(format!("{method} {path}: {} {}", reply.status, reply.text));
        }
    }
    let after_nodes = app.get("/v1/nodes/detail").await.text;
    let after_ports = app.get("/v1/ports/detail").await.text;

    assert!(
        problems.is_empty(),
        "not a 4xx with Ironic's body:\n{}",
        problems.join("\n")
    );
    assert_eq!(before_nodes, after_nodes, "no node changed");
    assert_eq!(before_ports, after_ports, "no port changed");
    app.stop().await;
}

/// A client that sends the start of its body and no more (as one dripping
/// it a byte at a time never finishes) is answered 408 once
/// `[api] body_read_timeout_secs` has passed, on any route that reads a body
/// (the unauthenticated heartbeat included), and the connection is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dripped_a_byte_at_a_time_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
        s.api.body_read_timeout_secs = 2;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for path in [
        "/v1/nodes".to_owned(),
        "/v1/heartbeat/1be26c0b-03f2-4d2e-ae87-c02d7f33c123".to_owned(),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nX-OpenStack-Ironic-API-Version: 1.72\r\nContent-Length: 100\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("the server never answered the dripping client")
            .unwrap_or(0);
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("did not arrive within 2 s"), "{answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(15));
    }
    app.stop().await;
}
