//! Simulated deploy agents: a machine that boots from the network runs,
//! after `boot` seconds, an agent that does what ironic-python-agent does
//! against an Ironic-compatible API — looks its node up by the machine's
//! MAC, heartbeats with its callback URL and token (every
//! `heartbeat_timeout` × 0.3–0.6, as IPA, or a fixed interval; at once
//! when a command ends, as IPA) — and serves the agent command API under
//! `/agents/{index}/v1/commands/` on the simulator's control listener:
//! deploy and clean steps, `standby.power_off` and `standby.sync`.
//! `write_image` streams the image from its URL and hashes it (`os_hash_algo`
//! / `os_hash_value`, or the md5 `checksum`) instead of writing a disk, and
//! takes at least `write` seconds.
//!
//! Invariants: an agent lives only as long as the boot it was started in
//! (powered off or booted again, it stops and its API answers 503); it
//! talks only to the API URL it was given (checked loopback at start-up)
//! and to the image URLs the conductor sends, which must be loopback too;
//! commands need the token its lookup returned; one command runs at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use ferric_conductor::images::{Algo, Hasher};

use crate::fleet::Bmc;

/// The version agents report (an ironic-python-agent release's).
const AGENT_VERSION: &str = "10.2.0";
/// The API version agents ask for (IPA's: heartbeats carry the agent's
/// version and status).
const API_VERSION: &str = "1.68";
/// How long an agent keeps looking its node up (IPA's `lookup_timeout`).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the simulated parts of an agent's life take.
#[derive(Debug, Clone)]
pub struct Timing {
    /// From power-on to the agent's first lookup (the ramdisk booting).
    pub boot: Duration,
    /// The shortest a `write_image` takes (the download and hash included).
    pub write: Duration,
    /// Each clean step.
    pub clean_step: Duration,
    /// Between lookups while no node waits for the machine.
    pub lookup_interval: Duration,
    /// Between heartbeats; `None`: the API's `heartbeat_timeout` × 0.3–0.6.
    pub heartbeat: Option<Duration>,
}

/// What the agents did, for `GET /stats`.
#[derive(Default)]
struct Counters {
    started: AtomicU64,
    lookups: AtomicU64,
    lookups_failed: AtomicU64,
    heartbeats: AtomicU64,
    heartbeats_failed: AtomicU64,
    commands: AtomicU64,
    images_written: AtomicU64,
    image_bytes: AtomicU64,
    commands_failed: AtomicU64,
}

/// One machine's agent as the current boot has it.
#[derive(Default)]
struct Slot {
    /// The boot the agent runs in (0: none yet).
    boot: u64,
    token: Option<String>,
    /// Results of the commands run, newest last (IPA's shape).
    commands: Vec<Value>,
    /// Woken when a command ends: a heartbeat goes out at once.
    ended: Arc<Notify>,
}

/// Every machine's agent.
pub struct Agents {
    api: String,
    /// `http://control-address`: agents are reached at `…/agents/{index}`.
    callback_base: String,
    http: reqwest::Client,
    bmcs: Vec<Arc<Bmc>>,
    first_index: usize,
    slots: Vec<Mutex<Slot>>,
    timing: Timing,
    counters: Counters,
}

/// Whether `url`'s host is a loopback IP address (names are not resolved:
/// a simulator never sends anywhere else).
pub fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.trim_start_matches('[').trim_end_matches(']');
            host.parse::<std::net::IpAddr>().ok()
        })
        .is_some_and(|ip| ip.is_loopback())
}

