//! `spawn_app`: the embedded Ferric (API + conductor) on 127.0.0.1:0 over a
//! fresh database, with a reqwest client and one helper per common call.

use std::time::Duration;

use ferric::embedded::Embedded;
use ferric_common::config::Settings;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::db::TestPg;
use crate::helpers::wait_until;

/// Which database a test app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub embedded: Option<Embedded>,
    pub settings: Settings,
    _dir: tempfile::TempDir,
    _pg: Option<TestPg>,
}

/// A response with its parts read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The faultstring of an Ironic error body.
    pub fn fault(&self) -> String {
        let outer = self.json();
        let inner: Value =
            serde_json::from_str(outer["error_message"].as_str().expect("error_message"))
                .expect("inner JSON");
        inner["faultstring"]
            .as_str()
            .or_else(|| inner["description"].as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |_| {}).await
}

/// Starts Ferric with settings adjusted by `adjust`.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.api.port = 0;
    settings.api.workers = 2;
    settings.conductor.host = Some(format!(
        "test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let pg = TestPg::new();
            settings.database.url = Some(SecretString::from(pg.url.clone()));
            Some(pg)
        }
    };
    adjust(&mut settings);
    let embedded = Embedded::start(settings.clone())
        .await
        .expect("Ferric starts");
    TestApp {
        base: format!("http://{}:{}", settings.api.host, embedded.port),
        // No idle keep-alive connections: a graceful stop would wait for them.
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        embedded: Some(embedded),
        settings,
        _dir: dir,
        _pg: pg,
    }
}

impl TestApp {
    /// Sends a request at `version` (None = no version header).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        version: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(v) = version {
            req = req.header("X-OpenStack-Ironic-API-Version", v);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("request sent");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    /// Sends raw bytes as a JSON body.
    pub async fn raw(&self, method: Method, path: &str, body: Vec<u8>) -> Reply {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-OpenStack-Ironic-API-Version", "latest")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Some("latest"), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some("latest"), Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some("latest"), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some("latest"), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, Some("latest"), None)
            .await
    }

    /// Creates a fake-hardware node and returns its body.
    pub async fn create_node(&self, name: &str) -> Value {
        let reply = self
            .post(
                "/v1/nodes",
                serde_json::json!({"driver": "fake-hardware", "name": name}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json()
    }

    /// Requests a provision verb and expects 202.
    pub async fn provision(&self, node: &str, target: &str) {
        let reply = self
            .put(
                &format!("/v1/nodes/{node}/states/provision"),
                serde_json::json!({"target": target}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{target}: {}",
            reply.text
        );
    }

    /// Leaves the node as a deploy does while it waits for its ramdisk:
    /// `wait call-back` (target `active`), unlocked. Embedded apps only.
    pub async fn leave_waiting_for_ramdisk(&self, uuid: &str) {
        use diesel::prelude::*;
        let db = self.embedded.as_ref().unwrap().db.clone();
        let key = uuid.to_owned();
        db.run(move |conn| {
            use ferric_common::db::schema::nodes;
            diesel::update(nodes::table.filter(nodes::uuid.eq(&key)))
                .set((
                    nodes::provision_state.eq("wait call-back"),
                    nodes::target_provision_state.eq(Some("active")),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    }

    /// Powers the node off through the API and waits until it is off and
    /// unlocked (a fresh fake node has no power state until then).
    pub async fn power_off(&self, node: &str) {
        let off = self
            .put(
                &format!("/v1/nodes/{node}/states/power"),
                serde_json::json!({"target": "power off"}),
            )
            .await;
        assert_eq!(off.status, reqwest::StatusCode::ACCEPTED, "{}", off.text);
        wait_until(Duration::from_secs(20), "power off", || async {
            let body = self.get(&format!("/v1/nodes/{node}")).await.json();
            (body["power_state"] == "power off" && body["reservation"].is_null()).then_some(())
        })
        .await;
    }

    /// Waits until the node is in `state` and unlocked; returns its body.
    pub async fn wait_for_state(&self, node: &str, state: &str) -> Value {
        wait_until(
            Duration::from_secs(20),
            &format!("node {node} to reach {state}"),
            || async {
                let body = self.get(&format!("/v1/nodes/{node}")).await.json();
                (body["provision_state"] == state && body["reservation"].is_null()).then_some(body)
            },
        )
        .await
    }

    /// Requests a power target and waits (at most `secs`) until the
    /// conductor has settled it; returns the node.
    pub async fn power(&self, uuid: &str, target: &str, secs: u64) -> Value {
        let reply = self
            .put(
                &format!("/v1/nodes/{uuid}/states/power"),
                serde_json::json!({"target": target}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        wait_until(
            Duration::from_secs(secs),
            "the power action to settle",
            || async {
                let node = self.get(&format!("/v1/nodes/{uuid}")).await.json();
                (node["target_power_state"].is_null() && node["reservation"].is_null())
                    .then_some(node)
            },
        )
        .await
    }

    /// Creates a node from `fields` (with its driver), a port for `mac`
    /// when given, and manages it: its UUID, in `manageable`.
    pub async fn manageable_node(&self, fields: Value, mac: Option<&str>) -> String {
        let created = self.post("/v1/nodes", fields).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let uuid = created.json()["uuid"].as_str().unwrap().to_owned();
        if let Some(mac) = mac {
            let port = self
                .post(
                    "/v1/ports",
                    serde_json::json!({"node_uuid": uuid, "address": mac}),
                )
                .await;
            assert_eq!(port.status, StatusCode::CREATED, "{}", port.text);
        }
        self.provision(&uuid, "manage").await;
        self.wait_for_state(&uuid, "manageable").await;
        uuid
    }

    /// Drives a new node to `available`.
    pub async fn available_node(&self, name: &str) -> Value {
        let node = self.create_node(name).await;
        let uuid = node["uuid"].as_str().unwrap().to_owned();
        self.provision(&uuid, "manage").await;
        self.wait_for_state(&uuid, "manageable").await;
        self.provision(&uuid, "provide").await;
        self.wait_for_state(&uuid, "available").await
    }

    /// Stops the app (API, then conductor).
    pub async fn stop(mut self) {
        if let Some(embedded) = self.embedded.take() {
            embedded.shutdown().await
        }
    }
}
