//! The whole Kademlia node as a sans-IO state machine: [`Node`].
//!
//! Owns: serving the five DHT RPCs as Python `kademlia` 2.2.3 does (`docs/wire.md`
//! §3), the queries (`bootstrap`, `set`, `get` and the node's own refresh, republish and
//! replication lookups), the hand-over of values to newcomers, contact liveness (RTO per
//! contact, eviction, verification of new contacts) and value lifetimes. It composes the
//! RPC [`Endpoint`], the [`RoutingTable`], the [`Lookup`](super::Lookup) state machine and a key-ordered
//! record index. Does not own: sockets, clocks, disks. It never reads a clock (time is
//! the `now` argument) and draws randomness from the seed it is given.
//!
//! # The driver's duties
//! A driver (the tokio `Dht`, the simulator, a test) runs the [`Protocol`] loop: feed
//! datagrams and timeouts, send every [`Protocol::poll_transmit`], act on every
//! [`Protocol::poll_event`], sleep until [`Protocol::poll_timeout`]. The events mean:
//! - [`Event::QueryFinished`]: a `bootstrap` / `set` / `get` ended; its result and the
//!   hops and messages it used.
//! - [`Event::StoreRequested`]: a peer asked us to keep a value. Make it durable (e.g.
//!   commit it to disk with its `expires_at`), then call [`Node::store_durable`]; the
//!   peer gets its acknowledgement only then. If that fails, call
//!   [`Node::store_failed`] (the peer gets no answer, as from a Python peer whose store
//!   raised). With [`NodeConfig::persistence`] off, stores are kept and acknowledged at
//!   once and this event (and the other persistence events) never comes.
//! - [`Event::RecordStored`] / [`Event::RecordRemoved`]: a copy this node holds was
//!   written (its own `set`) or is gone (expired): mirror it in durable storage. An
//!   expired value must no longer be persisted: delete it.
//! - [`Event::Published`]: this node published a value (its `set`): persist it and call
//!   [`Node::load_publication`] after a restart so that it is still republished.
//! - [`Event::ContactAdded`] / [`Event::ContactRemoved`]: the routing table changed;
//!   persist to rejoin after a restart (by [`Node::bootstrap`] with the saved addresses).
//! - [`Event::OwnIdSeen`]: a node answered or called with our own id (two nodes were
//!   given the same seed or id): it is never inserted; log it.
//!
//! After a restart the driver calls [`Node::load_record`] for each persisted copy (with
//! its persisted expiry turned into an `Instant`) and [`Node::load_publication`] for each
//! publication.
//!
//! # Value lifetime
//! A copy lives [`NodeConfig::value_ttl`] (default one week) from when its life started.
//! The wire `store` carries no age (Python interop), so the receiver decides:
//! - a `store` of a key we do not hold, or of another value than the one we hold, starts
//!   a new life (`now + ttl`): it is a new publication, or a copy we lacked;
//! - a `store` of the very value we hold changes nothing: it is a replica or a republish
//!   of what we have, and its expiry stays.
//!
//! Holders replicate a copy (a lookup, then `store` on the k nearest) every
//! [`NodeConfig::replicate_interval`] while its age is below
//! [`NodeConfig::replicate_window`]; their own copy keeps its age. The publisher (the
//! node that called `set`) republishes every [`NodeConfig::republish_interval`] as long
//! as it runs, plus once just after each TTL boundary of its first publication, when the
//! copies made by it expire together.
//!
//! Why mutual replication cannot keep a value alive forever: replication never renews a
//! copy the receiver holds, so a copy restarts only at a node that lacks it, i.e. whose
//! own copy expired (or a newcomer). A replicator must itself be younger than the window,
//! so keeping a value alive among a fixed set of nodes takes a fresh start in every
//! window, each at a different node (a node restarts at most once per TTL): at least
//! `ttl / replicate_window` nodes (84 with the defaults), more than the k = 20 replicas a
//! key has. Once the publisher stops, a value lives at most about `ttl +
//! replicate_window` more, unless new nodes keep arriving next to its key (each
//! newcomer's copy starts a life; that residue is bounded by churn, not by replication)
//! or it keeps being read: a `get` stores what it found on the nearest node asked that
//! lacked it (as Python does), which starts a life there, so a value read at least once
//! a TTL near its key can outlive its publisher. Expired copies are never served (even
//! between two timeouts) and [`Event::RecordRemoved`] tells the driver to delete them.
//!
//! # Timeouts
//! Every contact has its own RTO (RFC 6298, [`RttEstimator`], floor
//! [`NodeConfig::min_rto`], ceiling [`NodeConfig::rpc_timeout`]). A contact never
//! measured gets this node's estimate over all its measured round trips, at most
//! [`NodeConfig::initial_rto`] (1 s), and 1 s until two were measured. A lookup stops
//! waiting for a contact after its RTO, or the wait for an unmeasured contact if that is
//! shorter, and asks the next candidate (a late answer still counts); the RPC resends
//! its datagram at the RTO (at most `rpc_timeout` / 4) and twice more, each wait
//! doubling, and waits up to `rpc_timeout` (or [`NodeConfig::rto_wait_factor`] RTOs, if
//! set). A bootstrap ping is resent [`NodeConfig::bootstrap_retries`] times within
//! `rpc_timeout`. A `set`'s lookup, once
//! converged, asks the rest of the k nearest at once, and the `set` finishes when its
//! stores were answered or their wait passed (as a lookup's: the RTO, at most the pooled
//! estimate): about one RTO after the live replicas answered. A `get`'s lookup that
//! would end short of k answers first gives each contact past its wait two more of
//! those waits to answer late ([`LookupConfig::late_grace`](super::LookupConfig)): the
//! resend of a lost datagram, or a slow holder, may carry the value; while none acknowledged, it waits on for the resends' answers
//! (to `rpc_timeout`), so that heavy loss does not end it with nothing stored. Only answers that came before a resend are
//! round-trip samples (Karn's rule). Python interop is unchanged: a resend is the same
//! datagram, which a Python peer answers again.
//!
//! # Contacts that are gone, and one-shot clients
//! - A contact enters the routing table only after it answered one of our requests (a
//!   `find_*`, `store`, or a ping). A node that only calls us is pinged
//!   [`NodeConfig::verify_delay`] later and inserted if it answers: a one-shot client
//!   (joins, runs one `get`, exits) is gone by then and never pollutes the table, and
//!   only contacts that answered us are handed out by `find_node` (issue 10's rule).
//!   Two exceptions insert a caller at once (and ping it, so that it is handed out once
//!   it answered): with [`NodeConfig::insert_joining`], one that looks up its own id
//!   with `find_node` (that is how a node joins), and every caller when
//!   [`NodeConfig::verify_callers`] is off (Python's rule).
//! - A contact that leaves an RPC unanswered past its RTO is suspect: not handed out nor
//!   used to start lookups until it answers again. When the RPC fails (after
//!   `rpc_timeout`) the contact is pinged once; after [`NodeConfig::max_failures`]
//!   consecutive failures (default 2: that ping failing too) it is evicted and the
//!   freshest replacement takes its place. Contacts handed out by `find_node` that were
//!   not heard from for [`NodeConfig::recheck_after`] are pinged too (16 such pings in
//!   flight at most; a stale contact handed out while all 16 are taken waits in a queue
//!   of up to 1,024 and is pinged as a slot frees). So a contact that died at `t` stops
//!   being handed out one RTO after the first RPC we send it after `t`; if this node
//!   sends it nothing, the first hand-out at least `recheck_after` (60 s) after its last
//!   answer pings it, and it is handed out only until that ping passes its RTO (plus its
//!   wait in the queue). The bound is on hand-outs, not on time: a dead contact nobody
//!   asks for stays in the table, unhanded, until then. On the simulator (200 nodes, a
//!   quarter killed, `crates/sim/tests/dht_one_shot.rs`) each holder handed a dead
//!   contact out at most 4 times after 65 s, and the hand-outs of the dead fell from
//!   about 500 in the 8 s from 65 s after the kill to under 40 in the next 8 s (those
//!   are mostly first hand-outs past `recheck_after`, each of which pings).
//!   It is evicted at most `2 × rpc_timeout` after that first RPC.
//!
//! # Bounded work
//! No step costs O(stored records): the hand-over walks the key range a newcomer could be
//! responsible for with a cursor, a few keys per step, with a bounded number of jobs and
//! stores in flight, sending the held value (shared, never copied per newcomer). Expiry,
//! replication and republish deadlines are heaps popped a bounded number per timeout.
//! Serving `find_node` costs one pass over the table (hundreds of contacts).

