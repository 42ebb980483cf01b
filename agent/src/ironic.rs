//! The agent's calls to the API, as ironic-python-agent makes them: lookup
//! by the machine's MAC addresses (retried until the node waits for a
//! ramdisk), then heartbeats carrying the callback URL, the agent's version,
//! the agent token, with auto-TLS its certificate and, while an image is
//! written, its progress (`deploy_progress`, Ferric's own field).

use std::time::Duration;

use serde_json::{Value, json};

/// The API microversion the agent speaks (agent tokens, verify-ca).
const API_VERSION: &str = "1.68";

/// What lookup returned.
#[derive(Debug, Clone)]
pub struct Found {
    pub node_uuid: String,
    pub token: String,
    pub heartbeat_timeout: Duration,
    /// `permitted_image_formats` and `disable_deep_image_inspection`.
    pub image_policy: crate::image::format::Policy,
}

/// The API client.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str) -> anyhow::Result<Api> {
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// One lookup; `Ok(None)` while the API does not know this machine (or
    /// its node does not wait for a ramdisk yet).
    ///
    /// # Errors
    /// Transport errors and unexpected answers.
    pub async fn lookup(&self, macs: &[String]) -> anyhow::Result<Option<Found>> {
        let response = self
            .http
            .get(format!("{}/v1/lookup", self.base))
            .query(&[("addresses", macs.join(","))])
            .header("X-OpenStack-Ironic-API-Version", API_VERSION)
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            anyhow::bail!("lookup answered {status}: {body}");
        }
        let node_uuid = body["node"]["uuid"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("lookup reply without a node UUID"))?
            .to_owned();
        let token = body["config"]["agent_token"]
            .as_str()
            .filter(|t| *t != "******")
            .ok_or_else(|| {
                anyhow::anyhow!("lookup reply without a usable agent token (handed out before?)")
            })?
            .to_owned();
        let heartbeat_timeout =
            Duration::from_secs(body["config"]["heartbeat_timeout"].as_u64().unwrap_or(300));
        let mut image_policy = crate::image::format::Policy::default();
        if let Some(formats) = body["config"]["permitted_image_formats"].as_array() {
            image_policy.permitted = formats
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        if let Some(disabled) = body["config"]["disable_deep_image_inspection"].as_bool() {
            image_policy.deep_inspection_disabled = disabled;
        }
        Ok(Some(Found {
            node_uuid,
            token,
            heartbeat_timeout,
            image_policy,
        }))
    }

    /// Looks up until found or `deadline` passes, every `interval`.
    ///
    /// # Errors
    /// When the deadline passes first.
    pub async fn lookup_until(
        &self,
        macs: &[String],
        interval: Duration,
        deadline: Duration,
    ) -> anyhow::Result<Found> {
        let started = tokio::time::Instant::now();
        loop {
            match self.lookup(macs).await {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => tracing::info!(?macs, "no node waits for this machine yet"),
                Err(e) => tracing::warn!(error = %e, "lookup failed"),
            }
            if started.elapsed() >= deadline {
                anyhow::bail!("lookup did not succeed within {deadline:?}");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One heartbeat.
    ///
    /// # Errors
    /// Transport errors and refusals (the API's fault string).
    pub async fn heartbeat(
        &self,
        found: &Found,
        callback_url: &str,
        verify_ca: Option<&str>,
        deploy_progress: Option<Value>,
    ) -> anyhow::Result<()> {
        let mut body = json!({
            "callback_url": callback_url,
            "agent_token": found.token,
            "agent_version": crate::commands::AGENT_VERSION,
        });
        if let Some(pem) = verify_ca {
            body["agent_verify_ca"] = json!(pem);
        }
        // Ferric's own field: IPA's API ignores what it does not know.
        if let Some(progress) = deploy_progress {
            body["deploy_progress"] = progress;
        }
        let response = self
            .http
            .post(format!("{}/v1/heartbeat/{}", self.base, found.node_uuid))
            .header("X-OpenStack-Ironic-API-Version", API_VERSION)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!("heartbeat answered {status}: {text}")
    }

    /// Posts the inspection data to `url` (`…/v1/continue_inspection`), as
    /// IPA does: no version header, a few tries while the API is busy or
    /// unreachable; the node's UUID from the answer.
    ///
    /// # Errors
    /// Transport errors after the last try, and refusals.
    pub async fn post_inspection(&self, url: &str, data: &Value) -> anyhow::Result<String> {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=5 {
            let sent = self.http.post(url).json(data).send().await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    let body: Value = response.json().await?;
                    return Ok(body["uuid"]
                        .as_str()
                        .or_else(|| body["node"]["uuid"].as_str())
                        .unwrap_or_default()
                        .to_owned());
                }
                Ok(response)
                    if response.status().is_server_error()
                        || response.status() == reqwest::StatusCode::CONFLICT => {}
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    anyhow::bail!("inspection data refused with {status}: {text}");
                }
                Err(e) if attempt == 5 => return Err(e.into()),
                Err(_) => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
        anyhow::bail!("the API kept refusing the inspection data")
    }
}
