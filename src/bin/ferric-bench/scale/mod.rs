//! `ferric-bench scale`: a whole fleet through the real protocols on this
//! machine. For each mode (embedded: one `ferric` process on SQLite;
//! distributed: `ferric api` and N `ferric conductor`s on PostgreSQL and
//! RabbitMQ) it starts Ferric and `ferric-sim` (Redfish and IPMI BMCs, a
//! simulated agent for every machine that boots from the network), then:
//! enrolls a node and a port per machine; manages them all; follows two
//! power-sync sweeps through the conductors' metrics; provides them; and
//! deploys them all (`direct`: PXE boot, agent lookup, heartbeats,
//! `write_image` streaming and hashing a real image over HTTP, power off,
//! boot from disk) while the API is read at a steady rate. It prints nodes/s
//! per phase, the sweep times, each deploy's end-to-end time distribution,
//! the API's read latency under that load, CPU seconds and memory of the
//! conducting processes per 1,000 nodes, database transactions and rows per
//! deploy (distributed), broker messages per deploy, and the errors.
//!
//! Invariants: every address involved is loopback (checked before anything
//! starts); every wait is bounded by `--timeout-secs`; the run fails (exit
//! status) when any error was counted, after printing its report.

mod image;
mod metrics;
mod nodes;
mod processes;
mod reader;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::procstat;
use crate::report::Machine;
use nodes::Errors;
use processes::{Ferric, FerricSetup, SimSetup, Sims};

/// How Ferric is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One `ferric standalone` process: API and conductor, SQLite, in-process queue.
    Embedded,
    /// `ferric api` and `--conductors` `ferric conductor`s on PostgreSQL and RabbitMQ.
    Distributed,
}

