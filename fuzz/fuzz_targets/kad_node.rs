//! The sans-IO Kademlia node (`rpcudp_proto::kad::Node`) fed arbitrary datagram sequences,
//! commands and time steps, with hand-driven time.
//!
//! Input (via `arbitrary`): a small configuration (k, alpha, timeouts of 50 ms to 3 s,
//! caps of a few records, verifications, hand-over jobs and calls in flight, lifetimes
//! and intervals of seconds so that expiry, refresh and republish happen) and up to 256
//! operations: raw datagrams; well-formed requests of the five methods (and an unknown
//! one) from six peers with fixed ids, one of them carrying our own id; answers of the
//! right or a wrong shape to the requests the node sent, from the callee or another
//! peer; `bootstrap` / `set` / `get`; durable or failed stores; `stop`; time steps,
//! punctual or late.
//!
//! Checked after every operation:
//! - bounded memory: the endpoint's caps (calls in flight, requests in progress, cache
//!   entries and bytes, timer heap), records held within `max_records` plus our own
//!   sets, hand-over jobs within `handover_jobs`, contacts never with our own id;
//! - everything sent decodes as an `rpcudp` datagram and goes to one of the peers; every
//!   request is one of the four DHT calls with its arity, carrying our id;
//! - every `bootstrap` / `set` / `get` ends exactly once, and after `stop` at once;
//!   after the operations, a punctual run of 64 RPC timeouts ends all of them;
//! - store tokens are never handed out twice.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rmpv::Value;
use rpcudp_proto::kad::wire::{contact_value, id_value};
use rpcudp_proto::kad::{Contact, Event, Node, NodeConfig, NodeId, QueryId, StoreToken};
use rpcudp_proto::wire::rpc::{
    decode_packet, encode_request, encode_response, Dialect, MessageId, Packet,
};
use rpcudp_proto::wire::value::DecodeLimits;
use rpcudp_proto::Protocol;

const PEERS: [&str; 6] = [
    "127.0.0.1:1000",
    "127.0.0.2:1000",
    "127.0.0.3:1000",
    "[::1]:1000",
    "[::ffff:127.0.0.1]:1000",
    "127.0.0.1:1001",
];
const OWN: [u8; 20] = [0x80; 20];
const METHODS: [&str; 6] = ["ping", "store", "find_node", "find_value", "stun", "nosuch"];

fn peer_id(i: usize) -> NodeId {
    // The last peer claims our own id (two nodes given one seed).
    if i == PEERS.len() - 1 {
        NodeId::from_bytes(OWN)
    } else {
        let mut b = [0u8; 20];
        b[0] = (i as u8) << 5 | 0x01;
        b[19] = i as u8;
        NodeId::from_bytes(b)
    }
}

fn key(k: u8) -> NodeId {
    let mut b = [0x80u8; 20];
    b[0] = k.wrapping_mul(37);
    NodeId::from_bytes(b)
}

fn value(v: u8) -> Value {
    match v % 6 {
        0 => Value::from(i64::from(v)),
        1 => Value::from(format!("value-{v}")),
        2 => Value::Binary(vec![v; usize::from(v)]),
        3 => Value::Boolean(v & 8 != 0),
        4 => Value::F64(f64::from(v) / 3.0),
        // Not storable: a list.
        _ => Value::Array(vec![Value::from(v)]),
    }
}

