//! A node history event as Ironic 39 shows it: `uuid, created_at, severity,
//! event` (the event cut to 255 characters) and a `self` link; detailed (and
//! a single event) adds `event_type, conductor, user`, `project` from 1.113
//! and `state, target_provision_state, duration_seconds` from 1.115, in
//! Ironic's key order.

use ferric_common::db::models::history::HistoryRow;
use serde_json::{Map, Value, json};

use crate::microversion::Microversion;
use crate::views::timestamp;

/// The fields a history list echoes in its `next` link.
pub fn fields(detail: bool) -> Vec<String> {
    let names: &[&str] = if detail {
        &[
            "uuid",
            "created_at",
            "severity",
            "event_type",
            "event",
            "conductor",
            "user",
            "project",
            "state",
            "target_provision_state",
            "duration_seconds",
        ]
    } else {
        &["uuid", "created_at", "severity", "event"]
    };
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Ironic keeps the first 251 characters and adds `...` past 255; the
/// password of a URL in it is masked (older rows may hold one).
fn shortened(event: &str) -> String {
    let event = ferric_common::redact::url_credentials(event);
    if event.chars().count() > 255 {
        format!("{}...", event.chars().take(251).collect::<String>())
    } else {
        event.into_owned()
    }
}

pub fn history_body(
    row: &HistoryRow,
    node_uuid: &str,
    base: &str,
    version: Microversion,
    detail: bool,
) -> Value {
    let mut out = Map::new();
    out.insert("uuid".into(), json!(row.uuid));
    out.insert("created_at".into(), timestamp(Some(row.created_at)));
    out.insert("severity".into(), json!(row.severity));
    if detail {
        out.insert("event_type".into(), json!(row.event_type));
        out.insert("event".into(), json!(row.event));
        out.insert("conductor".into(), json!(row.conductor));
        out.insert("user".into(), json!(row.user));
        if version.at_least(113) {
            out.insert("project".into(), json!(row.project));
        }
        if version.at_least(115) {
            out.insert("state".into(), json!(row.state));
            out.insert(
                "target_provision_state".into(),
                json!(row.target_provision_state),
            );
            out.insert("duration_seconds".into(), json!(row.duration_seconds));
        }
    } else {
        out.insert(
            "event".into(),
            json!(row.event.as_deref().map(shortened).unwrap_or_default()),
        );
    }
    out.insert(
        "links".into(),
        json!([{
            "href": format!("{base}/v1/nodes/{node_uuid}/history/{}", row.uuid),
            "rel": "self",
        }]),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_events_are_cut_as_ironic_cuts_them() {
        assert_eq!(shortened("short"), "short");
        let long = "é".repeat(300);
        let cut = shortened(&long);
        assert_eq!(cut.chars().count(), 254);
        assert!(cut.ends_with("..."));
        assert_eq!(shortened(&"x".repeat(255)).len(), 255);
    }
}
