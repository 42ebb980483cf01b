//! The `allocations` table: a request for one node of a resource class
//! (with traits, among candidates), filled by a conductor.
//!
//! Invariants: an allocation is `allocating`, `active` (with `node_id`) or
//! `error` (with `last_error`, without a node). A node with `allocation_id`
//! set has `instance_uuid` equal to that allocation's UUID; the two sides
//! are written together in one transaction, and a node already associated
//! with an instance is never taken.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{AnyBackend, Ident};
use crate::db::schema::{allocations, nodes};
use crate::db::{AnyConnection, DbError, now};

pub const ALLOCATING: &str = "allocating";
pub const ACTIVE: &str = "active";
pub const ERROR: &str = "error";

/// One row of `allocations`. `traits` and `candidate_nodes` are JSON
/// arrays of strings (candidates as node UUIDs), `extra` a JSON object.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = allocations)]
pub struct Allocation {
    pub id: i32,
    pub uuid: String,
    pub name: Option<String>,
    pub node_id: Option<i32>,
    pub state: String,
    pub owner: Option<String>,
    pub last_error: Option<String>,
    pub resource_class: Option<String>,
    pub traits: String,
    pub candidate_nodes: String,
    pub extra: String,
    pub conductor_affinity: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
    /// The deployed node a backfill names (kept until it is recorded).
    pub backfill_node_id: Option<i32>,
}

/// Columns of a new allocation.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = allocations)]
pub struct NewAllocation {
    pub uuid: String,
    pub name: Option<String>,
    pub state: String,
    pub owner: Option<String>,
    pub resource_class: Option<String>,
    pub traits: String,
    pub candidate_nodes: String,
    pub extra: String,
    pub backfill_node_id: Option<i32>,
}

/// Filters of `GET /v1/allocations`.
#[derive(Debug, Clone, Default)]
pub struct AllocationFilter {
    pub node_id: Option<i32>,
    pub resource_class: Option<String>,
    pub state: Option<String>,
    pub owner: Option<String>,
}

impl AllocationFilter {
    /// Whether `a` passes every filter set.
    pub fn matches(&self, a: &Allocation) -> bool {
        self.node_id.is_none_or(|id| a.node_id == Some(id))
            && self
                .resource_class
                .as_ref()
                .is_none_or(|rc| a.resource_class.as_ref() == Some(rc))
            && self.state.as_ref().is_none_or(|s| a.state == *s)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| a.owner.as_ref() == Some(o))
    }
}

type Boxed<'a> = allocations::BoxedQuery<
    'a,
    AnyBackend,
    diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<Allocation, AnyBackend>>,
>;

impl Allocation {
    pub fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Allocation>, DbError> {
        Ok(allocations::table
            .filter(allocations::uuid.eq(uuid))
            .select(Allocation::as_select())
            .first(conn)
            .optional()?)
    }

    /// By UUID or name.
    pub fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Allocation>, DbError> {
        let query = allocations::table
            .select(Allocation::as_select())
            .into_boxed();
        let query = match Ident::parse(ident) {
            Ident::Uuid(uuid) => query.filter(allocations::uuid.eq(uuid)),
            Ident::Name(name) => query.filter(allocations::name.eq(name)),
        };
        Ok(query.first(conn).optional()?)
    }

    pub fn by_id(conn: &mut AnyConnection, id: i32) -> Result<Option<Allocation>, DbError> {
        Ok(allocations::table
            .find(id)
            .select(Allocation::as_select())
            .first(conn)
            .optional()?)
    }

    /// Every allocation matching `filter`, by id.
    pub fn list(
        conn: &mut AnyConnection,
        filter: &AllocationFilter,
    ) -> Result<Vec<Allocation>, DbError> {
        let mut query: Boxed<'_> = allocations::table
            .select(Allocation::as_select())
            .order(allocations::id.asc())
            .into_boxed();
        if let Some(node_id) = filter.node_id {
            query = query.filter(allocations::node_id.eq(node_id));
        }
        if let Some(rc) = &filter.resource_class {
            query = query.filter(allocations::resource_class.eq(rc.clone()));
        }
        if let Some(state) = &filter.state {
            query = query.filter(allocations::state.eq(state.clone()));
        }
        if let Some(owner) = &filter.owner {
            query = query.filter(allocations::owner.eq(owner.clone()));
        }
        Ok(query.load(conn)?)
    }