#[derive(Arbitrary, Debug)]
struct Config {
    k: u8,
    alpha: u8,
    rpc_timeout_ms: u16,
    max_records: u8,
    value_ttl_s: u16,
    republish_s: u8,
    replicate_s: u8,
    refresh_s: Option<u8>,
    max_failures: u8,
    verify_delay_ms: u16,
    max_pending_verifications: u8,
    handover_jobs: u8,
    handover_in_flight: u8,
    max_maintenance_queries: u8,
    max_due_per_timeout: u8,
    persistence: bool,
    max_outstanding_calls: u8,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Raw {
        peer: u8,
        bytes: Vec<u8>,
    },
    Request {
        peer: u8,
        method: u8,
        id: u8,
        key: u8,
        value: u8,
        bad_sender: bool,
    },
    /// An answer to the `nth` request the node sent: `shape` picks the right shape for
    /// its method (with the peers in `contacts`) or a wrong one.
    Reply {
        nth: u8,
        from_callee: bool,
        peer: u8,
        shape: u8,
        contacts: u8,
        value: u8,
    },
    Bootstrap {
        peers: u8,
    },
    Set {
        key: u8,
        value: u8,
    },
    Get {
        key: u8,
    },
    StoreDurable {
        nth: u8,
    },
    StoreFailed {
        nth: u8,
    },
    Stop,
    Advance {
        ms: u16,
        late: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    ops: Vec<Op>,
}

struct Harness {
    start: Instant,
    node: Node,
    config: NodeConfig,
    peers: Vec<SocketAddr>,
    now: Instant,
    queries: HashSet<QueryId>,
    ended: HashSet<QueryId>,
    stores: Vec<StoreToken>,
    store_seen: HashSet<StoreToken>,
    /// Requests the node sent: (message id, peer index, method).
    sent: Vec<(MessageId, usize, String)>,
    own_sets: HashSet<NodeId>,
}

impl Harness {
    fn peer_index(&self, addr: SocketAddr) -> usize {
        self.peers
            .iter()
            .position(|p| *p == addr)
            .unwrap_or_else(|| panic!("sent to an address no peer has: {addr}"))
    }

    fn datagram(&mut self, p: usize, bytes: &[u8]) {
        self.node
            .handle_datagram(self.now, self.peers[p], None, bytes);
        self.drain();
    }

    fn timeout(&mut self) {
        self.node.handle_timeout(self.now);
        self.drain();
    }

