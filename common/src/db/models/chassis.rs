//! The `chassis` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{AnyBackend, Page, SortDir};
use crate::db::schema::chassis;
use crate::db::{AnyConnection, DbError, now};

/// One row of `chassis`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = chassis)]
pub struct Chassis {
    pub id: i32,
    pub uuid: String,
    pub extra: String,
    pub description: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable chassis columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = chassis, treat_none_as_null = true)]
pub struct ChassisFields {
    pub extra: String,
    pub description: Option<String>,
}

type BoxedChassis<'a> = chassis::BoxedQuery<
    'a,
    AnyBackend,
    diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<Chassis, AnyBackend>>,
>;

impl Chassis {
    pub fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Chassis>, DbError> {
        Ok(chassis::table
            .filter(chassis::uuid.eq(uuid))
            .select(Chassis::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn by_id(conn: &mut AnyConnection, id: i32) -> Result<Option<Chassis>, DbError> {
        Ok(chassis::table
            .find(id)
            .select(Chassis::as_select())
            .first(conn)
            .optional()?)
    }

    /// UUIDs of several chassis in one query, keyed by id.
    pub fn uuids(
        conn: &mut AnyConnection,
        ids: &[i32],
    ) -> Result<std::collections::HashMap<i32, String>, DbError> {
        let rows: Vec<(i32, String)> = chassis::table
            .filter(chassis::id.eq_any(ids))
            .select((chassis::id, chassis::uuid))
            .load(conn)?;
        Ok(rows.into_iter().collect())
    }

    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &ChassisFields,
    ) -> Result<Chassis, DbError> {
        diesel::insert_into(chassis::table)
            .values((
                chassis::uuid.eq(uuid),
                chassis::created_at.eq(now()),
                fields,
            ))
            .execute(conn)?;
        Chassis::by_uuid(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    pub fn update(
        conn: &mut AnyConnection,
        id: i32,
        fields: &ChassisFields,
    ) -> Result<Option<Chassis>, DbError> {
        diesel::update(chassis::table.find(id))
            .set((fields, chassis::updated_at.eq(Some(now()))))
            .execute(conn)?;
        Chassis::by_id(conn, id)
    }

    pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        Ok(diesel::delete(chassis::table.find(id)).execute(conn)? == 1)
    }

    /// One page, ordered by `id` or `uuid`/`created_at`/`updated_at`.
    pub fn list(
        conn: &mut AnyConnection,
        page: &Page,
        marker: Option<&Chassis>,
    ) -> Result<Vec<Chassis>, DbError> {
        let mut query: BoxedChassis<'_> = chassis::table.select(Chassis::as_select()).into_boxed();
        query = match page.sort_dir {
            SortDir::Asc => {
                if let Some(m) = marker {
                    query = query.filter(chassis::id.gt(m.id));
                }
                query.order(chassis::id.asc())
            }
            SortDir::Desc => {
                if let Some(m) = marker {
                    query = query.filter(chassis::id.lt(m.id));
                }
                query.order(chassis::id.desc())
            }
        };
        Ok(query.limit(page.limit).load(conn)?)
    }
}
