//! The `redfish` hardware type against OpenStack's Redfish BMC emulator
//! (`sushy-emulator`, fake systems, basic auth), with `curl` on the
//! system's resource as the witness. The emulator applies a power change
//! 1–11 s after it is asked, so power waits are generous.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::http::FileServer;
use crate::helpers::redfish::Emulator;
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};

async fn redfish_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["redfish".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.redfish.connection_attempts = 2;
        s.redfish.connection_retry_interval_secs = 1;
    })
    .await
}

async fn enroll(app: &TestApp, name: &str, driver_info: Value) -> String {
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "name": name, "driver_info": driver_info}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.json()["uuid"].as_str().unwrap().to_owned()
}

/// Requests a power target and waits until the conductor has settled it.
async fn power(app: &TestApp, uuid: &str, target: &str) -> Value {
    app.power(uuid, target, 90).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redfish_node_validates_verifies_and_powers_as_the_bmc_sees() {
    let bmc = Emulator::start(2).await;
    let app = redfish_app().await;
    let uuid = enroll(&app, "rf0", bmc.driver_info(0)).await;
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(node["power_interface"], "redfish");
    assert_eq!(node["management_interface"], "redfish");
    assert_eq!(node["driver_info"]["redfish_password"], "******");

    let properties = app.get("/v1/drivers/redfish/properties").await.json();
    assert!(
        properties["redfish_address"]
            .as_str()
            .is_some_and(|d| d.starts_with("The URL address to the Redfish controller.")),
        "{properties}"
    );
    assert!(properties["deploy_kernel"].is_string(), "{properties}");
    let validate = app.get(&format!("/v1/nodes/{uuid}/validate")).await.json();
    assert_eq!(validate["power"]["result"], true, "{validate}");
    assert_eq!(validate["management"]["result"], true, "{validate}");

    app.provision(&uuid, "manage").await;
    let manageable = app.wait_for_state(&uuid, "manageable").await;
    assert_eq!(manageable["power_state"], "power off");

    let on = power(&app, &uuid, "power on").await;
    assert_eq!(on["power_state"], "power on", "{on}");
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "On");
    assert_eq!(
        bmc.curl(&bmc.system(1))["PowerState"],
        "Off",
        "only its own system"
    );
    let rebooted = power(&app, &uuid, "rebooting").await;
    assert_eq!(rebooted["power_state"], "power on", "{rebooted}");
    let off = power(&app, &uuid, "power off").await;
    assert_eq!(off["power_state"], "power off", "{off}");
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "Off");
    assert!(off["last_error"].is_null(), "{off}");

    // On, ForceOff + On (reboot), ForceOff.
    let resets = bmc
        .requests()
        .iter()
        .filter(|r| *r == &format!("POST {}/Actions/ComputerSystem.Reset", bmc.system(0)))
        .count();
    assert_eq!(resets, 4, "{:?}", bmc.requests());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_devices_and_boot_modes_are_set_and_read_back_at_the_bmc() {
    let bmc = Emulator::start(1).await;
    let app = redfish_app().await;
    let uuid = enroll(&app, "rf-boot", bmc.driver_info(0)).await;
    let supported = app
        .get(&format!(
            "/v1/nodes/{uuid}/management/boot_device/supported"
        ))
        .await
        .json();
    assert_eq!(
        supported["supported_boot_devices"],
        json!(["pxe", "disk", "cdrom", "bios", "uefihttp"])
    );
    for (device, target) in [("pxe", "Pxe"), ("cdrom", "Cd"), ("disk", "Hdd")] {
        let set = app
            .put(
                &format!("/v1/nodes/{uuid}/management/boot_device"),
                json!({"boot_device": device, "persistent": true}),
            )
            .await;
        assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
        let boot = &bmc.curl(&bmc.system(0))["Boot"];
        assert_eq!(boot["BootSourceOverrideTarget"], target, "{boot}");
        assert_eq!(boot["BootSourceOverrideEnabled"], "Continuous");
        let read = app
            .get(&format!("/v1/nodes/{uuid}/management/boot_device"))
            .await
            .json();
        assert_eq!(read, json!({"boot_device": device, "persistent": true}));
    }
    // Boot mode and secure boot go to the system, then to the node.
    let mode = app
        .put(
            &format!("/v1/nodes/{uuid}/states/boot_mode"),
            json!({"target": "bios"}),
        )
        .await;
    assert_eq!(mode.status, StatusCode::ACCEPTED, "{}", mode.text);
    let secure = app
        .put(
            &format!("/v1/nodes/{uuid}/states/secure_boot"),
            json!({"target": true}),
        )
        .await;
    assert_eq!(secure.status, StatusCode::ACCEPTED, "{}", secure.text);
    let node = wait_until(Duration::from_secs(20), "boot mode recorded", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (node["boot_mode"] == "bios" && node["secure_boot"] == true).then_some(node)
    })
    .await;
    assert!(node["last_error"].is_null(), "{node}");
    assert_eq!(
        bmc.curl(&bmc.system(0))["Boot"]["BootSourceOverrideMode"],
        "Legacy"
    );
    assert_eq!(
        bmc.curl(&format!("{}/SecureBoot", bmc.system(0)))["SecureBootEnable"],
        true
    );

    let bad = app
        .put(
            &format!("/v1/nodes/{uuid}/management/boot_device"),
            json!({"boot_device": "safe"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(bad.fault(), "Invalid boot device safe specified.");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_driver_info_a_wrong_password_and_a_dead_bmc_fail_clearly() {
    let mut bmc = Emulator::start(1).await;
    let app = redfish_app().await;

    let missing = enroll(&app, "rf-missing", json!({})).await;
    let validate = app
        .get(&format!("/v1/nodes/{missing}/validate"))
        .await
        .json();
    assert_eq!(validate["power"]["result"], false);
    assert_eq!(
        validate["power"]["reason"],
        format!(
            "Missing the following Redfish properties in node {missing} driver_info: ['redfish_address']"
        )
    );
    let mut bogus = bmc.driver_info(0);
    bogus["redfish_auth_type"] = json!("bogus");
    let bogus = enroll(&app, "rf-bogus", bogus).await;
    let validate = app.get(&format!("/v1/nodes/{bogus}/validate")).await.json();
    assert_eq!(
        validate["management"]["reason"],
        format!(
            "Invalid value \"bogus\" set in driver_info/redfish_auth_type on node {bogus}. The value should be one of \"basic\", \"session\" or \"auto\"."
        )
    );

    // A direct deploy over virtual media needs a deploy ISO, or a kernel and
    // ramdisk to build one from.
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "driver_info": bmc.driver_info(0),
                   "boot_interface": "redfish-virtual-media", "deploy_interface": "direct"}),
        )
        .await;
    let no_iso = created.json()["uuid"].as_str().unwrap().to_owned();
    let validate = app
        .get(&format!("/v1/nodes/{no_iso}/validate"))
        .await
        .json();
    assert_eq!(validate["boot"]["result"], false, "{validate}");
    assert!(
        validate["boot"]["reason"]
            .as_str()
            .unwrap_or_default()
            .ends_with("Missing are: ['deploy_kernel', 'deploy_ramdisk']"),
        "{validate}"
    );

    let mut wrong = bmc.driver_info(0);
    wrong["redfish_password"] = json!("not-the-password");
    let wrong = enroll(&app, "rf-wrong", wrong).await;
    let failed = power(&app, &wrong, "power on").await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Failed to change power state to 'power on': Redfish exception occurred. Error: HTTP GET ")
            && error.contains("returned code 401"),
        "{error}"
    );
    assert!(!error.contains("not-the-password"));
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "Off");

    // A BMC that went away: two attempts a second apart, then a clear error.
    let good = enroll(&app, "rf-gone", bmc.driver_info(0)).await;
    bmc.stop();
    let started = std::time::Instant::now();
    let failed = power(&app, &good, "power on").await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "Redfish connection failed for node {good}: Unable to connect to http://127.0.0.1:{}",
            bmc.port
        )),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(failed["power_state"], Value::Null);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_redfish_nodes_power_on_at_once() {
    const N: usize = 100;
    let bmc = Emulator::start(N).await;
    let app = redfish_app().await;
    let mut nodes = Vec::new();
    for i in 0..N {
        nodes.push(enroll(&app, &format!("rf{i}"), bmc.driver_info(i)).await);
    }
    let paths: Vec<String> = nodes
        .iter()
        .map(|uuid| format!("/v1/nodes/{uuid}/states/power"))
        .collect();
    let accepted = join_all(
        paths
            .iter()
            .map(|path| app.put(path, json!({"target": "power on"}))),
    )
    .await;
    for reply in &accepted {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    }
    wait_until(Duration::from_secs(120), "all nodes on", || async {
        let list = app
            .get("/v1/nodes?fields=uuid,power_state,target_power_state,last_error&limit=1000")
            .await
            .json();
        let nodes = list["nodes"].as_array().cloned().unwrap_or_default();
        assert_eq!(nodes.len(), N, "{list}");
        let errors: Vec<&Value> = nodes
            .iter()
            .filter(|n| !n["last_error"].is_null())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        nodes
            .iter()
            .all(|n| n["power_state"] == "power on" && n["target_power_state"].is_null())
            .then_some(())
    })
    .await;
    for i in 0..N {
        assert_eq!(bmc.curl(&bmc.system(i))["PowerState"], "On", "system {i}");
    }
    app.stop().await;
}

