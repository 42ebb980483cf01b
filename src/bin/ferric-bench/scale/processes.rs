//! The processes of a scale run: Ferric (embedded: one `ferric standalone`;
//! distributed: `ferric api` and N `ferric conductor`s on a database of
//! their own and a broker prefix of their own) and the `ferric-sim`
//! shards, each killed when dropped; and the run's own PostgreSQL
//! database, created through `psql` and dropped at the end.
//!
//! Invariants: everything listens on and talks to loopback (the database
//! and broker URLs are checked); a process that exits early fails the wait
//! that expected it, with its log's last lines.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Whether `url`'s host is a loopback IP address or `localhost`.
pub fn loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).ok().is_some_and(|u| {
        let host = u.host_str().unwrap_or_default();
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// A child process with a name and a log file.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Fails with the log's tail when the process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}):\n{}", self.name, tail(&self.log));
        }
        Ok(())
    }
}

/// The last lines of a log.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    dir: &Path,
    stdout: bool,
) -> anyhow::Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(file.try_clone()?)
        .kill_on_drop(true);
    if stdout {
        command.stdout(Stdio::piped());
    } else {
        command.stdout(file);
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(Proc {
        name: name.to_owned(),
        child,
        log,
    })
}

/// A running Ferric.
pub struct Ferric {
    pub api: String,
    pub api_proc: Proc,
    /// Distributed mode's conductors (empty in embedded mode).
    pub conductors: Vec<Proc>,
    /// Where each conductor's (or the embedded process's) metrics are.
    pub metrics: Vec<String>,
    /// The database to drop at the end (admin URL, name).
    database: Option<(String, String)>,
    /// The broker queues to delete at the end.
    queues: Vec<String>,
}

/// What Ferric is started with.
pub struct FerricSetup<'a> {
    pub binary: &'a Path,
    pub dir: &'a Path,
    /// Every process's `FERRIC_*` settings.
    pub env: Vec<(String, String)>,
    /// `None`: embedded; else the conductors and the PostgreSQL admin URL
    /// and the broker URL.
    pub distributed: Option<(usize, &'a str, &'a str)>,
}

