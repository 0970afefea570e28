//! The node's public vocabulary: its configuration ([`NodeConfig`]), the names of its
//! commands' results ([`QueryId`], [`StoreToken`], [`QueryOutcome`], [`CommandError`]),
//! what it asks of its driver ([`Event`]) and its counters ([`NodeStats`]).
//!
//! Only plain data lives here; what the node does with it is in [`super`].

use super::super::{Contact, NodeId};
use crate::rpc::EndpointConfig;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a [`Node`](super::Node) behaves. Plain fields with [`Default`]; change what you need with
/// struct update syntax.
///
/// ```
/// use rpcudp_proto::kad::NodeConfig;
/// use std::time::Duration;
/// let config = NodeConfig { rpc_timeout: Duration::from_secs(1), ..NodeConfig::default() };
/// assert_eq!(config.k, 20);
/// ```
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Contacts per bucket and nodes a value is stored on (k). Default 20.
    pub k: usize,
    /// RPCs in flight per lookup (alpha). Default 3.
    pub alpha: usize,
    /// The longest any RPC waits for its answer, and the RTO's ceiling. Default 5 s.
    pub rpc_timeout: Duration,
    /// The RTO's floor. Default 100 ms (see [`RtoConfig::min`](crate::kad::RtoConfig::min)).
    pub min_rto: Duration,
    /// The RTO of a contact never measured (capped at `rpc_timeout`). Default 1 s.
    pub initial_rto: Duration,
    /// Whether lookup, store and liveness RPCs resend their datagram, first at the
    /// contact's RTO (at most a quarter of `rpc_timeout`), then twice more, each wait
    /// doubling, all within `rpc_timeout`. Default true: under loss a lost datagram
    /// costs one RTO instead of the answer. Python peers answer a resend like a new
    /// request (harmless for these idempotent RPCs).
    pub resend_at_rto: bool,
    /// Resends of each bootstrap ping (same datagram) before the address counts as not
    /// answering, all within `rpc_timeout`: each wait is 1.5× the previous one, the
    /// first `rpc_timeout` / (1 + 1.5 + … + 1.5^retries), at most the initial RTO.
    /// Default 6 (with the default 5 s: sent at about 0, 0.16, 0.39, 0.74, 1.3, 2.0 and
    /// 3.2 s), so a join survives 20% loss each way (a round trip lost 36% of the time)
    /// 99.9% of the time, also with a short `--timeout` (a resend waits at least 10 ms).
    /// (8 was tried: `cli_loss`'s DHT test then failed 2 runs of 5, against none of
    /// about 20 with 6; not diagnosed.) Also how often a bootstrap's lookup of its own id
    /// that found nobody is run again.
    pub bootstrap_retries: u32,
    /// Lookup, store and liveness RPCs give up after this many of the contact's RTOs
    /// (never past `rpc_timeout`; at least 2, as they resend at one RTO); 0 waits the
    /// whole `rpc_timeout`. Default 0: with 4, on the simulator with peers that hold big
    /// answers until the asker's address is validated (issue 10's anti-amplification),
    /// late answers were lost and a loss-free 200-node network acknowledged sets on 12
    /// nodes of 20 instead of 20.
    pub rto_wait_factor: u32,
    /// A bucket with no lookup for this long is refreshed by a lookup of a random id in
    /// it. Default one hour (as Python `kademlia`); `None` turns refreshing off.
    pub refresh_interval: Option<Duration>,
    /// How often the publisher stores its values again. Default one hour.
    pub republish_interval: Duration,
    /// How often a holder replicates a copy while it is young. Default one hour.
    pub replicate_interval: Duration,
    /// Holders replicate a copy only while its age is below this. Default two hours (so
    /// once, at one hour). See the [module docs](super), "Value lifetime".
    pub replicate_window: Duration,
    /// How long a copy lives. Default one week (as Python `kademlia`'s storage).
    pub value_ttl: Duration,
    /// Most values held for others; a `store` of a new key beyond it evicts the record
    /// this node is least responsible for (the farthest key of the source subnet holding
    /// the most bytes), or gets no answer if no source's record can go. Default 100,000.
    pub max_records: usize,
    /// Largest value stored (its bytes for `str` / `bin`, plus 5): larger `store`s get no
    /// answer and `set` refuses them. Default 8192 (a Python peer cannot send more).
    pub max_value_bytes: usize,
    /// Most bytes of values held, all together (evicting as for `max_records`). Default
    /// 64 MiB.
    pub max_store_bytes: usize,
    /// Most records one source subnet (IPv4 /24, IPv6 /64) may have stored here; more
    /// get no answer. Local sources are exempt unless `endpoint.limits.strict_local`.
    /// Default 5000.
    pub max_records_per_source: usize,
    /// Most bytes one source subnet may have stored here. Default 4 MiB.
    pub max_bytes_per_source: usize,
    /// Consecutive failed RPCs after which a contact is evicted. Default 2: the first
    /// failure makes the contact suspect (not handed out) and pings it once, so one lost
    /// datagram does not cost a live contact, and a dead one goes when that ping fails.
    /// 1 is Python's rule (evict at the first failed RPC).
    pub max_failures: u32,
    /// How long after a node first calls us it is pinged, to be inserted if it answers.
    /// Default 5 s (longer than a one-shot client lives).
    pub verify_delay: Duration,
    /// Most nodes waiting for that ping; more are not remembered. Default 256.
    pub max_pending_verifications: usize,
    /// A contact handed out by `find_node` that was not heard from for this long is
    /// pinged. Default 60 s.
    pub recheck_after: Duration,
    /// Newcomers whose hand-over is queued at once; more get none (counted). Default 16.
    pub handover_jobs: usize,
    /// Keys examined per hand-over step. Default 8.
    pub handover_keys_per_step: usize,
    /// Hand-over stores in flight at once, all newcomers together. Default 4.
    pub handover_in_flight: usize,
    /// Refresh, republish and replication lookups running at once. Default 8.
    pub max_maintenance_queries: usize,
    /// Deadlines (RTO timers, expiries, replications, verifications) handled per
    /// `handle_timeout`; the rest come at the next, which `poll_timeout` asks for at once.
    /// Default 64.
    pub max_due_per_timeout: usize,
    /// Whether the driver persists: `store` waits for [`Node::store_durable`](super::Node::store_durable), and the
    /// persistence events come. Default true; a simulator turns it off.
    pub persistence: bool,
    /// The RPC endpoint's limits (the dialect must stay rpcudp for Python `kademlia`).
    /// Its `default_call` timing is not used: the node times every RPC itself, from
    /// [`rpc_timeout`](Self::rpc_timeout) and each contact's measured round trips.
    pub endpoint: EndpointConfig,
    /// Whether a node that only called us is verified (pinged after
    /// [`verify_delay`](Self::verify_delay)) before it is inserted. Default true: one-shot
    /// clients (join, one `get`, gone) are gone by then and never handed out, and a
    /// forged caller never enters the table. `false` inserts every caller at once, as
    /// Python `kademlia` does (its one-shot clients then stay in tables until an RPC to
    /// them fails).
    pub verify_callers: bool,
    /// With [`verify_callers`](Self::verify_callers): whether a caller that looks up its
    /// own id with `find_node` (how a node joins) is inserted (and pinged) at once
    /// instead of after `verify_delay`, so that a network learns a joining node at once.
    /// One-shot clients that join that way (Python's, or ones using
    /// [`bootstrap`](super::Node::bootstrap)) are then inserted too; ours use
    /// [`introduce`](super::Node::introduce) and are not. Default true: without it a
    /// network learns a newcomer only [`verify_delay`](Self::verify_delay) after it
    /// joined (on the simulator, a loss-free 200-node run then missed values). Safe: the
    /// newcomer is pinged at once and handed out only once it answered.
    pub insert_joining: bool,
    /// Whether a `store` from an address that has not proven it receives there (and a
    /// `find_value` whose value is over its 3× budget) waits for a ping of that address
    /// and is served only if it answers (`probation`): forged stores are never kept nor
    /// charged. Stores from local sources exempt from the shares (loopback and private
    /// addresses unless `endpoint.limits.strict_local`) are kept at once. Default true;
    /// false is the earlier rule (stores kept at once, big answers held by the
    /// endpoint).
    pub park_unproven: bool,
    /// Most requests waiting for their address's ping, all sources together; when full,
    /// the oldest of the subnet with the most goes (counted). Default 256.
    pub max_parked: usize,
    /// Most requests of one source subnet (IPv4 /24, IPv6 /64) waiting for their
    /// addresses' pings; a newer one replaces the subnet's oldest (counted). Default 32
    /// (half the endpoint's handler share per subnet, so the subnet's pings still get
    /// in; at 900 forged requests a second, a real client's ping answer has 35 ms).
    /// Local sources are exempt unless `endpoint.limits.strict_local` (they share only
    /// `max_parked`).
    pub max_parked_per_source: usize,
    /// Answer bytes per second to one destination IP (the refill of its budget, see
    /// `budget`); answers over it are dropped (counted). Local destinations are exempt
    /// unless `endpoint.limits.strict_local`. Default 160 KiB/s.
    pub answer_bytes_per_sec: f64,
    /// Answer bytes one destination IP may get at once. Default 320 KiB (forty 8 KiB
    /// values).
    pub answer_bytes_burst: f64,
    /// Most destinations whose answer budgets are remembered. Default 65 536.
    pub max_answer_destinations: usize,
    /// Disjoint paths of a `get` or `set` lookup (and of republishing and replicating),
    /// as S/Kademlia §4.4 ([`LookupConfig::paths`](crate::kad::LookupConfig::paths)):
    /// no node is asked by two paths, so one hostile contact steers one path only. A
    /// get ends at the first value it accepts, from any path; a set stores on the k
    /// nearest that answered over all paths. Joins and refreshes use one path (they
    /// build tables, where the value is not). Default 2 (see BENCHMARKS.md, "Hostile
    /// networks", for what more paths cost and buy).
    pub lookup_paths: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            k: 20,
            alpha: 3,
            rpc_timeout: Duration::from_secs(5),
            min_rto: Duration::from_millis(100),
            initial_rto: Duration::from_secs(1),
            resend_at_rto: true,
            bootstrap_retries: 6,
            rto_wait_factor: 0,
            refresh_interval: Some(Duration::from_secs(3600)),
            republish_interval: Duration::from_secs(3600),
            replicate_interval: Duration::from_secs(3600),
            replicate_window: Duration::from_secs(2 * 3600),
            value_ttl: Duration::from_secs(7 * 24 * 3600),
            max_records: 100_000,
            max_value_bytes: 8192,
            max_store_bytes: 64 << 20,
            max_records_per_source: 5000,
            max_bytes_per_source: 4 << 20,
            max_failures: 2,
            verify_delay: Duration::from_secs(5),
            max_pending_verifications: 256,
            recheck_after: Duration::from_secs(60),
            handover_jobs: 16,
            handover_keys_per_step: 8,
            handover_in_flight: 4,
            max_maintenance_queries: 8,
            max_due_per_timeout: 64,
            persistence: true,
            endpoint: EndpointConfig::default(),
            verify_callers: true,
            insert_joining: true,
            lookup_paths: 2,
            park_unproven: true,
            max_parked: 256,
            max_parked_per_source: 32,
            answer_bytes_per_sec: (160 << 10) as f64,
            answer_bytes_burst: (320 << 10) as f64,
            max_answer_destinations: 65_536,
        }
    }
}

