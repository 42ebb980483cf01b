//! A consistent hash ring compatible with tooz's `HashRing`, which Ironic uses
//! to map nodes to conductors.
//!
//! Each host gets `partitions` points: md5 is seeded with the host name and
//! updated with it again for every point (tooz's derivation), and a key maps
//! to the first point clockwise after `md5(key)`. Pure and deterministic: the
//! API and every conductor compute the same owner from the same host list.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use md5::{Digest, Md5};

/// Ironic's default `hash_partition_exponent` is 5, i.e. 32 points per host.
pub const DEFAULT_PARTITIONS: usize = 1 << 5;

/// A ring of hosts; cheap to query, rebuilt when membership changes.
#[derive(Debug, Clone, Default)]
pub struct HashRing {
    ring: BTreeMap<u128, String>,
    hosts: BTreeSet<String>,
}

impl HashRing {
    pub fn new<S: AsRef<str>>(hosts: &[S], partitions: usize) -> Self {
        let mut ring = BTreeMap::new();
        let mut set = BTreeSet::new();
        for host in hosts {
            let host = host.as_ref();
            let mut digest = Md5::new();
            digest.update(host.as_bytes());
            for _ in 0..partitions {
                digest.update(host.as_bytes());
                ring.insert(
                    u128::from_be_bytes(digest.clone().finalize().into()),
                    host.to_owned(),
                );
            }
            set.insert(host.to_owned());
        }
        Self { ring, hosts: set }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }

    /// The host that owns `key` (tooz `get_nodes(key)` with one replica).
    pub fn owner(&self, key: &[u8]) -> Option<&str> {
        let point = u128::from_be_bytes(Md5::digest(key).into());
        self.ring
            .range((Excluded(point), Unbounded))
            .chain(self.ring.iter())
            .map(|(_, host)| host.as_str())
            .next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ring_has_no_owner() {
        let ring = HashRing::new::<&str>(&[], DEFAULT_PARTITIONS);
        assert!(ring.is_empty());
        assert_eq!(ring.owner(b"node"), None);
    }

    #[test]
    fn single_host_owns_everything() {
        let ring = HashRing::new(&["c-0"], DEFAULT_PARTITIONS);
        for i in 0..100 {
            assert_eq!(ring.owner(format!("key-{i}").as_bytes()), Some("c-0"));
        }
    }

    #[test]
    fn keys_spread_over_hosts_and_adding_one_moves_about_a_quarter() {
        let three = HashRing::new(&["c-0", "c-1", "c-2"], DEFAULT_PARTITIONS);
        let four = HashRing::new(&["c-0", "c-1", "c-2", "c-3"], DEFAULT_PARTITIONS);
        let mut per_host = BTreeMap::new();
        let mut moved = 0;
        for i in 0..3000 {
            let key = format!("key-{i}");
            let owner = three.owner(key.as_bytes()).unwrap();
            *per_host.entry(owner).or_insert(0) += 1;
            let new_owner = four.owner(key.as_bytes()).unwrap();
            if owner != new_owner {
                assert_eq!(new_owner, "c-3", "keys only move to the new host");
                moved += 1;
            }
        }
        assert_eq!(per_host.len(), 3);
        assert!(per_host.values().all(|n| *n > 600), "{per_host:?}");
        assert!((400..1100).contains(&moved), "moved {moved}");
    }

    /// Points computed by tooz for host "a" with 2 partitions:
    /// md5("aa") and md5("aaa") as big-endian integers.
    #[test]
    fn points_match_tooz_derivation() {
        let ring = HashRing::new(&["a"], 2);
        let points: Vec<u128> = ring.ring.keys().copied().collect();
        let mut expected = vec![
            u128::from_be_bytes(Md5::digest(b"aa").into()),
            u128::from_be_bytes(Md5::digest(b"aaa").into()),
        ];
        expected.sort();
        assert_eq!(points, expected);
    }
}
