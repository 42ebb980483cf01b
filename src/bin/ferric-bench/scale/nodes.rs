//! The nodes of a scale run through the API: enrolled (a node and a port
//! per simulated machine), moved through provision states with every
//! request retried a bounded number of times, and watched until each
//! reaches its target or fails (`… failed`, maintenance).
//!
//! Invariant: every failure is counted and the first one kept for the
//! report; nothing here waits without a deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::Api;

/// Tries of one request before it counts as failed.
const TRIES: usize = 3;

/// Failures seen in a phase.
#[derive(Default)]
pub struct Errors {
    pub count: u64,
    pub first: Option<String>,
}

impl Errors {
    pub fn add(&mut self, what: String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(what);
        }
    }
}

/// The node body for simulated machine `bmc` (a manifest entry).
pub fn node_body(bmc: &Value, image: &super::image::Image, files: &str) -> Value {
    let kernel = format!("file://{files}/deploy.kernel");
    let ramdisk = format!("file://{files}/deploy.initramfs");
    let index = bmc["index"].as_u64().unwrap_or(0);
    let (driver, driver_info) = if bmc["protocol"] == "ipmi" {
        (
            "ipmi",
            json!({"ipmi_address": bmc["address"], "ipmi_port": bmc["port"],
                   "ipmi_username": bmc["username"], "ipmi_password": bmc["password"],
                   "deploy_kernel": kernel, "deploy_ramdisk": ramdisk}),
        )
    } else {
        (
            "redfish",
            json!({"redfish_address": bmc["address"], "redfish_username": bmc["username"],
                   "redfish_password": bmc["password"],
                   "deploy_kernel": kernel, "deploy_ramdisk": ramdisk}),
        )
    };
    json!({
        "name": format!("scale-{index}"),
        "driver": driver,
        "deploy_interface": "direct",
        "driver_info": driver_info,
        "instance_info": {"image_source": image.url, "image_os_hash_algo": "sha256",
                          "image_os_hash_value": image.sha256, "image_disk_format": "raw"},
    })
}

/// Sends one request up to [`TRIES`] times until it answers `expect`; the
/// last answer's body, or the failure.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<&Value>,
    expect: StatusCode,
) -> Result<Value, String> {
    let mut last = String::new();
    for _ in 0..TRIES {
        let outcome = api.send(method.clone(), path, body, expect).await;
        if outcome.ok() {
            return Ok(outcome.json());
        }
        last = format!(
            "{method} {path}: {} {}",
            outcome.status.map_or("no answer".into(), |s| s.to_string()),
            outcome
                .error
                .unwrap_or_else(|| String::from_utf8_lossy(&outcome.body).into_owned())
        );
    }
    Err(last)
}

/// Enrolls a node and its port per machine, `concurrency` at a time; the
/// nodes' UUIDs in machine order (`None` where enrolling failed).
pub async fn enroll(
    api: &Api,
    bodies: Vec<(Value, String)>,
    concurrency: usize,
    errors: &mut Errors,
) -> Vec<Option<String>> {
    let results: Vec<Result<String, String>> = futures_util::stream::iter(bodies)
        .map(|(body, mac)| async move {
            let node = send(
                api,
                Method::POST,
                "/v1/nodes",
                Some(&body),
                StatusCode::CREATED,
            )
            .await?;
            let uuid = node["uuid"].as_str().unwrap_or_default().to_owned();
            let port = json!({"node_uuid": uuid, "address": mac});
            send(
                api,
                Method::POST,
                "/v1/ports",
                Some(&port),
                StatusCode::CREATED,
            )
            .await?;
            Ok(uuid)
        })
        .buffered(concurrency)
        .collect()
        .await;
    results
        .into_iter()
        .map(|r| r.map_err(|e| errors.add(e)).ok())
        .collect()
}

