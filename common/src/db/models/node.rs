//! The `nodes` table and its satellites (`node_traits`): rows, inserts,
//! filtered and paginated lists, the reservation lock and state updates.
//!
//! Invariant: a node's lock is its `reservation` column. It is taken with one
//! conditional UPDATE (`reservation IS NULL`) and released only by its holder.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{AnyBackend, Page, SortDir};
use crate::db::schema::{allocations, node_traits, nodes};
use crate::db::{AnyConnection, DbError, now};

/// One row of `nodes`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = nodes)]
pub struct Node {
    pub id: i32,
    pub uuid: String,
    pub instance_uuid: Option<String>,
    pub instance_name: Option<String>,
    pub name: Option<String>,
    pub chassis_id: Option<i32>,
    pub power_state: Option<String>,
    pub target_power_state: Option<String>,
    pub provision_state: String,
    pub target_provision_state: Option<String>,
    pub provision_updated_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub instance_info: String,
    pub properties: String,
    pub driver: String,
    pub driver_info: String,
    pub driver_internal_info: String,
    pub clean_step: String,
    pub deploy_step: String,
    pub service_step: String,
    pub resource_class: Option<String>,
    pub raid_config: String,
    pub target_raid_config: String,
    pub reservation: Option<String>,
    pub conductor_affinity: Option<i32>,
    pub conductor_group: String,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub fault: Option<String>,
    pub console_enabled: bool,
    pub inspection_started_at: Option<NaiveDateTime>,
    pub inspection_finished_at: Option<NaiveDateTime>,
    pub extra: String,
    pub automated_clean: Option<bool>,
    pub protected: bool,
    pub protected_reason: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    pub allocation_id: Option<i32>,
    pub description: Option<String>,
    pub bios_interface: Option<String>,
    pub boot_interface: Option<String>,
    pub console_interface: Option<String>,
    pub deploy_interface: Option<String>,
    pub firmware_interface: Option<String>,
    pub inspect_interface: Option<String>,
    pub management_interface: Option<String>,
    pub network_interface: Option<String>,
    pub power_interface: Option<String>,
    pub raid_interface: Option<String>,
    pub rescue_interface: Option<String>,
    pub storage_interface: Option<String>,
    pub vendor_interface: Option<String>,
    pub retired: bool,
    pub retired_reason: Option<String>,
    pub network_data: String,
    pub boot_mode: Option<String>,
    pub secure_boot: Option<bool>,
    pub shard: Option<String>,
    pub parent_node: Option<String>,
    pub disable_power_off: bool,
    pub health: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// The columns a user may write: used for create (as an insert) and for
/// PATCH (as a whole-row changeset, `None` meaning NULL).
#[derive(Debug, Clone, Insertable, AsChangeset, Default)]
#[diesel(table_name = nodes, treat_none_as_null = true)]
pub struct NodeFields {
    pub instance_uuid: Option<String>,
    pub instance_name: Option<String>,
    pub name: Option<String>,
    pub chassis_id: Option<i32>,
    pub instance_info: String,
    pub properties: String,
    pub driver: String,
    pub driver_info: String,
    pub resource_class: Option<String>,
    pub conductor_group: String,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub fault: Option<String>,
    pub extra: String,
    pub automated_clean: Option<bool>,
    pub protected: bool,
    pub protected_reason: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    pub description: Option<String>,
    pub bios_interface: Option<String>,
    pub boot_interface: Option<String>,
    pub console_interface: Option<String>,
    pub deploy_interface: Option<String>,
    pub firmware_interface: Option<String>,
    pub inspect_interface: Option<String>,
    pub management_interface: Option<String>,
    pub network_interface: Option<String>,
    pub power_interface: Option<String>,
    pub raid_interface: Option<String>,
    pub rescue_interface: Option<String>,
    pub storage_interface: Option<String>,
    pub vendor_interface: Option<String>,
    pub retired: bool,
    pub retired_reason: Option<String>,
    pub network_data: String,
    pub shard: Option<String>,
    pub parent_node: Option<String>,
    pub disable_power_off: bool,
}

impl NodeFields {
    /// The writable fields of an existing row, to be patched.
    pub fn from_node(node: &Node) -> NodeFields {
        NodeFields {
            instance_uuid: node.instance_uuid.clone(),
            instance_name: node.instance_name.clone(),
            name: node.name.clone(),
            chassis_id: node.chassis_id,
            instance_info: node.instance_info.clone(),
            properties: node.properties.clone(),
            driver: node.driver.clone(),
            driver_info: node.driver_info.clone(),
            resource_class: node.resource_class.clone(),
            conductor_group: node.conductor_group.clone(),
            maintenance: node.maintenance,
            maintenance_reason: node.maintenance_reason.clone(),
            fault: node.fault.clone(),
            extra: node.extra.clone(),
            automated_clean: node.automated_clean,
            protected: node.protected,
            protected_reason: node.protected_reason.clone(),
            owner: node.owner.clone(),
            lessee: node.lessee.clone(),
            description: node.description.clone(),
            bios_interface: node.bios_interface.clone(),
            boot_interface: node.boot_interface.clone(),
            console_interface: node.console_interface.clone(),
            deploy_interface: node.deploy_interface.clone(),
            firmware_interface: node.firmware_interface.clone(),
            inspect_interface: node.inspect_interface.clone(),
            management_interface: node.management_interface.clone(),
            network_interface: node.network_interface.clone(),
            power_interface: node.power_interface.clone(),
            raid_interface: node.raid_interface.clone(),
            rescue_interface: node.rescue_interface.clone(),
            storage_interface: node.storage_interface.clone(),
            vendor_interface: node.vendor_interface.clone(),
            retired: node.retired,
            retired_reason: node.retired_reason.clone(),
            network_data: node.network_data.clone(),
            shard: node.shard.clone(),
            parent_node: node.parent_node.clone(),
            disable_power_off: node.disable_power_off,
        }
    }
}

/// Columns only set when a node is created.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = nodes)]
struct NodeCreateColumns {
    uuid: String,
    provision_state: String,
    power_state: Option<String>,
    created_at: NaiveDateTime,
}

/// Filters of `GET /v1/nodes`; `None` means "not filtered".
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub driver: Option<String>,
    pub provision_state: Option<String>,
    pub maintenance: Option<bool>,
    pub associated: Option<bool>,
    pub instance_uuid: Option<String>,
    pub resource_class: Option<String>,
    pub chassis_id: Option<i32>,
    pub conductor_group: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    pub project: Option<String>,
    pub fault: Option<String>,
    pub description_contains: Option<String>,
    /// The name or UUID contains this text (the console's search).
    pub name_or_uuid_contains: Option<String>,
    pub shards: Option<Vec<String>>,
    pub sharded: Option<bool>,
    pub retired: Option<bool>,
    pub parent_node: Option<String>,
    pub instance_name: Option<String>,
    /// Only nodes without a parent (Ironic's default from 1.83).
    pub without_children: bool,
}

