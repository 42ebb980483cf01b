//! The `portgroups` table: bonds of a node's ports. MACs and names are
//! unique; a portgroup with ports cannot be deleted, and writes happen
//! only while its node is unlocked.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{AnyBackend, Ident};
use crate::db::schema::{nodes, portgroups, ports};
use crate::db::{AnyConnection, DbError, now};

/// One row of `portgroups`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = portgroups)]
pub struct Portgroup {
    pub id: i32,
    pub uuid: String,
    pub name: Option<String>,
    pub node_id: i32,
    pub address: Option<String>,
    pub extra: String,
    pub internal_info: String,
    pub standalone_ports_supported: bool,
    pub mode: Option<String>,
    pub properties: String,
    pub physical_network: Option<String>,
    pub category: Option<String>,
    pub dynamic_portgroup: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable portgroup columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = portgroups, treat_none_as_null = true)]
pub struct PortgroupFields {
    pub name: Option<String>,
    pub node_id: i32,
    pub address: Option<String>,
    pub extra: String,
    pub standalone_ports_supported: bool,
    pub mode: Option<String>,
    pub properties: String,
    pub physical_network: Option<String>,
    pub category: Option<String>,
}

/// Filters of `GET /v1/portgroups`.
#[derive(Debug, Clone, Default)]
pub struct PortgroupFilter {
    pub node_id: Option<i32>,
    pub address: Option<String>,
}

impl PortgroupFilter {
    /// Whether `pg` passes every filter set.
    pub fn matches(&self, pg: &Portgroup) -> bool {
        self.node_id.is_none_or(|id| pg.node_id == id)
            && self
                .address
                .as_ref()
                .is_none_or(|a| pg.address.as_ref() == Some(a))
    }
}

type Boxed<'a> = portgroups::BoxedQuery<
    'a,
    AnyBackend,
    diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<Portgroup, AnyBackend>>,
>;

impl Portgroup {
    pub fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Portgroup>, DbError> {
        Ok(portgroups::table
            .filter(portgroups::uuid.eq(uuid))
            .select(Portgroup::as_select())
            .first(conn)
            .optional()?)
    }

    /// By UUID or name.
    pub fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Portgroup>, DbError> {
        let query = portgroups::table
            .select(Portgroup::as_select())
            .into_boxed();
        let query = match Ident::parse(ident) {
            Ident::Uuid(uuid) => query.filter(portgroups::uuid.eq(uuid)),
            Ident::Name(name) => query.filter(portgroups::name.eq(name)),
        };
        Ok(query.first(conn).optional()?)
    }

    pub fn by_id(conn: &mut AnyConnection, id: i32) -> Result<Option<Portgroup>, DbError> {
        Ok(portgroups::table
            .find(id)
            .select(Portgroup::as_select())
            .first(conn)
            .optional()?)
    }

    /// UUIDs of several portgroups in one query, keyed by id.
    pub fn uuids_of(
        conn: &mut AnyConnection,
        ids: &[i32],
    ) -> Result<std::collections::HashMap<i32, String>, DbError> {
        let rows: Vec<(i32, String)> = portgroups::table
            .filter(portgroups::id.eq_any(ids))
            .select((portgroups::id, portgroups::uuid))
            .load(conn)?;
        Ok(rows.into_iter().collect())
    }

    /// Every portgroup matching `filter`, by id.
    pub fn list(
        conn: &mut AnyConnection,
        filter: &PortgroupFilter,
    ) -> Result<Vec<Portgroup>, DbError> {
        let mut query: Boxed<'_> = portgroups::table
            .select(Portgroup::as_select())
            .order(portgroups::id.asc())
            .into_boxed();
        if let Some(node_id) = filter.node_id {
            query = query.filter(portgroups::node_id.eq(node_id));
        }
        if let Some(address) = &filter.address {
            query = query.filter(portgroups::address.eq(address.clone()));
        }
        Ok(query.load(conn)?)
    }

    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &PortgroupFields,
    ) -> Result<Portgroup, DbError> {
        diesel::insert_into(portgroups::table)
            .values((
                portgroups::uuid.eq(uuid),
                portgroups::created_at.eq(now()),
                fields,
            ))
            .execute(conn)?;
        Portgroup::by_uuid(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// Updates a portgroup while its node (and the node it moves to) is
    /// unlocked, and moves it to another node only while it has no ports;
    /// `None` when a lock, ports or a missing row stopped the write.
    pub fn update(
        conn: &mut AnyConnection,
        id: i32,
        fields: &PortgroupFields,
    ) -> Result<Option<Portgroup>, DbError> {
        let unlocked = nodes::table
            .filter(nodes::reservation.is_null())
            .select(nodes::id);
        let n = diesel::update(
            portgroups::table
                .find(id)
                .filter(portgroups::node_id.eq_any(unlocked))
                .filter(diesel::dsl::exists(
                    nodes::table
                        .filter(nodes::id.eq(fields.node_id))
                        .filter(nodes::reservation.is_null()),
                ))
                .filter(portgroups::node_id.eq(fields.node_id).or(diesel::dsl::not(
                    diesel::dsl::exists(ports::table.filter(ports::portgroup_id.eq(id))),
                ))),
        )
        .set((fields, portgroups::updated_at.eq(Some(now()))))
        .execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        Portgroup::by_id(conn, id)
    }

    /// The physical networks of the portgroup's ports (`None` for a port
    /// without one), `exclude_port` left out.
    pub fn member_physnets(
        conn: &mut AnyConnection,
        id: i32,
        exclude_port: Option<i32>,
    ) -> Result<std::collections::BTreeSet<Option<String>>, DbError> {
        let mut query = ports::table
            .filter(ports::portgroup_id.eq(id))
            .select(ports::physical_network)
            .into_boxed();
        if let Some(port) = exclude_port {
            query = query.filter(ports::id.ne(port));
        }
        Ok(query.load::<Option<String>>(conn)?.into_iter().collect())
    }

    /// Gives a portgroup without a physical network `physnet` (its first
    /// member port's, as Ironic does); one that has one keeps it.
    pub fn adopt_physical_network(
        conn: &mut AnyConnection,
        id: i32,
        physnet: &str,
    ) -> Result<(), DbError> {
        diesel::update(
            portgroups::table
                .find(id)
                .filter(portgroups::physical_network.is_null()),
        )
        .set((
            portgroups::physical_network.eq(physnet),
            portgroups::updated_at.eq(Some(now())),
        ))
        .execute(conn)?;
        Ok(())
    }

    /// How many ports belong to the portgroup.
    pub fn port_count(conn: &mut AnyConnection, id: i32) -> Result<i64, DbError> {
        Ok(ports::table
            .filter(ports::portgroup_id.eq(id))
            .count()
            .get_result(conn)?)
    }

    /// Deletes a portgroup without ports whose node is unlocked; false
    /// otherwise.
    pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        let unlocked = nodes::table
            .filter(nodes::reservation.is_null())
            .select(nodes::id);
        let empty = diesel::dsl::not(diesel::dsl::exists(
            ports::table.filter(ports::portgroup_id.eq(id)),
        ));
        Ok(diesel::delete(
            portgroups::table
                .find(id)
                .filter(portgroups::node_id.eq_any(unlocked))
                .filter(empty),
        )
        .execute(conn)?
            == 1)
    }
}