/// Asks every node for `verb`, `concurrency` at a time; when each request
/// was accepted.
pub async fn request(
    api: &Api,
    uuids: &[String],
    verb: &str,
    concurrency: usize,
    errors: &mut Errors,
) -> HashMap<String, SystemTime> {
    let body = json!({"target": verb});
    let results: Vec<(String, Result<SystemTime, String>)> = futures_util::stream::iter(uuids)
        .map(|uuid| {
            let body = &body;
            async move {
                let sent = SystemTime::now();
                let path = format!("/v1/nodes/{uuid}/states/provision");
                let answer = send(api, Method::PUT, &path, Some(body), StatusCode::ACCEPTED).await;
                (uuid.clone(), answer.map(|_| sent))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut accepted = HashMap::new();
    for (uuid, result) in results {
        match result {
            Ok(at) => {
                accepted.insert(uuid, at);
            }
            Err(e) => errors.add(e),
        }
    }
    accepted
}

/// How a wait for a state ended.
pub struct Reached {
    /// When each node reached the state (its `provision_updated_at`).
    pub at: HashMap<String, SystemTime>,
    /// Nodes that failed instead, with why.
    pub failed: Vec<(String, String)>,
}

/// Lists every node's provision state, page by page.
async fn states(api: &Api) -> anyhow::Result<Vec<Value>> {
    let mut nodes = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut path = "/v1/nodes?fields=uuid,provision_state,provision_updated_at,maintenance,last_error&limit=1000".to_owned();
        if let Some(m) = &marker {
            path.push_str(&format!("&marker={m}"));
        }
        let body = api.get_json(&path).await?;
        let page = body["nodes"].as_array().cloned().unwrap_or_default();
        marker = page
            .last()
            .and_then(|n| n["uuid"].as_str())
            .map(str::to_owned);
        let done = page.len() < 1000;
        nodes.extend(page);
        if done || marker.is_none() {
            return Ok(nodes);
        }
    }
}

/// Waits until every node of `uuids` is in `state` or has failed, polling
/// the node list; fails after `timeout`.
pub async fn wait_for(
    api: &Api,
    uuids: &[String],
    state: &str,
    timeout: Duration,
) -> anyhow::Result<Reached> {
    let wanted: std::collections::HashSet<&str> = uuids.iter().map(String::as_str).collect();
    let start = Instant::now();
    loop {
        let nodes = states(api).await?;
        let mut reached = Reached {
            at: HashMap::new(),
            failed: Vec::new(),
        };
        for node in &nodes {
            let Some(uuid) = node["uuid"].as_str().filter(|u| wanted.contains(u)) else {
                continue;
            };
            let current = node["provision_state"].as_str().unwrap_or_default();
            if current == state {
                let at = node["provision_updated_at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map_or_else(SystemTime::now, SystemTime::from);
                reached.at.insert(uuid.to_owned(), at);
            } else if current.ends_with("failed") || node["maintenance"] == true {
                reached.failed.push((
                    uuid.to_owned(),
                    format!(
                        "node {uuid} in {current:?} (maintenance {}): {}",
                        node["maintenance"], node["last_error"]
                    ),
                ));
            }
        }
        let settled = reached.at.len() + reached.failed.len();
        if settled >= wanted.len() {
            return Ok(reached);
        }
        if start.elapsed() > timeout {
            bail!(
                "only {} of {} nodes reached {state:?} within {} s ({} failed)",
                reached.at.len(),
                wanted.len(),
                timeout.as_secs(),
                reached.failed.len()
            );
        }
        let pause = (start.elapsed() / 20).clamp(Duration::from_millis(50), Duration::from_secs(2));
        tokio::time::sleep(pause).await;
    }
}

/// Seconds from each node's request to its arrival, sorted.
pub fn durations(
    requested: &HashMap<String, SystemTime>,
    reached: &HashMap<String, SystemTime>,
) -> Vec<f64> {
    let mut secs: Vec<f64> = reached
        .iter()
        .filter_map(|(uuid, at)| {
            let sent = requested.get(uuid)?;
            Some(at.duration_since(*sent).map_or(0.0, |d| d.as_secs_f64()))
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    secs
}
