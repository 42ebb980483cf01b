//! `node_journal`: the console's timeline of each node — every provision
//! and power change as its notification described it, with the process
//! that made it and the trace it belongs to. Ferric's own record: Ironic's
//! `node_history` (the API's `/history`) keeps only what Ironic records.
//!
//! Besides those, the boot-file server records each file it serves a node
//! ([`BOOT_FILE_FETCHED`]).
//!
//! Invariant: rows are only appended and pruned by age, never changed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use crate::db::schema::node_journal;
use crate::db::{AnyConnection, DbError};

/// One change to append.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = node_journal)]
pub struct JournalEntry {
    pub node_uuid: String,
    /// The notification's event type, e.g. `baremetal.node.power_set.end`.
    pub event_type: String,
    /// The state machine's event (`deploy`, `done`, `fail`, …).
    pub event: Option<String>,
    pub previous_provision_state: Option<String>,
    pub provision_state: Option<String>,
    pub power_state: Option<String>,
    /// What a power action asked for.
    pub to_power: Option<String>,
    /// The deploy or clean step running then (`interface.step`).
    pub step: Option<String>,
    pub last_error: Option<String>,
    /// `ferric-conductor.<host>` or `ferric-api.<host>`.
    pub publisher: String,
    pub trace_id: Option<String>,
    pub created_at: NaiveDateTime,
}

/// One stored change.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = node_journal)]
pub struct JournalRow {
    pub id: i64,
    pub node_uuid: String,
    pub event_type: String,
    pub event: Option<String>,
    pub previous_provision_state: Option<String>,
    pub provision_state: Option<String>,
    pub power_state: Option<String>,
    pub to_power: Option<String>,
    pub step: Option<String>,
    pub last_error: Option<String>,
    pub publisher: String,
    pub trace_id: Option<String>,
    pub created_at: NaiveDateTime,
}

fn text(data: &Value, key: &str) -> Option<String> {
    data.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `interface.step` of a `deploy_step`/`clean_step` object, if one runs.
fn step_name(data: &Value) -> Option<String> {
    ["deploy_step", "clean_step"].iter().find_map(|key| {
        let step = data.get(*key)?;
        let name = step.get("step")?.as_str()?;
        Some(match step.get("interface").and_then(Value::as_str) {
            Some(interface) => format!("{interface}.{name}"),
            None => name.to_owned(),
        })
    })
}

/// The event type of a boot file served to a node (`event` = the file).
pub const BOOT_FILE_FETCHED: &str = "ferric.boot_file.fetched";

impl JournalEntry {
    /// A boot file (`file`, e.g. `deploy_kernel`) served to the node
    /// `node_uuid` by `publisher`.
    pub fn boot_file_fetched(node_uuid: &str, file: &str, publisher: &str) -> JournalEntry {
        JournalEntry {
            node_uuid: node_uuid.to_owned(),
            event_type: BOOT_FILE_FETCHED.to_owned(),
            event: Some(file.to_owned()),
            previous_provision_state: None,
            provision_state: None,
            power_state: None,
            to_power: None,
            step: None,
            last_error: None,
            publisher: publisher.to_owned(),
            trace_id: None,
            created_at: crate::db::now(),
        }
    }

    /// The entry for a notification `message` (as
    /// [`crate::notify::Notification::message`] makes it), or `None` for the
    /// kinds the timeline does not keep (only provision and power changes).
    pub fn from_message(
        message: &Value,
        trace_id: Option<String>,
        at: NaiveDateTime,
    ) -> Option<JournalEntry> {
        let event_type = message.get("event_type")?.as_str()?;
        if !(event_type.starts_with("baremetal.node.provision_set.")
            || event_type.starts_with("baremetal.node.power_set."))
        {
            return None;
        }
        let data = message.get("payload")?.get("ironic_object.data")?;
        Some(JournalEntry {
            node_uuid: text(data, "uuid")?,
            event_type: event_type.to_owned(),
            event: text(data, "event"),
            previous_provision_state: text(data, "previous_provision_state"),
            provision_state: text(data, "provision_state"),
            power_state: text(data, "power_state"),
            to_power: text(data, "to_power"),
            step: step_name(data),
            last_error: text(data, "last_error"),
            publisher: text(message, "publisher_id").unwrap_or_default(),
            trace_id,
            created_at: at,
        })
    }

    /// Appends `entries` in one transaction.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn append(conn: &mut AnyConnection, entries: &[JournalEntry]) -> Result<(), DbError> {
        conn.transaction(|conn| {
            for entry in entries {
                diesel::insert_into(node_journal::table)
                    .values(entry)
                    .execute(conn)?;
            }
            Ok(())
        })
    }
}

impl JournalRow {
    /// The node's latest `limit` changes, newest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn of_node(
        conn: &mut AnyConnection,
        node_uuid: &str,
        limit: i64,
    ) -> Result<Vec<JournalRow>, DbError> {
        Ok(node_journal::table
            .filter(node_journal::node_uuid.eq(node_uuid))
            .order(node_journal::id.desc())
            .limit(limit)
            .select(JournalRow::as_select())
            .load(conn)?)
    }

    /// Deletes the rows written before `before`; how many went.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn prune(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<usize, DbError> {
        Ok(
            diesel::delete(node_journal::table.filter(node_journal::created_at.lt(before)))
                .execute(conn)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_provision_change_becomes_an_entry_and_a_crud_event_does_not() {
        let at = crate::db::now();
        let message = json!({
            "publisher_id": "ferric-conductor.c1",
            "event_type": "baremetal.node.provision_set.start",
            "payload": {"ironic_object.data": {
                "uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
                "event": "deploy",
                "previous_provision_state": "available",
                "provision_state": "deploying",
                "power_state": "power off",
                "deploy_step": {"interface": "deploy", "step": "write_image"},
            }},
        });
        let entry = JournalEntry::from_message(&message, Some("ab".into()), at);
        let entry = entry.as_ref();
        assert_eq!(entry.map(|e| e.event.as_deref()), Some(Some("deploy")));
        assert_eq!(
            entry.and_then(|e| e.step.as_deref()),
            Some("deploy.write_image")
        );
        assert_eq!(
            entry.map(|e| e.publisher.as_str()),
            Some("ferric-conductor.c1")
        );
        let crud = json!({
            "event_type": "baremetal.node.create.end",
            "payload": {"ironic_object.data": {"uuid": "x"}},
        });
        assert_eq!(JournalEntry::from_message(&crud, None, at), None);
    }
}
