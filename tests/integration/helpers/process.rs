//! `FerricProcess`: the real `ferric` binary (embedded mode) as a child
//! process on a free loopback port, over a temporary data directory, with a
//! clean environment plus the variables a test adds; its output goes to a
//! file (a pipe nobody reads would fill up and block it).

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
