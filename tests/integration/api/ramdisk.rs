//! The deploy ramdisk's endpoints: lookup by MAC address hands out the agent
//! token once (only while the node waits for a ramdisk), heartbeats must
//! carry it and are recorded, a changed callback URL is refused — Ironic's
//! agent API with 1.62+ token semantics.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn lookup_hands_out_the_token_once_and_heartbeats_must_carry_it() {
    let app = spawn_app().await;
    let node = app.create_node("agent").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let port = app
        .post(
            "/v1/ports",
            json!({"node_uuid": uuid, "address": "52:54:00:12:34:99"}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    let lookup = "/v1/lookup?addresses=52:54:00:12:34:99,zz";

    // Not waiting for a ramdisk: nothing to find.
    let early = app.get(lookup).await;
    assert_eq!(early.status, StatusCode::NOT_FOUND);
    assert_eq!(early.fault(), "Resource could not be found.");
    let nothing = app.get("/v1/lookup").await;
    assert_eq!(
        nothing.fault(),
        "At least one of 'addresses' and 'node_uuid' parameters is required"
    );

    app.leave_waiting_for_ramdisk(&uuid).await;

    let found = app.get(lookup).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    let found = found.json();
    assert_eq!(found["node"]["uuid"], uuid.as_str());
    let token = found["config"]["agent_token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40 && token != "******", "{token}");
    assert_eq!(found["config"]["agent_token_required"], true);
    assert_eq!(found["config"]["heartbeat_timeout"], 300);
    assert_eq!(
        found["node"]["driver_internal_info"]["agent_secret_token"],
        "******"
    );
    let again = app
        .get(&format!("/v1/lookup?node_uuid={uuid}"))
        .await
        .json();
    assert_eq!(again["config"]["agent_token"], "******");
    let secret_in_node = app.get(&format!("/v1/nodes/{uuid}")).await.json();
    assert_eq!(
        secret_in_node["driver_internal_info"]["agent_secret_token"],
        "******"
    );

    let beat = format!("/v1/heartbeat/{uuid}");
    let callback = "http://192.0.2.10:9999";
    let no_token = app
        .post(
            &beat,
            json!({"callback_url": callback, "agent_version": "10.0.0"}),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_token.fault(),
        "Agent token is required for heartbeat processing."
    );
    let wrong = app
        .post(
            &beat,
            json!({"callback_url": callback, "agent_version": "10.0.0", "agent_token": "nope"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.fault(), "Invalid or missing agent token received.");
    let no_url = app.post(&beat, json!({"agent_token": token})).await;
    assert_eq!(no_url.fault(), "Missing mandatory parameter: callback_url");

    let good = app
        .post(
            &beat,
            json!({"callback_url": callback, "agent_version": "10.0.0", "agent_token": token}),
        )
        .await;
    assert_eq!(good.status, StatusCode::ACCEPTED, "{}", good.text);
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert_eq!(internal["agent_url"], callback);
    assert_eq!(internal["agent_version"], "10.0.0");
    assert!(internal["agent_last_heartbeat"].is_string());

    let moved = app
        .post(
            &beat,
            json!({"callback_url": "http://192.0.2.11:9999", "agent_version": "10.0.0", "agent_token": token}),
        )
        .await;
    assert_eq!(
        moved.fault(),
        "Detected change in ramdisk provided \"callback_url\""
    );
    app.stop().await;
}

#[tokio::test]
async fn a_lookup_naming_more_macs_than_a_machine_has_is_refused_and_hands_out_nothing() {
    let app = spawn_app().await;
    let node = app.create_node("sweep").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let mac = "52:54:00:12:34:77";
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": mac}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    app.leave_waiting_for_ramdisk(&uuid).await;

    // An attacker sweeping the provisioning network: 1,000 MACs, the
    // node's among them.
    let mut sweep: Vec<String> = (0..999)
        .map(|i| format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256))
        .collect();
    sweep.push(mac.to_owned());
    let refused = app
        .get(&format!("/v1/lookup?addresses={}", sweep.join(",")))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(refused.fault(), "A lookup takes at most 64 addresses.");

    // The token was not handed out: the node's own agent still gets it.
    let found = app.get(&format!("/v1/lookup?addresses={mac}")).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    let token = found.json()["config"]["agent_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(token, "******");
}