/// What to run.
#[derive(Args, Clone)]
pub struct ScaleArgs {
    /// Machines (BMCs, nodes, deploys).
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// The share of machines with an IPMI BMC (`ipmi` nodes); the rest are Redfish.
    #[arg(long, default_value_t = 0.5)]
    pub ipmi_share: f64,
    /// The modes to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "embedded,distributed")]
    pub modes: Vec<Mode>,
    /// Conductors in distributed mode.
    #[arg(long, default_value_t = 3)]
    pub conductors: usize,
    /// Seconds each simulated `write_image` takes at least.
    #[arg(long, default_value_t = 30.0)]
    pub write_secs: f64,
    /// Seconds from a machine's network boot to its agent's first lookup.
    #[arg(long, default_value_t = 1.0)]
    pub agent_boot_secs: f64,
    /// The size of the image every agent streams and hashes, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub image_kib: usize,
    /// `GET /v1/nodes/{uuid}` per second while the fleet deploys.
    #[arg(long, default_value_t = 100)]
    pub read_rate: u32,
    /// Ferric's `[conductor] sync_power_state_interval`.
    #[arg(long, default_value_t = 20)]
    pub sweep_interval_secs: u64,
    /// API requests in flight at once while enrolling and requesting states.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Machines per `ferric-sim` process.
    #[arg(long, default_value_t = 5000)]
    pub shard: usize,
    /// The longest any one phase may take.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
    /// Run automated cleaning on provide (the agents' clean steps).
    #[arg(long)]
    pub clean: bool,
    /// The `ferric` binary (default: next to this one).
    #[arg(long)]
    pub ferric: Option<PathBuf>,
    /// The `ferric-sim` binary (default: next to this one).
    #[arg(long)]
    pub sim: Option<PathBuf>,
    /// PostgreSQL, as an administrator (distributed mode creates and drops
    /// a database of its own there).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// RabbitMQ (distributed mode uses a name prefix of its own).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Where logs, manifests and Ferric's data go (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Percentiles of a distribution, in seconds.
#[derive(Debug, Serialize)]
pub struct Spread {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(sorted: &[f64]) -> Option<Spread> {
        let at = |q: f64| round(crate::stats::nearest_rank(sorted, q), 3);
        (!sorted.is_empty()).then(|| Spread {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// One phase: how long, how fast, and what the conducting processes spent.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub secs: f64,
    pub nodes_per_s: f64,
    pub conductor_cpu_s: f64,
    pub api_cpu_s: Option<f64>,
    /// The conducting processes' resident memory at the phase's end.
    pub conductor_rss_mib: f64,
}

/// Everything one mode measured.
#[derive(Debug, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    pub conductors: usize,
    pub phases: Vec<Phase>,
    /// The first and the next power-sync sweep after every node was
    /// managed: the slowest conductor's, seconds, and the nodes read.
    pub sweeps: Vec<(f64, u64)>,
    /// Seconds from each node's deploy request to `active`.
    pub deploy_end_to_end: Option<Spread>,
    /// `GET /v1/nodes/{uuid}` while the fleet deployed.
    pub reads: u64,
    pub read_p50_ms: Option<f64>,
    pub read_p99_ms: Option<f64>,
    /// The conducting processes (the embedded one, or the conductors).
    pub conductor_idle_rss_mib: f64,
    pub conductor_rss_mib: f64,
    pub conductor_kib_per_node: f64,
    pub conductor_cpu_s_per_1000_nodes: f64,
    pub api_rss_mib: Option<f64>,
    /// PostgreSQL transactions and rows written/read per deploy.
    pub db_per_deploy: Option<Value>,
    /// Tasks published plus replies and notifications, per deploy.
    pub amqp_messages_per_deploy: Option<f64>,
    /// What the simulators and their agents counted.
    pub simulator: Value,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct ScaleReport {
    pub machine: Machine,
    pub nodes: usize,
    pub ipmi: usize,
    pub redfish: usize,
    pub write_secs: f64,
    pub image_kib: usize,
    pub runs: Vec<ModeReport>,
}

#[expect(clippy::print_stderr, reason = "progress goes to stderr")]
pub(crate) fn log(message: &str) {
    eprintln!("ferric-bench scale: {message}");
}

/// A binary next to this one, unless given.
fn sibling(given: Option<&PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it, or give --{}",
            path.display(),
            name.trim_start_matches("ferric-")
        );
    }
    Ok(path)
}

fn check(args: &ScaleArgs) -> anyhow::Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.ipmi_share) {
        bail!("--ipmi-share must be between 0 and 1");
    }
    if args.modes.contains(&Mode::Distributed) {
        for url in [&args.database_url, &args.amqp_url] {
            if !processes::loopback_url(url) {
                bail!("{url}: ferric-bench scale only talks to loopback");
            }
        }
        if args.conductors == 0 {
            bail!("--conductors must be at least 1");
        }
    }
    Ok(())
}

/// Runs every mode; the report.
///
/// # Errors
/// A setup that fails (a binary, a port, the database); a mode that fails
/// midway is reported with its error instead.
pub async fn run(args: &ScaleArgs) -> anyhow::Result<ScaleReport> {
    check(args)?;
    let ferric = sibling(args.ferric.as_ref(), "ferric")?;
    let sim = sibling(args.sim.as_ref(), "ferric-sim")?;
    let temp = work_dir(args.work_dir.as_ref())?;
    let image = image::serve(args.image_kib).await?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ipmi = (args.nodes as f64 * args.ipmi_share).round() as usize;
    let mut report = ScaleReport {
        machine: Machine::this(),
        nodes: args.nodes,
        ipmi,
        redfish: args.nodes - ipmi,
        write_secs: args.write_secs,
        image_kib: args.image_kib,
        runs: Vec::new(),
    };
    for mode in &args.modes {
        let dir = temp.join(format!("{mode:?}").to_lowercase());
        std::fs::create_dir_all(&dir)?;
        let run = Run {
            args,
            mode: *mode,
            dir,
            ferric: &ferric,
            sim: &sim,
            image: &image,
            ipmi,
        };
        report.runs.push(run.go().await?);
    }
    Ok(report)
}

/// The work directory: the one given, or a fresh one under the system's
/// temporary directory.
fn work_dir(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "ferric-scale-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

struct Run<'a> {
    args: &'a ScaleArgs,
    mode: Mode,
    dir: PathBuf,
    ferric: &'a PathBuf,
    sim: &'a PathBuf,
    image: &'a image::Image,
    ipmi: usize,
}

