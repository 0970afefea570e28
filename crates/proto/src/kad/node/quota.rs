//! Store quotas: how many records and bytes each source subnet holds in this node's
//! store, and which record to give up first when the store is full.
//!
//! Owns: per-source (IPv4 /24, IPv6 /64) record and byte counts of the copies held, the
//! store's total bytes, and the eviction order: the farthest key (from our own id) of the
//! source holding the most bytes, i.e. what this node is least responsible for, taken
//! from whoever takes the most. Copies with no source (our own `set`, copies a lookup
//! made, records reloaded after a restart, stores from exempt local addresses) count in
//! the total but belong to no share and are never evicted here.
//!
//! Every operation is O(log n); nothing walks all records. Does not own: the decision
//! to admit a store (the node's `serve_store`) nor the records themselves (`records`).

use crate::kad::{Distance, NodeId};
use crate::subnet::SourceKey;
use std::collections::{BTreeSet, HashMap};

/// Encoded size charged for a value: its bytes for `str` / `bin`, plus a small header;
/// a fixed 9 for numbers and booleans.
pub(crate) fn value_size(v: &rmpv::Value) -> usize {
    match v {
        rmpv::Value::String(s) => s.as_bytes().len() + 5,
        rmpv::Value::Binary(b) => b.len() + 5,
        _ => 9,
    }
}

#[derive(Debug, Default)]
struct SourceUse {
    bytes: usize,
    /// The source's keys by distance from our id (last = farthest).
    keys: BTreeSet<(Distance, NodeId)>,
}

#[derive(Debug)]
pub(crate) struct Quota {
    local: NodeId,
    total_bytes: usize,
    per_source: HashMap<SourceKey, SourceUse>,
    /// Sources by bytes held (last = largest).
    by_size: BTreeSet<(usize, SourceKey)>,
}

impl Default for Quota {
    fn default() -> Self {
        Quota::new(NodeId::from_bytes([0; 20]))
    }
}

impl Quota {
    pub(crate) fn new(local: NodeId) -> Self {
        Quota {
            local,
            total_bytes: 0,
            per_source: HashMap::new(),
            by_size: BTreeSet::new(),
        }
    }

    pub(crate) fn charge(&mut self, key: NodeId, source: Option<SourceKey>, size: usize) {
        self.total_bytes += size;
        let Some(s) = source else { return };
        let u = self.per_source.entry(s).or_default();
        self.by_size.remove(&(u.bytes, s));
        u.bytes += size;
        u.keys.insert((self.local.distance(&key), key));
        self.by_size.insert((u.bytes, s));
    }

    pub(crate) fn release(&mut self, key: NodeId, source: Option<SourceKey>, size: usize) {
        self.total_bytes = self.total_bytes.saturating_sub(size);
        let Some(s) = source else { return };
        let Some(u) = self.per_source.get_mut(&s) else {
            return;
        };
        self.by_size.remove(&(u.bytes, s));
        u.bytes = u.bytes.saturating_sub(size);
        u.keys.remove(&(self.local.distance(&key), key));
        if u.keys.is_empty() {
            self.per_source.remove(&s);
        } else {
            self.by_size.insert((u.bytes, s));
        }
    }

    /// Records and bytes held for `source`.
    pub(crate) fn use_of(&self, source: &SourceKey) -> (usize, usize) {
        self.per_source
            .get(source)
            .map_or((0, 0), |u| (u.keys.len(), u.bytes))
    }

    pub(crate) fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// The record to give up first: the farthest key of the largest source.
    pub(crate) fn eviction_candidate(&self) -> Option<NodeId> {
        let (_, s) = self.by_size.last()?;
        self.per_source.get(s)?.keys.last().map(|(_, k)| *k)
    }

    /// The most records any one source holds (for tests and reports).
    pub(crate) fn largest_share(&self) -> usize {
        self.per_source
            .values()
            .map(|u| u.keys.len())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> NodeId {
        NodeId::from_bytes([b; 20])
    }

    #[test]
    fn the_largest_sources_farthest_key_goes_first_and_counts_come_back_to_zero() {
        let mut q = Quota::new(key(0));
        let (a, b) = (SourceKey::V4([1, 2, 3]), SourceKey::V4([4, 5, 6]));
        q.charge(key(1), Some(a), 100);
        q.charge(key(0x80), Some(a), 100);
        q.charge(key(2), Some(b), 150);
        q.charge(key(3), None, 1000);
        assert_eq!(q.total_bytes(), 1350);
        assert_eq!(q.use_of(&a), (2, 200));
        // a holds the most bytes; its farthest key from 00…00 is 80…80.
        assert_eq!(q.eviction_candidate(), Some(key(0x80)));
        q.release(key(0x80), Some(a), 100);
        // Now b (150) is larger than a (100).
        assert_eq!(q.eviction_candidate(), Some(key(2)));
        q.release(key(2), Some(b), 150);
        q.release(key(1), Some(a), 100);
        assert_eq!(
            q.eviction_candidate(),
            None,
            "unsourced copies are never evicted"
        );
        q.release(key(3), None, 1000);
        assert_eq!((q.total_bytes(), q.largest_share()), (0, 0));
    }
}
