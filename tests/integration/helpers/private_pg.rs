//! `PrivatePg`: a PostgreSQL server of the test's own (initdb in a
//! temporary directory, a free loopback port), so a test can stop, crash,
//! restart it or fail it over to a standby it made with `pg_basebackup`
//! without touching the machine's server that the other tests share.
//!
//! The server runs as the `postgres` user when the test runs as root
//! (PostgreSQL refuses root); it is stopped (immediate) when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::process::free_port;

pub struct PrivatePg {
    pub port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// The newest installed PostgreSQL's `bin` directory.
fn bin(tool: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries in /usr/lib/postgresql (scripts/test installs them)");
    let newest = versions
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("a PostgreSQL version in /usr/lib/postgresql");
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin/{tool}"))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A PostgreSQL tool, run as the `postgres` user when we are root.
fn command(tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(tool));
        c
    } else {
        Command::new(bin(tool))
    }
}

fn run(tool: &str, args: &[&str]) {
    let output = command(tool)
        .args(args)
        .output()
        .expect("a PostgreSQL tool runs");
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn owned_by_postgres(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl PrivatePg {
    /// A fresh cluster (trust authentication, fsync off), started.
    pub fn start() -> PrivatePg {
        let pg = PrivatePg::init();
        pg.start_server();
        pg
    }

    /// A fresh cluster that accepts TLS connections only (`hostssl` alone
    /// in `pg_hba.conf`), serving `certificates`' server certificate.
    pub fn start_tls(certificates: &crate::helpers::certs::Certificates) -> PrivatePg {
        let pg = PrivatePg::init();
        std::fs::copy(&certificates.cert, pg.data.join("server.crt")).unwrap();
        std::fs::copy(&certificates.key, pg.data.join("server.key")).unwrap();
        std::fs::set_permissions(
            pg.data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let mut conf = std::fs::read_to_string(pg.data.join("postgresql.conf")).unwrap();
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(pg.data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            pg.data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        owned_by_postgres(&pg.data);
        pg.start_server();
        pg
    }

    fn init() -> PrivatePg {
        let dir = tempfile::tempdir().unwrap();
        owned_by_postgres(dir.path());
        let data = dir.path().join("data");
        run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        PrivatePg {
            port: free_port(),
            data,
            _dir: dir,
        }
    }

    /// A streaming standby of this server (`pg_basebackup -R`), started on
    /// a port of its own.
    pub fn standby(&self) -> PrivatePg {
        let dir = tempfile::tempdir().unwrap();
        owned_by_postgres(dir.path());
        let data = dir.path().join("data");
        run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        let standby = PrivatePg {
            port: free_port(),
            data,
            _dir: dir,
        };
        standby.start_server();
        standby
    }

    /// The `postgres` database's URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off \
             -c full_page_writes=off -c max_connections=60",
            self.port
        );
        let log = self.data.with_file_name("server.log");
        run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server: `fast` (sessions terminated, a clean shutdown) or
    /// `immediate` (a crash: recovery at the next start).
    pub fn stop(&self, mode: &str) {
        run(
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-m", mode, "-w", "stop"],
        );
    }

    /// Starts the stopped server again, on the same port.
    pub fn restart(&self) {
        self.start_server();
    }

    /// Promotes a standby to a primary and waits until it accepts writes.
    pub fn promote(&self) {
        run(
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-w", "promote"],
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = command("pg_ctl")
            .args(["-D", self.data.to_str().unwrap_or_default()])
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
