//! The real `ferric` binary exporting its spans over OTLP/gRPC (configured
//! only by the standard `OTEL_*` variables) to a collector in the test: one
//! request with a `traceparent` arrives as one trace — the API's span, its
//! publish, the conductor's task — with the right parents, the service name
//! asked for, and no secret in any attribute; the console's timeline links
//! the change to its trace.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::otlp::{Collector, ReceivedSpan};
use crate::helpers::process::FerricProcess;
use crate::helpers::wait_until;

const SECRET: &str = "otlp-secret-7c41";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_at_an_otlp_collector() {
    let collector = Collector::start().await;
    let mut ferric = FerricProcess::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "ferric-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        (
            "FERRIC_CONSOLE__TRACE_URL",
            "http://tracing.example/trace/{trace_id}",
        ),
    ])
    .await;
    let base = ferric.base.clone();
    let client = reqwest::Client::new();
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
    // The console's timeline names the trace of the change, as a link to
    // the tracing UI.
    let link =
        format!("<a href=\"http://tracing.example/trace/{trace_id}\"><code>{trace_id}</code></a>");
    let page = wait_until(
        Duration::from_secs(20),
        "the trace on the node's page",
        || async {
            let page = client
                .get(format!("{base}/console/nodes/{uuid}"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            page.contains("enroll → verifying (manage)").then_some(page)
        },
    )
    .await;
    let row = page
        .split("<tr")
        .find(|row| row.contains("enroll → verifying (manage)"))
        .unwrap_or_default();
    assert!(row.contains(&link), "{row}");
    ferric.child.kill().await.unwrap();
}
