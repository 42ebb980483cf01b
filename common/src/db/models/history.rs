//! `node_history`: events worth an operator's attention (Ironic's node
//! history), such as a power-state sync that gave up.

use diesel::prelude::*;

use crate::db::schema::node_history;
use crate::db::{AnyConnection, DbError, now};

/// A recorded event as read back: `(event_type, severity, event)`.
pub type RecordedEvent = (Option<String>, Option<String>, Option<String>);

/// One event to record.
pub struct HistoryEvent<'a> {
    pub node_id: i32,
    pub conductor: &'a str,
    /// Ironic's event types: `monitoring`, `verify`, `provisioning`, …
    pub event_type: &'a str,
    /// `ERROR` or `INFO`.
    pub severity: &'a str,
    pub event: &'a str,
    /// The node's provision state when it happened.
    pub state: &'a str,
}

impl HistoryEvent<'_> {
    /// Appends the event.
    pub fn record(&self, conn: &mut AnyConnection) -> Result<(), DbError> {
        diesel::insert_into(node_history::table)
            .values((
                node_history::uuid.eq(uuid::Uuid::new_v4().to_string()),
                node_history::node_id.eq(self.node_id),
                node_history::conductor.eq(Some(self.conductor)),
                node_history::event_type.eq(Some(self.event_type)),
                node_history::severity.eq(Some(self.severity)),
                node_history::event.eq(Some(self.event)),
                node_history::state.eq(Some(self.state)),
                node_history::created_at.eq(now()),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// A node's events, oldest first: `(event_type, severity, event)`.
    pub fn of_node(conn: &mut AnyConnection, node_id: i32) -> Result<Vec<RecordedEvent>, DbError> {
        Ok(node_history::table
            .filter(node_history::node_id.eq(node_id))
            .order(node_history::id.asc())
            .select((
                node_history::event_type,
                node_history::severity,
                node_history::event,
            ))
            .load(conn)?)
    }
}
