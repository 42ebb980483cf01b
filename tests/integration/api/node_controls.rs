//! Node sub-resources checked side by side with Ironic 39.0.0 on a
//! fake-hardware node: VIFs with `noop` networking, the console, the target
//! RAID layout, boot mode and secure boot (through the conductor),
//! indicators, vendor passthru methods, virtual media and firmware.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn vifs_console_and_raid_behave_as_ironics_fake_interfaces() {
    let app = spawn_app().await;
    let node = app.create_node("ctl").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let vifs = format!("/v1/nodes/{uuid}/vifs");

    assert_eq!(app.get(&vifs).await.json(), json!({"vifs": []}));
    assert_eq!(
        app.post(&vifs, json!({"id": "abc"})).await.status,
        StatusCode::NO_CONTENT
    );
    let no_id = app.post(&vifs, json!({})).await;
    assert_eq!(no_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_id.fault(),
        "Schema error for vif: 'id' is a required property"
    );
    assert_eq!(
        app.delete(&format!("{vifs}/abc")).await.status,
        StatusCode::NO_CONTENT
    );
    let old = app.request(Method::GET, &vifs, Some("1.27"), None).await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);

    let console = format!("/v1/nodes/{uuid}/states/console");
    assert_eq!(
        app.get(&console).await.json(),
        json!({"console_enabled": false, "console_info": null})
    );
    let on = app.put(&console, json!({"enabled": true})).await;
    assert_eq!(on.status, StatusCode::ACCEPTED, "{}", on.text);
    assert_eq!(
        app.get(&console).await.json(),
        json!({"console_enabled": true, "console_info": {}})
    );
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["console_enabled"],
        true
    );
    let bad = app.put(&console, json!({"enabled": "x"})).await;
    assert_eq!(
        bad.fault(),
        "Invalid enabled: Unrecognized value 'x', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
    );

    let raid = format!("/v1/nodes/{uuid}/states/raid");
    let layout =
        json!({"logical_disks": [{"size_gb": 10, "raid_level": "1", "is_root_volume": true}]});
    assert_eq!(
        app.put(&raid, layout.clone()).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}?fields=target_raid_config"))
            .await
            .json()["target_raid_config"],
        layout
    );
    let no_level = app
        .put(&raid, json!({"logical_disks": [{"size_gb": 10}]}))
        .await;
    assert_eq!(
        no_level.fault(),
        "RAID config validation error: 'raid_level' is a required property"
    );
    app.stop().await;
}

#[tokio::test]
async fn boot_mode_and_secure_boot_go_through_the_conductor() {
    let app = spawn_app().await;
    let node = app.create_node("bm").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let mode = format!("/v1/nodes/{uuid}/states/boot_mode");
    let accepted = app.put(&mode, json!({"target": "uefi"})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    let secure = app
        .put(
            &format!("/v1/nodes/{uuid}/states/secure_boot"),
            json!({"target": true}),
        )
        .await;
    assert_eq!(secure.status, StatusCode::ACCEPTED, "{}", secure.text);
    let states = app.get(&format!("/v1/nodes/{uuid}/states")).await.json();
    assert_eq!(states["boot_mode"], "uefi");
    assert_eq!(states["secure_boot"], true);

    let bogus = app.put(&mode, json!({"target": "bogus"})).await;
    assert_eq!(
        bogus.fault(),
        "Invalid boot mode bogus requested for node. Allowed boot modes are: bios, uefi"
    );
    let old = app
        .request(
            Method::PUT,
            &mode,
            Some("1.75"),
            Some(&json!({"target": "uefi"})),
        )
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(
        old.fault(),
        "This endpoint is supported starting with the API version 1.76"
    );
    app.stop().await;
}

#[tokio::test]
async fn indicators_passthru_vmedia_and_firmware_answer_as_ironic() {
    let app = spawn_app().await;
    let node = app.create_node("misc").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let indicators = app
        .get(&format!("/v1/nodes/{uuid}/management/indicators"))
        .await
        .json();
    let names: Vec<&str> = indicators["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["led-0@chassis", "led@system"]);

    let methods = app
        .get(&format!("/v1/nodes/{uuid}/vendor_passthru/methods"))
        .await
        .json();
    assert_eq!(methods["third_method_sync"]["async"], false);
    let unknown = app
        .post(
            &format!("/v1/nodes/{uuid}/vendor_passthru?method=first_method"),
            json!({"bar": "baz"}),
        )
        .await;
    assert_eq!(unknown.fault(), "No handler for method first_method");

    let vmedia = app.get(&format!("/v1/nodes/{uuid}/vmedia")).await;
    assert_eq!(vmedia.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        vmedia.fault(),
        "Driver fake-hardware does not support get_virtual_media (disabled or not implemented)."
    );
    assert_eq!(
        app.delete(&format!("/v1/nodes/{uuid}/vmedia")).await.status,
        StatusCode::NO_CONTENT
    );
    // As in Ironic, the refusal comes from the background action.
    let error = crate::helpers::wait_until(
        std::time::Duration::from_secs(10),
        "the detach to fail",
        || async {
            let node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
            node["last_error"].as_str().map(str::to_owned)
        },
    )
    .await;
    assert_eq!(
        error,
        format!(
            "Could not detach device(s) None from node {uuid}: Driver fake-hardware does not support detach_virtual_media (disabled or not implemented)."
        )
    );
    assert_eq!(
        app.get(&format!("/v1/nodes/{uuid}/firmware")).await.json(),
        json!({"firmware": []})
    );
    let old = app
        .request(
            Method::GET,
            &format!("/v1/nodes/{uuid}/firmware"),
            Some("1.85"),
            None,
        )
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn external_events_are_checked_and_accepted() {
    let app = spawn_app().await;
    let event = json!({
        "event": "network.bind_port",
        "port_id": "11111111-aaaa-bbbb-cccc-555555555555",
        "mac_address": "de:ad:be:ef:00:01",
        "status": "ACTIVE",
        "device_id": "22222222-aaaa-bbbb-cccc-555555555555",
        "binding:host_id": "22222222-aaaa-bbbb-cccc-555555555555",
        "binding:vnic_type": "baremetal",
    });
    assert_eq!(
        app.post("/v1/events", json!({"events": [event]}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let empty = app.post("/v1/events", json!({"events": []})).await;
    assert_eq!(empty.fault(), "Schema error: [] should be non-empty");
    let unknown = app
        .post(
            "/v1/events",
            json!({"events": [{"event": "x", "port_id": "11111111-aaaa-bbbb-cccc-555555555555", "mac_address": "de:ad:be:ef:00:01", "status": "ACTIVE"}]}),
        )
        .await;
    assert_eq!(
        unknown.fault(),
        "Schema error: 'x' is not one of ['network.bind_port', 'network.unbind_port', 'network.delete_port']"
    );
    assert_eq!(
        app.get("/v1/events").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    app.stop().await;
}

#[tokio::test]
async fn a_fake_inspection_records_when_it_finished() {
    let app = spawn_app().await;
    let node = app.create_node("insp").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    assert!(node["inspection_finished_at"].is_null());
    app.provision(&uuid, "manage").await;
    app.wait_for_state(&uuid, "manageable").await;
    app.provision(&uuid, "inspect").await;
    let done = app.wait_for_state(&uuid, "manageable").await;
    assert!(done["inspection_finished_at"].is_string(), "{done}");
    assert!(done["inspection_started_at"].is_null());
    app.stop().await;
}
