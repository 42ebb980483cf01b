//! `ferric watch`: tails the `ferric.notifications` exchange for a person —
//! one readable line per event (or the message itself with `--json`),
//! optionally only one node's (`--node`, UUID or name) and only event types
//! matching a glob (`--event 'baremetal.node.provision_set.*'`).
//!
//! Invariant: it only reads — its queue is exclusive, server-named and gone
//! when it disconnects; nothing a publisher sees changes.

use std::io::Write as _;

use anyhow::Context as _;
use ferric_common::queue::broker::Broker;
use futures_util::StreamExt as _;
use serde_json::Value;

/// What to show.
pub struct Filter {
    pub node: Option<String>,
    pub event: Option<String>,
    pub json: bool,
}

/// Consumes until `stop` resolves (or the broker closes the connection).
///
/// # Errors
/// When the broker cannot be reached or the queue cannot be set up.
pub async fn run(
    broker: &Broker,
    prefix: &str,
    filter: Filter,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let exchange = ferric_common::notify::exchange_name(prefix);
    let (_conn, mut consumer) =
        ferric_common::notify::subscribe(broker, prefix, "#", "ferric-watch")
            .await
            .context("subscribing to the notifications")?;
    tracing::info!(%exchange, "watching notifications");
    tokio::pin!(stop);
    loop {
        let delivery = tokio::select! {
            () = &mut stop => return Ok(()),
            delivery = consumer.next() => delivery,
        };
        let Some(delivery) = delivery else {
            anyhow::bail!("the broker closed the connection");
        };
        let delivery = delivery?;
        let Ok(message) = serde_json::from_slice::<Value>(&delivery.data) else {
            continue;
        };
        if !filter.wants(&message) {
            continue;
        }
        let line = if filter.json {
            message.to_string()
        } else {
            describe(&message)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
}

impl Filter {
    fn wants(&self, message: &Value) -> bool {
        let event = message["event_type"].as_str().unwrap_or_default();
        if let Some(pattern) = &self.event
            && !glob(pattern, event)
        {
            return false;
        }
        if let Some(node) = &self.node {
            let data = &message["payload"]["ironic_object.data"];
            return data["uuid"].as_str() == Some(node) || data["name"].as_str() == Some(node);
        }
        true
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|&i| after.is_char_boundary(i))
                .any(|i| glob(rest, &after[i..]))
        }
    }
}

/// One line: time, priority, event type, the node, what changed.
fn describe(message: &Value) -> String {
    let data = &message["payload"]["ironic_object.data"];
    let text = |v: &Value| v.as_str().unwrap_or("None").to_owned();
    let event_type = text(&message["event_type"]);
    let node = match data["name"].as_str() {
        Some(name) => format!("{name} ({})", text(&data["uuid"])),
        None => text(&data["uuid"]),
    };
    let what = if event_type.contains(".provision_set.") {
        format!(
            "{} → {} (event {})",
            text(&data["previous_provision_state"]),
            text(&data["provision_state"]),
            text(&data["event"])
        )
    } else if event_type.contains(".power_set.") {
        format!(
            "to {}, power state {}",
            text(&data["to_power"]),
            text(&data["power_state"])
        )
    } else {
        format!("provision state {}", text(&data["provision_state"]))
    };
    let error = data["last_error"]
        .as_str()
        .map(|e| format!(" — last_error: {e}"))
        .unwrap_or_default();
    format!(
        "{} {:<5} {event_type} node {node}: {what}{error} [{}]",
        text(&message["timestamp"]),
        text(&message["priority"]),
        text(&message["publisher_id"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob("baremetal.node.*", "baremetal.node.provision_set.end"));
        assert!(glob("*.end", "baremetal.node.provision_set.end"));
        assert!(glob(
            "baremetal.node.power_set.*",
            "baremetal.node.power_set.start"
        ));
        assert!(!glob(
            "baremetal.node.power_set.*",
            "baremetal.node.provision_set.end"
        ));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn a_provision_event_reads_as_one_line() {
        let message = serde_json::json!({
            "timestamp": "2026-11-28 08:00:00.000000",
            "priority": "INFO",
            "event_type": "baremetal.node.provision_set.end",
            "publisher_id": "ferric-conductor.c1",
            "payload": {"ironic_object.data": {
                "uuid": "u1", "name": "n1", "event": "done",
                "previous_provision_state": "deploying", "provision_state": "active",
            }},
        });
        assert_eq!(
            describe(&message),
            "2026-11-28 08:00:00.000000 INFO  baremetal.node.provision_set.end node n1 (u1): deploying → active (event done) [ferric-conductor.c1]"
        );
        let only_other = Filter {
            node: Some("n2".into()),
            event: None,
            json: false,
        };
        assert!(!only_other.wants(&message));
    }
}
