//! `GET /metrics`: valid Prometheus text whose counters move with the work
//! done (requests by route and status, conductor tasks by kind and outcome,
//! nodes by state, ring members), public under `http_basic`, and the same
//! text on a conductor's own `metrics_listen` port.

use std::collections::HashMap;

use reqwest::StatusCode;

use crate::helpers::{Backend, spawn_app_with};

/// Parses the Prometheus text format: `# HELP` / `# TYPE` / `# EOF`
/// comments and `name{labels} value` samples; panics on anything else.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE ") || comment == "EOF",
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line}");
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_the_work_done() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    let hash = bcrypt::hash("secret", 4).unwrap();
    std::fs::write(&users, format!("admin:{hash}\n")).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.strategy = ferric_common::config::AuthStrategy::HttpBasic;
        s.auth.http_basic_auth_user_file = users.clone();
    })
    .await;
    let authed = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("secret"));

    // Public, like version discovery: no credentials needed.
    let scrape = || async {
        let response = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        parse(&response.text().await.unwrap())
    };
    let before = scrape().await;
    let created = r#"ferric_api_request_duration_seconds_count{method="POST",route="/v1/nodes",status="201"}"#;
    let accepted_provision =
        r#"ferric_task_duration_seconds_count{kind="provision",outcome="accepted"}"#;

    let node: serde_json::Value = authed(app.client.post(format!("{}/v1/nodes", app.base)))
        .header("X-OpenStack-Ironic-API-Version", "latest")
        .json(&serde_json::json!({"driver": "fake-hardware", "name": "m1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        let status = authed(
            app.client
                .put(format!("{}/v1/nodes/{uuid}/states/provision", app.base)),
        )
        .header("X-OpenStack-Ironic-API-Version", "latest")
        .json(&serde_json::json!({ "target": verb }))
        .send()
        .await
        .unwrap()
        .status();
        assert_eq!(status, StatusCode::ACCEPTED);
        crate::helpers::wait_until(
            std::time::Duration::from_secs(20),
            &format!("{uuid} to be {state}"),
            || async {
                let body: serde_json::Value =
                    authed(app.client.get(format!("{}/v1/nodes/{uuid}", app.base)))
                        .header("X-OpenStack-Ironic-API-Version", "latest")
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                (body["provision_state"] == state && body["reservation"].is_null()).then_some(())
            },
        )
        .await;
    }
    let unauthorized = app
        .client
        .get(format!("{}/v1/nodes", app.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(unauthorized, StatusCode::UNAUTHORIZED);

    let after = scrape().await;
    assert!(
        value(&after, created) >= value(&before, created) + 1.0,
        "{after:#?}"
    );
    assert!(
        value(&after, accepted_provision) >= value(&before, accepted_provision) + 2.0,
        "{after:#?}"
    );
    let refused =
        r#"ferric_api_request_duration_seconds_count{method="GET",route="/v1/nodes",status="401"}"#;
    assert!(value(&after, refused) >= 1.0, "{after:#?}");
    // Node counts come from this test's own database: exactly one node.
    let available: f64 = after
        .iter()
        .filter(|(series, _)| {
            series.starts_with("ferric_nodes{") && series.contains(r#"provision_state="available""#)
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(available, 1.0, "{after:#?}");
    let host = app.settings.conductor_host();
    assert!(
        after
            .keys()
            .any(|s| s.starts_with("ferric_ring_members{") && s.contains(&format!("\"{host}\""))),
        "{after:#?}"
    );

    // A conductor process serves the same registry on its own port.
    let mut settings = app.settings.clone();
    settings.conductor.metrics_listen = Some("127.0.0.1:0".into());
    let stop = tokio_util::sync::CancellationToken::new();
    let (port, server) = ferric::serve_metrics(&settings, &stop).unwrap().unwrap();
    let own = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(value(&parse(&own), accepted_provision) >= 2.0, "{own}");
    stop.cancel();
    server.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = crate::helpers::spawn_app().await;
    let client = reqwest::Client::new();
    let scrape = async || {
        client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    for n in 0..200 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        let answer = client
            .request(method, format!("{}/v1/nodes", app.base))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
    let after = scrape().await;
    assert!(
        !after.contains("INVENTED"),
        "a made-up method became a label"
    );
    let samples = parse(&after);
    assert!(
        samples
            .keys()
            .any(|series| series.contains(r#"method="other""#)),
        "the requests are counted as other"
    );
    // 200 requests add at most the few series of one `other` label set.
    assert!(
        after.len() < before.len() + 4096,
        "{} → {} bytes",
        before.len(),
        after.len()
    );
}
