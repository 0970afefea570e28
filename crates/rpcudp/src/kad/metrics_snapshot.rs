//! What a [`Dht`] shows an operator: a snapshot of its routing table, its store and its
//! lookups, for [`crate::metrics`].
//!
//! It owns only the reading (and the lookup counters, which finished queries feed): how the
//! snapshot is exported (Prometheus text, the `/status` JSON) lives in `crate::metrics`.
//! Taking a snapshot walks the table (at most 160 × k contacts) and the held values,
//! so it is for a scrape every few seconds, never for a request path.

use super::{lock, Contact, Dht, NodeId};
use rpcudp_proto::rpc::stats::LatencyHistogram;
use std::sync::Mutex;
use std::time::Duration;

/// Which lookup: `find_node` (joining, refreshing, `set`) or `find_value` (`get`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// An iterative `find_node`.
    FindNode,
    /// An iterative `find_value`.
    FindValue,
}

/// How a lookup ended: the `outcome` label of `rpcudp_dht_lookups_total`.
///
/// Counted once per `bootstrap`'s lookup of its own id, `set` (its `find_node` and
/// stores), `get` (its `find_value`; a value held here counts as `found`). A bootstrap
/// that ended at its pings (no address given or none answered, as for a fresh node that
/// starts alone) and an `introduce` look nothing up and are not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupOutcome {
    /// `found`: a `find_value` that found the value.
    Found,
    /// `not_found`: a `find_value` that some node answered, without the value.
    NotFound,
    /// `converged`: a bootstrap's `find_node` that some node answered, or a `set` that
    /// some node acknowledged (or that this node keeps).
    Converged,
    /// `no_answer`: a lookup that no node answered (a `set`: no store acknowledged and
    /// no local copy).
    NoAnswer,
}

impl LookupKind {
    /// The label value (`find_node`, `find_value`).
    pub fn as_str(self) -> &'static str {
        match self {
            LookupKind::FindNode => "find_node",
            LookupKind::FindValue => "find_value",
        }
    }
}

impl LookupOutcome {
    /// The label value (`found`, `not_found`, `converged`, `no_answer`).
    pub fn as_str(self) -> &'static str {
        match self {
            LookupOutcome::Found => "found",
            LookupOutcome::NotFound => "not_found",
            LookupOutcome::Converged => "converged",
            LookupOutcome::NoAnswer => "no_answer",
        }
    }
}

/// Lookups by kind and outcome, and how long they took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// `(kind, outcome, count)` for every pair seen at least once.
    pub counts: Vec<(LookupKind, LookupOutcome, u64)>,
    /// Durations of every lookup.
    pub duration: LatencyHistogram,
}

/// The lookup counters a [`Dht`] keeps (a lock taken once per lookup, not per RPC).
#[derive(Debug, Default)]
pub(super) struct LookupCounters(Mutex<LookupStats>);

impl LookupCounters {
    pub(super) fn record(&self, find_value: bool, answered: usize, found: bool, took: Duration) {
        let (kind, outcome) = match (find_value, found, answered) {
            (true, true, _) => (LookupKind::FindValue, LookupOutcome::Found),
            (true, false, 0) | (false, _, 0) => (kind_of(find_value), LookupOutcome::NoAnswer),
            (true, false, _) => (LookupKind::FindValue, LookupOutcome::NotFound),
            (false, _, _) => (LookupKind::FindNode, LookupOutcome::Converged),
        };
        let mut s = lock(&self.0);
        s.duration.record(took);
        match s
            .counts
            .iter_mut()
            .find(|(k, o, _)| *k == kind && *o == outcome)
        {
            Some((_, _, n)) => *n += 1,
            None => s.counts.push((kind, outcome, 1)),
        }
    }

    fn snapshot(&self) -> LookupStats {
        lock(&self.0).clone()
    }
}

fn kind_of(find_value: bool) -> LookupKind {
    if find_value {
        LookupKind::FindValue
    } else {
        LookupKind::FindNode
    }
}

/// One non-empty k-bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSnapshot {
    /// Its index: the highest set bit of the distance to this node (159 covers half
    /// the id space).
    pub index: usize,
    /// Contacts in it.
    pub contacts: usize,
    /// Its least recently seen contact (the next to be pinged when the bucket is full).
    pub oldest_seen: Contact,
    /// Its most recently seen contact.
    pub newest_seen: Contact,
}

/// A snapshot of a [`Dht`] for operators: see [`Dht::metrics_snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtSnapshot {
    /// This node's id.
    pub id: NodeId,
    /// Contacts in the routing table.
    pub contacts: usize,
    /// The non-empty buckets, highest index (farthest) first.
    pub buckets: Vec<BucketSnapshot>,
    /// Values stored here.
    pub records: usize,
    /// Their size as MessagePack (values only, not keys).
    pub record_bytes: u64,
    /// When the oldest record was stored (or last republished), Unix seconds.
    pub oldest_record_unix: Option<u64>,
    /// Lookups by kind and outcome, and their durations.
    pub lookups: LookupStats,
}

impl Dht {
    /// A snapshot of the routing table, the store and the lookup counters (for
    /// [`crate::metrics::Metrics::with_dht`]). It walks the table and the records: call
    /// it for a scrape, not per request.
    pub fn metrics_snapshot(&self) -> DhtSnapshot {
        let contacts = self.contacts();
        let mut buckets: Vec<BucketSnapshot> = Vec::new();
        // `contacts()` lists bucket by bucket, each least recently seen first.
        for c in contacts.iter().copied() {
            let Some(index) = self.inner.id.distance(&c.id).bucket_index() else {
                continue;
            };
            match buckets.last_mut() {
                Some(b) if b.index == index => {
                    b.contacts += 1;
                    b.newest_seen = c;
                }
                _ => buckets.push(BucketSnapshot {
                    index,
                    contacts: 1,
                    oldest_seen: c,
                    newest_seen: c,
                }),
            }
        }
        buckets.sort_by_key(|b| std::cmp::Reverse(b.index));
        let (records, record_bytes, oldest_expiry) = {
            let view = lock(&self.inner.view);
            let bytes = view.values.values().map(|c| c.bytes).sum::<u64>();
            let oldest = view.values.values().map(|c| c.expires_at).min();
            (view.values.len(), bytes, oldest)
        };
        // A copy's life started one TTL before it expires (the oldest expires first);
        // wall-clock time only here, for the operator.
        let clock = self.inner.clock;
        let oldest_record_unix = oldest_expiry
            .map(|at| (clock.to_unix_ms(at) / 1000).saturating_sub(self.inner.value_ttl.as_secs()));
        DhtSnapshot {
            id: self.inner.id,
            contacts: contacts.len(),
            buckets,
            records,
            record_bytes,
            oldest_record_unix,
            lookups: self.inner.lookups.snapshot(),
        }
    }
}