/// What one node starts from: its configuration as it runs, its id and the seed of its
/// randomness, all decided here from one seed. The tokio `Dht`, `rpcudp dht run` and
/// the simulator start their nodes through [`NodeSetup::new`], so that they run the same
/// node from the same [`NodeConfig`].
///
/// ```
/// use rpcudp_proto::kad::{Node, NodeConfig, NodeSetup};
/// use std::time::Duration;
///
/// let config = NodeConfig { replicate_interval: Duration::ZERO, ..NodeConfig::default() };
/// let setup = NodeSetup::new(config, 7);
/// assert_eq!(setup.config.replicate_interval, Duration::from_secs(1)); // at least 1 s
/// assert_eq!(NodeSetup::new(NodeConfig::default(), 7).id, setup.id); // the seed's id
/// let node = Node::new(setup.config, setup.id, setup.seed);
/// ```
#[derive(Clone, Debug)]
pub struct NodeSetup {
    /// `config` with its derived settings made consistent (see [`NodeSetup::new`]).
    pub config: NodeConfig,
    /// The id drawn from the seed (replace it to run with a saved or chosen id).
    pub id: NodeId,
    /// The seed of the node's own randomness ([`Node::new`](super::Node::new)'s `seed`),
    /// drawn after the id.
    pub seed: u64,
}

