//! The `deploy_templates` and `runbooks` tables: named, reusable lists of
//! steps. Steps (and a runbook's traits) are stored as one JSON array each,
//! already validated and normalised by the API; names and UUIDs are unique.
//!
//! Both tables hold what operators write by hand (tens of rows, not
//! thousands), so lists load every row and the API sorts and pages them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::Ident;
use crate::db::schema::{deploy_templates, runbooks};
use crate::db::{AnyConnection, DbError, now};

/// One row of `deploy_templates`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = deploy_templates)]
pub struct DeployTemplate {
    pub id: i32,
    pub uuid: String,
    pub name: String,
    pub extra: String,
    pub steps: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable deploy template columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = deploy_templates, treat_none_as_null = true)]
pub struct DeployTemplateFields {
    pub name: String,
    pub extra: String,
    pub steps: String,
}

/// One row of `runbooks`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = runbooks)]
pub struct Runbook {
    pub id: i32,
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub steps: String,
    pub traits: String,
    pub disable_ramdisk: bool,
    pub public: bool,
    pub owner: Option<String>,
    pub extra: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable runbook columns; `traits` change only through
/// [`Runbook::replace_traits`], so a PATCH never undoes a trait change.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = runbooks, treat_none_as_null = true)]
pub struct RunbookFields {
    pub name: String,
    pub description: Option<String>,
    pub steps: String,
    pub disable_ramdisk: bool,
    pub public: bool,
    pub owner: Option<String>,
    pub extra: String,
}

impl DeployTemplate {
    /// By UUID or name.
    pub fn by_ident(
        conn: &mut AnyConnection,
        ident: &str,
    ) -> Result<Option<DeployTemplate>, DbError> {
        let query = deploy_templates::table
            .select(DeployTemplate::as_select())
            .into_boxed();
        let query = match Ident::parse(ident) {
            Ident::Uuid(uuid) => query.filter(deploy_templates::uuid.eq(uuid)),
            Ident::Name(name) => query.filter(deploy_templates::name.eq(name)),
        };
        Ok(query.first(conn).optional()?)
    }

    /// Every template, by id.
    pub fn all(conn: &mut AnyConnection) -> Result<Vec<DeployTemplate>, DbError> {
        Ok(deploy_templates::table
            .order(deploy_templates::id.asc())
            .select(DeployTemplate::as_select())
            .load(conn)?)
    }

    /// The templates with these names (a node's traits), by id.
    pub fn named(
        conn: &mut AnyConnection,
        names: &[String],
    ) -> Result<Vec<DeployTemplate>, DbError> {
        Ok(deploy_templates::table
            .filter(deploy_templates::name.eq_any(names))
            .order(deploy_templates::id.asc())
            .select(DeployTemplate::as_select())
            .load(conn)?)
    }

    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &DeployTemplateFields,
    ) -> Result<DeployTemplate, DbError> {
        diesel::insert_into(deploy_templates::table)
            .values((
                deploy_templates::uuid.eq(uuid),
                deploy_templates::created_at.eq(now()),
                fields,
            ))
            .execute(conn)?;
        DeployTemplate::by_ident(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// `None` when the row changed (`updated_at` is no longer `seen`) or
    /// went away meanwhile.
    pub fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &DeployTemplateFields,
    ) -> Result<Option<DeployTemplate>, DbError> {
        let changes = (fields, deploy_templates::updated_at.eq(Some(now())));
        let target = deploy_templates::table.find(id);
        // Only over the version the caller read: a concurrent PATCH is
        // never silently undone.
        let n = match seen {
            Some(at) => diesel::update(target.filter(deploy_templates::updated_at.eq(at)))
                .set(changes)
                .execute(conn)?,
            None => diesel::update(target.filter(deploy_templates::updated_at.is_null()))
                .set(changes)
                .execute(conn)?,
        };
        if n == 0 {
            return Ok(None);
        }

        Ok(deploy_templates::table
            .find(id)
            .select(DeployTemplate::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        Ok(diesel::delete(deploy_templates::table.find(id)).execute(conn)? == 1)
    }
}

impl Runbook {
    /// By UUID or name.
    pub fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Runbook>, DbError> {
        let query = runbooks::table.select(Runbook::as_select()).into_boxed();
        let query = match Ident::parse(ident) {
            Ident::Uuid(uuid) => query.filter(runbooks::uuid.eq(uuid)),
            Ident::Name(name) => query.filter(runbooks::name.eq(name)),
        };
        Ok(query.first(conn).optional()?)
    }

    /// Every runbook, by id; only those `owner` may see (its own and the
    /// public ones) when given.
    pub fn all(conn: &mut AnyConnection, owner: Option<&str>) -> Result<Vec<Runbook>, DbError> {
        let mut query = runbooks::table
            .order(runbooks::id.asc())
            .select(Runbook::as_select())
            .into_boxed();
        if let Some(owner) = owner {
            query = query.filter(
                runbooks::owner
                    .eq(owner.to_owned())
                    .or(runbooks::public.eq(true)),
            );
        }
        Ok(query.load(conn)?)
    }

    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &RunbookFields,
    ) -> Result<Runbook, DbError> {
        diesel::insert_into(runbooks::table)
            .values((
                runbooks::uuid.eq(uuid),
                runbooks::created_at.eq(now()),
                fields,
            ))
            .execute(conn)?;
        Runbook::by_ident(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// `None` when the row changed (`updated_at` is no longer `seen`) or
    /// went away meanwhile.
    pub fn update(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        fields: &RunbookFields,
    ) -> Result<Option<Runbook>, DbError> {
        let changes = (fields, runbooks::updated_at.eq(Some(now())));
        let target = runbooks::table.find(id);
        // Only over the version the caller read: a concurrent PATCH is
        // never silently undone.
        let n = match seen {
            Some(at) => diesel::update(target.filter(runbooks::updated_at.eq(at)))
                .set(changes)
                .execute(conn)?,
            None => diesel::update(target.filter(runbooks::updated_at.is_null()))
                .set(changes)
                .execute(conn)?,
        };
        if n == 0 {
            return Ok(None);
        }

        Ok(runbooks::table
            .find(id)
            .select(Runbook::as_select())
            .first(conn)
            .optional()?)
    }

    /// Replaces the traits only (the `/traits` sub-resource) if they are
    /// still `old`: false when another request changed them first (the
    /// caller reads again and retries) or the row is gone.
    pub fn replace_traits(
        conn: &mut AnyConnection,
        id: i32,
        old: &str,
        new: &str,
    ) -> Result<bool, DbError> {
        Ok(
            diesel::update(runbooks::table.find(id).filter(runbooks::traits.eq(old)))
                .set((
                    runbooks::traits.eq(new),
                    runbooks::updated_at.eq(Some(now())),
                ))
                .execute(conn)?
                == 1,
        )
    }

    pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        Ok(diesel::delete(runbooks::table.find(id)).execute(conn)? == 1)
    }
}
