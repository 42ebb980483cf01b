//! The live feed the operator console follows: a summary of every node
//! notification (what changed, on which node), broadcast to every open page.
//!
//! In the embedded mode the notifier publishes straight into the feed; in
//! the distributed mode an API process follows the notifications exchange
//! over AMQP ([`Feed::follow_amqp`]), so a page sees what any conductor did.
//!
//! Invariants: publishing never waits (a page that falls behind is told to
//! resync, see [`RESYNC`]); a gap in the AMQP subscription (the broker went
//! away) is announced as a resync too, so a page never shows a state it
//! missed the change of without knowing it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::queue::broker::Broker;

/// Events a page may fall behind by before it is told to resync.
const CAPACITY: usize = 1024;

/// What a page receives when it may have missed events: reload what it shows.
pub const RESYNC: &str = r#"{"event_type":"ferric.console.resync"}"#;

/// The node fields a page updates from an event.
const FIELDS: [&str; 7] = [
    "uuid",
    "name",
    "provision_state",
    "previous_provision_state",
    "target_provision_state",
    "power_state",
    "maintenance",
];

/// A broadcast of node events as compact JSON. Cloning is shallow.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}

impl Feed {
    pub fn new() -> Feed {
        let (tx, _) = broadcast::channel(CAPACITY);
        Feed { tx }
    }

    /// A new follower, seeing what is published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// Broadcasts the summary of a notification `message` (nothing when no
    /// page follows, or the message is not about a node).
    pub fn publish(&self, message: &Value) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Some(summary) = summary(message) {
            let _ = self.tx.send(Arc::from(summary.to_string()));
        }
    }

    fn resync(&self) {
        let _ = self.tx.send(Arc::from(RESYNC));
    }

    /// A feed following `<prefix>ferric.notifications` at `broker` until
    /// `stop`, from a background task that reconnects (backing off up to
    /// 30 s) and announces a resync after every gap.
    pub fn follow_amqp(broker: Broker, prefix: &str, stop: CancellationToken) -> Feed {
        let feed = Feed::new();
        let follower = feed.clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                () = follow_loop(broker, prefix, follower) => {}
                () = stop.cancelled() => {}
            }
        });
        feed
    }
}

/// What a page needs of a notification: the event type, the node's fields
/// it shows, and `last_error` when the event reports a failure.
pub fn summary(message: &Value) -> Option<Value> {
    let event_type = message.get("event_type")?.as_str()?;
    if !event_type.starts_with("baremetal.node.") {
        return None;
    }
    let data = message.get("payload")?.get("ironic_object.data")?;
    let mut out = Map::new();
    out.insert("event_type".into(), json!(event_type));
    out.insert("timestamp".into(), message["timestamp"].clone());
    for key in FIELDS {
        if let Some(value) = data.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    if event_type.ends_with(".error") {
        out.insert("last_error".into(), data["last_error"].clone());
    }
    Some(Value::Object(out))
}

async fn follow_loop(broker: Broker, prefix: String, feed: Feed) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match crate::notify::subscribe(&broker, &prefix, "baremetal.node.#", "ferric-console").await
        {
            Ok((_connection, mut deliveries)) => {
                backoff = Duration::from_millis(500);
                // Whatever happened while unsubscribed is unknown to pages.
                feed.resync();
                while let Some(delivery) = deliveries.next().await {
                    let Ok(delivery) = delivery else { break };
                    match serde_json::from_slice::<Value>(&delivery.data) {
                        Ok(message) => feed.publish(&message),
                        Err(e) => tracing::debug!(error = %e, "console feed: not a notification"),
                    }
                }
                tracing::warn!("console feed: the broker went away; resubscribing");
            }
            Err(e) => {
                tracing::warn!(error = %e, "console feed: cannot reach the broker; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_follower_gets_a_summary_without_the_secret_columns() {
        let feed = Feed::new();
        let mut rx = feed.subscribe();
        let message = json!({
            "event_type": "baremetal.node.provision_set.error",
            "timestamp": "2026-12-07 20:00:00.000000",
            "payload": {"ironic_object.data": {
                "uuid": "u1", "provision_state": "deploy failed",
                "last_error": "boom", "extra": {"k": "v"},
            }},
        });
        feed.publish(&message);
        let got: Value = rx
            .recv()
            .await
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        assert_eq!(got["provision_state"], "deploy failed");
        assert_eq!(got["last_error"], "boom");
        assert!(got.get("extra").is_none(), "{got}");
        feed.publish(&json!({"event_type": "baremetal.port.create.end"}));
        feed.resync();
        let next = rx.recv().await.ok();
        assert_eq!(next.as_deref(), Some(RESYNC));
    }
}