mod contacts;
mod handover;
mod query;
pub(crate) mod quota;
mod rtt;
mod serve;
mod signed;
mod timers;
mod types;

pub(crate) mod records;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;

use super::rto::{RtoConfig, RttEstimator};
use super::{is_storable, Contact, InsertOutcome, NodeId, RoutingConfig, RoutingTable};
use crate::rpc::{CallId, CallOptions, Endpoint, Event as RpcEvent, RequestToken};
use crate::{Protocol, Transmit};
use handover::Handover;
use query::{CallKind, Pending, Query};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use records::Records;
pub use records::{MemoryValues, ValueStore};
use rmpv::Value;
pub(crate) use rtt::{lookup_wait_from, rto_from};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use types::{
    CommandError, Event, NodeConfig, NodeStats, QueryId, QueryOutcome, QueryStats, StoreToken,
};

/// What the node knows of one address it talked to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PeerInfo {
    rtt: RttEstimator,
    failures: u32,
    /// Left an RPC unanswered past its RTO, not answered since: not handed out.
    suspect: bool,
    last_seen: Option<Instant>,
    recheck_in_flight: bool,
    /// Waiting in `recheck_queue` for a free recheck slot.
    recheck_queued: bool,
}

/// A Kademlia node without I/O. See the [module docs](self) for what it does and the
/// driver's duties.
///
/// ```
/// use rpcudp_proto::kad::{Event, Node, NodeConfig, NodeId, QueryOutcome};
/// use rpcudp_proto::Protocol;
/// use std::time::Instant;
///
/// let config = NodeConfig { persistence: false, ..NodeConfig::default() };
/// let (a_addr, b_addr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
/// let mut a = Node::new(config.clone(), NodeId::from_bytes([1; 20]), 1);
/// let mut b = Node::new(config, NodeId::from_bytes([2; 20]), 2);
/// let now = Instant::now(); // the driver's clock
///
/// // b bootstraps from a: datagrams are carried by hand until both are quiet.
/// let q = b.bootstrap(now, &[a_addr]).unwrap();
/// for _ in 0..10 {
///     while let Some(t) = b.poll_transmit() { a.handle_datagram(now, b_addr, None, &t.payload) }
///     while let Some(t) = a.poll_transmit() { b.handle_datagram(now, a_addr, None, &t.payload) }
/// }
/// let finished = std::iter::from_fn(|| b.poll_event()).find_map(|e| match e {
///     Event::QueryFinished { id, result, .. } if id == q => Some(result),
///     _ => None,
/// });
/// assert!(matches!(finished, Some(Ok(QueryOutcome::Bootstrap { answered: 1, .. }))));
/// assert_eq!(b.contacts().len(), 1);
/// ```
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    config: NodeConfig,
    rto: RtoConfig,
    ep: Endpoint,
    table: RoutingTable,
    rng: SmallRng,
    records: Records,
    /// Outstanding RPCs, by call.
    calls: HashMap<CallId, Pending>,
    /// RTO timer sequence numbers of the calls still outstanding.
    rto_calls: HashMap<u64, CallId>,
    rto_timers: BinaryHeap<Reverse<(Instant, u64)>>,
    next_seq: u64,
    queries: HashMap<QueryId, Query>,
    next_query: u64,
    maintenance_running: usize,
    peers: HashMap<SocketAddr, PeerInfo>,
    /// Nodes that called us, to ping at the instant (FIFO: the delay is constant).
    verify_queue: VecDeque<(Instant, Contact)>,
    verify_pending: HashSet<SocketAddr>,
    stores: HashMap<StoreToken, query::PendingStore>,
    next_store: u64,
    handover: Handover,
    next_refresh: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: NodeStats,
    stopped: bool,
    rechecks_in_flight: usize,
    /// Stale contacts handed out while every recheck slot was taken, pinged in turn as
    /// slots free up (so a dead one is not handed out unchecked for ever).
    recheck_queue: VecDeque<(SocketAddr, NodeId)>,
    /// Every round trip measured, whatever the contact (the estimate for unmeasured ones).
    rtt_all: RttEstimator,
    rtt_samples: u64,
}

