//! A run of the real `ferric` binary (debug logs) that uses a known BMC
//! password for everything a password touches: create, show/list/detail at
//! several microversions, PATCH, validate, manage (verify reads the BMC),
//! power on, boot device, a wrong password, a failed power action. Then
//! every response body and every line the process printed is searched for
//! the password.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::bmc::{PASSWORD, SimBmc};
use crate::helpers::process::FerricProcess;
use crate::helpers::wait_until;

const WRONG: &str = "wrong-pw-5e1f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_password_never_appears_in_responses_or_logs() {
    let bmc = SimBmc::start().await;
    let ferric = FerricProcess::start(&[
        ("FERRIC_CONDUCTOR__SYNC_POWER_STATE_INTERVAL_SECS", "1"),
        ("FERRIC_IPMI__COMMAND_RETRY_TIMEOUT_SECS", "1"),
        ("RUST_LOG", "debug"),
    ])
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut bodies = Vec::new();
    let send =
        |method: reqwest::Method, path: &str, version: &str, body: Option<serde_json::Value>| {
            let mut request = client
                .request(method, format!("{}{path}", ferric.base))
                .header("X-OpenStack-Ironic-API-Version", version);
            if let Some(body) = body {
                request = request.json(&body);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                (status, response.text().await.unwrap())
            }
        };

    let (status, created) = send(
        reqwest::Method::POST,
        "/v1/nodes",
        "latest",
        Some(json!({"driver": "ipmi", "name": "secret-node", "driver_info": bmc.driver_info()})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    bodies.push(created);
    let (_, wrong) = send(
        reqwest::Method::POST,
        "/v1/nodes",
        "latest",
        Some(json!({"driver": "ipmi", "name": "wrong-node",
                    "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": bmc.port,
                                    "ipmi_username": "admin", "ipmi_password": WRONG}})),
    )
    .await;
    bodies.push(wrong);
    for version in ["1.1", "1.31", "1.50", "latest"] {
        for path in [
            "/v1/nodes/secret-node",
            "/v1/nodes/detail",
            "/v1/nodes?fields=driver_info,name",
        ] {
            let (_, body) = send(reqwest::Method::GET, path, version, None).await;
            bodies.push(body);
        }
    }
    let (_, patched) = send(
        reqwest::Method::PATCH,
        "/v1/nodes/secret-node",
        "latest",
        Some(json!([{"op": "add", "path": "/driver_info/ipmi_terminal_port", "value": 9999}])),
    )
    .await;
    bodies.push(patched);
    for (path, body) in [
        (
            "/v1/nodes/secret-node/states/provision",
            json!({"target": "manage"}),
        ),
        (
            "/v1/nodes/wrong-node/states/provision",
            json!({"target": "manage"}),
        ),
        (
            "/v1/nodes/wrong-node/states/power",
            json!({"target": "power on"}),
        ),
    ] {
        let (_, reply) = send(reqwest::Method::PUT, path, "latest", Some(body)).await;
        bodies.push(reply);
    }
    wait_until(
        Duration::from_secs(30),
        "both manage requests to settle",
        || {
            let detail = send(reqwest::Method::GET, "/v1/nodes/detail", "latest", None);
            async move {
                let (_, text) = detail.await;
                let list: serde_json::Value = serde_json::from_str(&text).ok()?;
                list["nodes"]
                    .as_array()?
                    .iter()
                    .all(|n| n["reservation"].is_null() && n["provision_state"] != "verifying")
                    .then_some(())
            }
        },
    )
    .await;
    for path in [
        "/v1/nodes/secret-node/validate",
        "/v1/nodes/secret-node/management/boot_device",
    ] {
        let (_, body) = send(reqwest::Method::GET, path, "latest", None).await;
        bodies.push(body);
    }
    let (_, power) = send(
        reqwest::Method::PUT,
        "/v1/nodes/secret-node/states/power",
        "latest",
        Some(json!({"target": "power on"})),
    )
    .await;
    bodies.push(power);
    wait_until(Duration::from_secs(30), "power on", || {
        let node = send(
            reqwest::Method::GET,
            "/v1/nodes/secret-node",
            "latest",
            None,
        );
        async move {
            let (_, text) = node.await;
            let node: serde_json::Value = serde_json::from_str(&text).ok()?;
            (node["power_state"] == "power on").then_some(())
        }
    })
    .await;
    let (_, wrong_node) = send(reqwest::Method::GET, "/v1/nodes/wrong-node", "latest", None).await;
    bodies.push(wrong_node.clone());

    let mut ferric = ferric;
    ferric.child.start_kill().unwrap();
    ferric.child.wait().await.unwrap();
    let logs = std::fs::read_to_string(&ferric.log).unwrap();

    assert!(logs.lines().count() > 20, "debug logs were written: {logs}");
    assert!(wrong_node.contains("last_error"), "{wrong_node}");
    for secret in [PASSWORD, WRONG] {
        for body in &bodies {
            assert!(
                !body.contains(secret),
                "a response carries the password: {body}"
            );
        }
        assert!(!logs.contains(secret), "the logs carry the password");
    }
    assert!(
        bodies.iter().any(|b| b.contains("******")),
        "passwords are shown masked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_broker_passwords_stay_out_of_start_up_errors() {
    for (command, key, url) in [
        (
            "api",
            "FERRIC_DATABASE__URL",
            "postgres://ferric:db-canary-77@127.0.0.1:1/ferric",
        ),
        (
            "conductor",
            "FERRIC_AMQP__URL",
            "amqp://ferric:mq-canary-88@127.0.0.1:1/%2f",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric"));
        process
            .arg(command)
            .env_clear()
            .env("FERRIC_DATA_DIR", dir.path())
            .env(key, url)
            .env("RUST_LOG", "debug");
        if key == "FERRIC_AMQP__URL" {
            let pg = crate::helpers::db::TestPg::new();
            process.env("FERRIC_DATABASE__URL", &pg.url);
            let out = process.output().await.unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success());
            assert!(!text.contains("mq-canary-88"), "{text}");
            continue;
        }
        let out = process.output().await.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(!text.contains("db-canary-77"), "{text}");
    }
}
