//! The deploy ramdisk's endpoints: lookup by MAC address hands out the agent
//! token once (only while the node waits for a ramdisk), heartbeats must
//! carry it and are recorded, a changed callback URL is refused — Ironic's
//! agent API with 1.62+ token semantics — and, beyond Ironic, a token
//! works only for the agent it was handed to, each source has a rate, and
//! a lookup shows no image location.

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

/// A client whose requests come from `address` (any of 127.0.0.0/8).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// A heartbeat of `token` from `client` with `callback`; status and fault.
async fn heartbeat(
    app: &TestApp,
    client: &reqwest::Client,
    uuid: &str,
    body: Value,
) -> (StatusCode, String) {
    let response = client
        .post(format!("{}/v1/heartbeat/{uuid}", app.base))
        .header("X-OpenStack-Ironic-API-Version", "1.72")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let fault = body["error_message"]
        .as_str()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .and_then(|m| m["faultstring"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, fault)
}

/// A node waiting for its ramdisk with one port `mac`; its UUID.
async fn waiting_node(app: &TestApp, name: &str, mac: &str) -> String {
    let node = app.create_node(name).await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let port = app
        .post("/v1/ports", json!({"node_uuid": uuid, "address": mac}))
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
    app.leave_waiting_for_ramdisk(&uuid).await;
    uuid
}

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

    let patched = app
        .patch(
            &format!("/v1/nodes/{uuid}"),
            json!([{"op": "add", "path": "/instance_info",
                    "value": {"image_source": "http://admin:hunter2@images.example/disk.img",
                              "kernel": "http://images.example/k",
                              "root_device": {"serial": "S1"}}}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.leave_waiting_for_ramdisk(&uuid).await;

    let found = app.get(lookup).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    let found = found.json();
    assert_eq!(found["node"]["uuid"], uuid.as_str());
    let token = found["config"]["agent_token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40 && token != "******", "{token}");
    assert_eq!(found["config"]["agent_token_required"], true);
    assert_eq!(found["config"]["heartbeat_timeout"], 300);
    // Only what an agent reads: root device hints, never where images are
    // nor the agent's secrets.
    assert_eq!(
        found["node"]["instance_info"],
        json!({"root_device": {"serial": "S1"}})
    );
    assert_eq!(found["node"]["driver_internal_info"], json!({}));
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
    let callback = "http://127.0.0.1:9999";
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

    // ferric-agent's progress report while it writes an image: shown with
    // its throughput, counted in the metrics; a malformed one is refused.
    let metric = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("ferric_deploy_image_bytes_total "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = metric(&app.get("/metrics").await.text);
    for (bytes, seconds) in [(100_000_000_u64, 2.0), (300_000_000, 4.0)] {
        let progress = app
            .post(
                &beat,
                json!({"callback_url": callback, "agent_version": "10.0.0", "agent_token": token,
                       "deploy_progress": {"bytes": bytes, "total": 1_000_000_000_u64, "seconds": seconds}}),
            )
            .await;
        assert_eq!(progress.status, StatusCode::ACCEPTED, "{}", progress.text);
    }
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert_eq!(
        internal["deploy_progress"],
        json!({"bytes": 300_000_000_u64, "total": 1_000_000_000_u64, "seconds": 4.0, "mb_per_s": 75.0})
    );
    assert_eq!(
        metric(&app.get("/metrics").await.text) - before,
        300_000_000
    );
    let malformed = app
        .post(
            &beat,
            json!({"callback_url": callback, "agent_version": "10.0.0", "agent_token": token,
                   "deploy_progress": {"bytes": -1, "seconds": 1}}),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.fault().starts_with("Invalid deploy_progress"),
        "{}",
        malformed.text
    );

    let moved = app
        .post(
            &beat,
            json!({"callback_url": "http://127.0.0.1:9998", "agent_version": "10.0.0", "agent_token": token}),
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

/// A token taken by someone else is not enough to move the deploy: the
/// token works only from the address whose lookup received it, the
/// callback URL must name that address, and what the first heartbeat
/// pinned (its URL and TLS certificate) stays for the boot.
#[tokio::test]
async fn a_stolen_token_cannot_point_the_deploy_at_another_agent() {
    let app = spawn_app().await;
    let uuid = waiting_node(&app, "bound", "52:54:00:12:34:55").await;
    let agent = client_from("127.0.0.1");
    let thief = client_from("127.0.0.2");
    let found: Value = agent
        .get(format!("{}/v1/lookup?node_uuid={uuid}", app.base))
        .header("X-OpenStack-Ironic-API-Version", "1.72")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = found["config"]["agent_token"].as_str().unwrap().to_owned();
    let beat = |callback: &str, ca: &str| {
        json!({"callback_url": callback, "agent_version": "10.0.0",
               "agent_token": token, "agent_verify_ca": ca})
    };

    // The thief, with the token, from its own address and naming itself.
    let (status, fault) = heartbeat(&app, &thief, &uuid, beat("http://127.0.0.2:9999", "A")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        fault,
        "Heartbeat refused: the agent token was handed to an agent at another address."
    );
    // From the agent's address, naming another host.
    let (status, fault) = heartbeat(&app, &agent, &uuid, beat("http://192.0.2.66:9999", "A")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        fault.contains("callback_url must name the address"),
        "{fault}"
    );
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert!(internal["agent_url"].is_null(), "{internal}");

    // The real agent's heartbeat pins its URL and certificate.
    let (status, _) = heartbeat(&app, &agent, &uuid, beat("http://127.0.0.1:9999", "A")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, fault) = heartbeat(&app, &agent, &uuid, beat("http://127.0.0.1:9999", "B")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(fault.contains("agent_verify_ca"), "{fault}");
    let (status, _) = heartbeat(&app, &agent, &uuid, beat("http://127.0.0.1:9999", "A")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let internal =
        app.get(&format!("/v1/nodes/{uuid}")).await.json()["driver_internal_info"].clone();
    assert_eq!(internal["agent_url"], "http://127.0.0.1:9999");
    assert_eq!(internal["agent_verify_ca"], "A");
    app.stop().await;
}

/// Each source has its rate on the ramdisk endpoints (429 with
/// `Retry-After` past it, other sources unaffected), and with
/// `ramdisk_allowed_networks` only those networks are answered.
#[tokio::test]
async fn ramdisk_endpoints_have_a_rate_per_source_and_an_allowed_network() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.api.ramdisk_requests_per_minute = 60;
        s.api.ramdisk_request_burst = 5;
    })
    .await;
    let lookup = |client: reqwest::Client| {
        let url = format!("{}/v1/lookup?addresses=52:54:00:00:00:01", app.base);
        async move {
            client
                .get(url)
                .header("X-OpenStack-Ironic-API-Version", "1.72")
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(
            lookup(client_from("127.0.0.3")).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    let limited = lookup(client_from("127.0.0.3")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let (status, _) = heartbeat(&app, &client_from("127.0.0.3"), "some-node", json!({})).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "heartbeats share the rate"
    );
    assert_eq!(
        lookup(client_from("127.0.0.4")).await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;

    let fenced = spawn_app_with(Backend::Sqlite, |s| {
        s.api.ramdisk_allowed_networks = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let outside = fenced.get("/v1/lookup?addresses=52:54:00:00:00:01").await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN);
    assert_eq!(
        outside.fault(),
        "lookup requests are accepted only from [api] ramdisk_allowed_networks."
    );
    fenced.stop().await;
}
