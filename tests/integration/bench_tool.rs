//! `ferric-bench` against a real embedded Ferric, in miniature: every phase
//! runs (create, lists, GETs, the deploy pipeline, clean-up), its report
//! says what was done without errors, and the server is left as found. The
//! figures themselves are not asserted: speed is for the bench to print.

use std::process::Output;

use serde_json::Value;

use crate::helpers::app::spawn_app;

async fn bench(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric-bench"))
        .args(args)
        .output()
        .await
        .unwrap()
}

fn figure<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("no figure {key} in {report:#}"))
}

#[tokio::test]
async fn a_small_run_does_every_phase_and_cleans_up() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let pid = std::process::id().to_string();
    let output = bench(&[
        "run",
        "--url",
        &app.base,
        "--label",
        "test",
        "--nodes",
        "20",
        "--list-repeats",
        "2",
        "--get-concurrency",
        "4",
        "--get-secs",
        "30",
        "--get-max-requests",
        "200",
        "--deploy-nodes",
        "5",
        "--big-nodes",
        "30",
        "--pid",
        &pid,
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("GET /v1/nodes/detail (20 nodes)"),
        "{stdout}"
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["label"], "test");
    for (key, count) in [
        ("create_20", 20),
        ("list_20", 2),
        ("detail_20", 2),
        ("fields_20", 2),
        ("walk_detail_20", 2),
        ("get_c4", 200),
        ("deploy_5", 15),
        ("create_more_5", 5),
        ("detail_30", 2),
        ("delete_30", 30),
    ] {
        let f = figure(&report, key);
        assert_eq!(f["count"], count, "{key}: {f:#}");
        assert_eq!(f["errors"], 0, "{key}: {f:#}");
        assert_eq!(f["resets"], 0, "{key}: {f:#}");
    }
    // A detail page of 20 nodes is far bigger than the plain one.
    let bytes = |key| figure(&report, key)["response_bytes"].as_u64().unwrap();
    assert!(bytes("detail_20") > 5 * bytes("list_20"));
    // The server here is this test process: its memory was read.
    assert!(figure(&report, "rss_idle")["rss_mib"].as_f64().unwrap() > 1.0);

    // Every node it made is gone again.
    let nodes = app.get("/v1/nodes").await.json();
    assert_eq!(nodes["nodes"], serde_json::json!([]));

    let compared = bench(&["compare", json.to_str().unwrap(), json.to_str().unwrap()]).await;
    let table = String::from_utf8_lossy(&compared.stdout);
    assert!(compared.status.success(), "{table}");
    assert!(table.contains("(1.0×)"), "{table}");
}

#[tokio::test]
async fn it_refuses_anything_but_loopback() {
    // A documentation address (RFC 5737): never contacted, refused first.
    let output = bench(&["run", "--url", "http://192.0.2.1:6385"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only targets loopback"), "{stderr}");
}