/// Times phases and the CPU the processes spend in them.
struct Clock<'p> {
    mode: Mode,
    nodes: usize,
    conductors: &'p [u32],
    api: &'p [u32],
    started: Instant,
    cpu: (f64, f64),
}

impl<'p> Clock<'p> {
    fn start(mode: Mode, nodes: usize, conductors: &'p [u32], api: &'p [u32]) -> Clock<'p> {
        Clock {
            mode,
            nodes,
            conductors,
            api,
            started: Instant::now(),
            cpu: (usage(conductors).0, usage(api).0),
        }
    }

    /// Starts timing anew (what came since is not a phase).
    fn restart(&mut self) {
        *self = Clock::start(self.mode, self.nodes, self.conductors, self.api);
    }

    /// Ends a phase named `name`, recorded in `phases`, and starts the next.
    fn end(&mut self, name: &str, phases: &mut Vec<Phase>) {
        let secs = self.started.elapsed().as_secs_f64();
        let ((c1, rss), a1) = (usage(self.conductors), usage(self.api).0);
        log(&format!("{:?}: {name}: {secs:.2} s", self.mode));
        phases.push(Phase {
            name: name.to_owned(),
            secs: round(secs, 3),
            nodes_per_s: round(self.nodes as f64 / secs.max(1e-9), 1),
            conductor_cpu_s: round(c1 - self.cpu.0, 2),
            api_cpu_s: (!self.api.is_empty()).then(|| round(a1 - self.cpu.1, 2)),
            conductor_rss_mib: round(rss, 1),
        });
        self.restart();
    }
}

/// CPU seconds and resident memory of a set of processes.
fn usage(pids: &[u32]) -> (f64, f64) {
    procstat::sample(pids).map_or((0.0, 0.0), |u| (u.cpu_s, u.rss_mib))
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10_f64.powi(places);
    (x * scale).round() / scale
}

