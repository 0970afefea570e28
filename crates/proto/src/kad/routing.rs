//! The routing table: 160 k-buckets by XOR distance, least-recently-seen order, a
//! replacement cache per bucket, and the "ping the oldest" decision handed to the caller.
//!
//! Integrity rules (see `SECURITY.md`), all decided here, all I/O left to the caller:
//! - a known id heard from a new address does not take that address: the table keeps the
//!   old one and asks for it to be pinged ([`InsertOutcome::CheckAddress`]); only if the
//!   old address does not answer does the contact move
//!   ([`RoutingTable::on_address_check`]);
//! - at most [`RoutingConfig::max_per_subnet_bucket`] contacts of one IPv4 /24 or IPv6
//!   /64 per bucket (and as many replacement candidates), and
//!   [`RoutingConfig::max_per_subnet_table`] in the table (discv5's IP limits: 2 and 10);
//!   loopback and private addresses are exempt unless [`RoutingConfig::strict_local`];
//! - a contact is *verified* once it answered an RPC of ours at its address
//!   ([`RoutingTable::insert_verified`], [`RoutingTable::mark_verified`]); what is handed
//!   out to others ([`RoutingTable::closest_verified`]) is verified contacts only.
//!
//! Not decided here: whom to ping and when (the node), what an id is worth (ids are not
//! signed: a Sybil attacker with many subnets is not stopped by these limits).

use super::id::{Distance, NodeId, ID_LEN};
use crate::subnet::{is_local, SourceKey};
use std::collections::{HashMap, VecDeque};
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
    /// Most contacts of one IPv4 /24 or IPv6 /64 in one bucket (and, separately, in its
    /// replacement cache). Default 2 (discv5's `MAX_NODES_PER_SUBNET_BUCKET`).
    pub max_per_subnet_bucket: usize,
    /// Most contacts of one /24 or /64 in the whole table. Default 10 (discv5's
    /// `MAX_NODES_PER_SUBNET_TABLE`).
    pub max_per_subnet_table: usize,
    /// Apply the subnet limits to loopback and private addresses too (`--strict-local`).
    /// Default false: a test network of many nodes on 127.0.0.1 fills buckets freely.
    pub strict_local: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            k: 20,
            replacements: 20,
            pending_timeout: Duration::from_secs(60),
            max_per_subnet_bucket: 2,
            max_per_subnet_table: 10,
            strict_local: false,
        }
    }
}

/// What [`RoutingTable::insert`] did with a contact.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsertOutcome {
    /// A contact the table did not have: now the most recently seen of its bucket.
    Inserted,
    /// A known id at its known address: moved to most recently seen.
    Updated,
    /// The bucket is full: the contact waits in the replacement cache and the caller
    /// must ping `oldest`, then call [`RoutingTable::on_ping_result`] with the outcome.
    /// (The table never does I/O itself.)
    PingOldest {
        /// The bucket's least recently seen contact.
        oldest: Contact,
    },
    /// The bucket is full and a ping of its oldest is already under way: the contact
    /// waits in the replacement cache. Also: a known id from a new address whose old
    /// address is already being checked (the new address is not taken meanwhile).
    Queued,
    /// The contact has the table's own id: never stored.
    Ignored,
    /// A known id heard from another address than the stored one. The table keeps the
    /// stored address (a forger can claim any id from anywhere) and the caller must ping
    /// `known.addr`, then call [`RoutingTable::on_address_check`]: the contact moves to
    /// the new address only if the old one does not answer.
    CheckAddress {
        /// The contact as stored, with its old address.
        known: Contact,
    },
    /// Not stored: the bucket or the table already holds as many contacts of this
    /// contact's /24 (IPv4) or /64 (IPv6) as [`RoutingConfig`] allows.
    SubnetFull,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    contact: Contact,
    /// It answered an RPC of ours at `contact.addr`.
    verified: bool,
    /// A new address heard for this id, waiting for the old one's ping:
    /// (address, verified there, since).
    moving_to: Option<(SocketAddr, bool, Instant)>,
}

impl Entry {
    fn new(contact: Contact, verified: bool) -> Self {
        Entry {
            contact,
            verified,
            moving_to: None,
        }
    }
}

