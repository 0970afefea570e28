//! The values a node holds, by key, with their lifetimes.
//!
//! Owns: the key-ordered map of copies (a `BTreeMap`, so the hand-over can walk a key
//! range with a cursor), the expiry heap, the replication heap, and the publications
//! (values this node itself `set`, republished on their own heap). Does not own:
//! durability (the driver persists on the node's events) nor the decision who gets a
//! copy (the node's queries and hand-over).
//!
//! The value bytes themselves live behind a [`ValueStore`] ([`MemoryValues`] by default;
//! the `rpcudp` crate's `Dht` puts them in redb with a state folder), so that memory may
//! hold only this index: key, lifetime, and the heaps.
//!
//! Every operation is O(log records); nothing here walks all records. Heaps hold stale
//! entries (a replaced or removed record leaves its old deadline behind); a popped entry
//! counts only if it still matches the record, and the heaps are rebuilt when stale
//! entries outnumber live ones, so memory stays proportional to the records.

use super::super::NodeId;
use super::quota::Quota;
use crate::subnet::SourceKey;
use rmpv::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

/// Where the node keeps the bytes of the copies it holds, by key: the node keeps only
/// the index (key and lifetime) itself and asks this store whenever it needs a value
/// (a `find_value` answer, a hand-over, a replication, a local `get`).
///
/// Synchronous and infallible by design: the node decides nothing on a store's answer
/// beyond "this value" or "none". A durable store is written by the driver from the
/// node's events ([`Event::StoreRequested`](super::Event::StoreRequested),
/// [`Event::RecordStored`](super::Event::RecordStored)); `put` only has to make the
/// value readable from then on (e.g. keep it in memory until the write committed).
/// `get` is called only for keys the node's index holds, so a store never needs to
/// know about expiry.
///
/// ```
/// use rpcudp_proto::kad::{MemoryValues, NodeId, ValueStore};
/// use std::sync::Arc;
/// let mut store = MemoryValues::default();
/// let key = NodeId([7; 20]);
/// store.put(key, Arc::new(rmpv::Value::from("v")));
/// assert_eq!(store.get(&key).as_deref(), Some(&rmpv::Value::from("v")));
/// store.remove(&key);
/// assert!(store.get(&key).is_none());
/// ```
pub trait ValueStore: Send + std::fmt::Debug {
    /// The value under `key`, if the store has it (`None` for a value it cannot read:
    /// the node then answers as if it held nothing).
    fn get(&self, key: &NodeId) -> Option<Arc<Value>>;
    /// Keeps `value` under `key`, replacing any other.
    fn put(&mut self, key: NodeId, value: Arc<Value>);
    /// Forgets the value under `key`.
    fn remove(&mut self, key: &NodeId);
}

/// The default [`ValueStore`]: every value in memory.
#[derive(Debug, Default)]
pub struct MemoryValues(HashMap<NodeId, Arc<Value>>);

impl ValueStore for MemoryValues {
    fn get(&self, key: &NodeId) -> Option<Arc<Value>> {
        self.0.get(key).cloned()
    }

    fn put(&mut self, key: NodeId, value: Arc<Value>) {
        self.0.insert(key, value);
    }

    fn remove(&mut self, key: &NodeId) {
        self.0.remove(key);
    }
}

/// One copy held for the network (its value is in the [`ValueStore`]).
#[derive(Clone, Debug)]
pub(crate) struct Held {
    /// When this copy's life started (see the node's docs, "Value lifetime").
    pub since: Instant,
    pub expires_at: Instant,
    /// The subnet whose `store` this copy came from (`None`: our own, a lookup's copy,
    /// reloaded, or an exempt local source): its share in the quota.
    pub source: Option<SourceKey>,
    /// The value's size as the quota counts it (`quota::value_size`), kept here so that
    /// the quota never has to read the value.
    pub size: usize,
}

/// A value this node published (its own `set`): republished until the node stops.
#[derive(Clone, Debug)]
pub(crate) struct Publication {
    pub value: Arc<Value>,
    pub next: Instant,
    /// When it was first published (its copies' TTL boundaries count from there).
    pub first: Instant,
}

type Heap = BinaryHeap<Reverse<(Instant, NodeId)>>;

#[derive(Debug)]
pub(crate) struct Records {
    held: BTreeMap<NodeId, Held>,
    values: Box<dyn ValueStore>,
    expiry: Heap,
    replicate: Heap,
    published: BTreeMap<NodeId, Publication>,
    republish: Heap,
    /// Per-source shares and total bytes of `held` (see `quota`).
    quota: Quota,
}

fn pop_due(
    heap: &mut Heap,
    now: Instant,
    live: impl Fn(Instant, &NodeId) -> bool,
) -> Option<(Instant, NodeId)> {
    while let Some(Reverse((at, key))) = heap.peek().copied() {
        if at > now {
            return None;
        }
        heap.pop();
        if live(at, &key) {
            return Some((at, key));
        }
    }
    None
}

fn compact(heap: &mut Heap, live_count: usize, live: impl Fn(Instant, &NodeId) -> bool) {
    if heap.len() > 64 && heap.len() > 2 * live_count {
        let kept: Vec<_> = heap
            .drain()
            .filter(|Reverse((at, key))| live(*at, key))
            .collect();
        *heap = kept.into();
    }
}

impl Records {
    /// Empty, with `local` (our id) as the origin of the quota's eviction order, the
    /// values in memory.
    pub fn new(local: NodeId) -> Self {
        Records::with_values(local, Box::<MemoryValues>::default())
    }

    /// Empty, the values in `values`.
    pub fn with_values(local: NodeId, values: Box<dyn ValueStore>) -> Records {
        Records {
            held: BTreeMap::new(),
            values,
            expiry: Heap::new(),
            replicate: Heap::new(),
            published: BTreeMap::new(),
            republish: Heap::new(),
            quota: Quota::new(local),
        }
    }