    pub fn insert(conn: &mut AnyConnection, new: &NewAllocation) -> Result<Allocation, DbError> {
        diesel::insert_into(allocations::table)
            .values((new, allocations::created_at.eq(now())))
            .execute(conn)?;
        Allocation::by_uuid(conn, &new.uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// Changes `name` and `extra` (the patchable fields); `None` when the row
    /// changed (`updated_at` is no longer `seen`) or went away meanwhile.
    pub fn update_descriptive(
        conn: &mut AnyConnection,
        id: i32,
        seen: Option<NaiveDateTime>,
        name: Option<&str>,
        extra: &str,
    ) -> Result<Option<Allocation>, DbError> {
        let changes = (
            allocations::name.eq(name),
            allocations::extra.eq(extra),
            allocations::updated_at.eq(Some(now())),
        );
        let target = allocations::table.find(id);
        // Only over the version the caller read: a concurrent PATCH is
        // never silently undone.
        let n = match seen {
            Some(at) => diesel::update(target.filter(allocations::updated_at.eq(at)))
                .set(changes)
                .execute(conn)?,
            None => diesel::update(target.filter(allocations::updated_at.is_null()))
                .set(changes)
                .execute(conn)?,
        };
        if n == 0 {
            return Ok(None);
        }

        Allocation::by_id(conn, id)
    }

    /// Records which conductor processes the allocation.
    pub fn set_affinity(
        conn: &mut AnyConnection,
        id: i32,
        conductor_id: i32,
    ) -> Result<(), DbError> {
        diesel::update(allocations::table.find(id))
            .set(allocations::conductor_affinity.eq(Some(conductor_id)))
            .execute(conn)?;
        Ok(())
    }

    /// Gives node `node_id` to the allocation, both sides in one
    /// transaction. False (and nothing written) when the allocation is no
    /// longer `allocating` or the node is associated meanwhile; a node
    /// whose `instance_uuid` already is the allocation's UUID (backfill)
    /// may be taken.
    pub fn assign(
        conn: &mut AnyConnection,
        alloc: &Allocation,
        node_id: i32,
    ) -> Result<bool, DbError> {
        conn.transaction(|conn| {
            let node = diesel::update(
                nodes::table
                    .find(node_id)
                    .filter(nodes::allocation_id.is_null())
                    .filter(
                        nodes::instance_uuid
                            .is_null()
                            .or(nodes::instance_uuid.eq(&alloc.uuid)),
                    ),
            )
            .set((
                nodes::allocation_id.eq(Some(alloc.id)),
                nodes::instance_uuid.eq(Some(&alloc.uuid)),
                nodes::updated_at.eq(Some(now())),
            ))
            .execute(conn)?;
            let allocation = diesel::update(
                allocations::table
                    .find(alloc.id)
                    .filter(allocations::state.eq(ALLOCATING)),
            )
            .set((
                allocations::node_id.eq(Some(node_id)),
                allocations::state.eq(ACTIVE),
                allocations::last_error.eq(None::<String>),
                allocations::updated_at.eq(Some(now())),
            ))
            .execute(conn)?;
            if node == 1 && allocation == 1 {
                Ok(true)
            } else {
                Err(DbError::Query(diesel::result::Error::RollbackTransaction))
            }
        })
        .or_else(|e| match e {
            DbError::Query(diesel::result::Error::RollbackTransaction) => Ok(false),
            other => Err(other),
        })
    }

    /// Marks a still-`allocating` allocation failed with `error`, without a
    /// node (an allocation another conductor filled meanwhile stays so).
    pub fn fail(conn: &mut AnyConnection, id: i32, error: &str) -> Result<(), DbError> {
        diesel::update(
            allocations::table
                .find(id)
                .filter(allocations::state.eq(ALLOCATING)),
        )
        .set((
            allocations::state.eq(ERROR),
            allocations::last_error.eq(Some(error)),
            allocations::node_id.eq(None::<i32>),
            allocations::updated_at.eq(Some(now())),
        ))
        .execute(conn)?;
        Ok(())
    }

    /// Deletes the allocation and frees its node (`allocation_id` and
    /// `instance_uuid` cleared) in one transaction.
    pub fn destroy(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        conn.transaction(|conn| {
            diesel::update(nodes::table.filter(nodes::allocation_id.eq(id)))
                .set((
                    nodes::allocation_id.eq(None::<i32>),
                    nodes::instance_uuid.eq(None::<String>),
                    nodes::updated_at.eq(Some(now())),
                ))
                .execute(conn)?;
            Ok::<_, DbError>(diesel::delete(allocations::table.find(id)).execute(conn)? == 1)
        })
    }

    /// Forgets which conductor fills this conductor's `allocating`
    /// allocations (a conductor starting again has lost that work), so the
    /// sweep takes them over.
    pub fn release_affinity(conn: &mut AnyConnection, conductor_id: i32) -> Result<usize, DbError> {
        Ok(diesel::update(
            allocations::table
                .filter(allocations::conductor_affinity.eq(conductor_id))
                .filter(allocations::state.eq(ALLOCATING)),
        )
        .set(allocations::conductor_affinity.eq(None::<i32>))
        .execute(conn)?)
    }

    /// Allocations still `allocating` that were created before `before`
    /// (their conductor may have died): the sweep takes them over.
    pub fn stale_allocating(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
    ) -> Result<Vec<Allocation>, DbError> {
        Ok(allocations::table
            .filter(allocations::state.eq(ALLOCATING))
            .filter(allocations::created_at.lt(before))
            .select(Allocation::as_select())
            .load(conn)?)
    }
}