#[derive(Default, Debug)]
struct Bucket {
    /// Front = least recently seen.
    entries: VecDeque<Entry>,
    /// Back = most recently offered.
    replacements: VecDeque<Entry>,
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
    /// Stored contacts per subnet, for the table-wide limit (exempt addresses are not
    /// counted; entries only, replacements not).
    per_subnet: HashMap<SourceKey, usize>,
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
            per_subnet: HashMap::new(),
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
        self.entry(b, id).map(|e| e.contact)
    }

    fn entry(&self, b: usize, id: &NodeId) -> Option<&Entry> {
        self.buckets[b].entries.iter().find(|e| e.contact.id == *id)
    }

    /// Whether the stored contact with this id has answered an RPC of ours at its
    /// stored address (so it may be handed out to others).
    pub fn is_verified(&self, id: &NodeId) -> bool {
        self.bucket_of(id)
            .and_then(|b| self.entry(b, id))
            .is_some_and(|e| e.verified)
    }

    /// Notes that the contact `id` answered an RPC of ours from `addr`: if that is its
    /// stored address, it is verified from now on. True if it is stored there.
    pub fn mark_verified(&mut self, id: &NodeId, addr: SocketAddr) -> bool {
        let Some(b) = self.bucket_of(id) else {
            return false;
        };
        match self.buckets[b]
            .entries
            .iter_mut()
            .find(|e| e.contact.id == *id && e.contact.addr == addr)
        {
            Some(e) => {
                e.verified = true;
                true
            }
            None => false,
        }
    }

    /// Number of contacts stored (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether no contact is stored.
    pub fn is_empty(&self) -> bool {
        // From the far end: bucket 159 (half the id space) is the one nearly always
        // filled, so this is O(1) in practice (the node asks on every `poll_timeout`).
        self.buckets.iter().rev().all(|b| b.entries.is_empty())
    }

    /// Every stored contact, nearest buckets first.
    pub fn contacts(&self) -> Vec<Contact> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| e.contact))
            .collect()
    }

    fn exempt(&self, addr: &SocketAddr) -> bool {
        !self.config.strict_local && is_local(addr.ip())
    }

    /// Whether one more stored contact at `addr` fits the table-wide subnet limit.
    fn table_has_room(&self, addr: &SocketAddr) -> bool {
        self.exempt(addr)
            || self
                .per_subnet
                .get(&SourceKey::of(addr.ip()))
                .copied()
                .unwrap_or(0)
                < self.config.max_per_subnet_table
    }

    /// How many of `entries` are in `addr`'s subnet (0 if exempt).
    fn in_subnet<'a>(
        &self,
        entries: impl Iterator<Item = &'a Entry>,
        addr: &SocketAddr,
        skip: Option<NodeId>,
    ) -> usize {
        if self.exempt(addr) {
            return 0;
        }
        let key = SourceKey::of(addr.ip());
        entries
            .filter(|e| Some(e.contact.id) != skip && SourceKey::of(e.contact.addr.ip()) == key)
            .count()
    }

    fn count_in(&mut self, addr: &SocketAddr) {
        if !self.exempt(addr) {
            *self.per_subnet.entry(SourceKey::of(addr.ip())).or_insert(0) += 1;
        }
    }

    fn count_out(&mut self, addr: &SocketAddr) {
        if self.exempt(addr) {
            return;
        }
        let key = SourceKey::of(addr.ip());
        if let Some(n) = self.per_subnet.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_subnet.remove(&key);
            }
        }
    }

    /// Contacts stored per subnet (/24, /64) for the table-wide limit (exempt local
    /// addresses are not counted): the most any one subnet has.
    pub fn max_contacts_per_subnet(&self) -> usize {
        self.per_subnet.values().copied().max().unwrap_or(0)
    }

    /// Offers a contact that was just heard from: an RPC it sent us (not verified: its
    /// source address may be forged) or one it answered (then prefer
    /// [`insert_verified`](Self::insert_verified)). A known id keeps its verified flag.
    pub fn insert(&mut self, contact: Contact, now: Instant) -> InsertOutcome {
        self.insert_with(contact, false, now)
    }

    /// Offers a contact that just answered an RPC of ours at `contact.addr` (its answer
    /// carried our random message id, so it receives there): stored as verified, so it
    /// may be handed out by [`closest_verified`](Self::closest_verified).
    pub fn insert_verified(&mut self, contact: Contact, now: Instant) -> InsertOutcome {
        self.insert_with(contact, true, now)
    }

    fn insert_with(&mut self, contact: Contact, verified: bool, now: Instant) -> InsertOutcome {
        let Some(b) = self.bucket_of(&contact.id) else {
            return InsertOutcome::Ignored;
        };
        let (k, max_repl, pending_timeout, per_bucket) = (
            self.config.k,
            self.config.replacements,
            self.config.pending_timeout,
            self.config.max_per_subnet_bucket,
        );
        if let Some(pos) = self.buckets[b]
            .entries
            .iter()
            .position(|e| e.contact.id == contact.id)
        {
            let bucket = &mut self.buckets[b];
            let mut e = bucket.entries[pos];
            if e.contact.addr != contact.addr {
                // Another address claims a known id: keep the old one until it fails to
                // answer. Only the first claimant waits; a check that was never reported
                // is asked for again rather than taken as an answer.
                return match e.moving_to {
                    Some((_, _, since))
                        if now.saturating_duration_since(since) < pending_timeout =>
                    {
                        InsertOutcome::Queued
                    }
                    _ => {
                        bucket.entries[pos].moving_to = Some((contact.addr, verified, now));
                        InsertOutcome::CheckAddress { known: e.contact }
                    }
                };
            }
            bucket.entries.remove(pos);
            e.verified |= verified;
            // Heard at its old address: it is alive there, so no move.
            e.moving_to = None;
            bucket.entries.push_back(e);
            if bucket.pending.is_some_and(|(id, _)| id == contact.id) {
                // Hearing from the pinged contact answers the ping.
                bucket.pending = None;
            }
            return InsertOutcome::Updated;
        }
        if let Some((id, since)) = self.buckets[b].pending {
            if now.saturating_duration_since(since) >= pending_timeout {
                // The ping was never reported: take the oldest for dead.
                self.buckets[b].pending = None;
                self.evict(b, &id);
            }
        }
        let bucket = &self.buckets[b];
        if bucket.entries.len() < k {
            if self.in_subnet(bucket.entries.iter(), &contact.addr, None) >= per_bucket
                || !self.table_has_room(&contact.addr)
            {
                return InsertOutcome::SubnetFull;
            }
            let bucket = &mut self.buckets[b];
            bucket.replacements.retain(|e| e.contact.id != contact.id);
            bucket.entries.push_back(Entry::new(contact, verified));
            self.count_in(&contact.addr);
            return InsertOutcome::Inserted;
        }
        if self.in_subnet(bucket.entries.iter(), &contact.addr, None) >= per_bucket
            || self.in_subnet(bucket.replacements.iter(), &contact.addr, Some(contact.id))
                >= per_bucket
        {
            return InsertOutcome::SubnetFull;
        }
        let bucket = &mut self.buckets[b];
        bucket.replacements.retain(|e| e.contact.id != contact.id);
        bucket.replacements.push_back(Entry::new(contact, verified));
        while bucket.replacements.len() > max_repl {
            bucket.replacements.pop_front();
        }
        if bucket.pending.is_some() {
            return InsertOutcome::Queued;
        }
        let oldest = bucket.entries[0].contact;
        bucket.pending = Some((oldest.id, now));
        InsertOutcome::PingOldest { oldest }
    }

    /// Reports the ping of the old address asked for by [`InsertOutcome::CheckAddress`].
    /// If the old address answered (`old_alive`), the contact stays there and the new
    /// address is forgotten. If not, the contact moves to the new address (verified only
    /// if it was offered with [`insert_verified`](Self::insert_verified)) and the moved
    /// contact is returned, so the caller can note the change; it is dropped instead when
    /// the new address's subnet is full (`None`).
    pub fn on_address_check(&mut self, id: &NodeId, old_alive: bool) -> Option<Contact> {
        let b = self.bucket_of(id)?;
        let pos = self.buckets[b]
            .entries
            .iter()
            .position(|e| e.contact.id == *id)?;
        let e = self.buckets[b].entries[pos];
        let (new_addr, verified, _) = e.moving_to?;
        self.buckets[b].entries[pos].moving_to = None;
        if old_alive {
            return None;
        }
        let per_bucket = self.config.max_per_subnet_bucket;
        self.count_out(&e.contact.addr);
        let fits = self.in_subnet(self.buckets[b].entries.iter(), &new_addr, Some(*id))
            < per_bucket
            && self.table_has_room(&new_addr);
        if !fits {
            self.count_in(&e.contact.addr);
            self.evict(b, id);
            return None;
        }
        let moved = Contact::new(*id, new_addr);
        let entry = &mut self.buckets[b].entries[pos];
        entry.contact = moved;
        entry.verified = verified;
        self.count_in(&new_addr);
        Some(moved)
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
            if let Some(pos) = bucket.entries.iter().position(|e| e.contact.id == *oldest) {
                if let Some(e) = bucket.entries.remove(pos) {
                    bucket.entries.push_back(e);
                }
            }
            None
        } else {
            self.evict(b, oldest).flatten()
        }
    }

    /// Drops a contact that did not answer (and promotes the freshest replacement in
    /// its bucket). Also forgets it as a replacement candidate. `None` if it was not in
    /// the table; else `Some` of the promoted replacement, if there was one.
    pub fn remove(&mut self, id: &NodeId) -> Option<Option<Contact>> {
        let b = self.bucket_of(id)?;
        let bucket = &mut self.buckets[b];
        bucket.replacements.retain(|e| e.contact.id != *id);
        if bucket.pending.is_some_and(|(p, _)| p == *id) {
            bucket.pending = None;
        }
        self.evict(b, id)
    }

    /// Removes `id` from bucket `b`'s entries; `Some(promoted replacement)` if it was
    /// there. The freshest candidate that fits the subnet limits is promoted; candidates
    /// that do not fit stay waiting.
    fn evict(&mut self, b: usize, id: &NodeId) -> Option<Option<Contact>> {
        let pos = self.buckets[b]
            .entries
            .iter()
            .position(|e| e.contact.id == *id)?;
        if let Some(gone) = self.buckets[b].entries.remove(pos) {
            self.count_out(&gone.contact.addr);
        }
        let per_bucket = self.config.max_per_subnet_bucket;
        let bucket = &self.buckets[b];
        let pick = bucket.replacements.iter().rposition(|r| {
            self.in_subnet(bucket.entries.iter(), &r.contact.addr, None) < per_bucket
                && self.table_has_room(&r.contact.addr)
        });
        let promoted = pick.and_then(|i| self.buckets[b].replacements.remove(i));
        if let Some(r) = promoted {
            self.count_in(&r.contact.addr);
            self.buckets[b].entries.push_back(r);
        }
        Some(promoted.map(|r| r.contact))
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
        self.closest_where(target, count, |e| keep(&e.contact))
    }

    /// Up to `count` **verified** contacts nearest `target` (they answered an RPC of ours
    /// at that address), nearest first: what a `find_node` answer hands out, so that a
    /// forged source address is never passed on to others.
    pub fn closest_verified(&self, target: &NodeId, count: usize) -> Vec<Contact> {
        self.closest_where(target, count, |e| e.verified)
    }

    /// [`closest_verified`](Self::closest_verified) with a filter, as
    /// [`closest_filtered`](Self::closest_filtered).
    pub fn closest_verified_filtered(
        &self,
        target: &NodeId,
        count: usize,
        keep: impl Fn(&Contact) -> bool,
    ) -> Vec<Contact> {
        self.closest_where(target, count, |e| e.verified && keep(&e.contact))
    }

    /// Walks the buckets in order of their distance to `target` and sorts only the
    /// buckets it takes from, so the cost is O(k log k + buckets), not O(table): this
    /// runs for every `find_node` answered and every replication decision.
    fn closest_where(
        &self,
        target: &NodeId,
        count: usize,
        keep: impl Fn(&Entry) -> bool,
    ) -> Vec<Contact> {
        let mut out = Vec::with_capacity(count.min(self.config.k * 2));
        if count == 0 {
            return out;
        }
        let mut scratch: Vec<(Distance, Contact)> = Vec::with_capacity(self.config.k);
        for b in bucket_order(&self.local.distance(target)) {
            let bucket = &self.buckets[b];
            if bucket.entries.is_empty() {
                continue;
            }
            scratch.clear();
            scratch.extend(
                bucket
                    .entries
                    .iter()
                    .filter(|e| keep(e))
                    .map(|e| (e.contact.id.distance(target), e.contact)),
            );
            scratch.sort_unstable_by_key(|a| a.0);
            let room = count - out.len();
            out.extend(scratch.iter().take(room).map(|&(_, c)| c));
            if out.len() == count {
                break;
            }
        }
        out
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

/// The bucket indexes in order of their contacts' distance to a target at distance `d`
/// from the local id, nearest first. A contact in bucket `j` is at distance `d ^ c` from
/// the target, where `c` (its distance to us) has its top bit at `j`. With `i` the top
/// bit of `d`: bucket `i`'s contacts are below `2^i`; every bucket `j < i` lies in
/// `[2^i, 2^(i+1))`, and among those bucket `j` comes before all lower buckets when bit
/// `j` of `d` is set (there `d ^ c` clears it) and after them when it is clear; every
/// bucket `j > i` lies in `[2^j, 2^(j+1))`, so those follow in increasing order. Every
/// bucket's contacts are thus all nearer than the next bucket's: sorting within one
/// bucket is enough.
fn bucket_order(d: &Distance) -> impl Iterator<Item = usize> + '_ {
    let bits = ID_LEN * 8;
    let bit = move |j: usize| d.0[ID_LEN - 1 - j / 8] >> (j % 8) & 1 == 1;
    let top = d.bucket_index();
    let below = top.unwrap_or(0);
    let first = top.into_iter();
    let set_below = (0..below).rev().filter(move |&j| bit(j));
    let clear_below = (0..below).filter(move |&j| !bit(j));
    let above = top.map_or(0, |i| i + 1)..bits;
    first.chain(set_below).chain(clear_below).chain(above)
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
