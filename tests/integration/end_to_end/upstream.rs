//! OpenStack's own API tests — ironic-tempest-plugin's
//! `ironic_tempest_plugin.tests.api.admin`, run by
//! `scripts/upstream-api-tests` with tempest — against Ferric: every test
//! must pass (the suite skips only what needs Neutron). Here against the
//! embedded mode; `distributed::the_upstream_api_suite_passes_against_three_conductors`
//! runs it against `ferric api` and three conductors.

use std::path::Path;

use crate::helpers::{Backend, spawn_app_with};

/// Runs the suite against `base` (a fresh database) under `label`; panics
/// with tempest's summary and failures unless every test passed.
pub async fn run_upstream_suite(base: &str, label: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(root.join("scripts/upstream-api-tests"))
        .args([base, "--with-ipmi", "--label", label])
        .current_dir(root)
        .kill_on_drop(true)
        .output()
        .await
        .expect("scripts/upstream-api-tests runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let run = root.join("target/upstream/runs").join(label);
    let failures = std::fs::read_to_string(run.join("failures-detail.txt")).unwrap_or_default();
    assert!(
        output.status.success(),
        "the upstream API suite failed against {base}:\n{stdout}\n{}\n{failures}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = std::fs::read_to_string(run.join("summary.txt")).unwrap_or_default();
    assert!(summary.contains(", 0 failed"), "{summary}\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_api_suite_passes_against_embedded_ferric() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["fake-hardware".into(), "ipmi".into()];
        s.conductor.sync_power_state_interval_secs = 0;
    })
    .await;
    let label = format!(
        "embedded-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    run_upstream_suite(&app.base, &label).await;
    app.stop().await;
}
