//! The `volume_connectors` and `volume_targets` tables: how a node reaches
//! its boot volumes. A connector's (type, connector id) is unique; a
//! target's boot index is unique per node. Writes happen only while the
//! node is unlocked.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{nodes, volume_connectors, volume_targets};
use crate::db::{AnyConnection, DbError, now};

/// One row of `volume_connectors`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = volume_connectors)]
pub struct VolumeConnector {
    pub id: i32,
    pub uuid: String,
    pub node_id: i32,
    pub connector_type: String,
    pub connector_id: String,
    pub extra: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable connector columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = volume_connectors)]
pub struct ConnectorFields {
    pub node_id: i32,
    pub connector_type: String,
    pub connector_id: String,
    pub extra: String,
}

/// One row of `volume_targets`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = volume_targets)]
pub struct VolumeTarget {
    pub id: i32,
    pub uuid: String,
    pub node_id: i32,
    pub volume_type: String,
    pub properties: String,
    pub boot_index: i32,
    pub volume_id: String,
    pub extra: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable target columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = volume_targets)]
pub struct TargetFields {
    pub node_id: i32,
    pub volume_type: String,
    pub properties: String,
    pub boot_index: i32,
    pub volume_id: String,
    pub extra: String,
}

/// Generates the queries both tables share.
macro_rules! volume_queries {
    ($row:ident, $fields:ident, $table:ident) => {
        impl $row {
            pub fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<$row>, DbError> {
                Ok($table::table
                    .filter($table::uuid.eq(uuid))
                    .select($row::as_select())
                    .first(conn)
                    .optional()?)
            }

            /// Every row, or a node's, by id.
            pub fn list(
                conn: &mut AnyConnection,
                node_id: Option<i32>,
            ) -> Result<Vec<$row>, DbError> {
                let mut query = $table::table
                    .select($row::as_select())
                    .order($table::id.asc())
                    .into_boxed();
                if let Some(node_id) = node_id {
                    query = query.filter($table::node_id.eq(node_id));
                }
                Ok(query.load(conn)?)
            }

            pub fn insert(
                conn: &mut AnyConnection,
                uuid: &str,
                fields: &$fields,
            ) -> Result<$row, DbError> {
                diesel::insert_into($table::table)
                    .values(($table::uuid.eq(uuid), $table::created_at.eq(now()), fields))
                    .execute(conn)?;
                $row::by_uuid(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
            }

            /// Updates the row while its node (old and new) is unlocked;
            /// `None` when a lock or a missing row stopped the write.
            pub fn update(
                conn: &mut AnyConnection,
                id: i32,
                fields: &$fields,
            ) -> Result<Option<$row>, DbError> {
                let unlocked = nodes::table
                    .filter(nodes::reservation.is_null())
                    .select(nodes::id);
                let n = diesel::update(
                    $table::table
                        .find(id)
                        .filter($table::node_id.eq_any(unlocked))
                        .filter(diesel::dsl::exists(
                            nodes::table
                                .filter(nodes::id.eq(fields.node_id))
                                .filter(nodes::reservation.is_null()),
                        )),
                )
                .set((fields, $table::updated_at.eq(Some(now()))))
                .execute(conn)?;
                if n == 0 {
                    return Ok(None);
                }
                Ok($table::table
                    .find(id)
                    .select($row::as_select())
                    .first(conn)
                    .optional()?)
            }

            /// Deletes the row while its node is unlocked; false otherwise.
            pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
                let unlocked = nodes::table
                    .filter(nodes::reservation.is_null())
                    .select(nodes::id);
                Ok(diesel::delete(
                    $table::table
                        .find(id)
                        .filter($table::node_id.eq_any(unlocked)),
                )
                .execute(conn)?
                    == 1)
            }
        }
    };
}

volume_queries!(VolumeConnector, ConnectorFields, volume_connectors);
volume_queries!(VolumeTarget, TargetFields, volume_targets);
