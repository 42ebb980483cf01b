//! The `conductors` and `conductor_hardware_interfaces` tables: who is alive
//! and which hardware types and interfaces each conductor enables.
//!
//! Invariant: a conductor is alive when `online` and its `updated_at`
//! heartbeat is newer than the heartbeat timeout (Ironic's definition).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{conductor_hardware_interfaces as chi, conductors};
use crate::db::{AnyConnection, DbError, now};

/// One row of `conductors`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = conductors)]
pub struct Conductor {
    pub id: i32,
    pub hostname: String,
    pub drivers: String,
    pub online: bool,
    pub conductor_group: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

impl Conductor {
    /// Whether the conductor heartbeated within `timeout`.
    pub fn is_alive(&self, timeout: std::time::Duration) -> bool {
        let Ok(timeout) = chrono::Duration::from_std(timeout) else {
            return self.online;
        };
        let last = self.updated_at.unwrap_or(self.created_at);
        self.online && last >= now() - timeout
    }
}

/// One enabled interface of a hardware type on a conductor.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chi)]
pub struct HardwareInterface {
    pub conductor_id: i32,
    pub hardware_type: String,
    pub interface_type: String,
    pub interface_name: String,
    pub is_default: bool,
}

/// What a conductor registers: its hardware types and their interfaces.
#[derive(Debug, Clone)]
pub struct Registration {
    pub hostname: String,
    pub conductor_group: String,
    pub hardware_types: Vec<String>,
    /// `(hardware_type, interface_type, interface_name, is_default)`.
    pub interfaces: Vec<(String, String, String, bool)>,
}

impl Conductor {
    /// Registers (or re-registers) a conductor as online, replacing its
    /// hardware interface rows, in one transaction.
    pub fn register(conn: &mut AnyConnection, reg: &Registration) -> Result<Conductor, DbError> {
        let drivers = serde_json::to_string(&reg.hardware_types).unwrap_or_else(|_| "[]".into());
        conn.transaction(|conn| {
            let at = now();
            let existing: Option<i32> = conductors::table
                .filter(conductors::hostname.eq(&reg.hostname))
                .select(conductors::id)
                .first(conn)
                .optional()?;
            let id = match existing {
                Some(id) => {
                    diesel::update(conductors::table.find(id))
                        .set((
                            conductors::online.eq(true),
                            conductors::drivers.eq(&drivers),
                            conductors::conductor_group.eq(&reg.conductor_group),
                            conductors::updated_at.eq(Some(at)),
                        ))
                        .execute(conn)?;
                    id
                }
                None => {
                    diesel::insert_into(conductors::table)
                        .values((
                            conductors::hostname.eq(&reg.hostname),
                            conductors::drivers.eq(&drivers),
                            conductors::online.eq(true),
                            conductors::conductor_group.eq(&reg.conductor_group),
                            conductors::created_at.eq(at),
                            conductors::updated_at.eq(Some(at)),
                        ))
                        .execute(conn)?;
                    conductors::table
                        .filter(conductors::hostname.eq(&reg.hostname))
                        .select(conductors::id)
                        .first(conn)?
                }
            };
            diesel::delete(chi::table.filter(chi::conductor_id.eq(id))).execute(conn)?;
            for (hardware_type, interface_type, interface_name, is_default) in &reg.interfaces {
                diesel::insert_into(chi::table)
                    .values((
                        chi::conductor_id.eq(id),
                        chi::hardware_type.eq(hardware_type),
                        chi::interface_type.eq(interface_type),
                        chi::interface_name.eq(interface_name),
                        chi::is_default.eq(is_default),
                        chi::created_at.eq(at),
                    ))
                    .execute(conn)?;
            }
            conductors::table
                .find(id)
                .select(Conductor::as_select())
                .first(conn)
        })
        .map_err(DbError::from)
    }

    /// Heartbeat: `updated_at = now, online = true`.
    pub fn touch(conn: &mut AnyConnection, hostname: &str) -> Result<bool, DbError> {
        let n = diesel::update(conductors::table.filter(conductors::hostname.eq(hostname)))
            .set((
                conductors::online.eq(true),
                conductors::updated_at.eq(Some(now())),
            ))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// Marks a conductor offline and drops its hardware interfaces.
    pub fn unregister(conn: &mut AnyConnection, hostname: &str) -> Result<(), DbError> {
        conn.transaction(|conn| {
            let id: Option<i32> = conductors::table
                .filter(conductors::hostname.eq(hostname))
                .select(conductors::id)
                .first(conn)
                .optional()?;
            if let Some(id) = id {
                diesel::delete(chi::table.filter(chi::conductor_id.eq(id))).execute(conn)?;
                diesel::update(conductors::table.find(id))
                    .set((
                        conductors::online.eq(false),
                        conductors::updated_at.eq(Some(now())),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// Every conductor row, ordered by id.
    pub fn all(conn: &mut AnyConnection) -> Result<Vec<Conductor>, DbError> {
        Ok(conductors::table
            .select(Conductor::as_select())
            .order(conductors::id.asc())
            .load(conn)?)
    }

    pub fn by_hostname(
        conn: &mut AnyConnection,
        hostname: &str,
    ) -> Result<Option<Conductor>, DbError> {
        Ok(conductors::table
            .filter(conductors::hostname.eq(hostname))
            .select(Conductor::as_select())
            .first(conn)
            .optional()?)
    }

    /// Every hardware interface row of every conductor.
    pub fn hardware_interfaces(
        conn: &mut AnyConnection,
    ) -> Result<Vec<HardwareInterface>, DbError> {
        Ok(chi::table
            .select(HardwareInterface::as_select())
            .order(chi::id.asc())
            .load(conn)?)
    }
}