/// Round trips measured before the node-wide estimate stands in for unmeasured contacts.
///
/// Two: a one-shot client has measured its bootstrap ping and one lookup answer when
/// it sends its second round of `find`s; with more, every dead contact of that round
/// cost it the initial 1 s instead of a few round trips (issue 9 §4's tail).
const MIN_AGGREGATE_SAMPLES: u64 = 2;

/// How many more of its wait a `get`'s or `set`'s lookup gives a contact's late answer
/// before it ends short of k answers (`LookupConfig::late_grace`): the call resends at
/// the wait, so an answer to the resend comes about one wait and a round trip later.
const LATE_GRACE: u32 = 2;

/// Size of a verification ping: header 21, `["ping", [id]]` 29.
const VERIFY_PING_BYTES: usize = 50;

/// Most pings of handed-out contacts in flight at once.
const MAX_RECHECKS: usize = 16;

/// Most stale contacts waiting for a recheck slot (a routing table's worth, roughly).
const MAX_QUEUED_RECHECKS: usize = 1024;

/// Most queue entries looked at per freed recheck slot (entries no longer worth a ping
/// are skipped): bounded work per event.
const RECHECK_QUEUE_SKIPS: usize = 8;

/// Resends of a lookup, store or liveness RPC (at its RTO, then doubling, within
/// `rpc_timeout`).
const RPC_RESENDS: u32 = 2;

