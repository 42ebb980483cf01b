//! openstacksdk (from PyPI) drives the API surface beyond nodes and ports
//! against a running Ferric: deploy templates, runbooks, portgroups, volume
//! connectors, an allocation filled by the conductor, VIFs, and a fake
//! provision through rescue, unrescue, tear-down and manual cleaning.
//! The script is `tests/fixtures/sdk_surface.py`; it prints what it saw.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::process::Command;

use super::clients::{ensure_venv, venv};
use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstacksdk_uses_templates_runbooks_allocations_and_vifs() {
    let app = spawn_app().await;
    let venv = venv();
    ensure_venv(&venv).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk_surface.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(&app.base)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "openstacksdk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        json!({
            "template": {"names": ["CUSTOM_SDK"], "extra": {"team": "ops"}, "after_delete": []},
            "runbook": {"name": "CUSTOM_SDK_RB", "count": 1},
            "portgroup": {"mode": "active-backup", "names": ["sdk-pg"]},
            "volume_connectors": ["iqn.2026-11.org.ferric:sdk"],
            "allocation": {"state": "active", "node_is_ours": true, "node_allocation": true},
            "vifs": [],
            "rescued": "rescue",
            "unrescued": "active",
            "undeployed": "available",
            "allocation_after_teardown": "gone",
            "cleaned": "manageable",
        })
    );
    app.stop().await;
}
