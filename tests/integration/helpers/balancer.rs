//! `Balancer`: a load balancer in the test, as an operator puts one in
//! front of several `ferric api` processes: it sends only to the APIs whose
//! `/readyz` answered 200 at its last poll (every 50 ms), in turn, over
//! kept-alive connections, and records every answer and every request
//! that got none.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::wait_until;

/// Sends to the APIs whose `/readyz` said 200 last, in turn.
pub struct Balancer {
    pub apis: Vec<String>,
    pub ready: Vec<AtomicBool>,
    next: AtomicUsize,
    client: reqwest::Client,
    /// Requests that got no HTTP answer, with the error.
    pub failures: Mutex<Vec<String>>,
    /// Every HTTP answer's status.
    pub statuses: Mutex<Vec<(String, StatusCode)>>,
}

impl Balancer {
    pub fn new(apis: Vec<String>) -> Balancer {
        Balancer {
            ready: apis.iter().map(|_| AtomicBool::new(false)).collect(),
            apis,
            next: AtomicUsize::new(0),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
            failures: Mutex::new(Vec::new()),
            statuses: Mutex::new(Vec::new()),
        }
    }

    /// Polls every API's `/readyz` every 50 ms until `stop`.
    pub async fn watch(&self, stop: &AtomicBool) {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        while !stop.load(SeqCst) {
            ticker.tick().await;
            for (api, ready) in self.apis.iter().zip(&self.ready) {
                let ok = probe
                    .get(format!("{api}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
                ready.store(ok, SeqCst);
            }
        }
    }

    pub async fn pick(&self) -> &str {
        wait_until(Duration::from_secs(60), "a ready API", || async {
            let n = self.apis.len();
            let start = self.next.fetch_add(1, SeqCst);
            (0..n)
                .map(|i| (start + i) % n)
                .find(|i| self.ready[*i].load(SeqCst))
                .map(|i| self.apis[i].as_str())
        })
        .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let api = self.pick().await;
        let mut request = self
            .client
            .request(method.clone(), format!("{api}{path}"))
            .header("X-OpenStack-Ironic-API-Version", "latest");
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                self.statuses
                    .lock()
                    .unwrap()
                    .push((format!("{method} {path}"), status));
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(e) => {
                self.failures
                    .lock()
                    .unwrap()
                    .push(format!("{method} {api}{path}: {e:?}"));
                (StatusCode::BAD_GATEWAY, Value::Null)
            }
        }
    }

    /// Waits until `host` is an alive conductor again.
    pub async fn conductor_alive(&self, host: &str) {
        wait_until(Duration::from_secs(60), "the conductor back", || async {
            self.is_alive(host).await.then_some(())
        })
        .await;
    }

    /// Whether the API lists `host` as an alive conductor.
    pub async fn is_alive(&self, host: &str) -> bool {
        let (_, conductor) = self
            .send(Method::GET, &format!("/v1/conductors/{host}"), None)
            .await;
        conductor["alive"] == true
    }

    /// Waits until the node is in `state`, unlocked.
    pub async fn settle(&self, uuid: &str, state: &str) {
        wait_until(
            Duration::from_secs(90),
            &format!("{uuid} to reach {state}"),
            || async {
                let (_, node) = self
                    .send(Method::GET, &format!("/v1/nodes/{uuid}"), None)
                    .await;
                (node["provision_state"] == state && node["reservation"].is_null()).then_some(())
            },
        )
        .await;
    }
}
