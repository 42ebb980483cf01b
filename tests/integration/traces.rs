//! The real `ferric` binary exporting its spans over OTLP/gRPC (configured
//! only by the standard `OTEL_*` variables) to a collector in the test: one
//! request with a `traceparent` arrives as one trace — the API's span, its
//! publish, the conductor's task — with the right parents, the service name
//! asked for, and no secret in any attribute.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::otlp::{Collector, ReceivedSpan};
use crate::helpers::wait_until;

const SECRET: &str = "otlp-secret-7c41";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_at_an_otlp_collector() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("ferric.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric"))
        .env("FERRIC_DATA_DIR", dir.path())
        .env("FERRIC_API__PORT", port.to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_SERVICE_NAME", "ferric-under-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "ferric to answer", || {
        let request = client.get(format!("{base}/v1")).send();
        async move { request.await.ok().map(|_| ()) }
    })
    .await;

    let node: serde_json::Value = client
        .post(format!("{base}/v1/nodes"))
        .header("X-OpenStack-Ironic-API-Version", "latest")
        .json(&json!({
            "driver": "fake-hardware",
            "name": "traced",
            "driver_info": {"ipmi_password": SECRET},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let status = client
        .put(format!("{base}/v1/nodes/{uuid}/states/provision"))
        .header("X-OpenStack-Ironic-API-Version", "latest")
        .header("traceparent", format!("00-{trace_id}-{caller}-01"))
        .json(&json!({"target": "manage"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::ACCEPTED);

    let find = |spans: &[ReceivedSpan], name: &str| {
        spans
            .iter()
            .find(|s| s.trace_id == trace_id && s.name == name)
            .cloned()
    };
    let (api, publish, task) = wait_until(
        Duration::from_secs(30),
        "the request's spans at the collector",
        || async {
            let spans = collector.spans();
            Some((
                find(&spans, "api.request")?,
                find(&spans, "queue.publish")?,
                find(&spans, "conductor.task")?,
            ))
        },
    )
    .await;
    assert_eq!(api.parent_span_id, caller);
    assert_eq!(publish.parent_span_id, api.span_id);
    assert_eq!(task.parent_span_id, publish.span_id);
    assert_eq!(api.service, "ferric-under-test");
    assert!(
        api.attributes.iter().any(|a| a == "http.status=202"),
        "{:?}",
        api.attributes
    );
    assert!(
        task.attributes
            .iter()
            .any(|a| a == &format!("node.uuid={uuid}")),
        "{:?}",
        task.attributes
    );
    let leaked: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|s| s.attributes.iter().any(|a| a.contains(SECRET)))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    child.kill().await.unwrap();
}
