//! A fake-hardware node through Ironic's whole happy path, on both backends.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app_with, wait_until};

async fn full_lifecycle(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let node = app.create_node("life").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();

    app.provision(&uuid, "manage").await;
    let manageable = app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "provide").await;
    let available = app.wait_for_state(&uuid, "available").await;
    let deploy = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "active", "configdrive": {"meta_data": {"hostname": "h"}}}),
        )
        .await;
    let active = app.wait_for_state(&uuid, "active").await;
    let power = app
        .put(
            &format!("/v1/nodes/{uuid}/states/power"),
            json!({"target": "power on"}),
        )
        .await;
    let powered = wait_until(std::time::Duration::from_secs(10), "power on", || async {
        let n = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (n["power_state"] == "power on" && n["reservation"].is_null()).then_some(n)
    })
    .await;
    app.provision(&uuid, "deleted").await;
    let undeployed = app.wait_for_state(&uuid, "available").await;

    assert!(manageable["target_provision_state"].is_null());
    assert!(manageable["provision_updated_at"].is_string());
    assert_eq!(
        manageable["power_state"],
        json!(null),
        "fake power keeps null"
    );
    assert_eq!(
        available["driver_internal_info"],
        json!({"clean_steps": null})
    );
    assert_eq!(deploy.status, StatusCode::ACCEPTED);
    assert_eq!(
        deploy.header("location"),
        Some(format!("{}/v1/nodes/{uuid}/states", app.base).as_str())
    );
    assert_eq!(active["instance_info"], json!({"configdrive": "******"}));
    assert_eq!(
        active["driver_internal_info"],
        json!({"clean_steps": null, "deploy_steps": null})
    );
    assert_eq!(power.status, StatusCode::ACCEPTED);
    assert!(powered["target_power_state"].is_null());
    assert!(powered["driver_internal_info"]["last_power_state_change"].is_string());
    assert_eq!(undeployed["instance_info"], json!({}));
    assert!(undeployed["last_error"].is_null());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_goes_enroll_to_active_and_back_on_sqlite() {
    full_lifecycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_goes_enroll_to_active_and_back_on_postgres() {
    full_lifecycle(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_clean_returns_to_manageable_and_rebuild_redeploys() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let node = app.available_node("mc").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;

    // A step the node's interfaces do not offer fails the cleaning, with
    // Ironic's reason (fake deploy has no erase_devices).
    let unsupported = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "clean", "clean_steps": [{"interface": "deploy", "step": "erase_devices"}]}),
        )
        .await;
    assert_eq!(
        unsupported.status,
        StatusCode::ACCEPTED,
        "{}",
        unsupported.text
    );
    let failed = app.wait_for_state(&uuid, "clean failed").await;
    assert_eq!(
        failed["last_error"],
        format!(
            "Cannot clean node {uuid}: node does not support this clean step: {{'interface': 'deploy', 'step': 'erase_devices'}}"
        )
    );
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    let no_args = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "clean", "clean_steps": [{"interface": "bios", "step": "apply_configuration"}]}),
        )
        .await;
    assert_eq!(no_args.status, StatusCode::ACCEPTED, "{}", no_args.text);
    let failed = app.wait_for_state(&uuid, "clean failed").await;
    assert_eq!(
        failed["last_error"],
        format!(
            "Cannot clean node {uuid}: clean step {{'interface': 'bios', 'step': 'apply_configuration', 'abortable': False, 'priority': 0}} is missing these required arguments: settings (List of BIOS settings, each item needs to contain a dictionary with name/value pairs)"
        )
    );
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;

    let clean = app
        .put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "clean", "clean_steps": [
                {"interface": "bios", "step": "factory_reset"},
                {"interface": "bios", "step": "apply_configuration", "args": {"settings": []}}
            ]}),
        )
        .await;
    let cleaned = app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "provide").await;
    app.wait_for_state(&uuid, "available").await;
    app.provision(&uuid, "active").await;
    app.wait_for_state(&uuid, "active").await;
    app.provision(&uuid, "rebuild").await;
    let rebuilt = app.wait_for_state(&uuid, "active").await;

    assert_eq!(clean.status, StatusCode::ACCEPTED, "{}", clean.text);
    assert!(cleaned["target_provision_state"].is_null());
    assert!(rebuilt["last_error"].is_null());
    app.stop().await;
}
