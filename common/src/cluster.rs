//! A snapshot of the conductor cluster as the database tells it: which
//! conductors are alive, which hardware types and interfaces they enable, and
//! the hash rings (one per `<conductor_group>:<hardware_type>`, as Ironic
//! builds them) that map each node to its owning conductor.
//!
//! Invariant: the API and every conductor build the same snapshot from the
//! same rows, so they agree on a node's owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::db::models::conductor::{Conductor, HardwareInterface};
use crate::db::{AnyConnection, DbError};
use crate::hash_ring::{DEFAULT_PARTITIONS, HashRing};

/// Enabled interfaces of one type (e.g. `power`) for a hardware type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceChoice {
    /// Enabled interface names, in registration order.
    pub enabled: Vec<String>,
    pub default: Option<String>,
}

/// The cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    conductors: Vec<Conductor>,
    alive: BTreeSet<String>,
    /// hardware type -> alive hosts enabling it.
    hardware_types: BTreeMap<String, BTreeSet<String>>,
    /// hardware type -> interface type -> choice (from alive conductors).
    interfaces: HashMap<String, BTreeMap<String, InterfaceChoice>>,
    /// `<group>:<hardware type>` -> ring of alive hosts.
    rings: HashMap<String, HashRing>,
}

impl ClusterView {
    /// Reads conductors and their interfaces (two queries).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn load(
        conn: &mut AnyConnection,
        heartbeat_timeout: Duration,
    ) -> Result<ClusterView, DbError> {
        let conductors = Conductor::all(conn)?;
        let rows = Conductor::hardware_interfaces(conn)?;
        Ok(ClusterView::build(conductors, rows, heartbeat_timeout))
    }

    /// Builds the view from rows (pure).
    pub fn build(
        conductors: Vec<Conductor>,
        rows: Vec<HardwareInterface>,
        heartbeat_timeout: Duration,
    ) -> ClusterView {
        let alive_by_id: HashMap<i32, &Conductor> = conductors
            .iter()
            .filter(|c| c.is_alive(heartbeat_timeout))
            .map(|c| (c.id, c))
            .collect();
        let alive = alive_by_id.values().map(|c| c.hostname.clone()).collect();
        let mut hardware_types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut interfaces: HashMap<String, BTreeMap<String, InterfaceChoice>> = HashMap::new();
        let mut ring_hosts: HashMap<String, BTreeSet<String>> = HashMap::new();
        for row in &rows {
            let Some(conductor) = alive_by_id.get(&row.conductor_id) else {
                continue;
            };
            hardware_types
                .entry(row.hardware_type.clone())
                .or_default()
                .insert(conductor.hostname.clone());
            ring_hosts
                .entry(ring_key(&conductor.conductor_group, &row.hardware_type))
                .or_default()
                .insert(conductor.hostname.clone());
            let choice = interfaces
                .entry(row.hardware_type.clone())
                .or_default()
                .entry(row.interface_type.clone())
                .or_default();
            if !choice.enabled.contains(&row.interface_name) {
                choice.enabled.push(row.interface_name.clone());
            }
            if row.is_default && choice.default.is_none() {
                choice.default = Some(row.interface_name.clone());
            }
        }
        let rings = ring_hosts
            .into_iter()
            .map(|(key, hosts)| {
                let hosts: Vec<String> = hosts.into_iter().collect();
                (key, HashRing::new(&hosts, DEFAULT_PARTITIONS))
            })
            .collect();
        ClusterView {
            conductors,
            alive,
            hardware_types,
            interfaces,
            rings,
        }
    }

    /// Every conductor row, alive or not.
    pub fn conductors(&self) -> &[Conductor] {
        &self.conductors
    }

    pub fn is_alive(&self, hostname: &str) -> bool {
        self.alive.contains(hostname)
    }

    /// Hardware types enabled by at least one alive conductor, with their hosts.
    pub fn hardware_types(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.hardware_types
    }

    /// Hardware types an alive conductor enables, as registered by it.
    pub fn hardware_types_of(&self, hostname: &str) -> Vec<&str> {
        self.hardware_types
            .iter()
            .filter(|(_, hosts)| hosts.contains(hostname))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Interface choices for a hardware type, by interface type.
    pub fn interfaces(&self, hardware_type: &str) -> Option<&BTreeMap<String, InterfaceChoice>> {
        self.interfaces.get(hardware_type)
    }

    /// Whether an alive conductor in `group` enables `hardware_type`.
    pub fn has_conductor_for(&self, group: &str, hardware_type: &str) -> bool {
        self.rings
            .get(&ring_key(group, hardware_type))
            .is_some_and(|ring| !ring.is_empty())
    }

    /// A live conductor for work no node owns, the same one for the same
    /// `key` while membership holds (alive hosts are kept sorted).
    pub fn any_alive(&self, key: &str) -> Option<&str> {
        if self.alive.is_empty() {
            return None;
        }
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let at = usize::try_from(hash % self.alive.len() as u64).unwrap_or(0);
        self.alive.iter().nth(at).map(String::as_str)
    }

    /// The conductor owning a node: the ring of its group and hardware type.
    pub fn owner(&self, group: &str, hardware_type: &str, node_uuid: &str) -> Option<&str> {
        self.rings
            .get(&ring_key(group, hardware_type))?
            .owner(node_uuid.as_bytes())
    }
}

/// Ironic's ring key.
fn ring_key(group: &str, hardware_type: &str) -> String {
    format!("{}:{hardware_type}", group.to_lowercase())
}
