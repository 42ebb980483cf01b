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