impl Run<'_> {
    fn env(&self) -> Vec<(String, String)> {
        let files = self.dir.join("files");
        let mut env: Vec<(String, String)> = [
            (
                "FERRIC_CONDUCTOR__ENABLED_HARDWARE_TYPES",
                "ipmi,redfish".to_owned(),
            ),
            (
                "FERRIC_CONDUCTOR__AUTOMATED_CLEAN",
                self.args.clean.to_string(),
            ),
            (
                "FERRIC_CONDUCTOR__SYNC_POWER_STATE_INTERVAL_SECS",
                self.args.sweep_interval_secs.to_string(),
            ),
            (
                "FERRIC_CONDUCTOR__FILE_URL_ALLOWED_PATHS",
                files.display().to_string(),
            ),
            // The simulated BMCs need no pause between commands.
            ("FERRIC_IPMI__MIN_COMMAND_INTERVAL_MS", "0".to_owned()),
            // Every simulated agent calls from 127.0.0.1.
            ("FERRIC_API__RAMDISK_REQUESTS_PER_MINUTE", "0".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if self.args.clean {
            // The agents' steps only; none is worth a real erase here.
            env.push((
                "FERRIC_CONDUCTOR__ERASE_DEVICES_PRIORITY".into(),
                "0".into(),
            ));
        }
        env
    }

    async fn go(&self) -> anyhow::Result<ModeReport> {
        let args = self.args;
        let files = self.dir.join("files");
        std::fs::create_dir_all(&files)?;
        std::fs::write(files.join("deploy.kernel"), b"simulated deploy kernel")?;
        std::fs::write(files.join("deploy.initramfs"), b"simulated deploy ramdisk")?;
        log(&format!("{:?}: starting Ferric", self.mode));
        let distributed = (self.mode == Mode::Distributed).then_some((
            args.conductors,
            args.database_url.as_str(),
            args.amqp_url.as_str(),
        ));
        let ferric = Ferric::start(FerricSetup {
            binary: self.ferric,
            dir: &self.dir,
            env: self.env(),
            distributed,
        })
        .await?;
        let outcome = self.measure(&ferric, &files).await;
        ferric.stop().await;
        outcome
    }

    async fn measure(
        &self,
        ferric: &Ferric,
        files: &std::path::Path,
    ) -> anyhow::Result<ModeReport> {
        let args = self.args;
        let n = args.nodes;
        let conductor_pids = ferric.conductor_pids();
        let api_pid = (!ferric.conductors.is_empty()).then(|| ferric.api_proc.pid());
        let api_pids: Vec<u32> = api_pid.into_iter().collect();
        let (_, idle_rss) = usage(&conductor_pids);
        log(&format!("{:?}: starting {n} simulated machines", self.mode));
        let sims = Sims::start(SimSetup {
            binary: self.sim,
            dir: &self.dir,
            ipmi: self.ipmi,
            redfish: n - self.ipmi,
            shard: args.shard,
            agents_api: &ferric.api,
            agent_args: vec![
                "--agent-write-secs".into(),
                args.write_secs.to_string(),
                "--agent-boot-secs".into(),
                args.agent_boot_secs.to_string(),
            ],
        })
        .await?;
        let api = Api::connect(&ferric.api, None).await?;
        let http = reqwest::Client::new();
        let timeout = Duration::from_secs(args.timeout_secs);
        let mut errors = Errors::default();
        let mut phases = Vec::new();
        let mut clock = Clock::start(self.mode, n, &conductor_pids, &api_pids);

        // Enroll.
        let files = files.display().to_string();
        let bodies = sims
            .bmcs
            .iter()
            .map(|bmc| {
                (
                    nodes::node_body(bmc, self.image, &files),
                    bmc["mac"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let enrolled = nodes::enroll(&api, bodies, args.concurrency, &mut errors).await;
        let uuids: Vec<String> = enrolled.into_iter().flatten().collect();
        clock.end("enroll (node + port)", &mut phases);

        // Manage, then two power-sync sweeps.
        self.step(&api, &uuids, "manage", "manageable", timeout, &mut errors)
            .await?;
        clock.end("manage", &mut phases);
        let sweeps = self.sweeps(&http, ferric, timeout).await?;
        clock.restart();

        // Provide.
        self.step(&api, &uuids, "provide", "available", timeout, &mut errors)
            .await?;
        clock.end(
            if args.clean {
                "provide (cleaning)"
            } else {
                "provide"
            },
            &mut phases,
        );

        // Deploy, with the API read meanwhile.
        let before = self.counters(&http, ferric).await;
        let stop = CancellationToken::new();
        let reads = tokio::spawn(reader::read_steadily(
            api.fresh()?,
            uuids.clone(),
            args.read_rate,
            stop.clone(),
        ));
        let requested = nodes::request(&api, &uuids, "active", args.concurrency, &mut errors).await;
        let reached = nodes::wait_for(&api, &uuids, "active", timeout).await;
        stop.cancel();
        let mut read_samples = reads.await?;
        let reached = reached?;
        for (_, why) in &reached.failed {
            errors.add(why.clone());
        }
        clock.end("deploy (direct, simulated agents)", &mut phases);
        let after = self.counters(&http, ferric).await;
        let e2e = nodes::durations(&requested, &reached.at);

        let (_, rss) = usage(&conductor_pids);
        let simulator = sims.stats().await;
        if read_samples.errors + read_samples.resets > 0 {
            errors.add(format!(
                "{} API reads failed; the first: {}",
                read_samples.errors + read_samples.resets,
                read_samples.first_error.clone().unwrap_or_default()
            ));
        }
        let failed_commands = simulator["agents"]["commands_failed"].as_u64().unwrap_or(0);
        if failed_commands > 0 {
            errors.add(format!("{failed_commands} agent commands failed"));
        }
        let latency = read_samples.latency();
        let deployed = reached.at.len().max(1) as f64;
        let conductor_cpu: f64 = phases.iter().map(|p| p.conductor_cpu_s).sum();
        Ok(ModeReport {
            mode: self.mode,
            conductors: if self.mode == Mode::Embedded {
                1
            } else {
                args.conductors
            },
            phases,
            sweeps,
            deploy_end_to_end: Spread::of(&e2e),
            reads: read_samples.count(),
            read_p50_ms: latency.as_ref().map(|l| l.p50_ms),
            read_p99_ms: latency.as_ref().map(|l| l.p99_ms),
            conductor_idle_rss_mib: round(idle_rss, 1),
            conductor_rss_mib: round(rss, 1),
            conductor_kib_per_node: round((rss - idle_rss) * 1024.0 / n as f64, 2),
            conductor_cpu_s_per_1000_nodes: round(conductor_cpu * 1000.0 / n as f64, 2),
            api_rss_mib: api_pid.map(|_| round(usage(&api_pids).1, 1)),
            db_per_deploy: match (&before.db, &after.db) {
                (Some(b), Some(a)) => Some(per_deploy(b, a, deployed)),
                _ => None,
            },
            amqp_messages_per_deploy: (self.mode == Mode::Distributed)
                .then(|| round((after.messages - before.messages) / deployed, 1)),
            simulator,
            errors: errors.count,
            first_error: errors.first,
        })
    }

    /// Requests `verb` of every node and waits until they are in `state`;
    /// nodes that failed instead are counted as errors.
    async fn step(
        &self,
        api: &Api,
        uuids: &[String],
        verb: &str,
        state: &str,
        timeout: Duration,
        errors: &mut Errors,
    ) -> anyhow::Result<()> {
        log(&format!("{:?}: {verb} {} nodes", self.mode, uuids.len()));
        nodes::request(api, uuids, verb, self.args.concurrency, errors).await;
        let reached = nodes::wait_for(api, uuids, state, timeout).await?;
        for (_, why) in reached.failed {
            errors.add(why);
        }
        Ok(())
    }

    /// The next two power-sync sweeps of every conductor after now: for
    /// each, the slowest conductor's time and the nodes read in all.
    async fn sweeps(
        &self,
        http: &reqwest::Client,
        ferric: &Ferric,
        timeout: Duration,
    ) -> anyhow::Result<Vec<(f64, u64)>> {
        log(&format!(
            "{:?}: waiting for two power-sync sweeps",
            self.mode
        ));
        let count =
            |text: &str| metrics::sum(text, "ferric_power_sync_sweep_duration_seconds_count", None);
        let mut seen = Vec::new();
        for url in &ferric.metrics {
            seen.push(count(&metrics::scrape(http, url).await));
        }
        let deadline = Instant::now() + timeout;
        let mut sweeps = Vec::new();
        // The first sweep may have started before the last node was
        // managed: skip it; then two whole ones.
        for round_no in 0..3 {
            let mut slowest: f64 = 0.0;
            let mut nodes = 0_u64;
            for (url, last) in ferric.metrics.iter().zip(seen.iter_mut()) {
                loop {
                    let text = metrics::scrape(http, url).await;
                    if count(&text) > *last {
                        *last = count(&text);
                        slowest = slowest.max(metrics::sum(
                            &text,
                            "ferric_power_sync_last_sweep_seconds",
                            None,
                        ));
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        {
                            nodes += metrics::sum(&text, "ferric_power_sync_last_sweep_nodes", None)
                                as u64;
                        }
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!(
                            "no power-sync sweep at {url} within {} s",
                            timeout.as_secs()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if round_no > 0 {
                log(&format!(
                    "{:?}: sweep over {nodes} nodes: {slowest:.2} s",
                    self.mode
                ));
                sweeps.push((round(slowest, 3), nodes));
            }
        }
        Ok(sweeps)
    }

    /// The broker messages sent so far and the database's counters.
    async fn counters(&self, http: &reqwest::Client, ferric: &Ferric) -> Counters {
        let mut messages = 0.0;
        let mut pages = ferric.metrics.clone();
        if !ferric.conductors.is_empty() {
            pages.push(format!("{}/metrics", ferric.api));
        }
        for url in &pages {
            let text = metrics::scrape(http, url).await;
            messages += metrics::sum(
                &text,
                "ferric_queue_publishes_total",
                Some("outcome=\"confirmed\""),
            );
            messages += metrics::sum(&text, "ferric_amqp_messages_sent_total", None);
        }
        let db = match ferric.database() {
            Some((url, name)) => processes::psql(
                url,
                &format!(
                    "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned, tup_fetched \
                     FROM pg_stat_database WHERE datname = '{name}'"
                ),
            )
            .await
            .ok()
            .map(|row| row.split('|').filter_map(|v| v.trim().parse::<f64>().ok()).collect()),
            None => None,
        };
        Counters { messages, db }
    }
}

/// What is counted before and after the deploy.
struct Counters {
    messages: f64,
    /// pg_stat_database's transactions, inserted, updated, deleted,
    /// returned and fetched rows.
    db: Option<Vec<f64>>,
}

fn per_deploy(before: &[f64], after: &[f64], deploys: f64) -> Value {
    let names = [
        "transactions",
        "rows_inserted",
        "rows_updated",
        "rows_deleted",
        "rows_returned",
        "rows_fetched",
    ];
    let mut out = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        if let (Some(b), Some(a)) = (before.get(i), after.get(i)) {
            out.insert((*name).to_owned(), round((a - b) / deploys, 1).into());
        }
    }
    Value::Object(out)
}

impl ScaleReport {
    /// The report as a table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "{} nodes ({} ipmi, {} redfish), write_image ≥ {} s of a {} KiB image; {} CPUs ({}), {} MiB, Linux {}",
            self.nodes,
            self.ipmi,
            self.redfish,
            self.write_secs,
            self.image_kib,
            m.cpus,
            m.cpu_model,
            m.mem_total_mib,
            m.kernel
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "\n== {:?} ({} conductor(s)) ==",
                run.mode, run.conductors
            );
            let _ = writeln!(
                out,
                "{:<36} {:>8} {:>8} {:>11} {:>9} {:>13}",
                "phase", "s", "nodes/s", "cond. CPU-s", "API CPU-s", "cond. RSS MiB"
            );
            for p in &run.phases {
                let _ = writeln!(
                    out,
                    "{:<36} {:>8.2} {:>8.1} {:>11.2} {:>9} {:>13.1}",
                    p.name,
                    p.secs,
                    p.nodes_per_s,
                    p.conductor_cpu_s,
                    p.api_cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
                    p.conductor_rss_mib
                );
            }
            for (i, (secs, nodes)) in run.sweeps.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "power-sync sweep {}: {secs:.2} s over {nodes} nodes (slowest conductor)",
                    i + 1
                );
            }
            if let Some(s) = &run.deploy_end_to_end {
                let _ = writeln!(
                    out,
                    "deploy end to end per node: p50 {:.1} s, p90 {:.1} s, p99 {:.1} s, max {:.1} s",
                    s.p50, s.p90, s.p99, s.max
                );
            }
            let _ = writeln!(
                out,
                "API GET /v1/nodes/{{uuid}} during the deploy: {} reads, p50 {} ms, p99 {} ms",
                run.reads,
                run.read_p50_ms.map_or("-".into(), |v| format!("{v:.2}")),
                run.read_p99_ms.map_or("-".into(), |v| format!("{v:.2}"))
            );
            let _ = writeln!(
                out,
                "conductor RSS: idle {:.1} MiB, after {:.1} MiB ({:.2} KiB/node); CPU {:.2} s per 1,000 nodes{}",
                run.conductor_idle_rss_mib,
                run.conductor_rss_mib,
                run.conductor_kib_per_node,
                run.conductor_cpu_s_per_1000_nodes,
                run.api_rss_mib
                    .map_or(String::new(), |r| format!("; API RSS {r:.1} MiB"))
            );
            if let Some(db) = &run.db_per_deploy {
                let _ = writeln!(out, "PostgreSQL per deploy: {db}");
            }
            if let Some(m) = run.amqp_messages_per_deploy {
                let _ = writeln!(out, "RabbitMQ messages per deploy: {m:.1}");
            }
            let _ = writeln!(out, "simulator: {}", run.simulator);
            let _ = writeln!(
                out,
                "errors: {}{}",
                run.errors,
                run.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (first: {e})"))
            );
        }
        out
    }
}