impl Agents {
    /// Agents for `bmcs` (numbered from `first_index`), looking nodes up at
    /// `api` and reachable through the control listener at `control`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        api: &str,
        control: std::net::SocketAddr,
        bmcs: Vec<Arc<Bmc>>,
        first_index: usize,
        timing: Timing,
    ) -> anyhow::Result<Arc<Agents>> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            // Never follow a redirect off loopback.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let slots = bmcs.iter().map(|_| Mutex::new(Slot::default())).collect();
        Ok(Arc::new(Agents {
            api: api.trim_end_matches('/').to_owned(),
            callback_base: format!("http://{control}"),
            http,
            bmcs,
            first_index,
            slots,
            timing,
            counters: Counters::default(),
        }))
    }

    fn position(&self, index: usize) -> Option<usize> {
        index
            .checked_sub(self.first_index)
            .filter(|p| *p < self.bmcs.len())
    }

    fn slot<T>(&self, position: usize, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut slot = match self.slots[position].lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut slot)
    }

    /// Starts an agent for each network boot announced on `boots`.
    pub async fn run(
        self: Arc<Self>,
        mut boots: tokio::sync::mpsc::UnboundedReceiver<(usize, u64)>,
    ) {
        while let Some((index, boot)) = boots.recv().await {
            if let Some(position) = self.position(index) {
                tokio::spawn(self.clone().live(position, boot));
            }
        }
    }

    /// One agent's life in boot `boot`: boot, look up, heartbeat until the
    /// machine is powered off or boots again.
    async fn live(self: Arc<Self>, position: usize, boot: u64) {
        let bmc = self.bmcs[position].clone();
        tokio::time::sleep(self.timing.boot).await;
        if !bmc.in_boot(boot) {
            return;
        }
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        let ended = self.slot(position, |s| {
            *s = Slot {
                boot,
                ..Slot::default()
            };
            s.ended.clone()
        });
        let Some((uuid, token, timeout)) = self.look_up(&bmc, boot).await else {
            return;
        };
        self.slot(position, |s| {
            if s.boot == boot {
                s.token = Some(token.clone());
            }
        });
        let callback_url = format!("{}/agents/{}", self.callback_base, bmc.index);
        let interval = self.timing.heartbeat.unwrap_or_else(|| {
            // IPA waits 30–60 % of the timeout; spread the fleet evenly.
            let spread = (bmc.index.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
            timeout.mul_f64(0.3 + 0.3 * spread)
        });
        while bmc.in_boot(boot) {
            let beat = self
                .http
                .post(format!("{}/v1/heartbeat/{uuid}", self.api))
                .header("X-OpenStack-Ironic-API-Version", API_VERSION)
                .json(&json!({
                    "callback_url": callback_url,
                    "agent_token": token,
                    "agent_version": AGENT_VERSION,
                }))
                .send()
                .await;
            match beat {
                Ok(r) if r.status().is_success() => {
                    self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.counters
                        .heartbeats_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = ended.notified() => {}
            }
        }
    }

    /// Looks the machine's node up until found, the machine leaves `boot`,
    /// or [`LOOKUP_TIMEOUT`]: the node's UUID, the token and the API's
    /// heartbeat timeout.
    async fn look_up(&self, bmc: &Bmc, boot: u64) -> Option<(String, String, Duration)> {
        let url = format!("{}/v1/lookup?addresses={}", self.api, bmc.mac);
        let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        while bmc.in_boot(boot) && tokio::time::Instant::now() < deadline {
            self.counters.lookups.fetch_add(1, Ordering::Relaxed);
            let found = async {
                let response = self
                    .http
                    .get(&url)
                    .header("X-OpenStack-Ironic-API-Version", API_VERSION)
                    .send()
                    .await
                    .ok()?;
                if !response.status().is_success() {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                let uuid = body["node"]["uuid"].as_str()?.to_owned();
                let token = body["config"]["agent_token"]
                    .as_str()
                    .filter(|t| *t != "******")?
                    .to_owned();
                let timeout = body["config"]["heartbeat_timeout"].as_u64().unwrap_or(300);
                Some((uuid, token, Duration::from_secs(timeout.max(1))))
            }
            .await;
            if found.is_some() {
                return found;
            }
            self.counters.lookups_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.timing.lookup_interval).await;
        }
        None
    }

    /// The routes of the agents' command API.
    pub fn routes(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/agents/{index}/v1/commands", get(list).post(command))
            .route("/agents/{index}/v1/commands/", get(list).post(command))
            .route("/agents/{index}/v1/status", get(status))
            .with_state(self)
    }

    /// The agents' totals.
    pub fn stats(&self) -> Value {
        let c = &self.counters;
        let read = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "started": read(&c.started),
            "lookups": read(&c.lookups),
            "lookups_failed": read(&c.lookups_failed),
            "heartbeats": read(&c.heartbeats),
            "heartbeats_failed": read(&c.heartbeats_failed),
            "commands": read(&c.commands),
            "commands_failed": read(&c.commands_failed),
            "images_written": read(&c.images_written),
            "image_bytes": read(&c.image_bytes),
        })
    }

    /// The agent of machine `index` when it runs and `token` is its token.
    fn admit(&self, index: usize, token: Option<&str>) -> Result<(usize, u64), Refused> {
        let Some(position) = self.position(index) else {
            return Err(Refused(
                StatusCode::NOT_FOUND,
                format!("no machine {index}"),
            ));
        };
        let (boot, known) = self.slot(position, |s| (s.boot, s.token.clone()));
        if boot == 0 || !self.bmcs[position].in_boot(boot) {
            return Err(Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "ferric-sim: no agent runs on this machine".into(),
            ));
        }
        match (known, token) {
            (Some(known), Some(offered)) if known == offered => Ok((position, boot)),
            _ => Err(Refused(
                StatusCode::UNAUTHORIZED,
                "Received unauthorized request: the agent_token is missing or invalid.".into(),
            )),
        }
    }

    /// Records a command's result; ends `id` with `outcome` (the result, or
    /// an error message), waking the heartbeat.
    fn end(&self, position: usize, boot: u64, id: &str, outcome: Result<Value, String>) {
        if outcome.is_err() {
            self.counters
                .commands_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        self.slot(position, |s| {
            if s.boot != boot {
                return;
            }
            if let Some(entry) = s.commands.iter_mut().find(|c| c["id"] == id) {
                match outcome {
                    Ok(result) => {
                        entry["command_status"] = json!("SUCCEEDED");
                        entry["command_result"] = result;
                    }
                    Err(message) => {
                        entry["command_status"] = json!("FAILED");
                        entry["command_error"] = json!({"type": "CommandExecutionError",
                            "code": 500, "message": message, "details": message});
                    }
                }
            }
            s.ended.notify_one();
        });
    }
}

