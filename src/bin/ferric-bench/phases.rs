//! The work of one run, in the order of `reference/ironic-figures.md`:
//! idle memory, create N nodes, lists with N nodes, GET one node at each
//! concurrency level, M fresh nodes manage → provide → deploy → active,
//! lists again with the large node count, loaded memory, clean-up.
//!
//! Every loop is bounded: by a request count, by the number of pages a walk
//! may take, or by a deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::Mutex;

use crate::RunArgs;
use crate::api::Api;
use crate::procstat;
use crate::progress::Progress;
use crate::report::{Figure, Headline, Machine, Report};
use crate::stats::{Samples, secs};

/// The most pages one paginated walk may fetch.
const MAX_PAGES: usize = 10_000;

/// Tries per node and deploy step before the run gives up on it.
const STATE_CHANGE_TRIES: usize = 3;

/// The most requests in flight during a deploy step when "all at once".
const MAX_ALL_AT_ONCE: usize = 1024;

/// Runs every phase and returns the report.
///
/// # Errors
/// A server that cannot be reached, or a phase that cannot finish (nodes not
/// created, a deploy step past its deadline).
pub async fn run(args: &RunArgs) -> anyhow::Result<Report> {
    let api = Api::connect(&args.url, args.basic_auth.as_deref()).await?;
    let root = api.get_json("/").await.context("version discovery")?;
    let max_version = root["default_version"]["version"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bench = Bench {
        api,
        args: args.clone(),
        run_id,
    };
    let preexisting = bench.api.get_json("/v1/nodes?limit=1&fields=uuid").await?;
    if preexisting["nodes"]
        .as_array()
        .is_some_and(|nodes| !nodes.is_empty())
    {
        log("the server already has nodes: list figures include them");
    }

    let mut figures = Vec::new();
    let mut created = Vec::new();
    let failed = bench
        .phases(&mut figures, &mut created)
        .await
        .err()
        .map(|e| format!("{e:#}"));
    if !args.no_cleanup && !created.is_empty() {
        match bench.cleanup(&created).await {
            Ok(figure) => figures.push(figure),
            Err(e) => log(&format!("clean-up failed: {e:#}")),
        }
    }
    Ok(Report {
        label: args.label.clone(),
        url: args.url.clone(),
        server: format!("max microversion {max_version}"),
        machine: Machine::this(),
        started_at,
        figures,
        failed,
    })
}

#[allow(clippy::print_stderr)]
fn log(message: &str) {
    eprintln!("ferric-bench: {message}");
}

struct Bench {
    api: Api,
    args: RunArgs,
    run_id: String,
}

/// CPU seconds the server spends between two points.
struct CpuMeter {
    pids: Vec<u32>,
    start: Option<f64>,
}

impl CpuMeter {
    fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            start: procstat::sample(pids).map(|u| u.cpu_s),
        }
    }

    fn used(&self) -> Option<f64> {
        let end = procstat::sample(&self.pids)?.cpu_s;
        self.start
            .map(|start| ((end - start) * 100.0).round() / 100.0)
    }
}

impl Bench {
    /// Every phase in order; figures and created nodes are kept even when a
    /// phase fails.
    async fn phases(&self, figures: &mut Vec<Figure>, all: &mut Vec<String>) -> anyhow::Result<()> {
        if let Some(usage) = procstat::sample(&self.args.pid) {
            let mut idle = Figure::new("rss_idle", "server memory, idle", Headline::RssMib);
            idle.rss_mib = Some(usage.rss_mib);
            idle.pss_mib = Some(usage.pss_mib);
            idle.note = Some(format!(
                "{} process(es), PSS {:.1} MiB",
                usage.processes, usage.pss_mib
            ));
            figures.push(idle);
        }

        if self.args.nodes > 0 {
            let (created, figure) = self
                .create(&format!("create_{}", self.args.nodes), self.args.nodes, "")
                .await?;
            figures.push(figure);
            all.extend(created);
            figures.extend(self.lists(all.len()).await?);
            for &concurrency in &self.args.get_concurrency {
                figures.push(self.get_one(all, concurrency).await?);
            }
        }
        if self.args.deploy_nodes > 0 {
            figures.push(self.deploy(all).await?);
        }
        if self.args.big_nodes > all.len() {
            let more = self.args.big_nodes - all.len();
            let (created, figure) = self
                .create(&format!("create_more_{more}"), more, "b")
                .await?;
            figures.push(figure);
            all.extend(created);
            figures.extend(self.lists(all.len()).await?);
        }
        if let Some(usage) = procstat::sample(&self.args.pid) {
            let mut loaded = Figure::new(
                "rss_loaded",
                format!("server memory with {} nodes", all.len()),
                Headline::RssMib,
            );
            loaded.rss_mib = Some(usage.rss_mib);
            loaded.pss_mib = Some(usage.pss_mib);
            loaded.server_cpu_s = Some(usage.cpu_s);
            loaded.note = Some(format!(
                "PSS {:.1} MiB; {:.1} CPU-s used by the server since it started",
                usage.pss_mib, usage.cpu_s
            ));
            figures.push(loaded);
        }
        Ok(())
    }