/// Growth of a bootstrap ping's wait from one resend to the next.
const BOOTSTRAP_BACKOFF: f64 = 1.5;

/// The shortest wait before a resend (a loopback round trip is well under it).
const MIN_RESEND_WAIT: Duration = Duration::from_millis(10);

impl Node {
    /// A node with id `id`; `seed` drives its RPC message ids, retry jitter and refresh
    /// targets (the same seed and inputs replay the same outputs). Two nodes must not
    /// share an id: derive ids from distinct seeds (a node seeing its own id counts it
    /// and reports [`Event::OwnIdSeen`]).
    pub fn new(config: NodeConfig, id: NodeId, seed: u64) -> Node {
        let k = config.k.max(1);
        let routing = RoutingConfig {
            k,
            pending_timeout: config.rpc_timeout * 4,
            strict_local: config.endpoint.limits.strict_local,
            ..RoutingConfig::default()
        };
        // An answer over 3× what its asker sent (find_node, find_value) waits until the
        // asker answers a ping, which every Kademlia peer does (SECURITY.md).
        let mut endpoint = config.endpoint.clone();
        if endpoint.limits.validation_probe.is_none() {
            endpoint.limits.validation_probe = Some(crate::rpc::ValidationProbe {
                method: "ping".into(),
                args: vec![super::wire::id_value(&id)],
                // Resent once: a lost probe would otherwise cost the held answer.
                options: CallOptions {
                    attempt_timeout: config.initial_rto.min(config.rpc_timeout),
                    retries: 1,
                    backoff: 1.0,
                    ..CallOptions::default()
                },
            });
        }
        let rto = RtoConfig {
            min: config.min_rto,
            max: config.rpc_timeout,
            initial: config.initial_rto,
        };
        let config = NodeConfig {
            k,
            alpha: config.alpha.max(1),
            ..config
        };
        Node {
            id,
            rto,
            ep: Endpoint::new(endpoint, seed),
            table: RoutingTable::new(id, routing),
            rng: SmallRng::seed_from_u64(seed ^ 0x6b61_646e_6f64_6521),
            records: Records::new(id),
            calls: HashMap::new(),
            rto_calls: HashMap::new(),
            rto_timers: BinaryHeap::new(),
            next_seq: 0,
            queries: HashMap::new(),
            next_query: 0,
            maintenance_running: 0,
            peers: HashMap::new(),
            verify_queue: VecDeque::new(),
            verify_pending: HashSet::new(),
            stores: HashMap::new(),
            next_store: 0,
            handover: Handover::default(),
            next_refresh: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            stopped: false,
            rechecks_in_flight: 0,
            recheck_queue: VecDeque::new(),
            rtt_all: RttEstimator::default(),
            rtt_samples: 0,
            config,
        }
    }