impl NodeSetup {
    /// The node `seed` gives with `config`. The settings that follow from others are
    /// decided here, once:
    /// - `k` and `alpha` at least 1; `republish_interval` and `replicate_interval` at
    ///   least one second (a zero interval would make the node spin);
    /// - `replicate_window` at least twice `replicate_interval`, so that a young copy is
    ///   replicated at least once;
    /// - `max_value_bytes` at most the dialect's largest request body
    ///   (`Dialect::max_body`): no peer can send a larger value, so a larger limit could
    ///   only cost big answers.
    ///
    /// Two nodes given the same seed get the same id, which Kademlia cannot tell apart:
    /// give each node its own seed.
    pub fn new(config: NodeConfig, seed: u64) -> NodeSetup {
        let mut rng = SmallRng::seed_from_u64(seed);
        let id = NodeId::random(&mut rng);
        let node_seed: u64 = rng.random();
        let second = Duration::from_secs(1);
        let replicate_interval = config.replicate_interval.max(second);
        let config = NodeConfig {
            k: config.k.max(1),
            alpha: config.alpha.max(1),
            republish_interval: config.republish_interval.max(second),
            replicate_interval,
            replicate_window: config.replicate_window.max(replicate_interval * 2),
            max_value_bytes: config
                .max_value_bytes
                .min(config.endpoint.dialect.max_body()),
            ..config
        };
        NodeSetup {
            config,
            id,
            seed: node_seed,
        }
    }
}