fn fault(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"faultstring": message}))).into_response()
}

/// A command API request refused: its status and fault string.
struct Refused(StatusCode, String);

impl axum::response::IntoResponse for Refused {
    fn into_response(self) -> Response {
        fault(self.0, self.1)
    }
}

#[derive(Deserialize)]
struct CommandQuery {
    agent_token: Option<String>,
}

#[derive(Deserialize)]
struct CommandBody {
    name: String,
    #[serde(default)]
    params: Value,
}

async fn status(State(agents): State<Arc<Agents>>, Path(index): Path<usize>) -> Response {
    match agents.position(index) {
        Some(p) if agents.slot(p, |s| s.boot) > 0 => {
            (StatusCode::OK, Json(json!({"version": AGENT_VERSION}))).into_response()
        }
        _ => fault(
            StatusCode::NOT_FOUND,
            format!("no agent on machine {index}"),
        ),
    }
}

async fn list(
    State(agents): State<Arc<Agents>>,
    Path(index): Path<usize>,
    Query(query): Query<CommandQuery>,
) -> Response {
    match agents.admit(index, query.agent_token.as_deref()) {
        Ok((position, _)) => {
            let commands = agents.slot(position, |s| s.commands.clone());
            (StatusCode::OK, Json(json!({"commands": commands}))).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

async fn command(
    State(agents): State<Arc<Agents>>,
    Path(index): Path<usize>,
    Query(query): Query<CommandQuery>,
    Json(body): Json<CommandBody>,
) -> Response {
    let (position, boot) = match agents.admit(index, query.agent_token.as_deref()) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    agents.counters.commands.fetch_add(1, Ordering::Relaxed);
    let running = agents.slot(position, |s| {
        s.commands
            .iter()
            .find(|c| c["command_status"] == "RUNNING")
            .map(|c| c["command_name"].clone())
    });
    if let Some(name) = running {
        return fault(
            StatusCode::CONFLICT,
            format!("agent is busy: command {name} is still running"),
        );
    }
    let id = uuid::Uuid::new_v4().to_string();
    let entry = |status: &str, result: Value| {
        json!({"id": id, "command_name": body.name, "command_params": {},
               "command_status": status, "command_error": null, "command_result": result})
    };
    let step = body.params["step"].clone();
    let done = match body.name.as_str() {
        "deploy.get_deploy_steps" => Some(json!({
            "deploy_steps": {"GenericHardwareManager": [{"step": "write_image", "priority": 80,
                "interface": "deploy", "reboot_requested": false, "abortable": false}]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"},
        })),
        "clean.get_clean_steps" => Some(json!({
            "clean_steps": {"GenericHardwareManager": [
                {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
                 "reboot_requested": false, "abortable": true},
                {"step": "erase_devices", "priority": 10, "interface": "deploy",
                 "reboot_requested": false, "abortable": true}]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"},
        })),
        "standby.sync" | "standby.power_off" => Some(json!({})),
        "deploy.execute_deploy_step" | "clean.execute_clean_step" => None,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"type": "InvalidCommandError", "code": 400,
                    "message": format!("Unknown command: {other}"),
                    "faultstring": format!("Unknown command: {other}")})),
            )
                .into_response();
        }
    };
    let runs_on = done.is_none();
    let shown = match done {
        Some(result) => entry("SUCCEEDED", result),
        None => entry("RUNNING", Value::Null),
    };
    agents.slot(position, |s| s.commands.push(shown.clone()));
    if body.name == "standby.power_off" {
        // The machine goes down just after it answered.
        let bmc = agents.bmcs[position].clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if bmc.in_boot(boot) {
                bmc.set_power(false);
            }
        });
    }
    if runs_on {
        let agents = agents.clone();
        let name = body.name.clone();
        tokio::spawn(async move {
            let outcome = if name == "deploy.execute_deploy_step" {
                agents.deploy_step(&step).await
            } else {
                tokio::time::sleep(agents.timing.clean_step).await;
                Ok(json!({"clean_result": null, "clean_step": step}))
            };
            agents.end(position, boot, &id, outcome);
        });
    }
    (StatusCode::OK, Json(shown)).into_response()
}