    /// A node as [`new`](Self::new) that keeps the bytes of the copies it holds in
    /// `values` (the default is [`MemoryValues`]); memory then holds only the index.
    /// A durable store is filled again after a restart with
    /// [`load_record_index`](Self::load_record_index).
    pub fn with_value_store(
        config: NodeConfig,
        id: NodeId,
        seed: u64,
        values: Box<dyn ValueStore>,
    ) -> Node {
        let mut node = Node::new(config, id, seed);
        node.records = Records::with_values(id, values);
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The RPC endpoint underneath (for its counters).
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// The contacts in the routing table.
    pub fn contacts(&self) -> Vec<Contact> {
        self.table.contacts()
    }

    /// The value held here under `key` (not expired at `now`), without asking the network.
    pub fn local_value(&self, key: &NodeId, now: Instant) -> Option<Arc<Value>> {
        self.records.value(key, now)
    }

    /// When the copy held under `key` expires.
    pub fn expires_at(&self, key: &NodeId) -> Option<Instant> {
        self.records.peek(key).map(|h| h.expires_at)
    }

    /// How many copies are held (expired ones not yet removed included).
    pub fn stored_count(&self) -> usize {
        self.records.len()
    }

    /// Bytes of values held (as charged against [`NodeConfig::max_store_bytes`]).
    pub fn stored_bytes(&self) -> usize {
        self.records.quota().total_bytes()
    }

    /// The most records any one source subnet (/24, /64) has stored here (exempt local
    /// sources and our own copies not counted).
    pub fn largest_store_share(&self) -> usize {
        self.records.quota().largest_share()
    }

    /// How many values this node publishes.
    pub fn published_count(&self) -> usize {
        self.records.published_len()
    }

    /// The current RTO of the contact at `addr`. A contact never measured gets this
    /// node's estimate over all the round trips it measured (SRTT + 2·RTTVAR of every
    /// sample: see [`RttEstimator::pooled_rto`]), never above the initial
    /// RTO (1 s by default), and that initial RTO until a few round trips were measured.
    /// (In a large network most lookup candidates were never measured by the asker; 1 s
    /// for each dead one would make lookups seconds long.)
    pub fn rto_of(&self, addr: &SocketAddr) -> Duration {
        rto_from(
            &self.peers,
            &self.rto,
            &self.rtt_all,
            self.rtt_samples,
            addr,
        )
    }

    /// Whether the node was stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn check_running(&self) -> Result<(), CommandError> {
        if self.stopped {
            Err(CommandError::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Joins the network: pings every address in `addrs` (as Python `bootstrap` does),
    /// inserts those that answer, then looks up its own id to fill the table. Ends with
    /// [`QueryOutcome::Bootstrap`].
    pub fn bootstrap(
        &mut self,
        now: Instant,
        addrs: &[SocketAddr],
    ) -> Result<QueryId, CommandError> {
        self.check_running()?;
        self.touch_clock(now);
        let q = self.start_bootstrap(now, addrs);
        self.after_input(now, None);
        Ok(q)
    }

    /// Pings every address in `addrs` and inserts those that answer, without the lookup
    /// of its own id that [`bootstrap`](Self::bootstrap) does next: enough for a
    /// short-lived node that runs one `set` or `get`. Ends with
    /// [`QueryOutcome::Bootstrap`] (its `contacts` empty).
    pub fn introduce(
        &mut self,
        now: Instant,
        addrs: &[SocketAddr],
    ) -> Result<QueryId, CommandError> {
        self.check_running()?;
        self.touch_clock(now);
        let q = self.start_pings(now, addrs, query::Purpose::Introduce);
        self.after_input(now, None);
        Ok(q)
    }

    /// Stores `value` under `key` on the k nodes nearest it (and here, if this node is
    /// among them), and republishes it while the node runs. Ends with
    /// [`QueryOutcome::Set`].
    pub fn set(
        &mut self,
        now: Instant,
        key: NodeId,
        value: Value,
    ) -> Result<QueryId, CommandError> {
        self.check_running()?;
        if !is_storable(&value) {
            return Err(CommandError::NotStorable);
        }
        let size = quota::value_size(&value);
        if size > self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge {
                size,
                limit: self.config.max_value_bytes,
            });
        }
        self.no_contacts_check()?;
        self.touch_clock(now);
        let value = Arc::new(value);
        let next = self.next_republish(now, now);
        self.records.publish(key, value.clone(), next, now);
        if self.config.persistence {
            self.events.push_back(Event::Published {
                key,
                value: value.clone(),
            });
        }
        let q = self.start_store_query(now, key, value, query::Purpose::Set);
        self.after_input(now, None);
        Ok(q)
    }

    /// Looks up the value under `key`: here first, then on the network (and, as Python
    /// `kademlia` does, stores what it found on the nearest node asked that lacked it).
    /// Ends with [`QueryOutcome::Get`].
    pub fn get(&mut self, now: Instant, key: NodeId) -> Result<QueryId, CommandError> {
        self.check_running()?;
        self.touch_clock(now);
        let local = self
            .records
            .value(&key, now)
            .or_else(|| self.records.publication(&key).map(|p| p.value.clone()));
        if let Some(v) = local {
            let id = self.fresh_query_id();
            self.events.push_back(Event::QueryFinished {
                id,
                result: Ok(QueryOutcome::Get {
                    value: Some((*v).clone()),
                }),
                stats: QueryStats {
                    hops: 0,
                    messages: 0,
                    started: now,
                    finished: now,
                },
            });
            return Ok(id);
        }
        self.no_contacts_check()?;
        let q = self.start_get(now, key);
        self.after_input(now, None);
        Ok(q)
    }

    /// Stops the node: queries end with `Err(ShutDown)`, stores waiting for durability
    /// get no answer, calls are withdrawn, and every later command fails with
    /// [`CommandError::ShutDown`]; datagrams are ignored. What is already queued in
    /// `poll_transmit` / `poll_event` can still be drained.
    pub fn stop(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let mut ids: Vec<QueryId> = self.queries.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(q) = self.queries.remove(&id) {
                if q.purpose.is_command() {
                    self.events.push_back(Event::QueryFinished {
                        id,
                        result: Err(CommandError::ShutDown),
                        stats: QueryStats {
                            hops: 0,
                            messages: q.messages,
                            started: q.started,
                            finished: now,
                        },
                    });
                }
            }
        }
        for (_, s) in self.stores.drain() {
            self.ep.abandon(now, s.request);
        }
        for (call, _) in self.calls.drain() {
            self.ep.cancel(call);
        }
        self.rto_calls.clear();
        self.rto_timers.clear();
        self.verify_queue.clear();
        self.verify_pending.clear();
        self.handover = Handover::default();
        self.flush_endpoint(None);
    }