    fn advance_punctually(&mut self, target: Instant) {
        let mut stalled = 0;
        for _ in 0..100_000 {
            match self.node.poll_timeout() {
                // `max_due_per_timeout` may leave due work: then the deadline is now, a
                // few times in a row at most.
                Some(at) if at <= target => {
                    if at <= self.now {
                        stalled += 1;
                    } else {
                        stalled = 0;
                    }
                    // More than every deadline the caps allow (calls, records,
                    // verifications), one per timeout.
                    if stalled > 200 {
                        // A driver would spin here at 100% CPU (see fuzz/README.md).
                        assert!(
                            std::env::var_os("RPCUDP_FUZZ_TOLERATE_STALL").is_some(),
                            "busy loop: poll_timeout stays at {:?} after handle_timeout \
                             there ({} records, {} contacts)",
                            at.saturating_duration_since(self.start),
                            self.node.stored_count(),
                            self.node.contacts().len()
                        );
                        // Tolerated: skip an RPC timeout, as a driver that noticed the
                        // spin might, and go on looking for other faults.
                        if self.now >= target {
                            return;
                        }
                        self.now = (self.now + self.config.rpc_timeout).min(target);
                        stalled = 0;
                    } else {
                        self.now = at.max(self.now);
                    }
                    self.timeout();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("100000 deadlines within one step");
    }

    fn drain(&mut self) {
        let lenient = DecodeLimits { max_depth: 200 };
        while let Some(t) = self.node.poll_transmit() {
            let to = self.peer_index(t.destination);
            let packet = decode_packet(Dialect::Rpcudp, &t.payload, &lenient)
                .unwrap_or_else(|e| panic!("sent a datagram that does not decode: {e}"));
            if let Packet::Request { id, method, args } = packet {
                let arity = match method.as_str() {
                    "ping" => 1,
                    "store" => 3,
                    "find_node" | "find_value" => 2,
                    other => panic!("the node called {other}"),
                };
                assert_eq!(args.len(), arity, "{method} with {} arguments", args.len());
                assert_eq!(args[0], id_value(&NodeId::from_bytes(OWN)), "not our id");
                self.sent.push((id, to, method));
            }
        }
        while let Some(e) = self.node.poll_event() {
            match e {
                Event::QueryFinished { id, stats, .. } => {
                    assert!(self.queries.contains(&id), "an unknown query {id:?} ended");
                    assert!(self.ended.insert(id), "query {id:?} ended twice");
                    assert!(stats.started <= stats.finished && stats.finished <= self.now);
                }
                Event::StoreRequested { token, .. } => {
                    assert!(
                        self.config.persistence,
                        "a store to persist without persistence"
                    );
                    assert!(self.store_seen.insert(token), "store token {token:?} twice");
                    self.stores.push(token);
                }
                _ => {}
            }
        }
        self.check();
    }

    fn check(&self) {
        let n = &self.node;
        let ep = n.endpoint();
        let c = ep.config();
        assert!(ep.outstanding_calls() <= c.max_outstanding_calls);
        assert!(ep.requests_in_progress() <= c.max_concurrent_requests);
        assert!(ep.dedup_entries() <= c.dedup_capacity + c.max_concurrent_requests);
        assert!(ep.dedup_bytes() <= c.dedup_max_bytes);
        assert!(ep.timer_entries() <= 2 * ep.outstanding_calls() + 65);
        assert!(
            n.stored_count() <= self.config.max_records + self.own_sets.len(),
            "{} records held, cap {} + {} own",
            n.stored_count(),
            self.config.max_records,
            self.own_sets.len()
        );
        assert!(n.handover_jobs() <= self.config.handover_jobs);
        let own = NodeId::from_bytes(OWN);
        assert!(!n.table().contains(&own), "our own id in the table");
        assert!(n.contacts().iter().all(|c| c.id != own));
    }

    fn command(&mut self, q: Option<QueryId>) {
        if let Some(q) = q {
            assert!(self.queries.insert(q), "query id {q:?} reused");
        }
        self.drain();
    }
}

fuzz_target!(|input: Input| {
    let c = &input.config;
    let mut config = NodeConfig {
        k: usize::from(c.k % 8) + 1,
        alpha: usize::from(c.alpha % 4) + 1,
        rpc_timeout: Duration::from_millis(50 + u64::from(c.rpc_timeout_ms % 2950)),
        max_records: usize::from(c.max_records % 8),
        value_ttl: Duration::from_secs(1 + u64::from(c.value_ttl_s % 600)),
        republish_interval: Duration::from_secs(1 + u64::from(c.republish_s)),
        replicate_interval: Duration::from_secs(1 + u64::from(c.replicate_s)),
        refresh_interval: c.refresh_s.map(|s| Duration::from_secs(1 + u64::from(s))),
        max_failures: u32::from(c.max_failures % 3) + 1,
        verify_delay: Duration::from_millis(u64::from(c.verify_delay_ms % 10_000)),
        max_pending_verifications: usize::from(c.max_pending_verifications % 5),
        handover_jobs: usize::from(c.handover_jobs % 5),
        handover_in_flight: usize::from(c.handover_in_flight % 5),
        max_maintenance_queries: usize::from(c.max_maintenance_queries % 5),
        max_due_per_timeout: usize::from(c.max_due_per_timeout % 8) + 1,
        persistence: c.persistence,
        ..NodeConfig::default()
    };
    config.endpoint.max_outstanding_calls = usize::from(c.max_outstanding_calls % 32) + 1;
    config.endpoint.max_concurrent_requests = 16;
    config.endpoint.dedup_capacity = 64;
    config.endpoint.dedup_max_bytes = 4096;
    let rpc_timeout = config.rpc_timeout;
    let mut h = Harness {
        node: Node::new(config.clone(), NodeId::from_bytes(OWN), c.seed),
        config,
        peers: PEERS.iter().map(|p| p.parse().unwrap()).collect(),
        now: Instant::now(),
        start: Instant::now(),
        queries: HashSet::new(),
        ended: HashSet::new(),
        stores: Vec::new(),
        store_seen: HashSet::new(),
        sent: Vec::new(),
        own_sets: HashSet::new(),
    };
    let n = PEERS.len();
    let mut stopped = false;
    for op in input.ops.iter().take(256) {
        match op {
            Op::Raw { peer, bytes } => h.datagram(usize::from(*peer) % n, bytes),
            Op::Request {
                peer,
                method,
                id,
                key: k,
                value: v,
                bad_sender,
            } => {
                let p = usize::from(*peer) % n;
                let sender = if *bad_sender {
                    Value::Binary(vec![1; 19])
                } else {
                    id_value(&peer_id(p))
                };
                let method = METHODS[usize::from(*method) % METHODS.len()];
                let args = match method {
                    "ping" => vec![sender],
                    "store" => vec![sender, id_value(&key(*k)), value(*v)],
                    "find_node" | "find_value" => vec![sender, id_value(&key(*k))],
                    _ => vec![],
                };
                let mut d = Vec::new();
                let mut mid = [*id % 8; 20];
                mid[0] = p as u8;
                encode_request(Dialect::Rpcudp, &MessageId(mid), method, &args, &mut d);
                h.datagram(p, &d);
            }
            Op::Reply {
                nth,
                from_callee,
                peer,
                shape,
                contacts,
                value: v,
            } => {
                if h.sent.is_empty() {
                    continue;
                }
                let (id, callee, method) = h.sent[usize::from(*nth) % h.sent.len()].clone();
                let p = if *from_callee {
                    callee
                } else {
                    usize::from(*peer) % n
                };
                let listed: Vec<Value> = (0..n)
                    .filter(|i| contacts & (1 << i) != 0)
                    .map(|i| contact_value(&Contact::new(peer_id(i), h.peers[i])))
                    .collect();
                let answer = match (shape % 4, method.as_str()) {
                    (3, _) => Value::Nil,
                    (_, "ping") => id_value(&peer_id(callee)),
                    (_, "store") => Value::Boolean(true),
                    (0, "find_value") => Value::Map(vec![(Value::from("value"), value(*v))]),
                    _ => Value::Array(listed),
                };
                let mut d = Vec::new();
                encode_response(Dialect::Rpcudp, &id, &answer, &mut d);
                h.datagram(p, &d);
            }
            Op::Bootstrap { peers } => {
                let addrs: Vec<SocketAddr> = (0..n)
                    .filter(|i| peers & (1 << i) != 0)
                    .map(|i| h.peers[i])
                    .collect();
                let q = h.node.bootstrap(h.now, &addrs).ok();
                assert_eq!(q.is_none(), stopped);
                h.command(q);
            }
            Op::Set { key: k, value: v } => {
                let q = h.node.set(h.now, key(*k), value(*v)).ok();
                if q.is_some() {
                    h.own_sets.insert(key(*k));
                }
                h.command(q);
            }
            Op::Get { key: k } => {
                let q = h.node.get(h.now, key(*k)).ok();
                h.command(q);
            }
            Op::StoreDurable { nth } | Op::StoreFailed { nth } => {
                if h.stores.is_empty() {
                    continue;
                }
                let token = h.stores.remove(usize::from(*nth) % h.stores.len());
                if matches!(op, Op::StoreDurable { .. }) {
                    h.node.store_durable(h.now, token);
                } else {
                    h.node.store_failed(h.now, token);
                }
                h.drain();
            }
            Op::Stop => {
                h.node.stop(h.now);
                stopped = true;
                h.drain();
                assert_eq!(h.ended.len(), h.queries.len(), "stop left queries running");
            }
            Op::Advance { ms, late } => {
                let target = h.now + Duration::from_millis(u64::from(*ms));
                if *late {
                    h.now = target;
                    h.timeout();
                } else {
                    h.advance_punctually(target);
                }
            }
        }
    }
    // Every command ends once the network falls silent: 64 RPC timeouts, on time.
    let target = h.now + rpc_timeout * 64;
    h.advance_punctually(target);
    let running: Vec<_> = h.queries.difference(&h.ended).collect();
    assert!(running.is_empty(), "queries never ended: {running:?}");
});