/// Names one `bootstrap` / `set` / `get`, in its [`Event::QueryFinished`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Names one [`Event::StoreRequested`] in [`Node::store_durable`](super::Node::store_durable) / [`Node::store_failed`](super::Node::store_failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreToken(pub u64);

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The node was stopped ([`Node::stop`](super::Node::stop)).
    #[error("the node is shut down")]
    ShutDown,
    /// The value is not one Python `kademlia` stores (int, float, bool, str, bin).
    #[error("values must be int, float, bool, str or bin")]
    NotStorable,
    /// The value is larger than [`NodeConfig::max_value_bytes`] (its bytes plus 5).
    /// Remedy: store less per key, or raise the limit on every node.
    #[error("value of {size} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// The value's size as charged.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The routing table is empty: nowhere to store or search. Remedy: bootstrap first.
    /// `own_id_contacts` counts nodes seen with our own id: if it is not 0, another node
    /// has this node's id (same seed or same saved state); give them different seeds.
    #[error("no known node: bootstrap first{}", if *own_id_contacts > 0 { format!(" ({own_id_contacts} contacts had our own id: same seed?)") } else { String::new() })]
    NoContacts {
        /// Contacts seen with our own id (never inserted).
        own_id_contacts: u64,
    },
}

/// What a finished query found.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryOutcome {
    /// `bootstrap`: how many of the given addresses answered, and the nearest contacts
    /// the lookup of our own id found.
    Bootstrap {
        /// Addresses that answered the ping.
        answered: usize,
        /// The k nearest nodes to our id that answered.
        contacts: Vec<Contact>,
    },
    /// `set`: how many other nodes acknowledged the store (within about one RTO after
    /// the live ones answered), and whether this node keeps a copy too.
    Set {
        /// Acknowledgements.
        acknowledged: usize,
        /// Whether this node is among the nearest and keeps a copy.
        stored_locally: bool,
    },
    /// `get`: the value, or `None` if no node asked had it.
    Get {
        /// The value found.
        value: Option<Value>,
    },
}

/// What a query cost (for the simulator's report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryStats {
    /// Lookup hops: the largest depth (1 = a contact of our own table) of a node that
    /// answered among the nearest, or of the node that returned the value. 0 if answered
    /// locally.
    pub hops: u32,
    /// RPCs sent for the query (pings, `find_*`, `store`s).
    pub messages: u32,
    /// Whether an iterative lookup ran. False for a `bootstrap` that ended at its pings
    /// (no address answered, as for a fresh node started with none, or none could enter
    /// the table), for `introduce`, for a `get` answered locally, and after `stop`.
    pub lookup: bool,
    /// When the command was given.
    pub started: Instant,
    /// When it finished.
    pub finished: Instant,
}