impl Agents {
    /// A deploy step: `write_image` downloads and hashes the image, taking
    /// at least [`Timing::write`]; any other step succeeds at once.
    async fn deploy_step(&self, step: &Value) -> Result<Value, String> {
        if step["step"] == "write_image" {
            let started = tokio::time::Instant::now();
            let image = &step["args"]["image_info"];
            let written = self.hash_image(image).await?;
            tokio::time::sleep_until(started + self.timing.write).await;
            self.counters.images_written.fetch_add(1, Ordering::Relaxed);
            let mut shown = step.clone();
            shown["args"] = json!({});
            return Ok(json!({"deploy_result": written, "deploy_step": shown}));
        }
        Ok(json!({"deploy_result": null, "deploy_step": step}))
    }

    /// Streams the image at `image.urls[0]` through its declared hash and
    /// checks it; what was read.
    async fn hash_image(&self, image: &Value) -> Result<Value, String> {
        let url = image["urls"][0]
            .as_str()
            .ok_or("image_info has no urls")?
            .to_owned();
        if !is_loopback_url(&url) {
            return Err(format!(
                "ferric-sim fetches images from loopback addresses only, not {url}"
            ));
        }
        let (algo, expected) = match (
            image["os_hash_algo"].as_str(),
            image["os_hash_value"].as_str(),
        ) {
            (Some(algo), Some(value)) => (algo.to_owned(), value.to_owned()),
            _ => match image["checksum"].as_str() {
                Some(md5) => ("md5".to_owned(), md5.to_owned()),
                None => return Err("image_info has no checksum".into()),
            },
        };
        let mut hasher = Algo::parse(&algo)
            .map(Hasher::new)
            .ok_or_else(|| format!("Unsupported image hash algorithm {algo}"))?;
        let mut response = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("Error downloading image: {}", e.without_url()))?;
        let mut bytes = 0_u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("Error downloading image: {}", e.without_url()))?
        {
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        self.counters
            .image_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        let actual = hasher.finish();
        if !actual.eq_ignore_ascii_case(&expected) {
            return Err(format!(
                "Error verifying image checksum: Image failed to verify against checksum. location: {url}; image ID: {}; image checksum: {actual}; verification checksum: {expected}",
                image["id"].as_str().unwrap_or_default()
            ));
        }
        Ok(json!({"bytes": bytes, algo: actual}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_ip_urls_are_fetched() {
        assert!(is_loopback_url("http://127.0.0.1:8080/image.raw"));
        assert!(is_loopback_url("http://127.9.8.7/x"));
        assert!(is_loopback_url("http://[::1]:80/x"));
        assert!(!is_loopback_url("http://10.0.0.1/x"));
        assert!(!is_loopback_url("http://localhost/x"));
        assert!(!is_loopback_url("not a url"));
    }
}