    /// A `store` from [`Event::StoreRequested`] is durable: keep it and acknowledge it.
    /// Unknown tokens (already answered, or from before `stop`) are ignored.
    pub fn store_durable(&mut self, now: Instant, token: StoreToken) {
        let Some(s) = self.stores.remove(&token) else {
            return;
        };
        self.keep_copy(now, s.key, s.value, s.since, s.expires_at, s.source);
        self.flush_endpoint(None);
        self.ep.respond(now, s.request, &Value::Boolean(true));
        self.flush_endpoint(s.local);
        self.after_input(now, None);
    }

    /// A `store` from [`Event::StoreRequested`] could not be made durable: the peer gets
    /// no answer (it counts the store as failed).
    pub fn store_failed(&mut self, now: Instant, token: StoreToken) {
        if let Some(s) = self.stores.remove(&token) {
            self.stats.stores_failed += 1;
            self.ep.abandon(now, s.request);
        }
        self.after_input(now, None);
    }

    /// Reloads a persisted copy after a restart (no event). One that expired by `now` is
    /// not loaded.
    pub fn load_record(&mut self, now: Instant, key: NodeId, value: Value, expires_at: Instant) {
        if expires_at <= now || !is_storable(&value) {
            return;
        }
        self.touch_clock(now);
        // Its age is unknown: it counts as past the replication window (it was replicated
        // before the restart, if ever).
        let since = now.checked_sub(self.config.replicate_window).unwrap_or(now);
        self.records.put(
            key,
            records::Held {
                since,
                expires_at,
                source: None,
                size: quota::value_size(&value),
            },
            Arc::new(value),
            None,
        );
    }

    /// Reloads the index entry of a copy whose value the node's [`ValueStore`] holds
    /// already (a durable one, after a restart; no event, the value is not read), with
    /// the value's size (as MessagePack) for the store's byte quota. One that expired by
    /// `now` is not loaded.
    pub fn load_record_index(
        &mut self,
        now: Instant,
        key: NodeId,
        expires_at: Instant,
        size: usize,
    ) {
        if expires_at <= now {
            return;
        }
        self.touch_clock(now);
        // As `load_record`: its age is unknown.
        let since = now.checked_sub(self.config.replicate_window).unwrap_or(now);
        let held = records::Held {
            since,
            expires_at,
            source: None,
            size,
        };
        self.records.put_index(key, held, None);
    }

    /// Reloads a persisted publication after a restart (no event): it is republished
    /// from now on.
    pub fn load_publication(&mut self, now: Instant, key: NodeId, value: Value) {
        if !is_storable(&value) {
            return;
        }
        self.touch_clock(now);
        // Republished soon: the network may have lost it while we were down.
        let next = now + self.config.rpc_timeout;
        self.records.publish(key, Arc::new(value), next, now);
    }

    fn no_contacts_check(&self) -> Result<(), CommandError> {
        if self.table.is_empty() {
            Err(CommandError::NoContacts {
                own_id_contacts: self.stats.own_id_contacts,
            })
        } else {
            Ok(())
        }
    }

