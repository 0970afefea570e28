//! The routing table: 160 k-buckets by XOR distance, least-recently-seen order, a
//! replacement cache per bucket, and the "ping the oldest" decision handed to the caller.

use super::id::{Distance, NodeId, ID_LEN};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A node on the network: its id and the UDP address it answers on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Contact {
    /// The node's id.
    pub id: NodeId,
    /// Where it answers.
    pub addr: SocketAddr,
}

impl Contact {
    /// A contact with this id and address.
    pub fn new(id: NodeId, addr: SocketAddr) -> Self {
        Contact { id, addr }
    }
}

/// Sizes of a [`RoutingTable`].
#[derive(Clone, Debug)]
pub struct RoutingConfig {
    /// Contacts per bucket (Kademlia's k). Default 20, as Python `kademlia`.
    pub k: usize,
    /// Replacement candidates kept per full bucket. Default 20.
    pub replacements: usize,
    /// How long a ping of a bucket's oldest contact may stay unreported before the table
    /// takes the oldest for dead on the next insert into that bucket. Default 60 s
    /// (a safety net: the caller normally reports through
    /// [`RoutingTable::on_ping_result`] after one RPC timeout).
    pub pending_timeout: Duration,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            k: 20,
            replacements: 20,
            pending_timeout: Duration::from_secs(60),
        }
    }
}

/// What [`RoutingTable::insert`] did with a contact.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsertOutcome {
    /// A contact the table did not have: now the most recently seen of its bucket.
    Inserted,
    /// A known id: moved to most recently seen (its address updated if it changed).
    Updated,
    /// The bucket is full: the contact waits in the replacement cache and the caller
    /// must ping `oldest`, then call [`RoutingTable::on_ping_result`] with the outcome.
    /// (The table never does I/O itself.)
    PingOldest {
        /// The bucket's least recently seen contact.
        oldest: Contact,
    },
    /// The bucket is full and a ping of its oldest is already under way: the contact
    /// waits in the replacement cache.
    Queued,
    /// The contact has the table's own id: never stored.
    Ignored,
}

#[derive(Default, Debug)]
struct Bucket {
    /// Front = least recently seen.
    entries: VecDeque<Contact>,
    /// Back = most recently offered.
    replacements: VecDeque<Contact>,
    pending: Option<(NodeId, Instant)>,
    last_lookup: Option<Instant>,
}

/// Kademlia's routing table around a local id: bucket `i` holds contacts whose distance
/// to the local id has its highest set bit at position `i` (so bucket 159 covers half
/// the id space, bucket 0 a single id).
///
/// It never does I/O: when a full bucket would need its oldest contact pinged, that is
/// returned from [`insert`](Self::insert) as [`InsertOutcome::PingOldest`], and the
/// answer comes back through [`on_ping_result`](Self::on_ping_result). A contact that
/// failed to answer any RPC is dropped with [`remove`](Self::remove), and the freshest
/// replacement takes its place.
///
/// ```
/// use rpcudp_proto::kad::{Contact, InsertOutcome, NodeId, RoutingConfig, RoutingTable};
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let mut table = RoutingTable::new(NodeId::from_bytes([0; 20]), RoutingConfig::default());
/// let peer = Contact::new(NodeId::from_bytes([1; 20]), "127.0.0.1:8468".parse().unwrap());
/// assert_eq!(table.insert(peer, now), InsertOutcome::Inserted);
/// assert_eq!(table.insert(peer, now), InsertOutcome::Updated);
/// assert_eq!(table.closest(&NodeId::from_bytes([1; 20]), 20), vec![peer]);
/// ```
#[derive(Debug)]
pub struct RoutingTable {
    local: NodeId,
    config: RoutingConfig,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table around `local`.
    pub fn new(local: NodeId, config: RoutingConfig) -> Self {
        let config = RoutingConfig {
            k: config.k.max(1),
            ..config
        };
        RoutingTable {
            local,
            config,
            buckets: (0..ID_LEN * 8).map(|_| Bucket::default()).collect(),
        }
    }

    /// The local id.
    pub fn local_id(&self) -> NodeId {
        self.local
    }

