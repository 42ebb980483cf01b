//! `FerricProcess`: the real `ferric` binary (embedded mode) as a child
//! process on a free loopback port, over a temporary data directory, with a
//! clean environment plus the variables a test adds; its output goes to a
//! file (a pipe nobody reads would fill up and block it); `ServiceProcess`:
//! a `ferric api` or `ferric conductor` of the real binary, stopped with
//! SIGTERM and started again, in a network namespace if asked.

use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::wait_until;

pub struct FerricProcess {
    pub child: tokio::process::Child,
    pub base: String,
    /// stdout and stderr of the process.
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A TCP port free on loopback now (the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl FerricProcess {
    /// Starts it with `env` added and waits until the API answers.
    pub async fn start(env: &[(&str, &str)]) -> FerricProcess {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("ferric.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric"))
            .env_clear()
            .env("FERRIC_DATA_DIR", dir.path())
            .env("FERRIC_API__PORT", port.to_string())
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
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
        FerricProcess {
            child,
            base,
            log,
            _dir: dir,
        }
    }
}

/// One `ferric api` or `ferric conductor` process of the real binary
/// (inside a network namespace when `netns` is set), with only the given
/// environment, its output appended to a file across restarts.
pub struct ServiceProcess {
    command: String,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    netns: Option<String>,
    child: Option<tokio::process::Child>,
}

impl ServiceProcess {
    pub fn new(command: &str, env: Vec<(String, String)>, log: PathBuf) -> ServiceProcess {
        ServiceProcess::new_in(None, command, env, log)
    }

    /// Started inside network namespace `netns` (`ip netns exec`).
    pub fn new_in(
        netns: Option<&str>,
        command: &str,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> ServiceProcess {
        let mut process = ServiceProcess {
            command: command.to_owned(),
            env,
            log,
            netns: netns.map(str::to_owned),
            child: None,
        };
        process.start();
        process
    }

    pub fn start(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_ferric")]);
                c
            }
            None => tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric")),
        };
        self.child = Some(
            command
                .arg(&self.command)
                .env_clear()
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .expect("the ferric binary starts"),
        );
    }

    /// SIGKILL: the process dies at once, mid-work.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGTERM, and the exit status once it has stopped by itself.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("a pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("it stops within a minute of SIGTERM")
            .unwrap()
    }
}

/// The agent binary cargo built beside this test binary (the agent crate's
/// own tests make cargo build it).
pub fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let agent = dir.join("ferric-agent");
    assert!(
        agent.exists(),
        "{} is missing: build it with `cargo build -p ferric-agent` (the workspace's test run does)",
        agent.display()
    );
    agent
}

/// A blank disk of `size` bytes (a sparse file) standing in for a block
/// device: the agent writes within its size, as within a real disk's.
pub fn blank_disk(path: &std::path::Path, size: u64) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
}

/// The first `len` bytes of a disk.
pub fn disk_prefix(path: &std::path::Path, len: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(len);
    bytes
}
