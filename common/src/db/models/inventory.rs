//! The `node_inventory` table: what the last inspection of a node found,
//! the agent's inventory and the plugin data (JSON objects as text). One
//! row per node: an inspection replaces it, deleting the node deletes it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::node::Node;
use super::port::{Port, PortFields};
use crate::db::schema::node_inventory;
use crate::db::{AnyConnection, DbError, now};

/// One row of `node_inventory`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = node_inventory)]
pub struct NodeInventory {
    pub node_id: i32,
    pub inventory_data: String,
    pub plugin_data: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

impl NodeInventory {
    /// The node's stored inspection data, if any.
    pub fn of_node(
        conn: &mut AnyConnection,
        node_id: i32,
    ) -> Result<Option<NodeInventory>, DbError> {
        Ok(node_inventory::table
            .filter(node_inventory::node_id.eq(node_id))
            .select(NodeInventory::as_select())
            .first(conn)
            .optional()?)
    }

    /// Replaces the node's inspection data (run it in the transaction that
    /// records the inspection's result).
    pub fn replace(
        conn: &mut AnyConnection,
        node_id: i32,
        inventory: &str,
        plugin_data: &str,
    ) -> Result<(), DbError> {
        diesel::delete(node_inventory::table.filter(node_inventory::node_id.eq(node_id)))
            .execute(conn)?;
        diesel::insert_into(node_inventory::table)
            .values((
                node_inventory::node_id.eq(node_id),
                node_inventory::inventory_data.eq(inventory),
                node_inventory::plugin_data.eq(plugin_data),
                node_inventory::created_at.eq(now()),
            ))
            .execute(conn)?;
        Ok(())
    }
}

/// What an inspection found besides the node's columns: written with the
/// node's move out of inspection, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct InspectionRecord {
    /// Ports to create: (MAC address, PXE-enabled).
    pub new_ports: Vec<(String, bool)>,
    pub add_traits: Vec<String>,
    pub remove_traits: Vec<String>,
    /// The inventory and plugin data, JSON objects.
    pub inventory: String,
    pub plugin_data: String,
}

impl InspectionRecord {
    /// Writes it for node `node_id` (inside the caller's transaction).
    ///
    /// # Errors
    /// On a database failure; a port whose address another node took
    /// meanwhile fails the whole write (unique address).
    pub fn write(&self, conn: &mut AnyConnection, node_id: i32) -> Result<(), DbError> {
        for (address, pxe_enabled) in &self.new_ports {
            let fields = PortFields {
                address: address.clone(),
                node_id,
                extra: "{}".into(),
                local_link_connection: "{}".into(),
                portgroup_id: None,
                pxe_enabled: *pxe_enabled,
                physical_network: None,
                is_smartnic: false,
                name: None,
                description: None,
                vendor: None,
                category: None,
                available_for_dynamic_portgroup: true,
            };
            Port::insert(conn, &uuid::Uuid::new_v4().to_string(), &fields)?;
        }
        for name in &self.add_traits {
            Node::add_trait(conn, node_id, name)?;
        }
        for name in &self.remove_traits {
            Node::remove_trait(conn, node_id, name)?;
        }
        NodeInventory::replace(conn, node_id, &self.inventory, &self.plugin_data)
    }
}
