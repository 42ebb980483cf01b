//! The operator console with a large fleet, in a real browser (Debian's
//! headless Chromium over WebDriver): an embedded Ferric (SQLite, the
//! default) with N fake-hardware nodes, then
//! - the fleet page on the server: time to render `/console/` and
//!   `/console/counts` (p50/p99 of 50 requests) and the page's size;
//! - in the browser: time to first contentful paint of a fresh navigation
//!   (median of 5, from the browser's own Performance API);
//! - live update: from the moment a power change is sent to the API until
//!   the row on the open page shows it (20 changes, p50/p99), first on a
//!   quiet fleet, then while 2,000 other nodes are managed at once (about
//!   8,000 events through the feed to the page).
//!
//! `cargo bench --bench console_fleet` (N = 10,000; `BENCH_NODES=1000` to
//! choose). Needs `chromium` and `chromium-driver` (Debian).
// A bench unwraps freely, prints its figures and reads its own BENCH_* variable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

#[path = "../tests/integration/helpers/browser.rs"]
#[allow(dead_code)]
mod browser;
#[path = "../tests/integration/helpers/wait.rs"]
mod wait;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferric::embedded::Embedded;
use ferric_common::config::Settings;
use futures_util::StreamExt;
use serde_json::{Value, json};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    )
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Times `n` GETs of `url`; the sizes of the bodies.
async fn time_gets(client: &reqwest::Client, url: &str, n: usize) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..n {
        let started = Instant::now();
        let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        size = body.len();
    }
    (times, size)
}

/// Sends `rounds` power changes to `uuid` and measures each until the open
/// page's row shows it.
async fn live_latencies(
    b: &browser::Browser,
    client: &reqwest::Client,
    base: &str,
    uuid: &str,
    rounds: usize,
) -> Vec<f64> {
    let cell = format!("#node-{uuid} [data-field=\"power_state\"]");
    b.run(&format!(
        "const cell = document.querySelector('{cell}');
         window.__changes = [];
         new MutationObserver(() => window.__changes.push([Date.now(), cell.textContent]))
           .observe(cell, {{childList: true, subtree: true, characterData: true}});
         return true;"
    ))
    .await;
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let target = if round % 2 == 0 {
            "power on"
        } else {
            "power off"
        };
        let sent = now_ms();
        let reply = client
            .put(format!("{base}/v1/nodes/{uuid}/states/power"))
            .json(&json!({ "target": target }))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
        let shown = poll_change(b, target).await;
        latencies.push(shown - sent);
        b.run("window.__changes = []; return true;").await;
    }
    latencies
}

/// When the watched cell first showed `target` (page clock, ms).
async fn poll_change(b: &browser::Browser, target: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut interval = tokio::time::interval(Duration::from_millis(5));
    loop {
        interval.tick().await;
        let changes = b.run("return window.__changes;").await;
        if let Some(at) = changes.as_array().and_then(|c| {
            c.iter()
                .find(|change| change[1] == target)
                .and_then(|change| change[0].as_f64())
        }) {
            return at;
        }
        assert!(Instant::now() < deadline, "the page never showed {target}");
    }
}

async fn run(n: usize) {
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: data.path().to_path_buf(),
        ..Settings::default()
    };
    settings.api.port = 0;
    settings.conductor.host = Some("bench-conductor".into());
    settings.conductor.sync_power_state_interval_secs = 0;
    let app = Embedded::start(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-openstack-ironic-api-version",
        reqwest::header::HeaderValue::from_static("latest"),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let started = Instant::now();
    let uuids: Vec<String> = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let node: Value = client
                    .post(format!("{base}/v1/nodes"))
                    .json(&json!({"driver": "fake-hardware", "name": format!("node-{i:05}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                node["uuid"].as_str().unwrap().to_owned()
            }
        })
        .buffered(16)
        .collect()
        .await;
    println!(
        "{n} nodes enrolled in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (page, size) = time_gets(&client, &format!("{base}/console/"), 50).await;
    println!(
        "GET /console/ (first page of 100 of {n}): {} ({} KiB)",
        summary(page),
        size / 1024
    );
    let (counts, _) = time_gets(&client, &format!("{base}/console/counts"), 50).await;
    println!("GET /console/counts: {}", summary(counts));

    let b = browser::Browser::start(1280, 900).await;
    let mut paints = Vec::new();
    for _ in 0..5 {
        b.goto("about:blank").await;
        b.goto(&format!("{base}/console/")).await;
        // The paint may be reported after the load event that ends goto.
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        let fcp = loop {
            interval.tick().await;
            let fcp = b
                .run(
                    "const p = performance.getEntriesByName('first-contentful-paint')[0];
                     return p ? p.startTime : null;",
                )
                .await;
            if let Some(fcp) = fcp.as_f64() {
                break fcp;
            }
        };
        paints.push(fcp);
    }
    println!(
        "browser: first contentful paint of /console/: {}",
        summary(paints)
    );
    b.wait_text("#live", "live").await;
    let watched = &uuids[0];
    let quiet = live_latencies(&b, &client, &base, watched, 20).await;
    println!(
        "live update, quiet fleet (API call → row on the page): {}",
        summary(quiet)
    );

    // A storm: 2,000 other nodes managed at once while the page is open.
    let storm: Vec<String> = uuids[n / 2..(n / 2 + 2000).min(n)].to_vec();
    let stormed = storm.len();
    let storm_client = client.clone();
    let storm_base = base.clone();
    let storm_task = tokio::spawn(async move {
        futures_util::stream::iter(storm)
            .map(|uuid| {
                let client = storm_client.clone();
                let base = storm_base.clone();
                async move {
                    client
                        .put(format!("{base}/v1/nodes/{uuid}/states/provision"))
                        .json(&json!({"target": "manage"}))
                        .send()
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });
    let busy = live_latencies(&b, &client, &base, watched, 20).await;
    storm_task.await.unwrap();
    println!(
        "live update while {stormed} other nodes are managed at once: {}",
        summary(busy)
    );
    b.close().await;
    app.shutdown().await;
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_NODES")
        .unwrap_or_else(|_| "10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for n in sizes {
        runtime.block_on(run(n));
    }
}