    /// The store quota (shares, bytes, eviction order).
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The value of the copy under `key`, if held and not expired at `now` (and the
    /// store can read it).
    /// The value store, replaced by an empty [`MemoryValues`] (the index stays).
    pub fn take_values(&mut self) -> Box<dyn ValueStore> {
        let empty: Box<dyn ValueStore> = Box::new(MemoryValues::default());
        std::mem::replace(&mut self.values, empty)
    }

    pub fn value(&self, key: &NodeId, now: Instant) -> Option<Arc<Value>> {
        self.get(key, now)?;
        self.values.get(key)
    }

    /// The value of the copy under `key`, expired or not.
    pub fn stored_value(&self, key: &NodeId) -> Option<Arc<Value>> {
        self.held.get(key)?;
        self.values.get(key)
    }

    pub fn get(&self, key: &NodeId, now: Instant) -> Option<&Held> {
        // Checked here too, not only by the expiry heap: a value is never served at or
        // after its expiry, even between two timeouts.
        self.held.get(key).filter(|h| h.expires_at > now)
    }

    /// The copy under `key`, expired or not.
    pub fn peek(&self, key: &NodeId) -> Option<&Held> {
        self.held.get(key)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn published_len(&self) -> usize {
        self.published.len()
    }

    pub fn publication(&self, key: &NodeId) -> Option<&Publication> {
        self.published.get(key)
    }

    /// Inserts or replaces a copy; `replicate_at` is the first holder replication, if any.
    pub fn put(
        &mut self,
        key: NodeId,
        held: Held,
        value: Arc<Value>,
        replicate_at: Option<Instant>,
    ) {
        self.values.put(key, value);
        self.put_index(key, held, replicate_at);
    }

    /// Inserts or replaces a copy's index entry only: its value is in the store already
    /// (reloaded after a restart).
    pub fn put_index(&mut self, key: NodeId, held: Held, replicate_at: Option<Instant>) {
        self.expiry.push(Reverse((held.expires_at, key)));
        if let Some(at) = replicate_at {
            self.replicate.push(Reverse((at, key)));
        }
        self.quota.charge(key, held.source, held.size);
        if let Some(old) = self.held.insert(key, held) {
            self.quota.release(key, old.source, old.size);
        }
        let held = &self.held;
        compact(&mut self.expiry, held.len(), |at, k| {
            held.get(k).is_some_and(|h| h.expires_at == at)
        });
    }

    /// Schedules the next holder replication of `key`.
    pub fn schedule_replication(&mut self, key: NodeId, at: Instant) {
        self.replicate.push(Reverse((at, key)));
        // Replication entries carry no check of their own (a record keeps its `since`),
        // so the heap is compacted against the records that still exist.
        let held = &self.held;
        compact(&mut self.replicate, held.len(), |_, k| held.contains_key(k));
    }

    pub fn remove(&mut self, key: &NodeId) -> Option<Held> {
        let old = self.held.remove(key)?;
        self.values.remove(key);
        self.quota.release(*key, old.source, old.size);
        Some(old)
    }

    /// The next expired key (at most one per call; the caller bounds the calls).
    pub fn pop_expired(&mut self, now: Instant) -> Option<NodeId> {
        let held = &self.held;
        let (_, key) = pop_due(&mut self.expiry, now, |at, k| {
            held.get(k).is_some_and(|h| h.expires_at == at)
        })?;
        self.remove(&key);
        Some(key)
    }

    /// The next copy due for a holder replication.
    pub fn pop_replication(&mut self, now: Instant) -> Option<(NodeId, Held)> {
        let held = &self.held;
        let (_, key) = pop_due(&mut self.replicate, now, |_, k| held.contains_key(k))?;
        self.held.get(&key).map(|h| (key, h.clone()))
    }

    pub fn publish(&mut self, key: NodeId, value: Arc<Value>, next: Instant, first: Instant) {
        self.republish.push(Reverse((next, key)));
        self.published
            .insert(key, Publication { value, next, first });
        let published = &self.published;
        compact(&mut self.republish, published.len(), |at, k| {
            published.get(k).is_some_and(|p| p.next == at)
        });
    }

    /// The next publication due for its republish (rescheduled by the caller).
    pub fn pop_republish(&mut self, now: Instant) -> Option<(NodeId, Arc<Value>, Instant)> {
        let published = &self.published;
        let (_, key) = pop_due(&mut self.republish, now, |at, k| {
            published.get(k).is_some_and(|p| p.next == at)
        })?;
        self.published
            .get(&key)
            .map(|p| (key, p.value.clone(), p.first))
    }

    /// The earliest expiry. A stale entry on top only makes the node wake early once:
    /// the timeout then pops it.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest replication or republish (same caveat).
    pub fn next_maintenance(&self) -> Option<Instant> {
        [&self.replicate, &self.republish]
            .into_iter()
            .filter_map(|h| h.peek().map(|Reverse((at, _))| *at))
            .min()
    }

    /// Up to `max` held keys in `range` from `from` on (inclusive), in key order, and
    /// where to resume (`None`: the range is done).
    pub fn keys_in(
        &self,
        range: &RangeInclusive<NodeId>,
        from: NodeId,
        max: usize,
    ) -> (Vec<NodeId>, Option<NodeId>) {
        let mut keys = Vec::with_capacity(max.min(64));
        let mut iter = self.held.range(from..=*range.end()).map(|(k, _)| *k);
        for key in iter.by_ref() {
            keys.push(key);
            if keys.len() >= max {
                break;
            }
        }
        (keys, iter.next())
    }
}