/// Sort keys a node list accepts (JSON columns are refused by the API).
pub const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "created_at",
    "updated_at",
    "provision_state",
    "power_state",
    "target_power_state",
    "target_provision_state",
    "provision_updated_at",
    "driver",
    "maintenance",
    "instance_uuid",
    "resource_class",
    "conductor_group",
    "owner",
    "lessee",
    "chassis_id",
    "reservation",
    "fault",
    "retired",
    "shard",
    "description",
];

type BoxedNodes<'a> = nodes::BoxedQuery<
    'a,
    AnyBackend,
    diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<Node, AnyBackend>>,
>;

/// Applies order and keyset pagination on one column: NULLs sort last going
/// up and first going down, on both backends; ties are broken by `id`.
macro_rules! order_and_seek {
    ($query:expr, $column:expr, $dir:expr, $marker:expr, $value:expr) => {{
        let mut query = $query;
        match $dir {
            SortDir::Asc => {
                query = query
                    .order($column.is_null().asc())
                    .then_order_by($column.asc())
                    .then_order_by(nodes::id.asc());
                if let Some(marker) = $marker {
                    let marker_id: i32 = marker.id;
                    match $value(marker) {
                        Some(value) => {
                            query = query.filter(
                                $column
                                    .gt(value.clone())
                                    .or($column.eq(value).and(nodes::id.gt(marker_id)))
                                    .or($column.is_null()),
                            )
                        }
                        None => {
                            query = query.filter($column.is_null().and(nodes::id.gt(marker_id)))
                        }
                    }
                }
            }
            SortDir::Desc => {
                query = query
                    .order($column.is_null().desc())
                    .then_order_by($column.desc())
                    .then_order_by(nodes::id.desc());
                if let Some(marker) = $marker {
                    let marker_id: i32 = marker.id;
                    match $value(marker) {
                        Some(value) => {
                            query = query.filter(
                                $column
                                    .lt(value.clone())
                                    .or($column.eq(value).and(nodes::id.lt(marker_id))),
                            )
                        }
                        None => {
                            query = query.filter(
                                $column
                                    .is_null()
                                    .and(nodes::id.lt(marker_id))
                                    .or($column.is_not_null()),
                            )
                        }
                    }
                }
            }
        }
        query
    }};
}

/// A `LIKE` pattern (escape `\\`) matching values that contain `text`.
fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