    fn touch_clock(&mut self, now: Instant) {
        if self.next_refresh.is_none() {
            if let Some(i) = self.config.refresh_interval {
                self.next_refresh = Some(now + refresh_check_period(i));
            }
        }
    }

    fn fresh_query_id(&mut self) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query += 1;
        id
    }

    /// When a publication first published at `first` is republished next after `now`:
    /// the regular interval, or just after a TTL boundary of its first publication if
    /// that comes sooner (the copies it made then expire together).
    fn next_republish(&self, now: Instant, first: Instant) -> Instant {
        let regular = now + self.config.republish_interval;
        let ttl = self.config.value_ttl.max(Duration::from_secs(1));
        let elapsed = now.saturating_duration_since(first);
        let n = elapsed.as_secs_f64() / ttl.as_secs_f64();
        let boundary = first + ttl.mul_f64(n.floor() + 1.0) + self.config.rpc_timeout;
        regular.min(boundary)
    }

    fn call_options(&self) -> CallOptions {
        CallOptions {
            attempt_timeout: self.config.rpc_timeout,
            retries: 0,
            ..CallOptions::default()
        }
    }

    /// Sends an RPC; `None` if the endpoint refused it (nothing sent).
    fn send_rpc(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: Option<NodeId>,
        method: &str,
        args: &[Value],
        kind: CallKind,
    ) -> Option<CallId> {
        // Lookups, sets and liveness checks stop waiting at the contact's RTO.
        let rto_timer = matches!(
            kind,
            CallKind::Find(_) | CallKind::Store(_) | CallKind::Recheck
        );
        let mut options = self.call_options();
        let rto = self.rto_of(&to);
        let mut resend_at = None;
        let timeout = self.config.rpc_timeout;
        if matches!(kind, CallKind::BootstrapPing(_)) {
            // The only way in: a lost datagram must not leave the node alone. The
            // `bootstrap_retries` resends grow by 1.5× and all fit in `rpc_timeout`
            // (the first wait is `rpc_timeout` / the sum of the factors, at most the
            // initial RTO), so a short `--timeout` still resends: at 20% loss each
            // way a round trip fails 36% of the time, and 7 attempts fail 0.08%.
            let retries = self.config.bootstrap_retries.min(16);
            let factors: f64 = (0..=retries)
                .map(|i| BOOTSTRAP_BACKOFF.powi(i as i32))
                .sum();
            let first = timeout
                .div_f64(factors)
                .min(self.rto.initial.min(timeout))
                .max(MIN_RESEND_WAIT.min(timeout));
            options.attempt_timeout = first;
            options.retries = retries;
            options.backoff = BOOTSTRAP_BACKOFF;
            options.max_attempt_timeout = timeout;
            options.deadline = Some(timeout);
            resend_at = Some(now + first);
        } else if rto_timer && self.config.resend_at_rto {
            // Resends of the same datagram, the first at the RTO (at most a quarter of
            // `rpc_timeout`, so that even an unmeasured contact under a short timeout is
            // asked again), doubling: a lost datagram costs one RTO, not the call, and
            // 20% loss each way leaves 5% of calls unanswered, not 36%. The wait goes
            // on to `rpc_timeout` overall.
            let first = rto.min(timeout / 4).max(MIN_RESEND_WAIT.min(timeout));
            options.attempt_timeout = first;
            options.retries = RPC_RESENDS;
            options.backoff = 2.0;
            options.jitter = 0.0;
            options.max_attempt_timeout = timeout;
            // Then it waits up to `rpc_timeout`, or gives up after a few RTOs if so
            // configured. (Not by default: a callee may rightly hold an answer until
            // our address is validated, which takes it a round trip of its own, and an
            // answer after the give-up is lost to the lookup.)
            let give_up = match self.config.rto_wait_factor {
                0 => timeout,
                f => rto.saturating_mul(f.max(2)),
            };
            options.deadline = Some(give_up.min(timeout));
            resend_at = Some(now + first);
        }
        let call = self.ep.call(now, to, method, args, options).ok()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        if rto_timer {
            // A store waits as a lookup does: its replicas answered the lookup a moment
            // ago, so a store unanswered past the pooled estimate was most likely lost
            // (its resend goes on and a late acknowledgement still stores), and a
            // contact measured once (whose RTO is three round trips) must not hold the
            // set (issue 9 §4, simulator: up to 800 ms after the last acknowledgement).
            let wait = if matches!(kind, CallKind::Find(_) | CallKind::Store(_)) {
                lookup_wait_from(&self.peers, &self.rto, &self.rtt_all, self.rtt_samples, &to)
            } else {
                rto
            };
            self.rto_timers.push(Reverse((now + wait, seq)));
            self.rto_calls.insert(seq, call);
            if matches!(kind, CallKind::Find(_)) {
                // Wakes the lookup when its grace for this call's late answer ends
                // (`LATE_GRACE`); a timer of a call already ended does nothing.
                let grace = self.next_seq;
                self.next_seq += 1;
                let at = now + wait + wait.saturating_mul(LATE_GRACE);
                self.rto_timers.push(Reverse((at, grace)));
                self.rto_calls.insert(grace, call);
            }
        }
        self.calls.insert(
            call,
            Pending {
                kind,
                to,
                id,
                sent: now,
                seq,
                resend_at,
            },
        );
        Some(call)
    }

    /// Moves the endpoint's datagrams to ours, stamping them with `source`.
    fn flush_endpoint(&mut self, source: Option<IpAddr>) {
        while let Some(mut t) = self.ep.poll_transmit() {
            if t.source.is_none() {
                t.source = source;
            }
            self.transmits.push_back(t);
        }
    }

    /// After any input: process the endpoint's events, pump the hand-over, collect
    /// datagrams.
    fn after_input(&mut self, now: Instant, local: Option<IpAddr>) {
        // Answers to requests carry `local`; other datagrams (our own requests) leave the
        // source to the kernel, which is right for them on any socket.
        let mut budget = 4096;
        while let Some(event) = self.ep.poll_event() {
            self.flush_endpoint(None);
            match event {
                RpcEvent::Request {
                    token,
                    from,
                    method,
                    args,
                } => self.serve(now, token, from, local, &method, args),
                RpcEvent::CallSucceeded { call, value } => self.on_answer(now, call, Some(value)),
                RpcEvent::CallFailed { call, .. } => self.on_answer(now, call, None),
            }
            budget -= 1;
            if budget == 0 {
                break;
            }
        }
        if !self.stopped {
            self.pump_handover(now);
        }
        self.flush_endpoint(None);
    }

    fn respond(&mut self, now: Instant, token: RequestToken, value: &Value, local: Option<IpAddr>) {
        self.flush_endpoint(None);
        self.ep.respond(now, token, value);
        self.flush_endpoint(local);
    }

    /// Keeps a copy of `value` under `key`: a new life for a new key or another value,
    /// nothing for the value already held (see "Value lifetime").
    fn keep_copy(
        &mut self,
        now: Instant,
        key: NodeId,
        value: Arc<Value>,
        since: Instant,
        expires_at: Instant,
        source: Option<crate::subnet::SourceKey>,
    ) -> bool {
        if let Some(held) = self.records.value(&key, now) {
            if *held == *value {
                return false;
            }
        }
        let first = since + self.config.replicate_interval;
        let replicate_at =
            (self.config.replicate_interval < self.config.replicate_window).then_some(first);
        self.records.put(
            key,
            records::Held {
                since,
                expires_at,
                source,
                size: quota::value_size(&value),
            },
            value,
            replicate_at,
        );
        true
    }
}

