//! The `ferric-agent` binary refuses to start without what it needs, with
//! a message saying what is missing (no API URL, no NIC).

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferric-agent"))
}

#[test]
fn without_an_api_url_it_says_so() {
    let out = agent().output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no API URL: pass --api-url or ipa-api-url="),
        "{stderr}"
    );
}

#[test]
fn without_a_nic_it_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let out = agent()
        .args([
            "--api-url",
            "http://127.0.0.1:9",
            "--advertise-host",
            "127.0.0.1",
        ])
        .arg("--sys-class-net")
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no network interface with a MAC address"),
        "{stderr}"
    );
}