    /// Creates `count` fake nodes at the create concurrency.
    async fn create(
        &self,
        key: &str,
        count: usize,
        tag: &str,
    ) -> anyhow::Result<(Vec<String>, Figure)> {
        log(&format!("creating {count} nodes"));
        let progress = Progress::start("create", count as u64);
        let counter = progress.counter();
        let api = self.api.fresh()?;
        let cpu = CpuMeter::start(&self.args.pid);
        let start = Instant::now();
        let outcomes: Vec<_> = futures_util::stream::iter(0..count)
            .map(|i| {
                let api = api.clone();
                let counter = counter.clone();
                let body = json!({
                    "driver": self.args.driver,
                    "name": format!("bench-{}-{tag}{i}", self.run_id),
                });
                async move {
                    let outcome = api
                        .send(Method::POST, "/v1/nodes", Some(&body), StatusCode::CREATED)
                        .await;
                    counter.fetch_add(1, Ordering::Relaxed);
                    outcome
                }
            })
            .buffer_unordered(self.args.create_concurrency.max(1))
            .collect()
            .await;
        let wall = start.elapsed();
        progress.finish();
        let mut samples = Samples::default();
        let mut uuids = Vec::with_capacity(count);
        for outcome in &outcomes {
            samples.record(outcome);
            if outcome.ok()
                && let Some(uuid) = outcome.json()["uuid"].as_str()
            {
                uuids.push(uuid.to_owned());
            }
        }
        if uuids.len() < count {
            bail!(
                "created only {} of {count} nodes; first failure: {}",
                uuids.len(),
                samples.first_error.unwrap_or_default()
            );
        }
        let figure = Figure::new(
            key,
            format!(
                "create {count} nodes, c={}",
                self.args.create_concurrency.max(1)
            ),
            Headline::WallS,
        );
        let figure = measured(figure, &mut samples, wall, Some(count as f64), cpu.used());
        Ok((uuids, figure))
    }

    /// The list figures with `total` nodes on the server.
    async fn lists(&self, total: usize) -> anyhow::Result<Vec<Figure>> {
        log(&format!("listing {total} nodes"));
        let single = [
            ("list", "GET /v1/nodes", "/v1/nodes"),
            ("detail", "GET /v1/nodes/detail", "/v1/nodes/detail"),
            (
                "fields",
                "GET /v1/nodes?fields=uuid,provision_state,power_state",
                "/v1/nodes?fields=uuid,provision_state,power_state",
            ),
            ("limit100", "GET /v1/nodes?limit=100", "/v1/nodes?limit=100"),
        ];
        let api = self.api.fresh()?;
        let mut figures = Vec::new();
        for (key, what, path) in single {
            let cpu = CpuMeter::start(&self.args.pid);
            let mut samples = Samples::default();
            let mut last_bytes = 0;
            let start = Instant::now();
            for _ in 0..self.args.list_repeats {
                let outcome = self.api.send(Method::GET, path, None, StatusCode::OK).await;
                last_bytes = outcome.body.len() as u64;
                samples.record(&outcome);
            }
            figures.push(list_figure(
                format!("{key}_{total}"),
                format!("{what} ({total} nodes)"),
                samples,
                start.elapsed(),
                last_bytes,
                cpu.used(),
            ));
        }
        for (key, what, path) in [
            ("walk", "walk all pages of /v1/nodes", "/v1/nodes"),
            (
                "walk_detail",
                "walk all pages of /v1/nodes/detail",
                "/v1/nodes/detail",
            ),
        ] {
            let cpu = CpuMeter::start(&self.args.pid);
            let mut samples = Samples::default();
            let mut walk_bytes = 0;
            let mut pages = 0;
            let start = Instant::now();
            for _ in 0..self.args.list_repeats {
                let walk = walk(&api, path).await;
                walk_bytes = walk.bytes;
                pages = walk.pages;
                samples.merge(walk.samples);
            }
            let mut figure = list_figure(
                format!("{key}_{total}"),
                format!("{what} ({total} nodes)"),
                samples,
                start.elapsed(),
                walk_bytes,
                cpu.used(),
            );
            figure.count = self.args.list_repeats as u64;
            figure.note = Some(format!("{pages} pages per walk"));
            figures.push(figure);
        }
        Ok(figures)
    }

