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
                node_history::event.eq(Some(crate::redact::url_credentials(self.event).as_ref())),
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

/// One stored event, every column (the API's view of node history).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = node_history)]
pub struct HistoryRow {
    pub id: i32,
    pub uuid: String,
    pub conductor: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<String>,
    pub event: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    pub node_id: i32,
    pub state: Option<String>,
    pub target_provision_state: Option<String>,
    pub duration_seconds: Option<i32>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: Option<chrono::NaiveDateTime>,
}

impl HistoryRow {
    /// One page of a node's events by `created_at` (then `id`), after
    /// `marker`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn page(
        conn: &mut AnyConnection,
        node_id: i32,
        marker: Option<&HistoryRow>,
        limit: i64,
        descending: bool,
    ) -> Result<Vec<HistoryRow>, DbError> {
        use node_history::dsl as h;
        let mut query = node_history::table
            .filter(h::node_id.eq(node_id))
            .select(HistoryRow::as_select())
            .limit(limit)
            .into_boxed();
        query = if descending {
            query.order((h::created_at.desc(), h::id.desc()))
        } else {
            query.order((h::created_at.asc(), h::id.asc()))
        };
        if let Some(m) = marker {
            let (at, id) = (m.created_at, m.id);
            query = if descending {
                query.filter(
                    h::created_at
                        .lt(at)
                        .or(h::created_at.eq(at).and(h::id.lt(id))),
                )
            } else {
                query.filter(
                    h::created_at
                        .gt(at)
                        .or(h::created_at.eq(at).and(h::id.gt(id))),
                )
            };
        }
        Ok(query.load(conn)?)
    }

    /// One of a node's events by UUID.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn by_uuid(
        conn: &mut AnyConnection,
        node_id: i32,
        uuid: &str,
    ) -> Result<Option<HistoryRow>, DbError> {
        Ok(node_history::table
            .filter(node_history::node_id.eq(node_id))
            .filter(node_history::uuid.eq(uuid))
            .select(HistoryRow::as_select())
            .first(conn)
            .optional()?)
    }
}