/// Checking a tenth as often as the interval bounds how late a refresh can be.
fn refresh_check_period(interval: Duration) -> Duration {
    (interval / 10).max(Duration::from_millis(100))
}

impl Protocol for Node {
    type Event = Event;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
    ) {
        if self.stopped {
            self.stats.requests_after_stop += 1;
            return;
        }
        self.touch_clock(now);
        self.flush_endpoint(None);
        self.ep.handle_datagram(now, from, datagram);
        // Only answers from the duplicate cache come out here: they go from `local`.
        self.flush_endpoint(local);
        self.after_input(now, local);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.flush_endpoint(None);
        self.after_input(now, None);
        if self.stopped {
            return;
        }
        self.handle_timers(now);
        self.after_input(now, None);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return self.ep.poll_timeout();
        }
        [
            self.ep.poll_timeout(),
            self.rto_timers.peek().map(|Reverse((at, _))| *at),
            self.verify_queue.front().map(|(at, _)| *at),
            self.records.next_expiry(),
            // Replications and republishes wait while the maintenance queries are all
            // busy or nobody is known (else a due entry would make the driver spin); a
            // query ending or a contact arriving is an input, after which the driver
            // asks again.
            (self.maintenance_running < self.config.max_maintenance_queries
                && !self.table.is_empty())
            .then(|| self.records.next_maintenance())
            .flatten(),
            self.next_refresh,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