/// Something the driver must act on. See the [module docs](super), "The driver's duties".
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A command's query ended.
    QueryFinished {
        /// The command's id.
        id: QueryId,
        /// What it found, or `Err(ShutDown)` if the node stopped first.
        result: Result<QueryOutcome, CommandError>,
        /// Hops and messages.
        stats: QueryStats,
    },
    /// A peer asked to store `value` under `key`: make it durable, then
    /// [`Node::store_durable`](super::Node::store_durable) (or [`Node::store_failed`](super::Node::store_failed)).
    StoreRequested {
        /// Names it in `store_durable` / `store_failed`.
        token: StoreToken,
        /// The key.
        key: NodeId,
        /// The value (shared with the node).
        value: Arc<Value>,
        /// When the copy expires (persist it, to reload with [`Node::load_record`](super::Node::load_record)).
        expires_at: Instant,
    },
    /// A copy held here was written without a peer waiting (this node's own `set`).
    RecordStored {
        /// The key.
        key: NodeId,
        /// The value.
        value: Arc<Value>,
        /// When it expires.
        expires_at: Instant,
    },
    /// A copy held here is gone (expired): delete it from durable storage.
    RecordRemoved {
        /// The key.
        key: NodeId,
    },
    /// This node published `value` (its `set`): persist, reload with
    /// [`Node::load_publication`](super::Node::load_publication) to keep republishing it after a restart.
    Published {
        /// The key.
        key: NodeId,
        /// The value.
        value: Arc<Value>,
    },
    /// A contact entered the routing table (or changed address).
    ContactAdded(Contact),
    /// A contact left the routing table.
    ContactRemoved(NodeId),
    /// A node at `addr` answered or called with our own id. Never inserted.
    OwnIdSeen {
        /// Where it was.
        addr: SocketAddr,
    },
}

/// Counters of what the node did, dropped or refused (all monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Requests with the wrong arguments or an unknown method (abandoned: no answer).
    pub bad_requests: u64,
    /// Requests that arrived after `stop`.
    pub requests_after_stop: u64,
    /// Nodes seen with our own id.
    pub own_id_contacts: u64,
    /// `store`s refused: the store was full.
    pub stores_refused_full: u64,
    /// `store`s refused: the value is not int, float, bool, str or bin.
    pub stores_refused_not_storable: u64,
    /// `store`s the driver reported failed.
    pub stores_failed: u64,
    /// Copies expired and removed.
    pub expired: u64,
    /// Contacts evicted after failed RPCs.
    pub evicted: u64,
    /// New callers not remembered for verification (queue full).
    pub verifications_dropped: u64,
    /// Newcomers that got no hand-over (too many jobs queued).
    pub handover_jobs_dropped: u64,
    /// Values handed over to newcomers.
    pub handover_stores: u64,
    /// Answers that did not have the expected shape.
    pub malformed_answers: u64,
    /// `store`s refused: the value is over `max_value_bytes`.
    pub stores_refused_too_large: u64,
    /// `store`s refused: their source subnet had its share of the store.
    pub stores_refused_source_share: u64,
    /// Records given up to make room for a new store (farthest keys of the largest
    /// sources first).
    pub records_evicted: u64,
    /// New callers not pinged for verification: what they sent did not leave room for
    /// the ping within 3× (a one-shot client, or a forged source).
    pub verifications_skipped_budget: u64,
    /// `find_node` answers cut to fit 3× what an unvalidated asker sent.
    pub find_node_answers_cut: u64,
    /// Contacts not inserted: their /24 or /64 had its share of the bucket or table.
    pub contacts_refused_subnet: u64,
    /// Known ids heard from a new address: the old address was pinged first.
    pub address_checks: u64,
    /// Contacts moved to a new address because the old one did not answer the check.
    pub contacts_moved: u64,
    /// `store`s answered `false` by the record rule ([`crate::kad::record::admit`]): a
    /// forged or malformed record, a seq not above the held one, a value over a record.
    pub record_refusals: crate::kad::record::RecordRefusals,
    /// Requests (stores, big `find_value`s) that waited for their address's ping.
    pub requests_parked: u64,
    /// Waiting requests dropped unanswered: their address did not answer the ping.
    pub parked_unproven: u64,
    /// Waiting requests given up for newer ones (their subnet's share, or the table, was
    /// full; or their address had 8 waiting).
    pub parked_evicted: u64,
    /// `store`s never kept because their address did not prove itself (a subset of
    /// `parked_unproven` + `parked_evicted`).
    pub stores_refused_unproven: u64,
    /// Answers dropped: their destination IP was over its answer budget.
    pub answers_dropped_destination_budget: u64,
}