impl Ferric {
    /// Starts Ferric and waits until its API answers (and, distributed,
    /// every conductor is alive in the ring).
    ///
    /// # Errors
    /// A process that does not start or exits, the database, or a wait
    /// that times out.
    pub async fn start(setup: FerricSetup<'_>) -> anyhow::Result<Ferric> {
        let port = free_port()?;
        let api = format!("http://127.0.0.1:{port}");
        let mut env = setup.env.clone();
        env.push(("FERRIC_API__HOST".into(), "127.0.0.1".into()));
        env.push(("FERRIC_API__PORT".into(), port.to_string()));
        env.push(("FERRIC_DEPLOY__API_URL".into(), api.clone()));
        env.push((
            "FERRIC_DATA_DIR".into(),
            setup.dir.join("data").display().to_string(),
        ));
        let Some((conductors, admin_url, amqp_url)) = setup.distributed else {
            let proc = spawn(
                "ferric-standalone",
                setup.binary,
                &["standalone".into()],
                &env,
                setup.dir,
                false,
            )?;
            let mut ferric = Ferric {
                metrics: vec![format!("{api}/metrics")],
                api,
                api_proc: proc,
                conductors: Vec::new(),
                database: None,
                queues: Vec::new(),
            };
            ferric.wait_ready(0).await?;
            return Ok(ferric);
        };
        let name = format!(
            "ferric_scale_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        psql(admin_url, &format!("CREATE DATABASE {name}")).await?;
        let mut url = reqwest::Url::parse(admin_url)?;
        url.set_path(&format!("/{name}"));
        env.push(("FERRIC_DATABASE__URL".into(), url.to_string()));
        env.push(("FERRIC_AMQP__URL".into(), amqp_url.to_owned()));
        let prefix = format!("{name}.");
        env.push(("FERRIC_AMQP__PREFIX".into(), prefix.clone()));
        let mut queues = vec![format!("{prefix}ferric.dead")];
        let database = Some((admin_url.to_owned(), name.clone()));
        let upgrade = spawn(
            "ferric-db-upgrade",
            setup.binary,
            &["db".into(), "upgrade".into()],
            &env,
            setup.dir,
            false,
        )?;
        let status = upgrade.child.wait_with_output().await?.status;
        if !status.success() {
            bail!(
                "ferric db upgrade failed:\n{}",
                tail(&setup.dir.join("ferric-db-upgrade.log"))
            );
        }
        let mut procs = Vec::new();
        let mut metrics = Vec::new();
        for c in 1..=conductors {
            let metrics_port = free_port()?;
            let mut env = env.clone();
            env.push(("FERRIC_CONDUCTOR__HOST".into(), format!("scale-c{c}")));
            queues.push(format!("{prefix}ferric.conductor.scale-c{c}"));
            env.push((
                "FERRIC_CONDUCTOR__METRICS_LISTEN".into(),
                format!("127.0.0.1:{metrics_port}"),
            ));
            procs.push(spawn(
                &format!("ferric-conductor-{c}"),
                setup.binary,
                &["conductor".into()],
                &env,
                setup.dir,
                false,
            )?);
            metrics.push(format!("http://127.0.0.1:{metrics_port}/metrics"));
        }
        let api_proc = spawn(
            "ferric-api",
            setup.binary,
            &["api".into()],
            &env,
            setup.dir,
            false,
        )?;
        let mut ferric = Ferric {
            api,
            api_proc,
            conductors: procs,
            metrics,
            database,
            queues,
        };
        ferric.wait_ready(conductors).await?;
        Ok(ferric)
    }

    /// The PIDs of the processes that conduct (the embedded one, or the
    /// conductors).
    pub fn conductor_pids(&self) -> Vec<u32> {
        if self.conductors.is_empty() {
            vec![self.api_proc.pid()]
        } else {
            self.conductors.iter().map(Proc::pid).collect()
        }
    }

    /// The run's database (admin URL, name), when distributed.
    pub fn database(&self) -> Option<(&str, &str)> {
        self.database
            .as_ref()
            .map(|(url, name)| (url.as_str(), name.as_str()))
    }

    async fn wait_ready(&mut self, conductors: usize) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            self.api_proc.check_alive()?;
            for c in &mut self.conductors {
                c.check_alive()?;
            }
            let alive = match http
                .get(format!("{}/v1/conductors?fields=hostname,alive", self.api))
                .header("X-OpenStack-Ironic-API-Version", "latest")
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|body| {
                        body["conductors"]
                            .as_array()
                            .map(|list| list.iter().filter(|c| c["alive"] == true).count())
                    })
                    .unwrap_or(0),
                _ => 0,
            };
            if alive >= conductors.max(1) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Ferric was not ready within 120 s ({alive} conductors alive):\n{}",
                    tail(&self.api_proc.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every process, deletes the queues and drops the database.
    pub async fn stop(mut self) {
        for proc in self.conductors.iter_mut().chain([&mut self.api_proc]) {
            let _ = proc.child.kill().await;
        }
        for queue in &self.queues {
            // A queue left behind would pile up messages nobody reads.
            let _ = Command::new("rabbitmqctl")
                .args(["-q", "delete_queue", queue])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
        if let Some((url, name)) = self.database.take()
            && let Err(e) = psql(
                &url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
        {
            super::log(&format!("could not drop database {name}: {e:#}"));
        }
    }
}

/// Runs one SQL statement with `psql` at `url`; its unaligned output.
///
/// # Errors
/// When psql cannot run or the statement fails.
pub async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .await
        .context("running psql")?;
    if !out.status.success() {
        bail!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The simulator shards of a run.
pub struct Sims {
    pub procs: Vec<Proc>,
    /// Every BMC of the fleet, as the manifests list them.
    pub bmcs: Vec<Value>,
    /// Each shard's control API.
    pub controls: Vec<String>,
}

/// What the simulators are started with.
pub struct SimSetup<'a> {
    pub binary: &'a Path,
    pub dir: &'a Path,
    pub ipmi: usize,
    pub redfish: usize,
    /// Machines per process (each holds a listener and a connection per
    /// Redfish BMC within its open-file limit).
    pub shard: usize,
    pub agents_api: &'a str,
    pub agent_args: Vec<String>,
}

impl Sims {
    /// Starts the shards and reads their manifests: machines 0..redfish
    /// are Redfish, the rest IPMI, split over shards of `shard` machines.
    ///
    /// # Errors
    /// A shard that does not start.
    pub async fn start(setup: SimSetup<'_>) -> anyhow::Result<Sims> {
        let total = setup.ipmi + setup.redfish;
        let port = free_port()?;
        let mut sims = Sims {
            procs: Vec::new(),
            bmcs: Vec::new(),
            controls: Vec::new(),
        };
        for (n, first) in (0..total).step_by(setup.shard.max(1)).enumerate() {
            let end = (first + setup.shard).min(total);
            let redfish = setup.redfish.clamp(first, end) - first;
            let ipmi = end - first - redfish;
            let manifest = setup.dir.join(format!("sim-{n}.json"));
            let mut args: Vec<String> = [
                "--redfish",
                &redfish.to_string(),
                "--ipmi",
                &ipmi.to_string(),
                "--spread",
                "--first-index",
                &first.to_string(),
                "--first-port",
                &port.to_string(),
                "--ipmi-first-port",
                &port.to_string(),
                "--agents-api",
                setup.agents_api,
                "--manifest",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            args.push(manifest.display().to_string());
            args.extend(setup.agent_args.iter().cloned());
            let mut proc = spawn(
                &format!("ferric-sim-{n}"),
                setup.binary,
                &args,
                &[],
                setup.dir,
                true,
            )?;
            let stdout = proc.child.stdout.take().context("the simulator's stdout")?;
            let mut ready = String::new();
            tokio::io::BufReader::new(stdout)
                .read_line(&mut ready)
                .await?;
            let ready: Value = serde_json::from_str(&ready).map_err(|_| {
                anyhow::anyhow!("ferric-sim shard {n} did not start:\n{}", tail(&proc.log))
            })?;
            sims.controls
                .push(ready["control"].as_str().unwrap_or_default().to_owned());
            let listed: Vec<Value> = serde_json::from_slice(&std::fs::read(&manifest)?)?;
            sims.bmcs.extend(listed);
            sims.procs.push(proc);
        }
        sims.bmcs
            .sort_by_key(|b| b["index"].as_u64().unwrap_or(u64::MAX));
        Ok(sims)
    }

    /// Every shard's `GET /stats`, summed key by key (the agents' too).
    pub async fn stats(&self) -> Value {
        let http = reqwest::Client::new();
        let mut total = serde_json::Map::new();
        for control in &self.controls {
            let Ok(response) = http.get(format!("{control}/stats")).send().await else {
                continue;
            };
            let Ok(body) = response.json::<Value>().await else {
                continue;
            };
            add_numbers(&mut total, &body);
        }
        Value::Object(total)
    }
}

/// Adds `from`'s numbers into `into`, nested objects key by key.
fn add_numbers(into: &mut serde_json::Map<String, Value>, from: &Value) {
    let Some(from) = from.as_object() else {
        return;
    };
    for (key, value) in from {
        match value {
            Value::Number(n) => {
                let sum =
                    into.get(key).and_then(Value::as_u64).unwrap_or(0) + n.as_u64().unwrap_or(0);
                into.insert(key.clone(), sum.into());
            }
            Value::Object(_) => {
                let entry = into
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Some(map) = entry.as_object_mut() {
                    add_numbers(map, value);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_stats_add_up_key_by_key() {
        let mut total = serde_json::Map::new();
        add_numbers(
            &mut total,
            &serde_json::json!({"bmcs": 2, "agents": {"started": 1}}),
        );
        add_numbers(
            &mut total,
            &serde_json::json!({"bmcs": 3, "agents": {"started": 4}, "x": "y"}),
        );
        assert_eq!(
            Value::Object(total),
            serde_json::json!({"bmcs": 5, "agents": {"started": 5}})
        );
    }

    #[test]
    fn only_loopback_urls_pass() {
        assert!(loopback_url("postgres://postgres@127.0.0.1:5432/postgres"));
        assert!(loopback_url("amqp://guest:guest@localhost:5672/%2f"));
        assert!(!loopback_url("postgres://db.example.com/postgres"));
    }
}
