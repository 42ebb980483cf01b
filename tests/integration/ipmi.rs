//! The `ipmi` hardware type against a real BMC (`ipmi_sim`), with
//! `ipmitool -I lanplus -C 3` as the independent witness.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::bmc::SimBmc;
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

async fn ipmi_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["fake-hardware".into(), "ipmi".into()];
        s.conductor.automated_clean = false;
        s.ipmi.command_retry_timeout_secs = 3;
        s.ipmi.reply_timeout_ms = 500;
        s.ipmi.min_command_interval_ms = 0;
    })
    .await
}

async fn ipmi_node(app: &TestApp, driver_info: Value) -> String {
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "ipmi", "driver_info": driver_info}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.json()["uuid"].as_str().unwrap().to_owned()
}

/// Requests a power target and waits until the conductor has settled it.
async fn power(app: &TestApp, uuid: &str, target: &str) -> Value {
    app.power(uuid, target, 30).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_actions_through_the_api_are_what_ipmitool_sees() {
    let bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;
    let created = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    let properties = app.get("/v1/drivers/ipmi/properties").await.json();

    app.provision(&uuid, "manage").await;
    let manageable = app.wait_for_state(&uuid, "manageable").await;
    let on = power(&app, &uuid, "power on").await;
    let seen_on = bmc.ipmitool(&["chassis", "power", "status"]);
    let off = power(&app, &uuid, "power off").await;
    let seen_off = bmc.ipmitool(&["chassis", "power", "status"]);
    power(&app, &uuid, "power on").await;
    let events_before_reboot = bmc.events().len();
    let rebooted = power(&app, &uuid, "rebooting").await;
    let reboot_events = bmc.events()[events_before_reboot..].to_vec();
    let seen_after_reboot = bmc.ipmitool(&["chassis", "power", "status"]);

    assert_eq!(created["power_interface"], "ipmitool");
    assert_eq!(created["management_interface"], "ipmitool");
    assert_eq!(created["boot_interface"], "ipxe");
    assert_eq!(created["deploy_interface"], "direct");
    assert_eq!(created["vendor_interface"], "ipmitool");
    assert_eq!(created["driver_info"]["ipmi_password"], "******");
    assert_eq!(
        properties["ipmi_address"],
        "IP address or hostname of the node. Required."
    );
    assert!(
        properties["ipmi_priv_level"].is_string() && properties["ipmi_cipher_suite"].is_string()
    );
    assert_eq!(
        manageable["power_state"], "power off",
        "verify read the BMC"
    );
    assert_eq!(on["power_state"], "power on", "{on}");
    assert!(on["last_error"].is_null(), "{on}");
    assert_eq!(seen_on, "Chassis Power is on");
    assert_eq!(off["power_state"], "power off");
    assert_eq!(seen_off, "Chassis Power is off");
    assert_eq!(rebooted["power_state"], "power on");
    assert_eq!(reboot_events, ["set power 0", "set power 1"]);
    assert_eq!(seen_after_reboot, "Chassis Power is on");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_pxe_boot_device_is_read_back_by_ipmitool() {
    let bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;

    let set = app
        .put(
            &format!("/v1/nodes/{uuid}/management/boot_device"),
            json!({"boot_device": "pxe", "persistent": true}),
        )
        .await;
    let witness = bmc.ipmitool(&["chassis", "bootparam", "get", "5"]);
    let read = app
        .get(&format!("/v1/nodes/{uuid}/management/boot_device"))
        .await
        .json();
    let supported = app
        .get(&format!(
            "/v1/nodes/{uuid}/management/boot_device/supported"
        ))
        .await
        .json();
    let bad = app
        .put(
            &format!("/v1/nodes/{uuid}/management/boot_device"),
            json!({"boot_device": "floppy"}),
        )
        .await;

    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    assert!(witness.contains("Force PXE"), "{witness}");
    assert_eq!(bmc.events(), ["set boot pxe"]);
    assert_eq!(read["boot_device"], "pxe");
    assert_eq!(
        supported["supported_boot_devices"],
        json!(["pxe", "disk", "cdrom", "bios", "safe"])
    );
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.fault()
            .contains("Invalid boot device floppy specified."),
        "{}",
        bad.text
    );
    app.stop().await;
}

/// ipmi_sim refuses the 64th open session: a hundred commands in a row
/// work only because one session is kept and reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_commands_in_a_row_reuse_one_session() {
    let bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;

    let mut statuses = Vec::new();
    for _ in 0..100 {
        let reply = app
            .get(&format!("/v1/nodes/{uuid}/management/boot_device"))
            .await;
        statuses.push(reply.status);
    }
    let witness = bmc.ipmitool(&["chassis", "power", "status"]);

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        witness, "Chassis Power is off",
        "the BMC still has sessions to give"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_verify_and_power_with_ironics_messages() {
    let bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let mut info = bmc.driver_info();
    info["ipmi_password"] = json!("bad-pw-4242");
    let uuid = ipmi_node(&app, info).await;
    let missing = ipmi_node(&app, json!({"ipmi_port": 623})).await;

    let validate = app.get(&format!("/v1/nodes/{uuid}/validate")).await.json();
    let validate_missing = app
        .get(&format!("/v1/nodes/{missing}/validate"))
        .await
        .json();
    app.provision(&uuid, "manage").await;
    let enroll = app.wait_for_state(&uuid, "enroll").await;
    let started = Instant::now();
    let failed = power(&app, &uuid, "power on").await;
    let took = started.elapsed();
    let refused = app
        .put(
            &format!("/v1/nodes/{missing}/states/power"),
            json!({"target": "power on"}),
        )
        .await;

    // Ironic's validate never touches the BMC: the credentials look fine.
    assert_eq!(validate["power"]["result"], true, "{validate}");
    assert_eq!(validate_missing["power"]["result"], false);
    assert_eq!(
        validate_missing["power"]["reason"],
        "Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."
    );
    let verify_error = enroll["last_error"].as_str().unwrap();
    assert!(
        verify_error.starts_with(&format!(
            "Failed to get power state for node {uuid}. Error: "
        )),
        "{verify_error}"
    );
    assert!(
        verify_error.contains("authentication failed"),
        "{verify_error}"
    );
    let power_error = failed["last_error"].as_str().unwrap();
    assert!(
        power_error.starts_with("Failed to change power state to 'power on': "),
        "{power_error}"
    );
    assert!(failed["power_state"].is_null());
    assert!(
        took < Duration::from_secs(10),
        "refused credentials are not retried: {took:?}"
    );
    assert!(!power_error.contains("bad-pw-4242") && !verify_error.contains("bad-pw-4242"));
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_that_went_away_fails_the_action_within_the_retry_timeout() {
    let mut bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;
    power(&app, &uuid, "power on").await;
    bmc.stop();

    let started = Instant::now();
    let failed = power(&app, &uuid, "power off").await;
    let took = started.elapsed();

    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("Failed to change power state to 'power off': "),
        "{error}"
    );
    assert_eq!(
        failed["power_state"], "power on",
        "unchanged: the BMC never answered"
    );
    // [ipmi] command_retry_timeout_secs = 3 here, plus one reply timeout.
    assert!(took < Duration::from_secs(15), "{took:?}");
    app.stop().await;
}

async fn syncing_app(force: bool) -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["ipmi".into()];
        s.conductor.automated_clean = false;
        s.conductor.sync_power_state_interval_secs = 1;
        s.conductor.force_power_state_during_sync = force;
        s.conductor.power_state_sync_max_retries = 1;
        s.ipmi.command_retry_timeout_secs = 1;
        s.ipmi.reply_timeout_ms = 300;
        s.ipmi.min_command_interval_ms = 0;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_changed_behind_ferrics_back_is_forced_back_by_the_sync() {
    let bmc = SimBmc::start().await;
    let app = syncing_app(true).await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;

    bmc.ipmitool(&["chassis", "power", "on"]);
    wait_until(
        Duration::from_secs(30),
        "the sync to power it off again",
        || async { (bmc.events().last().map(String::as_str) == Some("set power 0")).then_some(()) },
    )
    .await;
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();

    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    assert_eq!(node["power_state"], "power off");
    assert_eq!(node["maintenance"], false);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_forcing_the_sync_records_what_the_hardware_says() {
    let bmc = SimBmc::start().await;
    let app = syncing_app(false).await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;

    bmc.ipmitool(&["chassis", "power", "on"]);
    let node = wait_until(
        Duration::from_secs(30),
        "the sync to record power on",
        || async {
            let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            (node["power_state"] == "power on").then_some(node)
        },
    )
    .await;

    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );
    assert_eq!(
        bmc.events(),
        ["set power 1"],
        "Ferric sent no power command"
    );
    assert_eq!(node["maintenance"], false);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_that_stops_answering_puts_its_node_into_maintenance() {
    let mut bmc = SimBmc::start().await;
    let app = syncing_app(true).await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    bmc.stop();

    let node = wait_until(
        Duration::from_secs(60),
        "maintenance after failed syncs",
        || async {
            let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            (node["maintenance"] == true).then_some(node)
        },
    )
    .await;
    let db =
        ferric_common::db::Db::connect(&app.settings.database_url(), 1, Duration::from_secs(5))
            .unwrap();
    let history = db
        .run(move |conn| {
            let id = ferric_common::db::models::node::Node::by_uuid(conn, &uuid)?
                .unwrap()
                .id;
            ferric_common::db::models::history::HistoryEvent::of_node(conn, id)
        })
        .await
        .unwrap();

    assert_eq!(node["fault"], "power failure");
    let reason = node["maintenance_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("During sync_power_state, max retries exceeded for node"),
        "{reason}"
    );
    assert!(node["power_state"].is_null(), "{node}");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].0.as_deref(), Some("monitoring"));
    assert_eq!(history[0].1.as_deref(), Some("ERROR"));
    assert_eq!(history[0].2.as_deref(), Some(reason));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_nmi_reaches_the_bmc_and_is_gated_by_version() {
    let bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let uuid = ipmi_node(&app, bmc.driver_info()).await;
    let fake = app.create_node("nmi-fake").await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/nodes/{uuid}/management/inject_nmi");

    let old = app
        .request(reqwest::Method::PUT, &path, Some("1.28"), Some(&json!({})))
        .await;
    // ipmi_sim answers "pulse diagnostic interrupt" with completion code 0xCC.
    let sent = app.put(&path, json!({})).await;
    let unsupported = app
        .put(
            &format!("/v1/nodes/{fake}/management/inject_nmi"),
            json!({}),
        )
        .await;
    let extra = app.put(&path, json!({"now": true})).await;

    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(
        sent.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        sent.text
    );
    assert!(
        sent.fault().contains("IPMI call failed: power diag"),
        "{}",
        sent.text
    );
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unsupported.fault(),
        "Driver fake-hardware does not support inject_nmi (disabled or not implemented)."
    );
    assert_eq!(extra.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is off"
    );
    app.stop().await;
}

/// One BMC, two nodes: the one with a wrong password must not ride on the
/// session the other one opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_never_rides_on_another_nodes_session() {
    let bmc = SimBmc::start().await;
    let app = ipmi_app().await;
    let good = ipmi_node(&app, bmc.driver_info()).await;
    let mut info = bmc.driver_info();
    info["ipmi_password"] = json!("not-it-9c1d");
    let bad = ipmi_node(&app, info).await;

    let on = power(&app, &good, "power on").await;
    let off = power(&app, &bad, "power off").await;

    assert_eq!(on["power_state"], "power on");
    assert!(
        off["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("authentication failed")),
        "{off}"
    );
    assert_eq!(
        bmc.ipmitool(&["chassis", "power", "status"]),
        "Chassis Power is on"
    );
    app.stop().await;
}
