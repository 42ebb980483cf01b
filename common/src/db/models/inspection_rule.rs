//! The `inspection_rules` table: conditions and actions (JSON arrays, as
//! the API validated them) applied to what inspection finds. Operators
//! write tens of rules, so lists load them all.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::inspection_rules;
use crate::db::{AnyConnection, DbError, now};

/// One row of `inspection_rules`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = inspection_rules)]
pub struct InspectionRule {
    pub id: i32,
    pub uuid: String,
    pub description: Option<String>,
    pub priority: i32,
    pub sensitive: bool,
    pub phase: String,
    pub conditions: String,
    pub actions: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = inspection_rules, treat_none_as_null = true)]
pub struct RuleFields {
    pub description: Option<String>,
    pub priority: i32,
    pub sensitive: bool,
    pub phase: String,
    pub conditions: String,
    pub actions: String,
}

impl InspectionRule {
    pub fn by_uuid(
        conn: &mut AnyConnection,
        uuid: &str,
    ) -> Result<Option<InspectionRule>, DbError> {
        Ok(inspection_rules::table
            .filter(inspection_rules::uuid.eq(uuid))
            .select(InspectionRule::as_select())
            .first(conn)
            .optional()?)
    }

    /// Every rule, by id.
    pub fn all(conn: &mut AnyConnection) -> Result<Vec<InspectionRule>, DbError> {
        Ok(inspection_rules::table
            .order(inspection_rules::id.asc())
            .select(InspectionRule::as_select())
            .load(conn)?)
    }

    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &RuleFields,
    ) -> Result<InspectionRule, DbError> {
        diesel::insert_into(inspection_rules::table)
            .values((
                inspection_rules::uuid.eq(uuid),
                inspection_rules::created_at.eq(now()),
                fields,
            ))
            .execute(conn)?;
        InspectionRule::by_uuid(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// `None` when the row changed (`updated_at` is no longer `seen`) or
    /// went away meanwhile.
    pub fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &RuleFields,
    ) -> Result<Option<InspectionRule>, DbError> {
        let changes = (fields, inspection_rules::updated_at.eq(Some(now())));
        let target = inspection_rules::table.find(id);
        // Only over the version the caller read: a concurrent PATCH is
        // never silently undone.
        let n = match seen {
            Some(at) => diesel::update(target.filter(inspection_rules::updated_at.eq(at)))
                .set(changes)
                .execute(conn)?,
            None => diesel::update(target.filter(inspection_rules::updated_at.is_null()))
                .set(changes)
                .execute(conn)?,
        };
        if n == 0 {
            return Ok(None);
        }

        Ok(inspection_rules::table
            .find(id)
            .select(InspectionRule::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        Ok(diesel::delete(inspection_rules::table.find(id)).execute(conn)? == 1)
    }
}