    /// The configuration.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    fn bucket_of(&self, id: &NodeId) -> Option<usize> {
        self.local.distance(id).bucket_index()
    }

    /// Whether the table holds a contact with this id (replacements do not count).
    pub fn contains(&self, id: &NodeId) -> bool {
        self.find(id).is_some()
    }

    /// The stored contact with this id.
    pub fn find(&self, id: &NodeId) -> Option<Contact> {
        let b = self.bucket_of(id)?;
        self.buckets[b]
            .entries
            .iter()
            .find(|c| c.id == *id)
            .copied()
    }

    /// Number of contacts stored (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether no contact is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored contact, nearest buckets first.
    pub fn contacts(&self) -> Vec<Contact> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().copied())
            .collect()
    }

    /// Offers a contact that was just heard from (an RPC it sent or answered).
    pub fn insert(&mut self, contact: Contact, now: Instant) -> InsertOutcome {
        let Some(b) = self.bucket_of(&contact.id) else {
            return InsertOutcome::Ignored;
        };
        let (k, max_repl, pending_timeout) = (
            self.config.k,
            self.config.replacements,
            self.config.pending_timeout,
        );
        let bucket = &mut self.buckets[b];
        if let Some(pos) = bucket.entries.iter().position(|c| c.id == contact.id) {
            bucket.entries.remove(pos);
            bucket.entries.push_back(contact);
            if bucket.pending.is_some_and(|(id, _)| id == contact.id) {
                // Hearing from the pinged contact answers the ping.
                bucket.pending = None;
            }
            return InsertOutcome::Updated;
        }
        if let Some((id, since)) = bucket.pending {
            if now.saturating_duration_since(since) >= pending_timeout {
                // The ping was never reported: take the oldest for dead.
                bucket.pending = None;
                Self::evict(bucket, &id);
            }
        }
        if bucket.entries.len() < k {
            bucket.replacements.retain(|c| c.id != contact.id);
            bucket.entries.push_back(contact);
            return InsertOutcome::Inserted;
        }
        bucket.replacements.retain(|c| c.id != contact.id);
        bucket.replacements.push_back(contact);
        while bucket.replacements.len() > max_repl {
            bucket.replacements.pop_front();
        }
        if bucket.pending.is_some() {
            return InsertOutcome::Queued;
        }
        let oldest = bucket.entries[0];
        bucket.pending = Some((oldest.id, now));
        InsertOutcome::PingOldest { oldest }
    }

    /// Reports the ping asked for by [`InsertOutcome::PingOldest`]: if `alive`, the
    /// oldest becomes the most recently seen and the candidates keep waiting; if not, it
    /// is dropped and the freshest replacement takes its place (returned, so the caller
    /// can note the change).
    pub fn on_ping_result(&mut self, oldest: &NodeId, alive: bool) -> Option<Contact> {
        let b = self.bucket_of(oldest)?;
        let bucket = &mut self.buckets[b];
        if bucket.pending.is_some_and(|(id, _)| id == *oldest) {
            bucket.pending = None;
        }
        if alive {
            if let Some(pos) = bucket.entries.iter().position(|c| c.id == *oldest) {
                if let Some(c) = bucket.entries.remove(pos) {
                    bucket.entries.push_back(c);
                }
            }
            None
        } else {
            Self::evict(bucket, oldest).flatten()
        }
    }

    /// Drops a contact that did not answer (and promotes the freshest replacement in
    /// its bucket). Also forgets it as a replacement candidate. `None` if it was not in
    /// the table; else `Some` of the promoted replacement, if there was one.
    pub fn remove(&mut self, id: &NodeId) -> Option<Option<Contact>> {
        let b = self.bucket_of(id)?;
        let bucket = &mut self.buckets[b];
        bucket.replacements.retain(|c| c.id != *id);
        if bucket.pending.is_some_and(|(p, _)| p == *id) {
            bucket.pending = None;
        }
        Self::evict(bucket, id)
    }

    /// Removes `id` from the entries; `Some(promoted replacement)` if it was there.
    fn evict(bucket: &mut Bucket, id: &NodeId) -> Option<Option<Contact>> {
        let pos = bucket.entries.iter().position(|c| c.id == *id)?;
        bucket.entries.remove(pos);
        let promoted = bucket.replacements.pop_back();
        if let Some(r) = promoted {
            bucket.entries.push_back(r);
        }
        Some(promoted)
    }

    /// Up to `count` stored contacts nearest `target`, nearest first.
    pub fn closest(&self, target: &NodeId, count: usize) -> Vec<Contact> {
        self.closest_filtered(target, count, |_| true)
    }

    /// Up to `count` stored contacts nearest `target` for which `keep` holds, nearest
    /// first (`find_node` leaves out the asker and the searched id this way).
    pub fn closest_filtered(
        &self,
        target: &NodeId,
        count: usize,
        keep: impl Fn(&Contact) -> bool,
    ) -> Vec<Contact> {
        let mut all: Vec<(Distance, Contact)> = self
            .buckets
            .iter()
            .flat_map(|b| b.entries.iter())
            .filter(|c| keep(c))
            .map(|c| (c.id.distance(target), *c))
            .collect();
        all.sort_unstable_by_key(|a| a.0);
        all.into_iter().take(count).map(|(_, c)| c).collect()
    }

    /// Whether a newly seen node should be handed the value under `key` (the paper's
    /// section 2.5): it is nearer `key` than the farthest of our k nearest contacts, and
    /// we are nearer than the nearest of them, i.e. we are the one who knows it should
    /// hold the value. Ask before [`insert`](Self::insert)ing the newcomer. With no
    /// contact at all, every newcomer gets every value.
    pub fn should_replicate_to(&self, newcomer: &NodeId, key: &NodeId) -> bool {
        let nearest = self.closest_filtered(key, self.config.k, |c| c.id != *newcomer);
        let (Some(first), Some(last)) = (nearest.first(), nearest.last()) else {
            return true;
        };
        newcomer.distance(key) < last.id.distance(key)
            && self.local.distance(key) < first.id.distance(key)
    }

    /// Notes that a lookup for `target` ran now (its bucket does not need a refresh).
    pub fn touch(&mut self, target: &NodeId, now: Instant) {
        if let Some(b) = self.bucket_of(target) {
            self.buckets[b].last_lookup = Some(now);
        }
    }

    /// Indexes of the non-empty buckets with no lookup within `interval` before `now`:
    /// the caller refreshes each with a lookup of a random id in it
    /// ([`NodeId::random_at_prefix`] with `159 - index` leading zeros), then
    /// [`touch`](Self::touch)es it.
    pub fn buckets_to_refresh(&self, now: Instant, interval: Duration) -> Vec<usize> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.entries.is_empty())
            .filter(|(_, b)| {
                b.last_lookup
                    .is_none_or(|t| now.saturating_duration_since(t) >= interval)
            })
            .map(|(i, _)| i)
            .collect()
    }
}
