//! `ferric-bench`: the load tool behind the README's performance table.
//!
//! It drives any Ironic-compatible API (Ferric, or the real Ironic) with the
//! work measured in `reference/ironic-figures.md` — create N nodes, list them
//! (plain, detail, `fields`, a paginated walk), GET one node at high
//! concurrency, take M fake-hardware nodes manage → provide → deploy → active,
//! clean up — and prints a table plus, with `--json`, a machine-readable
//! report. `ferric-bench compare BASELINE.json OTHER.json…` prints the ratios.
//!
//! Invariants: it only ever talks to loopback addresses (checked before the
//! first request); every loop is bounded in count and in time.

mod api;
mod compare;
mod phases;
mod procstat;
mod progress;
mod report;
mod scale;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferric-bench",
    about = "Benchmark an Ironic-compatible API on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the benchmark against one server and prints its figures.
    Run(RunArgs),
    /// A simulated fleet (ferric-sim: Redfish and IPMI BMCs, agents) enrolled,
    /// swept, managed, provided and deployed through Ferric, embedded and
    /// distributed; prints the figures, fails when anything failed.
    Scale(scale::ScaleArgs),
    /// Prints each figure of OTHER reports next to BASELINE's, with the ratio.
    Compare {
        /// The report the others are compared with (e.g. Ironic's).
        baseline: PathBuf,
        /// Reports to compare (e.g. Ferric embedded, Ferric distributed).
        #[arg(required = true)]
        others: Vec<PathBuf>,
    },
}

/// What to run and against what.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// The API's base URL; must resolve to a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:6385")]
    pub url: String,
    /// A name for this server in the report ("ironic", "ferric-embedded" …).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// `USER:PASSWORD` for HTTP basic auth, when the server wants it.
    #[arg(long)]
    pub basic_auth: Option<String>,
    /// Nodes created first (and listed, and read back).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Concurrency of node creation and clean-up.
    #[arg(long, default_value_t = 8)]
    pub create_concurrency: usize,
    /// Times each list request is repeated (sequentially).
    #[arg(long, default_value_t = 10)]
    pub list_repeats: usize,
    /// Concurrency levels of the GET-one-node phase.
    #[arg(long, value_delimiter = ',', default_value = "16,256")]
    pub get_concurrency: Vec<usize>,
    /// How long each GET-one-node level runs.
    #[arg(long, default_value_t = 15.0)]
    pub get_secs: f64,
    /// Upper bound on the requests of one GET-one-node level.
    #[arg(long, default_value_t = 2_000_000)]
    pub get_max_requests: u64,
    /// Fresh fake-hardware nodes taken manage → provide → deploy (0: skip).
    #[arg(long, default_value_t = 100)]
    pub deploy_nodes: usize,
    /// Requests in flight at once per deploy step (0: all at once, at most 1024).
    #[arg(long, default_value_t = 0)]
    pub deploy_concurrency: usize,
    /// The longest one deploy step may take before the run fails.
    #[arg(long, default_value_t = 900)]
    pub step_timeout_secs: u64,
    /// Total nodes for the large listing (0: skip); created up to this count.
    #[arg(long, default_value_t = 10_000)]
    pub big_nodes: usize,
    /// The server's process id(s): RSS, PSS and CPU seconds of these and
    /// their descendants are reported.
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Leave the created nodes in place.
    #[arg(long)]
    pub no_cleanup: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The driver of the nodes created.
    #[arg(long, default_value = "fake-hardware")]
    pub driver: String,
}

impl RunArgs {
    fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_secs)
    }
}

#[allow(clippy::print_stdout)]
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run(args) => {
            let report = runtime.block_on(phases::run(&args))?;
            println!("{}", report.table());
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            if let Some(failed) = report.failed {
                anyhow::bail!("the run stopped early: {failed}");
            }
        }
        Command::Scale(args) => {
            let report = runtime.block_on(scale::run(&args))?;
            println!("{}", report.table());
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            let errors: u64 = report.runs.iter().map(|r| r.errors).sum();
            if errors > 0 {
                anyhow::bail!("{errors} errors during the scale run");
            }
        }
        Command::Compare { baseline, others } => {
            let load = |path: &PathBuf| -> anyhow::Result<report::Report> {
                let text = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                serde_json::from_slice(&text)
                    .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
            };
            let base = load(&baseline)?;
            let others = others
                .iter()
                .map(load)
                .collect::<anyhow::Result<Vec<_>>>()?;
            println!("{}", compare::table(&base, &others));
        }
    }
    Ok(())
}