/// Waits until the node is in `state` and unlocked (the emulator's power
/// changes take up to 11 s each).
async fn settled_in(app: &TestApp, uuid: &str, states: &[&str]) -> Value {
    wait_until(Duration::from_secs(120), "the node to settle", || async {
        let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
        (states.contains(&node["provision_state"].as_str().unwrap_or_default())
            && node["reservation"].is_null())
        .then_some(node)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_media_ramdisk_deploy_boots_the_published_iso_and_undeploy_ejects_it() {
    let bmc = Emulator::start(1).await;
    let iso: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let images = FileServer::start(HashMap::from([("/boot.iso".to_owned(), iso.clone())])).await;
    let port = crate::helpers::process::free_port();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["redfish".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.conductor.automated_clean = false;
        s.deploy.http_listen = Some(format!("127.0.0.1:{port}"));
        s.deploy.http_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "name": "rf-vmedia", "driver_info": bmc.driver_info(0),
                   "boot_interface": "redfish-virtual-media", "deploy_interface": "ramdisk",
                   "instance_info": {"boot_iso": images.url("/boot.iso")}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    let validate = app.get(&format!("/v1/nodes/{uuid}/validate")).await.json();
    assert_eq!(validate["boot"]["result"], true, "{validate}");
    assert_eq!(validate["deploy"]["result"], true, "{validate}");
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        app.provision(&uuid, verb).await;
        settled_in(&app, &uuid, &[state]).await;
    }
    app.provision(&uuid, "active").await;
    let active = settled_in(&app, &uuid, &["active", "deploy failed"]).await;
    assert_eq!(active["provision_state"], "active", "{active}");
    assert_eq!(active["power_state"], "power on");

    let published = format!("http://127.0.0.1:{port}/redfish/boot-{uuid}.iso");
    let cd = bmc.curl(&format!("{}/VirtualMedia/Cd", bmc.system(0)));
    assert_eq!(cd["Inserted"], true, "{cd}");
    assert_eq!(cd["Image"], published, "{cd}");
    let system = bmc.curl(&bmc.system(0));
    assert_eq!(system["PowerState"], "On");
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Cd");
    // The BMC downloads what Ferric serves: the ISO, byte for byte.
    let served = reqwest::get(&published)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), iso.as_slice());

    app.provision(&uuid, "deleted").await;
    let available = settled_in(&app, &uuid, &["available", "error"]).await;
    assert_eq!(available["provision_state"], "available", "{available}");
    let cd = bmc.curl(&format!("{}/VirtualMedia/Cd", bmc.system(0)));
    assert_eq!(cd["Inserted"], false, "{cd}");
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "Off");
    let gone = reqwest::get(&published).await.unwrap().status();
    assert_eq!(gone, StatusCode::NOT_FOUND, "the ISO is withdrawn");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vmedia_api_attaches_lists_and_detaches_at_the_bmc() {
    let bmc = Emulator::start(1).await;
    let iso = vec![0x5au8; 64 * 1024];
    let images = FileServer::start(HashMap::from([("/tools.iso".to_owned(), iso.clone())])).await;
    let port = crate::helpers::process::free_port();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["redfish".into(), "fake-hardware".into()];
        s.conductor.sync_power_state_interval_secs = 0;
        s.deploy.http_listen = Some(format!("127.0.0.1:{port}"));
        s.deploy.http_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let uuid = enroll(&app, "rf-api", bmc.driver_info(0)).await;
    let vmedia = format!("/v1/nodes/{uuid}/vmedia");
    let cd_path = format!("{}/VirtualMedia/Cd", bmc.system(0));

    // Bad input changes nothing.
    let bogus = app
        .post(
            &vmedia,
            json!({"device_type": "tape", "image_url": images.url("/tools.iso")}),
        )
        .await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bogus.fault(),
        "Schema error for vmedia: 'tape' is not one of ['disk', 'cdrom', 'floppy']"
    );
    let no_scheme = app
        .post(
            &vmedia,
            json!({"device_type": "cdrom", "image_url": "/tmp/x.iso"}),
        )
        .await;
    assert_eq!(no_scheme.fault(), "Unsupported or missing URL scheme: ");
    let bad_delete = app.delete(&format!("{vmedia}?device_types=tape")).await;
    assert_eq!(
        bad_delete.fault(),
        "Invalid device type(s) tape (valid are disk, cdrom, floppy)"
    );
    let old = app
        .request(reqwest::Method::GET, &vmedia, Some("1.92"), None)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(bmc.curl(&cd_path)["Inserted"], false);

    let attached = app
        .post(
            &vmedia,
            json!({"device_type": "cdrom", "image_url": images.url("/tools.iso")}),
        )
        .await;
    assert_eq!(attached.status, StatusCode::NO_CONTENT, "{}", attached.text);
    let published = format!("http://127.0.0.1:{port}/redfish/cdrom-{uuid}.iso");
    wait_until(Duration::from_secs(30), "the CD to be inserted", || async {
        let cd = bmc.curl(&cd_path);
        (cd["Inserted"] == true).then_some(cd)
    })
    .await;
    assert_eq!(bmc.curl(&cd_path)["Image"], published);
    let served = reqwest::get(&published)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), iso.as_slice());
    let listed = app.get(&vmedia).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let cd = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["media_types"] == json!(["CD", "DVD"]))
        .cloned()
        .unwrap();
    assert_eq!(
        cd,
        json!({"media_types": ["CD", "DVD"], "inserted": true, "image": published})
    );

    let detached = app.delete(&format!("{vmedia}?device_types=cdrom")).await;
    assert_eq!(detached.status, StatusCode::NO_CONTENT, "{}", detached.text);
    wait_until(Duration::from_secs(30), "the CD to be ejected", || async {
        (bmc.curl(&cd_path)["Inserted"] == false).then_some(())
    })
    .await;
    wait_until(Duration::from_secs(10), "the image withdrawn", || async {
        let status = reqwest::get(&published).await.unwrap().status();
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert!(node["last_error"].is_null(), "{node}");

    // A driver without virtual media refuses at once.
    let fake = app.create_node("no-vmedia").await;
    let refused = app
        .get(&format!(
            "/v1/nodes/{}/vmedia",
            fake["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.fault(),
        "Driver fake-hardware does not support get_virtual_media (disabled or not implemented)."
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_changed_behind_ferrics_back_is_forced_back_by_the_sync() {
    let bmc = Emulator::start(1).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.conductor.enabled_hardware_types = vec!["redfish".into()];
        s.conductor.sync_power_state_interval_secs = 1;
        s.conductor.force_power_state_during_sync = true;
    })
    .await;
    let uuid = enroll(&app, "rf-sync", bmc.driver_info(0)).await;
    app.provision(&uuid, "manage").await;
    settled_in(&app, &uuid, &["manageable"]).await;

    let reset = format!("{}/Actions/ComputerSystem.Reset", bmc.system(0));
    bmc.curl_post(&reset, &json!({"ResetType": "On"}));
    wait_until(Duration::from_secs(30), "the system to come on", || async {
        (bmc.curl(&bmc.system(0))["PowerState"] == "On").then_some(())
    })
    .await;
    wait_until(
        Duration::from_secs(60),
        "the sync to power it off again",
        || async { (bmc.curl(&bmc.system(0))["PowerState"] == "Off").then_some(()) },
    )
    .await;
    let resets = bmc
        .requests()
        .iter()
        .filter(|r| *r == &format!("POST {reset}"))
        .count();
    assert_eq!(resets, 2, "ours and the sync's ForceOff");
    let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(node["power_state"], "power off");
    assert_eq!(node["maintenance"], false);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_bmcs_are_verified_as_redfish_verify_ca_says() {
    let bmc = Emulator::start_tls(3).await;
    let app = redfish_app().await;
    let ca = bmc.ca.clone().unwrap();
    // `auto` (the default): the emulator has no SessionService, so basic.
    let mut trusting_ca = bmc.driver_info(0);
    trusting_ca["redfish_verify_ca"] = json!(ca.display().to_string());
    trusting_ca
        .as_object_mut()
        .unwrap()
        .remove("redfish_auth_type");
    let mut unverified = bmc.driver_info(1);
    unverified["redfish_verify_ca"] = json!(false);
    let system_roots = bmc.driver_info(2);
    let nodes = [
        enroll(&app, "rf-ca", trusting_ca).await,
        enroll(&app, "rf-noverify", unverified).await,
        enroll(&app, "rf-system-roots", system_roots).await,
    ];
    for uuid in &nodes {
        app.provision(uuid, "manage").await;
    }
    let mut outcomes = Vec::new();
    for uuid in &nodes {
        outcomes.push(settled_in(&app, uuid, &["manageable", "enroll"]).await);
    }
    assert_eq!(
        outcomes[0]["provision_state"], "manageable",
        "{}",
        outcomes[0]
    );
    assert_eq!(outcomes[0]["power_state"], "power off");
    assert_eq!(
        outcomes[1]["provision_state"], "manageable",
        "{}",
        outcomes[1]
    );
    // The emulator's CA is not among the system's roots.
    assert_eq!(outcomes[2]["provision_state"], "enroll", "{}", outcomes[2]);
    let error = outcomes[2]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("Redfish connection failed for node {}", nodes[2]))
            && error.contains("certificate"),
        "{error}"
    );
    let on = power(&app, &nodes[0], "power on").await;
    assert_eq!(on["power_state"], "power on", "{on}");
    assert_eq!(bmc.curl(&bmc.system(0))["PowerState"], "On");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uefi_iso_cannot_be_built_without_an_esp_image_and_nothing_is_left() {
    let bmc = Emulator::start(1).await;
    let images = FileServer::start(HashMap::from([
        ("/kernel".to_owned(), b"kernel".to_vec()),
        ("/ramdisk".to_owned(), b"ramdisk".to_vec()),
    ]))
    .await;
    let app = redfish_app().await;
    let created = app
        .post(
            "/v1/nodes",
            json!({"driver": "redfish", "driver_info": bmc.driver_info(0),
                   "boot_interface": "redfish-virtual-media", "deploy_interface": "ramdisk",
                   "instance_info": {"kernel": images.url("/kernel"), "ramdisk": images.url("/ramdisk")}}),
        )
        .await;
    let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
    for (verb, state) in [("manage", "manageable"), ("provide", "available")] {
        app.provision(&uuid, verb).await;
        settled_in(&app, &uuid, &[state]).await;
    }
    app.provision(&uuid, "active").await;
    let failed = settled_in(&app, &uuid, &["deploy failed", "active"]).await;
    assert_eq!(failed["provision_state"], "deploy failed", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("building a UEFI boot ISO needs [deploy] esp_image"),
        "{failed}"
    );
    let redfish_dir = app.settings.boot().http_root.join("redfish");
    let left: Vec<_> = std::fs::read_dir(&redfish_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        bmc.curl(&format!("{}/VirtualMedia/Cd", bmc.system(0)))["Inserted"],
        false
    );
    app.stop().await;
}
