//! OpenStack's own test suites against Ferric, every test must pass:
//! ironic-tempest-plugin's API tests (`ironic_tempest_plugin.tests.api.admin`,
//! run by `scripts/upstream-api-tests` with tempest; it skips only what needs
//! Neutron) and openstacksdk's functional bare-metal tests
//! (`openstack.tests.functional.baremetal`, run by
//! `scripts/upstream-sdk-tests`). Here against the embedded mode;
//! `distributed::the_upstream_suites_pass_against_three_conductors` runs
//! them against `ferric api` and three conductors.

use std::path::Path;

use crate::helpers::{Backend, spawn_app_with};

/// One of OpenStack's suites: its script, its extra arguments, and where
/// it leaves a run.
#[derive(Debug, Clone, Copy)]
pub enum Suite {
    /// ironic-tempest-plugin's API tests.
    Tempest,
    /// openstacksdk's functional bare-metal tests.
    Sdk,
}

impl Suite {
    fn script(self) -> &'static str {
        match self {
            Suite::Tempest => "scripts/upstream-api-tests",
            Suite::Sdk => "scripts/upstream-sdk-tests",
        }
    }

    fn extra_args(self) -> &'static [&'static str] {
        match self {
            Suite::Tempest => &["--with-ipmi"],
            Suite::Sdk => &[],
        }
    }

    fn runs(self) -> &'static str {
        match self {
            Suite::Tempest => "target/upstream/runs",
            Suite::Sdk => "target/upstream/sdk-runs",
        }
    }
}

/// Runs `suite` against `base` (a fresh database) under `label`; panics
/// with its summary and failures unless every test passed.
pub async fn run_upstream_suite(suite: Suite, base: &str, label: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(root.join(suite.script()))
        .arg(base)
        .args(suite.extra_args())
        .args(["--label", label])
        .current_dir(root)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the upstream suite's script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let run = root.join(suite.runs()).join(label);
    let failures = std::fs::read_to_string(run.join("failures-detail.txt")).unwrap_or_default();
    assert!(
        output.status.success(),
        "{suite:?} failed against {base}:\n{stdout}\n{}\n{failures}",
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
    run_upstream_suite(Suite::Tempest, &app.base, &label).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstacksdks_functional_baremetal_tests_pass_against_embedded_ferric() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.sync_power_state_interval_secs = 0;
    })
    .await;
    let label = format!(
        "embedded-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    run_upstream_suite(Suite::Sdk, &app.base, &label).await;
    app.stop().await;
}
