//! The `ports` table: a node's NICs, each MAC unique across the deployment.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{AnyBackend, Page, SortDir};
use crate::db::schema::{nodes, ports};
use crate::db::{AnyConnection, DbError, now};

/// One row of `ports`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = ports)]
pub struct Port {
    pub id: i32,
    pub uuid: String,
    pub address: String,
    pub node_id: i32,
    pub extra: String,
    pub local_link_connection: String,
    pub portgroup_id: Option<i32>,
    pub pxe_enabled: bool,
    pub internal_info: String,
    pub physical_network: Option<String>,
    pub is_smartnic: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub category: Option<String>,
    pub available_for_dynamic_portgroup: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writable port columns.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = ports, treat_none_as_null = true)]
pub struct PortFields {
    pub address: String,
    pub node_id: i32,
    pub extra: String,
    pub local_link_connection: String,
    pub portgroup_id: Option<i32>,
    pub pxe_enabled: bool,
    pub physical_network: Option<String>,
    pub is_smartnic: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub category: Option<String>,
    pub available_for_dynamic_portgroup: bool,
}

impl PortFields {
    pub fn from_port(port: &Port) -> PortFields {
        PortFields {
            address: port.address.clone(),
            node_id: port.node_id,
            extra: port.extra.clone(),
            local_link_connection: port.local_link_connection.clone(),
            portgroup_id: port.portgroup_id,
            pxe_enabled: port.pxe_enabled,
            physical_network: port.physical_network.clone(),
            is_smartnic: port.is_smartnic,
            name: port.name.clone(),
            description: port.description.clone(),
            vendor: port.vendor.clone(),
            category: port.category.clone(),
            available_for_dynamic_portgroup: port.available_for_dynamic_portgroup,
        }
    }
}

/// Filters of `GET /v1/ports`.
#[derive(Debug, Clone, Default)]
pub struct PortFilter {
    pub node_id: Option<i32>,
    pub portgroup_id: Option<i32>,
    pub address: Option<String>,
}

type BoxedPorts<'a> = ports::BoxedQuery<
    'a,
    AnyBackend,
    diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<Port, AnyBackend>>,
>;

impl Port {
    pub fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Port>, DbError> {
        Ok(ports::table
            .filter(ports::uuid.eq(uuid))
            .select(Port::as_select())
            .first(conn)
            .optional()?)
    }

    pub fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Port>, DbError> {
        Ok(ports::table
            .filter(ports::uuid.eq(ident).or(ports::name.eq(ident)))
            .select(Port::as_select())
            .first(conn)
            .optional()?)
    }

    /// Which of `addresses` some port already has (on any node).
    pub fn taken_addresses(
        conn: &mut AnyConnection,
        addresses: &[String],
    ) -> Result<Vec<String>, DbError> {
        Ok(ports::table
            .filter(ports::address.eq_any(addresses))
            .select(ports::address)
            .load(conn)?)
    }

    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        fields: &PortFields,
    ) -> Result<Port, DbError> {
        diesel::insert_into(ports::table)
            .values((ports::uuid.eq(uuid), ports::created_at.eq(now()), fields))
            .execute(conn)?;
        Port::by_uuid(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// Updates a port while its node (and the node it moves to) is unlocked;
    /// `None` when a lock or a missing row stopped the write.
    pub fn update(
        conn: &mut AnyConnection,
        id: i32,
        fields: &PortFields,
    ) -> Result<Option<Port>, DbError> {
        let unlocked = nodes::table
            .filter(nodes::reservation.is_null())
            .select(nodes::id);
        if unlocked
            .filter(nodes::id.eq(fields.node_id))
            .first::<i32>(conn)
            .optional()?
            .is_none()
        {
            return Ok(None);
        }
        let n = diesel::update(
            ports::table
                .find(id)
                .filter(ports::node_id.eq_any(unlocked)),
        )
        .set((fields, ports::updated_at.eq(Some(now()))))
        .execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(ports::table
            .find(id)
            .select(Port::as_select())
            .first(conn)
            .optional()?)
    }

    /// Deletes a port whose node is unlocked; false otherwise.
    pub fn delete(conn: &mut AnyConnection, id: i32) -> Result<bool, DbError> {
        let unlocked = nodes::table
            .filter(nodes::reservation.is_null())
            .select(nodes::id);
        Ok(diesel::delete(
            ports::table
                .find(id)
                .filter(ports::node_id.eq_any(unlocked)),
        )
        .execute(conn)?
            == 1)
    }

    /// Every port of a node, ordered by id.
    pub fn of_node(conn: &mut AnyConnection, node_id: i32) -> Result<Vec<Port>, DbError> {
        Ok(ports::table
            .filter(ports::node_id.eq(node_id))
            .order(ports::id.asc())
            .select(Port::as_select())
            .load(conn)?)
    }

    /// One page of ports ordered by id.
    pub fn list(
        conn: &mut AnyConnection,
        filter: &PortFilter,
        page: &Page,
        marker: Option<&Port>,
    ) -> Result<Vec<Port>, DbError> {
        let mut query: BoxedPorts<'_> = ports::table.select(Port::as_select()).into_boxed();
        if let Some(node_id) = filter.node_id {
            query = query.filter(ports::node_id.eq(node_id));
        }
        if let Some(address) = &filter.address {
            query = query.filter(ports::address.eq(address.clone()));
        }
        if let Some(portgroup_id) = filter.portgroup_id {
            query = query.filter(ports::portgroup_id.eq(portgroup_id));
        }
        query = match page.sort_dir {
            SortDir::Asc => {
                if let Some(m) = marker {
                    query = query.filter(ports::id.gt(m.id));
                }
                query.order(ports::id.asc())
            }
            SortDir::Desc => {
                if let Some(m) = marker {
                    query = query.filter(ports::id.lt(m.id));
                }
                query.order(ports::id.desc())
            }
        };
        Ok(query.limit(page.limit).load(conn)?)
    }
}