impl Node {
    /// How many nodes are in each (provision state, power state).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn count_by_state(
        conn: &mut AnyConnection,
    ) -> Result<Vec<(String, Option<String>, i64)>, DbError> {
        Ok(nodes::table
            .group_by((nodes::provision_state, nodes::power_state))
            .select((
                nodes::provision_state,
                nodes::power_state,
                diesel::dsl::count_star(),
            ))
            .load(conn)?)
    }

    /// Every node's `(uuid, conductor_group, driver)`: what the hash ring
    /// places it by.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn ring_places(conn: &mut AnyConnection) -> Result<Vec<(String, String, String)>, DbError> {
        Ok(nodes::table
            .select((nodes::uuid, nodes::conductor_group, nodes::driver))
            .load(conn)?)
    }

    /// UUIDs of the nodes whose `parent_node` is `parent_uuid`, oldest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn children_of(
        conn: &mut AnyConnection,
        parent_uuid: &str,
    ) -> Result<Vec<String>, DbError> {
        Ok(nodes::table
            .filter(nodes::parent_node.eq(parent_uuid))
            .order(nodes::id.asc())
            .select(nodes::uuid)
            .load(conn)?)
    }

    /// How many nodes each shard has (`None`: no shard), most first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn shard_counts(conn: &mut AnyConnection) -> Result<Vec<(Option<String>, i64)>, DbError> {
        let mut counts: Vec<(Option<String>, i64)> = nodes::table
            .group_by(nodes::shard)
            .select((nodes::shard, diesel::dsl::count_star()))
            .load(conn)?;
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        Ok(counts)
    }

    /// Loads a node by UUID.
    pub fn by_uuid(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Node>, DbError> {
        Ok(nodes::table
            .filter(nodes::uuid.eq(uuid))
            .select(Node::as_select())
            .first(conn)
            .optional()?)
    }

    /// Loads a node by UUID or, failing that, by name.
    pub fn by_ident(conn: &mut AnyConnection, ident: &str) -> Result<Option<Node>, DbError> {
        Ok(nodes::table
            .filter(nodes::uuid.eq(ident).or(nodes::name.eq(ident)))
            .select(Node::as_select())
            .order(nodes::id.asc())
            .first(conn)
            .optional()?)
    }

    /// Inserts a node and returns the stored row.
    pub fn insert(
        conn: &mut AnyConnection,
        uuid: &str,
        provision_state: &str,
        power_state: Option<&str>,
        fields: &NodeFields,
    ) -> Result<Node, DbError> {
        let create = NodeCreateColumns {
            uuid: uuid.to_owned(),
            provision_state: provision_state.to_owned(),
            power_state: power_state.map(str::to_owned),
            created_at: now(),
        };
        diesel::insert_into(nodes::table)
            .values((create, fields))
            .execute(conn)?;
        Node::by_uuid(conn, uuid)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
    }

    /// One page of nodes. `marker` is the last node of the previous page.
    pub fn list(
        conn: &mut AnyConnection,
        filter: &NodeFilter,
        page: &Page,
        marker: Option<&Node>,
    ) -> Result<Vec<Node>, DbError> {
        let mut query: BoxedNodes<'_> = nodes::table.select(Node::as_select()).into_boxed();
        if let Some(v) = &filter.driver {
            query = query.filter(nodes::driver.eq(v.clone()));
        }
        if let Some(v) = &filter.provision_state {
            query = query.filter(nodes::provision_state.eq(v.clone()));
        }
        if let Some(v) = filter.maintenance {
            query = query.filter(nodes::maintenance.eq(v));
        }
        if let Some(v) = filter.associated {
            query = if v {
                query.filter(nodes::instance_uuid.is_not_null())
            } else {
                query.filter(nodes::instance_uuid.is_null())
            };
        }
        if let Some(v) = &filter.instance_uuid {
            query = query.filter(nodes::instance_uuid.eq(v.clone()));
        }
        if let Some(v) = &filter.resource_class {
            query = query.filter(nodes::resource_class.eq(v.clone()));
        }
        if let Some(v) = filter.chassis_id {
            query = query.filter(nodes::chassis_id.eq(v));
        }
        if let Some(v) = &filter.conductor_group {
            query = query.filter(nodes::conductor_group.eq(v.to_lowercase()));
        }
        if let Some(v) = &filter.owner {
            query = query.filter(nodes::owner.eq(v.clone()));
        }
        if let Some(v) = &filter.lessee {
            query = query.filter(nodes::lessee.eq(v.clone()));
        }
        if let Some(v) = &filter.project {
            query = query.filter(nodes::owner.eq(v.clone()).or(nodes::lessee.eq(v.clone())));
        }
        if let Some(v) = &filter.fault {
            query = query.filter(nodes::fault.eq(v.clone()));
        }
        if let Some(v) = &filter.description_contains {
            let pattern = like_pattern(v);
            query = query.filter(nodes::description.like(pattern).escape('\\'));
        }
        if let Some(v) = &filter.name_or_uuid_contains {
            let pattern = like_pattern(v);
            query = query.filter(
                nodes::name
                    .like(pattern.clone())
                    .escape('\\')
                    .or(nodes::uuid.like(pattern).escape('\\')),
            );
        }
        if let Some(v) = &filter.shards {
            query = query.filter(nodes::shard.eq_any(v.clone()));
        }
        if let Some(v) = filter.sharded {
            query = if v {
                query.filter(nodes::shard.is_not_null())
            } else {
                query.filter(nodes::shard.is_null())
            };
        }
        if let Some(v) = filter.retired {
            query = query.filter(nodes::retired.eq(v));
        }
        if let Some(v) = &filter.parent_node {
            query = query.filter(nodes::parent_node.eq(v.clone()));
        }
        if let Some(v) = &filter.instance_name {
            query = query.filter(nodes::instance_name.eq(v.clone()));
        }
        if filter.without_children {
            query = query.filter(nodes::parent_node.is_null());
        }
        let dir = page.sort_dir;
        query = match page.sort_key.as_str() {
            "uuid" => order_and_seek!(query, nodes::uuid, dir, marker, |n: &Node| Some(
                n.uuid.clone()
            )),
            "name" => order_and_seek!(query, nodes::name, dir, marker, |n: &Node| n.name.clone()),
            "created_at" => {
                order_and_seek!(query, nodes::created_at, dir, marker, |n: &Node| Some(
                    n.created_at
                ))
            }
            "updated_at" => order_and_seek!(query, nodes::updated_at, dir, marker, |n: &Node| n
                .updated_at),
            "provision_state" => {
                order_and_seek!(query, nodes::provision_state, dir, marker, |n: &Node| Some(
                    n.provision_state.clone()
                ))
            }
            "power_state" => order_and_seek!(query, nodes::power_state, dir, marker, |n: &Node| n
                .power_state
                .clone()),
            "target_power_state" => {
                order_and_seek!(query, nodes::target_power_state, dir, marker, |n: &Node| n
                    .target_power_state
                    .clone())
            }
            "target_provision_state" => order_and_seek!(
                query,
                nodes::target_provision_state,
                dir,
                marker,
                |n: &Node| n.target_provision_state.clone()
            ),
            "provision_updated_at" => order_and_seek!(
                query,
                nodes::provision_updated_at,
                dir,
                marker,
                |n: &Node| n.provision_updated_at
            ),
            "driver" => order_and_seek!(query, nodes::driver, dir, marker, |n: &Node| Some(
                n.driver.clone()
            )),
            "maintenance" => {
                order_and_seek!(query, nodes::maintenance, dir, marker, |n: &Node| Some(
                    n.maintenance
                ))
            }
            "instance_uuid" => {
                order_and_seek!(query, nodes::instance_uuid, dir, marker, |n: &Node| n
                    .instance_uuid
                    .clone())
            }
            "resource_class" => {
                order_and_seek!(query, nodes::resource_class, dir, marker, |n: &Node| n
                    .resource_class
                    .clone())
            }
            "conductor_group" => {
                order_and_seek!(query, nodes::conductor_group, dir, marker, |n: &Node| Some(
                    n.conductor_group.clone()
                ))
            }
            "owner" => {
                order_and_seek!(query, nodes::owner, dir, marker, |n: &Node| n.owner.clone())
            }
            "lessee" => order_and_seek!(query, nodes::lessee, dir, marker, |n: &Node| n
                .lessee
                .clone()),
            "chassis_id" => order_and_seek!(query, nodes::chassis_id, dir, marker, |n: &Node| n
                .chassis_id),
            "reservation" => order_and_seek!(query, nodes::reservation, dir, marker, |n: &Node| n
                .reservation
                .clone()),
            "fault" => {
                order_and_seek!(query, nodes::fault, dir, marker, |n: &Node| n.fault.clone())
            }
            "retired" => order_and_seek!(query, nodes::retired, dir, marker, |n: &Node| Some(
                n.retired
            )),
            "shard" => {
                order_and_seek!(query, nodes::shard, dir, marker, |n: &Node| n.shard.clone())
            }
            "description" => order_and_seek!(query, nodes::description, dir, marker, |n: &Node| n
                .description
                .clone()),
            // `id` is never NULL: a plain `ORDER BY id` and `id > marker` let
            // both databases walk the primary key instead of sorting every
            // row for each page (10,000 nodes on PostgreSQL: 13 ms a page).
            _ => match dir {
                SortDir::Asc => {
                    let query = query.order(nodes::id.asc());
                    match marker {
                        Some(marker) => query.filter(nodes::id.gt(marker.id)),
                        None => query,
                    }
                }
                SortDir::Desc => {
                    let query = query.order(nodes::id.desc());
                    match marker {
                        Some(marker) => query.filter(nodes::id.lt(marker.id)),
                        None => query,
                    }
                }
            },
        };
        Ok(query.limit(page.limit).load(conn)?)
    }

    /// Writes the user-writable fields of `node`, only while it is unlocked
    /// and unchanged since it was read (its `updated_at`), so a concurrent
    /// write is never overwritten from a stale copy. Returns the new row, or
    /// `None` when the node was locked or changed meanwhile.
    pub fn update_fields(
        conn: &mut AnyConnection,
        node: &Node,
        fields: &NodeFields,
    ) -> Result<Option<Node>, DbError> {
        conn.transaction(|conn| {
            let unlocked = nodes::table
                .filter(nodes::id.eq(node.id))
                .filter(nodes::reservation.is_null());
            let changes = (fields, nodes::updated_at.eq(Some(now())));
            let n = match node.updated_at {
                Some(seen) => diesel::update(unlocked.filter(nodes::updated_at.eq(seen)))
                    .set(changes)
                    .execute(conn)?,
                None => diesel::update(unlocked.filter(nodes::updated_at.is_null()))
                    .set(changes)
                    .execute(conn)?,
            };
            if n == 0 {
                return Ok(None);
            }
            if let Some(allocation_id) = node.allocation_id
                && fields.instance_uuid.is_none()
            {
                // Removing the instance ends its allocation, as in Ironic.
                diesel::delete(allocations::table.find(allocation_id)).execute(conn)?;
                diesel::update(nodes::table.find(node.id))
                    .set(nodes::allocation_id.eq(None::<i32>))
                    .execute(conn)?;
            }
            Node::by_id(conn, node.id)
        })
    }

    /// Deletes `node` (ports, traits and history go with it) if it is
    /// unlocked and unchanged since it was read. Returns false otherwise.
    pub fn delete_unchanged(conn: &mut AnyConnection, node: &Node) -> Result<bool, DbError> {
        conn.transaction(|conn| {
            let unlocked = nodes::table
                .filter(nodes::id.eq(node.id))
                .filter(nodes::reservation.is_null());
            let n = match node.updated_at {
                Some(seen) => {
                    diesel::delete(unlocked.filter(nodes::updated_at.eq(seen))).execute(conn)?
                }
                None => {
                    diesel::delete(unlocked.filter(nodes::updated_at.is_null())).execute(conn)?
                }
            };
            if n == 1 {
                // Its allocation goes with it, as in Ironic.
                diesel::delete(allocations::table.filter(allocations::node_id.eq(node.id)))
                    .execute(conn)?;
            }
            Ok::<_, DbError>(n == 1)
        })
    }

    /// Takes the node's exclusive lock for `host`: one conditional UPDATE.
    /// Returns false when another holder has it.
    pub fn try_reserve(conn: &mut AnyConnection, id: i32, host: &str) -> Result<bool, DbError> {
        let n = diesel::update(
            nodes::table
                .filter(nodes::id.eq(id))
                .filter(nodes::reservation.is_null()),
        )
        .set(nodes::reservation.eq(Some(host)))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Releases the lock if `host` holds it.
    pub fn release(conn: &mut AnyConnection, id: i32, host: &str) -> Result<bool, DbError> {
        let n = diesel::update(
            nodes::table
                .filter(nodes::id.eq(id))
                .filter(nodes::reservation.eq(host)),
        )
        .set(nodes::reservation.eq(None::<String>))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// A failed flow's `last_error`: `<state> failed on conductor <host>:
    /// <error>` (written by the flow itself, or by [`Node::settle_for`]).
    pub fn flow_failure(
        state: crate::states::ProvisionState,
        host: &str,
        error: &dyn std::fmt::Display,
    ) -> String {
        format!("{state} failed on conductor {host}: {error}")
    }

    /// Settles node `id`, whose outcome `host` could not write while the
    /// database was away: in one transaction, when `host` still holds it,
    /// moves it from a transitional state to its failed one (when `error`
    /// says the work failed; `last_error` as [`Node::flow_failure`] words
    /// it) and releases the lock.
    pub fn settle_for(
        conn: &mut AnyConnection,
        id: i32,
        host: &str,
        error: Option<&str>,
    ) -> Result<Settled, DbError> {
        conn.transaction(|conn| {
            let Some(node) = Node::by_id(conn, id)? else {
                return Ok(Settled::NotHeld);
            };
            if node.reservation.as_deref() != Some(host) {
                return Ok(Settled::NotHeld);
            }
            let state = node
                .provision_state
                .parse::<crate::states::ProvisionState>()
                .ok()
                .filter(|s| !s.is_stable());
            let failed = state.and_then(|s| Some((s, s.next(crate::states::Event::Fail)?)));
            let mut settled = Settled::Released;
            if let (Some(error), Some((state, failed))) = (error, failed) {
                let reason = Node::flow_failure(state, host, &error);
                let mut change = StateChange::provision(failed);
                change.last_error = Some(Some(reason.clone()));
                if Node::write_state(conn, id, host, &change)? {
                    settled = Settled::Failed(Box::new(node), failed, reason);
                }
            }
            Node::release(conn, id, host)?;
            Ok(settled)
        })
    }

    /// Clears every lock `host` holds (a conductor starting or leaving).
    pub fn release_all_for(conn: &mut AnyConnection, host: &str) -> Result<usize, DbError> {
        Ok(
            diesel::update(nodes::table.filter(nodes::reservation.eq(host)))
                .set(nodes::reservation.eq(None::<String>))
                .execute(conn)?,
        )
    }

    /// Writes a state change made by the lock holder `host`.
    pub fn write_state(
        conn: &mut AnyConnection,
        id: i32,
        host: &str,
        change: &StateChange,
    ) -> Result<bool, DbError> {
        let change = change.redacted();
        let n = diesel::update(
            nodes::table
                .filter(nodes::id.eq(id))
                .filter(nodes::reservation.eq(host)),
        )
        .set((&change, nodes::updated_at.eq(Some(now()))))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Every locked node.
    pub fn reserved(conn: &mut AnyConnection) -> Result<Vec<Node>, DbError> {
        Ok(nodes::table
            .filter(nodes::reservation.is_not_null())
            .select(Node::as_select())
            .load(conn)?)
    }

    /// Unlocked nodes whose power interface is one of `power_interfaces`.
    pub fn unreserved_with_power_interfaces(
        conn: &mut AnyConnection,
        power_interfaces: &[&str],
    ) -> Result<Vec<Node>, DbError> {
        Ok(nodes::table
            .filter(nodes::power_interface.eq_any(power_interfaces))
            .filter(nodes::reservation.is_null())
            .select(Node::as_select())
            .load(conn)?)
    }

    /// Puts a node this host holds into maintenance with `reason` and
    /// `fault`, unless it is in maintenance already (an operator's reason
    /// is never overwritten).
    pub fn enter_maintenance(
        conn: &mut AnyConnection,
        id: i32,
        host: &str,
        reason: &str,
        fault: &str,
    ) -> Result<bool, DbError> {
        let n = diesel::update(
            nodes::table
                .filter(nodes::id.eq(id))
                .filter(nodes::reservation.eq(host))
                .filter(nodes::maintenance.eq(false)),
        )
        .set((
            nodes::maintenance.eq(true),
            nodes::maintenance_reason.eq(Some(reason)),
            nodes::fault.eq(Some(fault)),
            nodes::updated_at.eq(Some(now())),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Unlocked nodes in any of `states`.
    pub fn unreserved_in_states(
        conn: &mut AnyConnection,
        states: &[&str],
    ) -> Result<Vec<Node>, DbError> {
        Ok(nodes::table
            .filter(nodes::provision_state.eq_any(states))
            .filter(nodes::reservation.is_null())
            .select(Node::as_select())
            .load(conn)?)
    }

    /// The node's traits, in insertion order.
    pub fn traits(conn: &mut AnyConnection, node_id: i32) -> Result<Vec<String>, DbError> {
        Ok(node_traits::table
            .filter(node_traits::node_id.eq(node_id))
            .select(node_traits::trait_name)
            .order((node_traits::created_at.asc(), node_traits::trait_name.asc()))
            .load(conn)?)
    }

    /// Traits of many nodes in one query, keyed by node id.
    pub fn traits_of(
        conn: &mut AnyConnection,
        node_ids: &[i32],
    ) -> Result<std::collections::HashMap<i32, Vec<String>>, DbError> {
        let rows: Vec<(i32, String)> = node_traits::table
            .filter(node_traits::node_id.eq_any(node_ids))
            .select((node_traits::node_id, node_traits::trait_name))
            .order((node_traits::created_at.asc(), node_traits::trait_name.asc()))
            .load(conn)?;
        let mut map = std::collections::HashMap::<i32, Vec<String>>::new();
        for (id, name) in rows {
            map.entry(id).or_default().push(name);
        }
        Ok(map)
    }

    /// Replaces all traits of a node.
    pub fn set_traits(
        conn: &mut AnyConnection,
        node_id: i32,
        traits: &[String],
    ) -> Result<(), DbError> {
        conn.transaction(|conn| {
            diesel::delete(node_traits::table.filter(node_traits::node_id.eq(node_id)))
                .execute(conn)?;
            let created_at = now();
            for name in traits {
                diesel::insert_into(node_traits::table)
                    .values((
                        node_traits::node_id.eq(node_id),
                        node_traits::trait_name.eq(name),
                        node_traits::created_at.eq(created_at),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// Adds one trait (no-op when present, also under a concurrent add).
    pub fn add_trait(conn: &mut AnyConnection, node_id: i32, name: &str) -> Result<(), DbError> {
        match Node::insert_trait(conn, node_id, name) {
            Err(e) if e.is_unique_violation() => Ok(()),
            other => other,
        }
    }

    fn insert_trait(conn: &mut AnyConnection, node_id: i32, name: &str) -> Result<(), DbError> {
        let exists: i64 = node_traits::table
            .filter(node_traits::node_id.eq(node_id))
            .filter(node_traits::trait_name.eq(name))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            diesel::insert_into(node_traits::table)
                .values((
                    node_traits::node_id.eq(node_id),
                    node_traits::trait_name.eq(name),
                    node_traits::created_at.eq(now()),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Removes one trait; false when the node did not have it.
    pub fn remove_trait(
        conn: &mut AnyConnection,
        node_id: i32,
        name: &str,
    ) -> Result<bool, DbError> {
        let n = diesel::delete(
            node_traits::table
                .filter(node_traits::node_id.eq(node_id))
                .filter(node_traits::trait_name.eq(name)),
        )
        .execute(conn)?;
        Ok(n > 0)
    }

    /// How many nodes sit in a chassis.
    pub fn count_in_chassis(conn: &mut AnyConnection, chassis_id: i32) -> Result<i64, DbError> {
        Ok(nodes::table
            .filter(nodes::chassis_id.eq(chassis_id))
            .count()
            .get_result(conn)?)
    }
}

/// Columns the conductor writes while it holds a node's lock.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = nodes)]
pub struct StateChange {
    pub provision_state: Option<String>,
    /// `Some(None)` clears the column.
    pub target_provision_state: Option<Option<String>>,
    pub provision_updated_at: Option<Option<NaiveDateTime>>,
    pub power_state: Option<Option<String>>,
    pub target_power_state: Option<Option<String>>,
    pub last_error: Option<Option<String>>,
    pub driver_internal_info: Option<String>,
    pub clean_step: Option<String>,
    pub deploy_step: Option<String>,
    pub instance_info: Option<String>,
    pub instance_uuid: Option<Option<String>>,
    pub instance_name: Option<Option<String>>,
    pub boot_mode: Option<Option<String>>,
    pub secure_boot: Option<Option<bool>>,
    pub inspection_started_at: Option<Option<NaiveDateTime>>,
    pub inspection_finished_at: Option<Option<NaiveDateTime>>,
    pub properties: Option<String>,
    pub extra: Option<String>,
    pub maintenance: Option<bool>,
    pub maintenance_reason: Option<Option<String>>,
    pub fault: Option<Option<String>>,
}

/// What a flow's state write carries beyond the node's own columns, in the
/// same transaction.
#[derive(Debug, Clone, Copy, Default)]
pub enum AlsoWritten<'a> {
    #[default]
    Nothing,
    /// Tear-down's end: the node's allocation goes.
    AllocationDestroyed(i32),
    /// An inspection's end: its ports, traits and stored data.
    Inspection(&'a super::inventory::InspectionRecord),
}

impl StateChange {
    /// This change with the passwords of URLs in its `last_error` masked:
    /// what every write stores.
    pub fn redacted(&self) -> StateChange {
        let mut change = self.clone();
        if let Some(Some(error)) = &mut change.last_error {
            *error = crate::redact::url_credentials(error).into_owned();
        }
        change
    }

    /// Moves to `state` with its target, stamping `provision_updated_at`.
    pub fn provision(state: crate::states::ProvisionState) -> StateChange {
        StateChange {
            provision_state: Some(state.as_str().to_owned()),
            target_provision_state: Some(state.target().map(|t| t.as_str().to_owned())),
            provision_updated_at: Some(Some(now())),
            ..StateChange::default()
        }
    }
}

impl Node {
    /// Loads a node by its internal id.
    pub fn by_id(conn: &mut AnyConnection, id: i32) -> Result<Option<Node>, DbError> {
        Ok(nodes::table
            .find(id)
            .select(Node::as_select())
            .first(conn)
            .optional()?)
    }

    /// Which of `uuids` name existing nodes (one query).
    pub fn existing_uuids(
        conn: &mut AnyConnection,
        uuids: &[String],
    ) -> Result<std::collections::HashSet<String>, DbError> {
        Ok(nodes::table
            .filter(nodes::uuid.eq_any(uuids))
            .select(nodes::uuid)
            .load::<String>(conn)?
            .into_iter()
            .collect())
    }

    /// UUIDs of several nodes in one query, keyed by id.
    pub fn uuids_of(
        conn: &mut AnyConnection,
        ids: &[i32],
    ) -> Result<std::collections::HashMap<i32, String>, DbError> {
        let rows: Vec<(i32, String)> = nodes::table
            .filter(nodes::id.eq_any(ids))
            .select((nodes::id, nodes::uuid))
            .load(conn)?;
        Ok(rows.into_iter().collect())
    }

    /// `known` (node id → UUID) completed with the UUIDs of `ids` it lacks,
    /// in one query.
    pub fn uuids_completing(
        conn: &mut AnyConnection,
        mut known: std::collections::HashMap<i32, String>,
        ids: impl Iterator<Item = i32>,
    ) -> Result<std::collections::HashMap<i32, String>, DbError> {
        let missing: Vec<i32> = ids.filter(|id| !known.contains_key(id)).collect();
        if !missing.is_empty() {
            known.extend(Node::uuids_of(conn, &missing)?);
        }
        Ok(known)
    }
}

impl Node {
    /// Nodes an allocation may take: `available`, not in maintenance, not
    /// associated, with a known power state, of `resource_class`; among
    /// `candidates` (UUIDs) and owned or leased by `project` when given.
    pub fn allocation_candidates(
        conn: &mut AnyConnection,
        resource_class: &str,
        candidates: &[String],
        project: Option<&str>,
    ) -> Result<Vec<Node>, DbError> {
        let mut query = nodes::table
            .filter(nodes::resource_class.eq(resource_class))
            .filter(nodes::provision_state.eq("available"))
            .filter(nodes::maintenance.eq(false))
            .filter(nodes::instance_uuid.is_null())
            .filter(nodes::allocation_id.is_null())
            .filter(nodes::power_state.is_not_null())
            .select(Node::as_select())
            .into_boxed();
        if !candidates.is_empty() {
            query = query.filter(nodes::uuid.eq_any(candidates));
        }
        if let Some(project) = project {
            query = query.filter(
                nodes::owner
                    .eq(project.to_owned())
                    .or(nodes::lessee.eq(project.to_owned())),
            );
        }
        Ok(query.order(nodes::id.asc()).load(conn)?)
    }
}

/// Descriptive node columns the API writes itself while the node is
/// unlocked (the console flag of consoles that need no conductor work, the
/// requested RAID layout).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = nodes)]
pub struct NodeSettings {
    pub console_enabled: Option<bool>,
    pub target_raid_config: Option<String>,
}

impl Node {
    /// Writes `settings` if the node is unlocked; false otherwise.
    pub fn write_settings(
        conn: &mut AnyConnection,
        id: i32,
        settings: &NodeSettings,
    ) -> Result<bool, DbError> {
        Ok(
            diesel::update(nodes::table.find(id).filter(nodes::reservation.is_null()))
                .set((settings, nodes::updated_at.eq(Some(now()))))
                .execute(conn)?
                == 1,
        )
    }
}

impl Node {
    /// Sets `console_enabled` and `driver_internal_info` together if the
    /// node is unlocked and its `driver_internal_info` is still `seen`;
    /// false otherwise (nothing written).
    pub fn write_console(
        conn: &mut AnyConnection,
        id: i32,
        seen: &str,
        enabled: bool,
        internal: &str,
    ) -> Result<bool, DbError> {
        Ok(diesel::update(
            nodes::table
                .find(id)
                .filter(nodes::reservation.is_null())
                .filter(nodes::driver_internal_info.eq(seen)),
        )
        .set((
            nodes::console_enabled.eq(enabled),
            nodes::driver_internal_info.eq(internal),
            nodes::updated_at.eq(Some(now())),
        ))
        .execute(conn)?
            == 1)
    }
}

/// What [`Node::merge_internal_info`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalInfoMerge {
    Merged,
    /// Another host holds the node's lock.
    Locked(String),
    NotFound,
    /// [`MergeGuard::Absent`]'s key was already there.
    AlreadyPresent,
    /// A key of [`MergeGuard::AbsentOrSame`] holds another value (named).
    Differs(String),
    /// Other writers kept changing the value; nothing was written.
    Contended,
}

/// What [`Node::merge_internal_info`] requires of the keys already there.
#[derive(Debug, Clone, Copy)]
pub enum MergeGuard<'a> {
    /// Nothing.
    None,
    /// Write only when this key is absent (first writer wins).
    Absent(&'a str),
    /// Write only when each of these keys is absent or already holds the
    /// value being written (a value pinned by the first writer).
    AbsentOrSame(&'a [&'a str]),
}

/// Key changes of a `driver_internal_info`: `Some` sets the value (which
/// may be `null`), `None` removes the key.
type InfoChanges = Vec<(String, Option<serde_json::Value>)>;

/// `changes` applied to a `driver_internal_info` text.
fn merged_info(current: &str, changes: &InfoChanges) -> String {
    let mut info: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(current).unwrap_or_default();
    for (key, value) in changes {
        match value {
            Some(value) => {
                info.insert(key.clone(), value.clone());
            }
            None => {
                info.remove(key);
            }
        }
    }
    serde_json::Value::Object(info).to_string()
}

/// The keys `new` sets, changes or removes relative to `old`, so a writer
/// applies only its own changes to the current value.
fn internal_info_changes(old: &str, new: &str) -> InfoChanges {
    let old: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(old).unwrap_or_default();
    let new: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(new).unwrap_or_default();
    let mut changes: InfoChanges = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect();
    changes.extend(
        old.keys()
            .filter(|key| !new.contains_key(*key))
            .map(|key| (key.clone(), None)),
    );
    changes
}

impl Node {
    /// Sets (or, for `null` values, removes) keys of a node's
    /// `driver_internal_info` without touching the others, while no host
    /// other than `host` holds the node's lock (checked by the write
    /// itself). The write only lands on the value it read, so a concurrent
    /// writer is never overwritten; the read is retried a few times.
    /// Nothing is written when `guard` does not hold on the value read.
    pub fn merge_internal_info(
        conn: &mut AnyConnection,
        id: i32,
        host: &str,
        entries: &serde_json::Map<String, serde_json::Value>,
        guard: MergeGuard<'_>,
    ) -> Result<InternalInfoMerge, DbError> {
        for _ in 0..5 {
            let Some(node) = Node::by_id(conn, id)? else {
                return Ok(InternalInfoMerge::NotFound);
            };
            if let Some(holder) = node.reservation.filter(|h| h != host) {
                return Ok(InternalInfoMerge::Locked(holder));
            }
            let info: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&node.driver_internal_info).unwrap_or_default();
            let present = |key: &str| info.get(key).filter(|v| !v.is_null());
            match guard {
                MergeGuard::None => {}
                MergeGuard::Absent(key) => {
                    if present(key).is_some() {
                        return Ok(InternalInfoMerge::AlreadyPresent);
                    }
                }
                MergeGuard::AbsentOrSame(keys) => {
                    for key in keys {
                        if let (Some(known), Some(new)) = (present(key), entries.get(*key))
                            && known != new
                        {
                            return Ok(InternalInfoMerge::Differs((*key).to_owned()));
                        }
                    }
                }
            }
            let changes: InfoChanges = entries
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone()).filter(|v| !v.is_null())))
                .collect();
            let new = merged_info(&node.driver_internal_info, &changes);
            let n = diesel::update(
                nodes::table
                    .find(id)
                    .filter(nodes::driver_internal_info.eq(&node.driver_internal_info))
                    .filter(nodes::reservation.is_null().or(nodes::reservation.eq(host))),
            )
            .set((
                nodes::driver_internal_info.eq(&new),
                nodes::updated_at.eq(Some(now())),
            ))
            .execute(conn)?;
            if n == 1 {
                return Ok(InternalInfoMerge::Merged);
            }
        }
        Ok(InternalInfoMerge::Contended)
    }

    /// A provision flow's write under `host`'s lock: `change` with its
    /// `driver_internal_info` applied as the keys it changed relative to
    /// `seen_internal` (what the flow read), so keys others merged
    /// meanwhile (an agent's token) survive; with `destroy_allocation`, that
    /// allocation is deleted and the node's `allocation_id` cleared in the
    /// same transaction. False when the lock is no longer `host`'s.
    pub fn write_flow_state(
        conn: &mut AnyConnection,
        id: i32,
        host: &str,
        change: &StateChange,
        seen_internal: &str,
        also: AlsoWritten<'_>,
    ) -> Result<bool, DbError> {
        let changes = change
            .driver_internal_info
            .as_deref()
            .map(|new| internal_info_changes(seen_internal, new));
        // Reads stay outside the transaction, which only writes: SQLite
        // cannot upgrade a reading transaction while another writes.
        for _ in 0..5 {
            let Some(node) = Node::by_id(conn, id)? else {
                return Ok(false);
            };
            if node.reservation.as_deref() != Some(host) {
                return Ok(false);
            }
            let mut change = change.redacted();
            if let Some(changes) = &changes {
                change.driver_internal_info =
                    Some(merged_info(&node.driver_internal_info, changes));
            }
            let written = conn.transaction(|conn| {
                let n = diesel::update(
                    nodes::table
                        .find(id)
                        .filter(nodes::reservation.eq(host))
                        .filter(nodes::driver_internal_info.eq(&node.driver_internal_info)),
                )
                .set((&change, nodes::updated_at.eq(Some(now()))))
                .execute(conn)?;
                if n == 1 {
                    match also {
                        AlsoWritten::Nothing => {}
                        AlsoWritten::AllocationDestroyed(allocation_id) => {
                            diesel::delete(allocations::table.find(allocation_id)).execute(conn)?;
                            diesel::update(nodes::table.find(id))
                                .set(nodes::allocation_id.eq(None::<i32>))
                                .execute(conn)?;
                        }
                        AlsoWritten::Inspection(record) => record.write(conn, id)?,
                    }
                }
                Ok::<_, DbError>(n == 1)
            })?;
            if written {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Node {
    /// Stamps `provision_updated_at` (a heartbeat during a wait state).
    pub fn touch_provisioning(conn: &mut AnyConnection, id: i32) -> Result<(), DbError> {
        diesel::update(nodes::table.find(id))
            .set(nodes::provision_updated_at.eq(Some(now())))
            .execute(conn)?;
        Ok(())
    }

    /// Unlocked nodes in `state` since before `before` (wait-state
    /// timeouts).
    pub fn waiting_since(
        conn: &mut AnyConnection,
        state: &str,
        before: NaiveDateTime,
    ) -> Result<Vec<Node>, DbError> {
        Ok(nodes::table
            .filter(nodes::provision_state.eq(state))
            .filter(nodes::reservation.is_null())
            .filter(nodes::provision_updated_at.lt(before))
            .select(Node::as_select())
            .load(conn)?)
    }
}

/// What [`Node::settle_for`] did.
#[derive(Debug)]
pub enum Settled {
    /// Another conductor holds the node (or it is gone): nothing written.
    NotHeld,
    /// Only the lock was released.
    Released,
    /// The node (as it was) moved to this failed state with this
    /// `last_error`; the lock released.
    Failed(Box<Node>, crate::states::ProvisionState, String),
}