    /// GET one node (cycling through `uuids`) from `concurrency` clients
    /// for the configured time.
    async fn get_one(&self, uuids: &[String], concurrency: usize) -> anyhow::Result<Figure> {
        log(&format!(
            "GET one node at concurrency {concurrency} for {} s",
            self.args.get_secs
        ));
        let api = self.api.fresh()?;
        let uuids: Arc<Vec<String>> = Arc::new(uuids.to_vec());
        let issued = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Samples::default()));
        let cpu = CpuMeter::start(&self.args.pid);
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(self.args.get_secs.max(0.0));
        let max = self.args.get_max_requests;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (api, uuids, issued, samples) =
                (api.clone(), uuids.clone(), issued.clone(), samples.clone());
            workers.spawn(async move {
                let mut mine = Samples::default();
                while Instant::now() < deadline {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= max {
                        break;
                    }
                    let uuid = &uuids[usize::try_from(n).unwrap_or(0) % uuids.len()];
                    let outcome = api
                        .send(
                            Method::GET,
                            &format!("/v1/nodes/{uuid}"),
                            None,
                            StatusCode::OK,
                        )
                        .await;
                    mine.record(&outcome);
                }
                samples.lock().await.merge(mine);
            });
        }
        while workers.join_next().await.is_some() {}
        let wall = start.elapsed();
        let mut samples = std::mem::take(&mut *samples.lock().await);
        let figure = Figure::new(
            format!("get_c{concurrency}"),
            format!("GET /v1/nodes/<uuid>, c={concurrency}"),
            Headline::RatePerS,
        );
        let requests = samples.count() as f64;
        Ok(measured(
            figure,
            &mut samples,
            wall,
            Some(requests),
            cpu.used(),
        ))
    }

    /// M fresh nodes manage → provide → deploy, each step requested for all
    /// of them at once, each waited for until every node reached its state.
    async fn deploy(&self, all: &mut Vec<String>) -> anyhow::Result<Figure> {
        let m = self.args.deploy_nodes;
        let (uuids, _) = self.create(&format!("create_{m}"), m, "d").await?;
        all.extend(uuids.iter().cloned());
        let concurrency = match self.args.deploy_concurrency {
            0 => m.min(MAX_ALL_AT_ONCE),
            c => c,
        };
        log(&format!(
            "{m} nodes manage → provide → deploy, {concurrency} requests in flight"
        ));
        let api = self.api.fresh()?;
        let cpu = CpuMeter::start(&self.args.pid);
        let start = Instant::now();
        let mut samples = Samples::default();
        let mut steps = Vec::new();
        for (verb, state) in [
            ("manage", "manageable"),
            ("provide", "available"),
            ("deploy", "active"),
        ] {
            let step_start = Instant::now();
            let progress = Progress::start(verb, m as u64);
            let counter = progress.counter();
            // Each node's request is retried (at most twice) when it fails,
            // as a client would; every failure is still counted.
            let attempts: Vec<Vec<_>> = futures_util::stream::iter(uuids.iter())
                .map(|uuid| {
                    let api = api.clone();
                    let counter = counter.clone();
                    let path = format!("/v1/nodes/{uuid}/states/provision");
                    async move {
                        let mut tries = Vec::new();
                        for _ in 0..STATE_CHANGE_TRIES {
                            let outcome = api
                                .send(
                                    Method::PUT,
                                    &path,
                                    Some(&json!({ "target": verb })),
                                    StatusCode::ACCEPTED,
                                )
                                .await;
                            let done = outcome.ok();
                            tries.push(outcome);
                            if done {
                                break;
                            }
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                        tries
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let outcomes: Vec<_> = attempts.iter().filter_map(|tries| tries.last()).collect();
            for outcome in attempts.iter().flatten() {
                samples.record(outcome);
            }
            progress.finish();
            let accepted_after = step_start.elapsed();
            let failed = outcomes.iter().filter(|o| !o.ok()).count();
            if failed > 0 {
                bail!(
                    "{verb}: {failed} of {m} nodes refused it {STATE_CHANGE_TRIES} times; first failure: {}",
                    samples.first_error.clone().unwrap_or_default()
                );
            }
            self.wait_for(&api, &uuids, state, step_start).await?;
            steps.push(format!(
                "{verb} {:.3} s (202s after {:.3} s)",
                step_start.elapsed().as_secs_f64(),
                accepted_after.as_secs_f64()
            ));
        }
        let wall = start.elapsed();
        let figure = Figure::new(
            format!("deploy_{m}"),
            format!("{m} nodes manage→provide→deploy→active"),
            Headline::WallS,
        );
        let mut figure = measured(figure, &mut samples, wall, Some((3 * m) as f64), cpu.used());
        let retried = figure
            .note
            .take()
            .map(|e| format!("; failed requests were retried, the first: {e}"))
            .unwrap_or_default();
        figure.note = Some(format!(
            "{}; rate = state-change requests/s over the whole pipeline; {:.1} nodes/s{retried}",
            steps.join(", "),
            m as f64 / wall.as_secs_f64()
        ));
        Ok(figure)
    }

    /// Polls (filtered by provision state) until every node in `uuids` is in
    /// `state`; the poll interval grows with the time already waited so it
    /// costs the server little and still resolves short steps.
    async fn wait_for(
        &self,
        api: &Api,
        uuids: &[String],
        state: &str,
        since: Instant,
    ) -> anyhow::Result<()> {
        let wanted: HashSet<&str> = uuids.iter().map(String::as_str).collect();
        let deadline = since + self.args.step_timeout();
        let path = format!(
            "/v1/nodes?provision_state={}&fields=uuid&limit=1000",
            state.replace(' ', "%20")
        );
        let mut reached = 0;
        loop {
            let mut seen = HashSet::new();
            let mut next = Some(path.clone());
            let mut pages = 0;
            while let Some(page) = next.take() {
                pages += 1;
                if pages > MAX_PAGES {
                    break;
                }
                let outcome = api.send(Method::GET, &page, None, StatusCode::OK).await;
                if !outcome.ok() {
                    break;
                }
                let body = outcome.json();
                for node in body["nodes"].as_array().into_iter().flatten() {
                    if let Some(uuid) = node["uuid"].as_str()
                        && wanted.contains(uuid)
                    {
                        seen.insert(uuid.to_owned());
                    }
                }
                next = body["next"].as_str().and_then(path_of);
            }
            reached = reached.max(seen.len());
            if seen.len() == wanted.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "only {reached} of {} nodes reached {state:?} within {} s",
                    wanted.len(),
                    self.args.step_timeout_secs
                );
            }
            let interval =
                (since.elapsed() / 20).clamp(Duration::from_millis(5), Duration::from_millis(250));
            tokio::time::sleep(interval).await;
        }
    }

    /// Deletes every node the run created (maintenance first for those not
    /// in a deletable state, as Ironic requires).
    async fn cleanup(&self, uuids: &[String]) -> anyhow::Result<Figure> {
        log(&format!("deleting {} nodes", uuids.len()));
        let api = self.api.fresh()?;
        let progress = Progress::start("delete", uuids.len() as u64);
        let counter = progress.counter();
        let cpu = CpuMeter::start(&self.args.pid);
        let start = Instant::now();
        let outcomes: Vec<_> = futures_util::stream::iter(uuids.iter())
            .map(|uuid| {
                let api = api.clone();
                let counter = counter.clone();
                async move {
                    let path = format!("/v1/nodes/{uuid}");
                    let mut outcome = api
                        .send(Method::DELETE, &path, None, StatusCode::NO_CONTENT)
                        .await;
                    if outcome.status == Some(StatusCode::BAD_REQUEST)
                        || outcome.status == Some(StatusCode::CONFLICT)
                    {
                        let reason = json!({ "reason": "ferric-bench clean-up" });
                        api.send(
                            Method::PUT,
                            &format!("{path}/maintenance"),
                            Some(&reason),
                            StatusCode::ACCEPTED,
                        )
                        .await;
                        outcome = api
                            .send(Method::DELETE, &path, None, StatusCode::NO_CONTENT)
                            .await;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    outcome
                }
            })
            .buffer_unordered(self.args.create_concurrency.max(1))
            .collect()
            .await;
        let wall = start.elapsed();
        progress.finish();
        let mut samples = Samples::default();
        for outcome in &outcomes {
            samples.record(outcome);
        }
        let figure = Figure::new(
            format!("delete_{}", uuids.len()),
            format!(
                "delete {} nodes, c={}",
                uuids.len(),
                self.args.create_concurrency.max(1)
            ),
            Headline::WallS,
        );
        let deleted = uuids.len() as f64;
        Ok(measured(
            figure,
            &mut samples,
            wall,
            Some(deleted),
            cpu.used(),
        ))
    }
}

/// Follows `next` links from `first`; one sample is the whole walk.
async fn walk(api: &Api, first: &str) -> Walk {
    let mut path = first.to_owned();
    let mut walk = Walk::default();
    let mut total = Duration::ZERO;
    let mut failure = None;
    let mut status = None;
    let mut body = bytes::Bytes::new();
    while walk.pages < MAX_PAGES {
        let outcome = api.send(Method::GET, &path, None, StatusCode::OK).await;
        walk.pages += 1;
        walk.bytes += outcome.body.len() as u64;
        total += outcome.elapsed;
        if !outcome.ok() {
            failure = outcome.failure;
            status = outcome.status;
            body = outcome.body;
            break;
        }
        match next_link(&outcome.body) {
            Some(next) => path = next,
            None => break,
        }
    }
    walk.samples.record(&crate::api::Outcome {
        status,
        body,
        elapsed: total,
        failure,
        error: None,
    });
    walk
}

#[derive(Default)]
struct Walk {
    samples: Samples,
    pages: usize,
    bytes: u64,
}

fn list_figure(
    key: String,
    what: String,
    mut samples: Samples,
    wall: Duration,
    response_bytes: u64,
    cpu: Option<f64>,
) -> Figure {
    let mut figure = measured(
        Figure::new(key, what, Headline::P50Ms),
        &mut samples,
        wall,
        None,
        cpu,
    );
    figure.response_bytes = Some(response_bytes);
    figure
}

/// Fills `figure` from a timed batch; `units` (requests, nodes) per second
/// of `wall` is its rate.
fn measured(
    mut figure: Figure,
    samples: &mut Samples,
    wall: Duration,
    units: Option<f64>,
    cpu: Option<f64>,
) -> Figure {
    figure.count = samples.count();
    figure.wall_s = Some(secs(wall));
    figure.rate_per_s = units.map(|u| u / wall.as_secs_f64());
    figure.latency = samples.latency();
    figure.errors = samples.errors;
    figure.resets = samples.resets;
    figure.server_cpu_s = cpu;
    figure.note = samples.first_error.take();
    figure
}

/// The `next` link of a list page, as a path on our base URL. Only the end
/// of the body is searched (the link follows the items), so a 3 MB page
/// costs the client no JSON parse.
fn next_link(body: &[u8]) -> Option<String> {
    let tail = &body[body.len().saturating_sub(2048)..];
    let text = String::from_utf8_lossy(tail);
    let at = text.rfind("\"next\"")?;
    let rest = &text[at + 6..];
    let open = rest.find('"')?;
    let rest = &rest[open + 1..];
    let close = rest.find('"')?;
    path_of(&rest[..close])
}

/// `http://host:port/v1/nodes?x=y` → `/v1/nodes?x=y` (so every request goes
/// to the checked loopback base, whatever host the server wrote).
fn path_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    Some(match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_from_the_tail() {
        let body = br#"{"nodes": [{"uuid": "a"}], "next": "http://127.0.0.1:6385/v1/nodes?limit=1&marker=a"}"#;
        assert_eq!(
            next_link(body).as_deref(),
            Some("/v1/nodes?limit=1&marker=a")
        );
        assert_eq!(next_link(br#"{"nodes": []}"#), None);
    }
}
