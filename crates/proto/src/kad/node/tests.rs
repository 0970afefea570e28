//! `kad::Node` with hand-driven time: a tiny in-file network of nodes passing datagrams
//! with per-node latency, plus raw RPC endpoints playing the Python peer.

use super::*;
use crate::kad::wire;
use crate::rpc::{CallOptions, Endpoint, EndpointConfig, Event as RpcEvent};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::BinaryHeap;

/// The one clock reading of a test: its time zero (the core itself never reads a clock).
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

const BASE_PORT: u16 = 10_000;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], BASE_PORT + i as u16))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn id_of(i: usize) -> NodeId {
    // Spread ids: a cheap mix of the index, distinct for every test size.
    let mut b = [0u8; 20];
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for chunk in b.chunks_mut(8) {
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        for (j, byte) in chunk.iter_mut().enumerate() {
            *byte = (x >> (8 * j)) as u8;
        }
    }
    NodeId(b)
}

fn key(n: u8) -> NodeId {
    let mut b = [n; 20];
    b[19] ^= 0x5a;
    NodeId(b)
}

type Delivery = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

/// N nodes on a virtual network: node `i` lives at `addr(i)`, a datagram from `a` to `b`
/// takes `(latency[a] + latency[b]) / 2`, dead nodes drop everything.
struct Net {
    now: Instant,
    nodes: Vec<Node>,
    alive: Vec<bool>,
    latency: Vec<Duration>,
    queue: BinaryHeap<Delivery>,
    events: Vec<Vec<Event>>,
    seq: u64,
    /// Datagrams sent by each node.
    sent: Vec<u64>,
    /// Answer `StoreRequested` with `store_durable` at once (persistence on).
    auto_durable: bool,
    /// Chance that a datagram is lost.
    loss: f64,
    /// Each node's `poll_timeout` as of its last flush (nodes change only through the
    /// net's inputs, each followed by a flush).
    deadline: Vec<Option<Instant>>,
    rng: SmallRng,
}

impl Net {
    fn new(n: usize, config: NodeConfig) -> Net {
        let now = start();
        Net {
            now,
            nodes: (0..n)
                .map(|i| Node::new(config.clone(), id_of(i), i as u64 + 1))
                .collect(),
            alive: vec![true; n],
            latency: vec![ms(20); n],
            queue: BinaryHeap::new(),
            events: vec![Vec::new(); n],
            seq: 0,
            sent: vec![0; n],
            auto_durable: true,
            loss: 0.0,
            deadline: vec![None; n],
            rng: SmallRng::seed_from_u64(7),
        }
    }

    /// A new node (a one-shot client, say) at the next address.
    fn add(&mut self, config: NodeConfig) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node::new(config, id_of(i), i as u64 + 1));
        self.alive.push(true);
        self.latency.push(ms(20));
        self.events.push(Vec::new());
        self.sent.push(0);
        self.deadline.push(None);
        i
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
            .iter()
            .zip(&self.alive)
            .filter_map(|(d, alive)| d.filter(|_| *alive))
            .min()
    }

    fn index(a: SocketAddr) -> Option<usize> {
        (a.port() as usize).checked_sub(BASE_PORT as usize)
    }

    fn flush(&mut self, i: usize) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.nodes[i].poll_transmit() {
                progressed = true;
                self.sent[i] += 1;
                let Some(to) = Net::index(t.destination).filter(|&j| j < self.nodes.len()) else {
                    continue;
                };
                if self.loss > 0.0 && rand::Rng::random_bool(&mut self.rng, self.loss) {
                    continue;
                }
                let delay = (self.latency[i] + self.latency[to]) / 2;
                self.seq += 1;
                self.queue.push(Reverse((
                    self.now + delay,
                    self.seq,
                    to,
                    addr(i),
                    t.payload,
                )));
            }
            while let Some(e) = self.nodes[i].poll_event() {
                progressed = true;
                if let (true, Event::StoreRequested { token, .. }) = (self.auto_durable, &e) {
                    self.nodes[i].store_durable(self.now, *token);
                }
                self.events[i].push(e);
            }
            if !progressed {
                self.deadline[i] = self.nodes[i].poll_timeout();
                return;
            }
        }
    }

    /// One step: the earliest delivery or deadline. False when nothing is left.
    fn step(&mut self) -> bool {
        let next_delivery = self.queue.peek().map(|Reverse((t, ..))| *t);
        let next_timeout = self.next_deadline();
        let Some(next) = [next_delivery, next_timeout].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        if next_delivery.is_some_and(|t| t <= self.now) {
            let Reverse((_, _, to, from, payload)) = self.queue.pop().unwrap();
            if self.alive[to] {
                self.nodes[to].handle_datagram(self.now, from, None, &payload);
                self.flush(to);
            }
        }
        for i in 0..self.nodes.len() {
            if self.alive[i] && self.deadline[i].is_some_and(|t| t <= self.now) {
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
            }
        }
        true
    }

    /// Runs until `until` of virtual time has passed (or nothing is left).
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..2_000_000 {
            let next_delivery = self.queue.peek().map(|Reverse((t, ..))| *t);
            let next_timeout = self.next_deadline();
            match [next_delivery, next_timeout].into_iter().flatten().min() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(end);
                    return;
                }
            }
        }
        panic!("run_for did not settle within its step bound");
    }

    /// Runs until node `i`'s query `q` finished (at most `max` of virtual time).
    fn wait(
        &mut self,
        i: usize,
        q: QueryId,
        max: Duration,
    ) -> (Result<QueryOutcome, CommandError>, QueryStats) {
        let end = self.now + max;
        for _ in 0..2_000_000 {
            if let Some(found) = self.events[i].iter().find_map(|e| match e {
                Event::QueryFinished { id, result, stats } if *id == q => {
                    Some((result.clone(), *stats))
                }
                _ => None,
            }) {
                return found;
            }
            assert!(
                self.now <= end,
                "query {q:?} of node {i} did not finish within {max:?}"
            );
            assert!(self.step(), "nothing left to run, query {q:?} unfinished");
        }
        panic!("wait did not settle within its step bound");
    }

    /// Bootstraps every node from node 0, one after the other, lets node 0 verify them
    /// all, then bootstraps each again (as a refresh would): node 0 hands out only
    /// contacts that answered it, so the first round finds few.
    fn join_all(&mut self) {
        for _round in 0..2 {
            for i in 1..self.nodes.len() {
                let q = self.nodes[i].bootstrap(self.now, &[addr(0)]).unwrap();
                self.flush(i);
                let (r, _) = self.wait(i, q, Duration::from_secs(30));
                assert!(
                    matches!(r, Ok(QueryOutcome::Bootstrap { answered: 1, .. })),
                    "{r:?}"
                );
            }
            self.run_for(Duration::from_secs(10));
        }
    }

    /// `peer` calls node `i`; what node `i` sent to others meanwhile is delivered.
    fn ask(&mut self, peer: &mut Peer, i: usize, method: &str, args: &[Value]) -> Option<Value> {
        let now = self.now;
        let answer = peer.ask(&mut self.nodes[i], addr(i), now, method, args);
        for t in std::mem::take(&mut peer.others) {
            if let Some(to) = Net::index(t.destination).filter(|&j| j < self.nodes.len()) {
                let delay = (self.latency[i] + self.latency[to]) / 2;
                self.seq += 1;
                self.queue.push(Reverse((
                    self.now + delay,
                    self.seq,
                    to,
                    addr(i),
                    t.payload,
                )));
            }
        }
        self.flush(i);
        answer
    }

    fn set(
        &mut self,
        i: usize,
        k: NodeId,
        v: Value,
    ) -> (Result<QueryOutcome, CommandError>, QueryStats) {
        let q = self.nodes[i].set(self.now, k, v).unwrap();
        self.flush(i);
        self.wait(i, q, Duration::from_secs(60))
    }

    fn get(&mut self, i: usize, k: NodeId) -> (Result<QueryOutcome, CommandError>, QueryStats) {
        let q = self.nodes[i].get(self.now, k).unwrap();
        self.flush(i);
        self.wait(i, q, Duration::from_secs(60))
    }
}

fn quiet_config() -> NodeConfig {
    NodeConfig {
        persistence: false,
        refresh_interval: None,
        ..NodeConfig::default()
    }
}

/// A raw RPC endpoint playing the Python peer against one node, by hand.
struct Peer {
    ep: Endpoint,
    at: SocketAddr,
    /// What the node sent elsewhere meanwhile (a [`Net`] delivers it).
    others: Vec<Transmit>,
}

impl Peer {
    fn new(at: SocketAddr) -> Peer {
        Peer {
            ep: Endpoint::new(EndpointConfig::default(), 99),
            at,
            others: Vec::new(),
        }
    }

    /// Calls `method(args)` on `node` at `now`; the answer, if the node sent one.
    fn ask(
        &mut self,
        node: &mut Node,
        node_addr: SocketAddr,
        now: Instant,
        method: &str,
        args: &[Value],
    ) -> Option<Value> {
        let call = self
            .ep
            .call(now, node_addr, method, args, CallOptions::default())
            .unwrap();
        let req = self.ep.poll_transmit().unwrap();
        node.handle_datagram(now, self.at, None, &req.payload);
        while let Some(t) = node.poll_transmit() {
            if t.destination == self.at {
                self.ep.handle_datagram(now, node_addr, &t.payload);
            } else {
                self.others.push(t);
            }
        }
        while let Some(e) = self.ep.poll_event() {
            if let RpcEvent::CallSucceeded { call: c, value } = e {
                if c == call {
                    return Some(value);
                }
            }
        }
        None
    }
}

fn bin(id: &NodeId) -> Value {
    Value::Binary(id.0.to_vec())
}

#[test]
fn the_node_serves_the_five_rpcs_in_the_python_peers_shapes() {
    let now = start();
    let me = addr(0);
    let mut node = Node::new(quiet_config(), id_of(0), 1);
    let mut peer = Peer::new(addr(1));
    let peer_id = id_of(1);

    // stun: [ip, port] of the caller.
    let stun = peer.ask(&mut node, me, now, "stun", &[]).unwrap();
    assert_eq!(
        stun,
        Value::Array(vec!["127.0.0.1".into(), (BASE_PORT + 1).into()])
    );
    // ping: our id as 20 bytes of bin.
    let pong = peer
        .ask(&mut node, me, now, "ping", &[bin(&peer_id)])
        .unwrap();
    assert_eq!(pong, bin(&id_of(0)));
    // store: true, and find_value then answers {"value": v}.
    let k = key(7);
    let ok = peer.ask(
        &mut node,
        me,
        now,
        "store",
        &[bin(&peer_id), bin(&k), "v".into()],
    );
    assert_eq!(ok, Some(Value::Boolean(true)));
    let found = peer.ask(&mut node, me, now, "find_value", &[bin(&peer_id), bin(&k)]);
    assert_eq!(found, Some(Value::Map(vec![("value".into(), "v".into())])));
    // find_value of a missing key and find_node: a list of [id, ip, port] (empty here:
    // the node knows nobody that answered it).
    let none = peer.ask(
        &mut node,
        me,
        now,
        "find_value",
        &[bin(&peer_id), bin(&key(8))],
    );
    assert_eq!(none, Some(Value::Array(vec![])));
    let nodes = peer.ask(&mut node, me, now, "find_node", &[bin(&peer_id), bin(&k)]);
    assert_eq!(nodes, Some(Value::Array(vec![])));
    // Wrong arguments, unknown methods, non-storable values: no answer at all (the
    // Python peer raises), counted.
    assert_eq!(peer.ask(&mut node, me, now, "ping", &[]), None);
    assert_eq!(
        peer.ask(&mut node, me, now, "ping", &["short".into()]),
        None
    );
    assert_eq!(peer.ask(&mut node, me, now, "nope", &[]), None);
    let arr = Value::Array(vec![1.into()]);
    assert_eq!(
        peer.ask(&mut node, me, now, "store", &[bin(&peer_id), bin(&k), arr]),
        None
    );
    assert_eq!(node.stats().bad_requests, 3);
    assert_eq!(node.stats().stores_refused_not_storable, 1);
}

#[test]
fn find_node_hands_out_only_contacts_that_answered_never_the_asker_nor_the_key() {
    let mut net = Net::new(5, quiet_config());
    net.join_all();
    // Node 0 knows 1..4 (they answered its verification pings).
    assert_eq!(net.nodes[0].contacts().len(), 4);
    let mut peer = Peer::new(addr(3));
    let now = net.now;
    let asked = id_of(2);
    let list = peer
        .ask(
            &mut net.nodes[0],
            addr(0),
            now,
            "find_node",
            &[bin(&id_of(3)), bin(&asked)],
        )
        .unwrap();
    let Value::Array(items) = list else { panic!() };
    let got: Vec<Contact> = items.iter().filter_map(wire::parse_contact).collect();
    assert_eq!(
        got.len(),
        2,
        "4 contacts minus the asker (by address) and the key"
    );
    assert!(got.iter().all(|c| c.addr != addr(3) && c.id != asked));
    // Each entry is exactly [bin(20), str ip, int port].
    let Value::Array(first) = &items[0] else {
        panic!()
    };
    assert!(matches!(&first[0], Value::Binary(b) if b.len() == 20));
    assert!(first[1].is_str() && first[2].is_u64());

    // A node that only called (a one-shot client that left) is not handed out.
    let now = net.now;
    let mut ghost = Peer::new(addr(77));
    ghost.ask(
        &mut net.nodes[0],
        addr(0),
        now,
        "find_node",
        &[bin(&id_of(77)), bin(&asked)],
    );
    net.flush(0);
    net.run_for(Duration::from_secs(20));
    assert!(
        !net.nodes[0].table().contains(&id_of(77)),
        "never answered: never inserted"
    );
    let list = peer
        .ask(
            &mut net.nodes[0],
            addr(0),
            net.now,
            "find_node",
            &[bin(&id_of(3)), bin(&id_of(77))],
        )
        .unwrap();
    assert!(!list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(wire::parse_contact)
        .any(|c| c.id == id_of(77)));
}

#[test]
fn requests_the_node_sends_have_the_python_peers_argument_shapes() {
    let now = start();
    let mut node = Node::new(quiet_config(), id_of(0), 1);
    let mut peer = Endpoint::new(EndpointConfig::default(), 5);
    let q = node.bootstrap(now, &[addr(1)]).unwrap();
    let t = node.poll_transmit().unwrap();
    peer.handle_datagram(now, addr(0), &t.payload);
    let Some(RpcEvent::Request {
        token,
        method,
        args,
        ..
    }) = peer.poll_event()
    else {
        panic!()
    };
    assert_eq!(
        (method.as_str(), args.clone()),
        ("ping", vec![bin(&id_of(0))])
    );
    peer.respond(now, token, &bin(&id_of(1)));
    let t = peer.poll_transmit().unwrap();
    node.handle_datagram(now, addr(1), None, &t.payload);
    // Then the lookup of our own id: find_node(sender id, key), both bin(20).
    let t = node.poll_transmit().unwrap();
    peer.handle_datagram(now, addr(0), &t.payload);
    let Some(RpcEvent::Request {
        token,
        method,
        args,
        ..
    }) = peer.poll_event()
    else {
        panic!()
    };
    assert_eq!(method, "find_node");
    assert_eq!(args, vec![bin(&id_of(0)), bin(&id_of(0))]);
    peer.respond(now, token, &Value::Array(vec![]));
    let t = peer.poll_transmit().unwrap();
    node.handle_datagram(now, addr(1), None, &t.payload);
    let finished = std::iter::from_fn(|| node.poll_event()).find_map(|e| match e {
        Event::QueryFinished { id, result, stats } if id == q => Some((result, stats)),
        _ => None,
    });
    let (result, stats) = finished.unwrap();
    assert_eq!(
        result,
        Ok(QueryOutcome::Bootstrap {
            answered: 1,
            contacts: vec![Contact::new(id_of(1), addr(1))]
        })
    );
    assert_eq!(stats.messages, 2);

    // A set: find_node, then store(sender id, key, value).
    let k = key(1);
    node.set(now, k, "x".into()).unwrap();
    let t = node.poll_transmit().unwrap();
    peer.handle_datagram(now, addr(0), &t.payload);
    let Some(RpcEvent::Request { token, method, .. }) = peer.poll_event() else {
        panic!()
    };
    assert_eq!(method, "find_node");
    peer.respond(now, token, &Value::Array(vec![]));
    node.handle_datagram(now, addr(1), None, &peer.poll_transmit().unwrap().payload);
    let t = node.poll_transmit().unwrap();
    peer.handle_datagram(now, addr(0), &t.payload);
    let Some(RpcEvent::Request { method, args, .. }) = peer.poll_event() else {
        panic!()
    };
    assert_eq!(method, "store");
    assert_eq!(args, vec![bin(&id_of(0)), bin(&k), "x".into()]);
}

#[test]
fn lookups_converge_set_and_get_across_sixty_nodes() {
    let mut net = Net::new(60, quiet_config());
    net.join_all();
    for n in 0..10u8 {
        let (r, _) = net.set((n as usize * 7) % 60, key(n), Value::from(n as i64));
        let Ok(QueryOutcome::Set { acknowledged, .. }) = r else {
            panic!("{r:?}")
        };
        assert!(acknowledged >= 15, "stored on {acknowledged}");
    }
    let mut hops = Vec::new();
    for n in 0..10u8 {
        let (r, stats) = net.get((n as usize * 13 + 5) % 60, key(n));
        assert_eq!(
            r,
            Ok(QueryOutcome::Get {
                value: Some(Value::from(n as i64))
            })
        );
        hops.push(stats.hops);
        // Answered locally (0 hops, 0 messages) or through the network.
        assert_eq!(stats.hops == 0, stats.messages == 0, "{stats:?}");
    }
    // log2(60) / 2 + 2 ≈ 5; a converged table needs far fewer.
    assert!(hops.iter().all(|h| *h <= 4), "hops {hops:?}");
    let (r, _) = net.get(3, key(200));
    assert_eq!(r, Ok(QueryOutcome::Get { value: None }));
}

#[test]
fn a_dead_contact_costs_a_lookup_about_one_rto_not_the_rpc_timeout() {
    let mut net = Net::new(30, quiet_config());
    net.join_all();
    // Warm the RTO estimates with traffic, then kill a third of the nodes.
    for n in 0..5u8 {
        assert!(net.set(n as usize, key(n), Value::from(1)).0.is_ok());
    }
    let rto = net.nodes[29].rto_of(&addr(0));
    assert!(rto < ms(400), "measured RTT 20 ms: RTO {rto:?}");
    for i in 0..10 {
        net.alive[i] = false;
    }
    let mut worst = Duration::ZERO;
    for n in 0..5u8 {
        let (r, stats) = net.get(20 + n as usize, key(n));
        assert_eq!(
            r,
            Ok(QueryOutcome::Get {
                value: Some(Value::from(1))
            })
        );
        worst = worst.max(stats.finished - stats.started);
    }
    // The RPC timeout is 5 s; a few RTOs (each < 400 ms) plus round trips fit in 2 s.
    assert!(worst < Duration::from_secs(2), "slowest get {worst:?}");
}

#[test]
fn a_set_finishes_about_one_rto_after_its_live_replicas_answered() {
    let mut net = Net::new(30, quiet_config());
    net.join_all();
    for n in 0..5u8 {
        assert!(net.set(n as usize, key(n), Value::from(1)).0.is_ok());
    }
    for i in 10..20 {
        net.alive[i] = false;
    }
    let (r, stats) = net.set(25, key(50), "after".into());
    let Ok(QueryOutcome::Set { acknowledged, .. }) = r else {
        panic!("{r:?}")
    };
    assert!(acknowledged >= 10, "{acknowledged}");
    let took = stats.finished - stats.started;
    assert!(took < Duration::from_secs(2), "a set waited {took:?}");
}

#[test]
fn rto_follows_the_measured_round_trips_per_contact() {
    let mut net = Net::new(3, quiet_config());
    net.latency = vec![ms(10), ms(10), ms(300)];
    net.join_all();
    for n in 0..5u8 {
        assert!(net.get(0, key(n)).0.is_ok());
    }
    let fast = net.nodes[0].rto_of(&addr(1));
    let slow = net.nodes[0].rto_of(&addr(2));
    assert!(fast < ms(150), "10 ms link: {fast:?}");
    assert!(
        slow > ms(155) && slow < ms(1500),
        "155 ms one-way link: {slow:?}"
    );
    // Never measured: this node's estimate over all its contacts, at most the initial 1 s.
    let unknown = net.nodes[0].rto_of(&addr(99));
    assert!(
        unknown >= fast && unknown <= Duration::from_secs(1),
        "{unknown:?}"
    );
    let fresh = Node::new(quiet_config(), id_of(9), 9);
    assert_eq!(
        fresh.rto_of(&addr(99)),
        Duration::from_secs(1),
        "nothing measured yet"
    );
}

#[test]
fn a_value_is_served_until_just_before_its_ttl_and_gone_at_it() {
    let ttl = Duration::from_secs(100);
    let config = NodeConfig {
        value_ttl: ttl,
        persistence: true,
        ..quiet_config()
    };
    let t0 = start();
    let me = addr(0);
    let mut node = Node::new(config, id_of(0), 1);
    let mut peer = Peer::new(addr(1));
    let k = key(3);
    // Persistence on: no answer before the driver says the store is durable.
    assert_eq!(
        peer.ask(
            &mut node,
            me,
            t0,
            "store",
            &[bin(&id_of(1)), bin(&k), 5.into()]
        ),
        None
    );
    let Some(Event::StoreRequested {
        token, expires_at, ..
    }) = node.poll_event()
    else {
        panic!()
    };
    assert_eq!(expires_at, t0 + ttl);
    assert_eq!(
        node.local_value(&k, t0),
        None,
        "not held before it is durable"
    );
    node.store_durable(t0, token);
    let acks: Vec<_> = std::iter::from_fn(|| node.poll_transmit())
        .filter(|t| t.destination == addr(1))
        .collect();
    assert_eq!(acks.len(), 1, "acknowledged once durable");

    let before = t0 + ttl - Duration::from_nanos(1);
    node.handle_timeout(before);
    assert_eq!(
        node.local_value(&k, before).as_deref(),
        Some(&Value::from(5))
    );
    let found = peer.ask(
        &mut node,
        me,
        before,
        "find_value",
        &[bin(&id_of(1)), bin(&k)],
    );
    assert_eq!(found, Some(Value::Map(vec![("value".into(), 5.into())])));
    assert!(
        !std::iter::from_fn(|| node.poll_event()).any(|e| matches!(e, Event::RecordRemoved { .. }))
    );

    let at = t0 + ttl;
    assert!(node.poll_timeout().is_some_and(|t| t <= at));
    assert_eq!(
        node.local_value(&k, at),
        None,
        "not served at the TTL, even before the timeout"
    );
    node.handle_timeout(at);
    let removed: Vec<_> = std::iter::from_fn(|| node.poll_event())
        .filter(|e| matches!(e, Event::RecordRemoved { key } if *key == k))
        .collect();
    assert_eq!(removed.len(), 1, "the driver is told to delete it");
    assert_eq!(node.stored_count(), 0);
    let found = peer.ask(&mut node, me, at, "find_value", &[bin(&id_of(1)), bin(&k)]);
    assert_eq!(found, Some(Value::Array(vec![])));
    assert_eq!(node.stats().expired, 1);
}

#[test]
fn a_replica_does_not_renew_a_copy_but_a_new_value_starts_a_new_life() {
    let config = NodeConfig {
        value_ttl: Duration::from_secs(1000),
        ..quiet_config()
    };
    let t0 = start();
    let me = addr(0);
    let mut node = Node::new(config, id_of(0), 1);
    let mut peer = Peer::new(addr(1));
    let k = key(4);
    let store = |v: Value| [bin(&id_of(1)), bin(&k), v];
    assert!(peer
        .ask(&mut node, me, t0, "store", &store("a".into()))
        .is_some());
    assert_eq!(node.expires_at(&k), Some(t0 + Duration::from_secs(1000)));
    // The same value again (replication or republish): acknowledged, expiry unchanged.
    let t1 = t0 + Duration::from_secs(600);
    assert_eq!(
        peer.ask(&mut node, me, t1, "store", &store("a".into())),
        Some(Value::Boolean(true))
    );
    assert_eq!(node.expires_at(&k), Some(t0 + Duration::from_secs(1000)));
    // Another value: a new publication, a new life.
    assert!(peer
        .ask(&mut node, me, t1, "store", &store("b".into()))
        .is_some());
    assert_eq!(node.expires_at(&k), Some(t1 + Duration::from_secs(1000)));
}

#[test]
fn the_publisher_republishes_and_holders_replicate_without_renewing_their_copies() {
    let config = NodeConfig {
        value_ttl: Duration::from_secs(10_000),
        republish_interval: Duration::from_secs(1000),
        replicate_interval: Duration::from_secs(300),
        replicate_window: Duration::from_secs(700),
        ..quiet_config()
    };
    let mut net = Net::new(6, config);
    net.join_all();
    let k = key(9);
    let t_set = net.now;
    let (r, _) = net.set(5, k, "v".into());
    assert!(
        matches!(
            r,
            Ok(QueryOutcome::Set {
                acknowledged: 5,
                ..
            })
        ),
        "{r:?}"
    );
    let holder = 1;
    let first_expiry = net.nodes[holder].expires_at(&k).unwrap();
    assert!(first_expiry - t_set < Duration::from_secs(10_001));
    let stores_before: u64 = net
        .nodes
        .iter()
        .map(|n| n.endpoint().stats().requests_received)
        .sum();
    // 2500 s: holders replicate at 300 s and 600 s (age < 700 s), never after; the
    // publisher republishes at 1000 s and 2000 s. No holder's copy is renewed.
    net.run_for(Duration::from_secs(2500));
    let stores_after: u64 = net
        .nodes
        .iter()
        .map(|n| n.endpoint().stats().requests_received)
        .sum();
    assert!(
        stores_after > stores_before,
        "replication and republish sent requests"
    );
    for i in 0..5 {
        assert_eq!(
            net.nodes[i]
                .expires_at(&k)
                .map(|e| e.saturating_duration_since(t_set) < Duration::from_secs(10_001)),
            Some(true),
            "node {i} still holds the first life"
        );
    }
    // A holder that lost its copy (say, it restarted empty) gets it back from the
    // publisher's next republish, with a new life.
    let lost = net.nodes[holder].records.remove(&k);
    assert!(lost.is_some());
    net.run_for(Duration::from_secs(1000));
    let renewed = net.nodes[holder].expires_at(&k).unwrap();
    assert!(renewed > first_expiry, "a copy it lacked starts a new life");
}

#[test]
fn the_publisher_republishes_right_after_the_ttl_boundary_so_the_value_survives_it() {
    let config = NodeConfig {
        value_ttl: Duration::from_secs(3000),
        republish_interval: Duration::from_secs(1000),
        replicate_interval: Duration::from_secs(500),
        replicate_window: Duration::from_secs(600),
        ..quiet_config()
    };
    let mut net = Net::new(6, config);
    net.join_all();
    let k = key(11);
    assert!(net.set(5, k, "v".into()).0.is_ok());
    // Past two TTLs: every copy made by the first set expired, yet the value is found.
    net.run_for(Duration::from_secs(6100));
    let (r, _) = net.get(2, k);
    assert_eq!(
        r,
        Ok(QueryOutcome::Get {
            value: Some("v".into())
        })
    );
    assert!(
        net.nodes[..5]
            .iter()
            .filter(|n| n.stored_count() == 1)
            .count()
            >= 4
    );
}

#[test]
fn an_abandoned_value_dies_within_ttl_and_the_replication_window() {
    let config = NodeConfig {
        value_ttl: Duration::from_secs(3000),
        republish_interval: Duration::from_secs(1000),
        replicate_interval: Duration::from_secs(300),
        replicate_window: Duration::from_secs(700),
        ..quiet_config()
    };
    let mut net = Net::new(8, config);
    net.join_all();
    let k = key(12);
    assert!(net.set(7, k, "v".into()).0.is_ok());
    // The publisher leaves; holders keep replicating among themselves while young.
    net.alive[7] = false;
    net.run_for(Duration::from_secs(3000 + 700 + 100));
    for i in 0..7 {
        assert_eq!(net.nodes[i].stored_count(), 0, "node {i} still holds it");
    }
}

#[test]
fn the_hand_over_to_a_newcomer_is_incremental_and_stays_within_its_budget() {
    let config = NodeConfig {
        handover_in_flight: 2,
        handover_keys_per_step: 4,
        handover_jobs: 3,
        ..quiet_config()
    };
    let t0 = start();
    let mut node = Node::new(config, NodeId::from_bytes([0; 20]), 1);
    let mut peer = Peer::new(addr(1));
    // 300 keys held, all near us (first byte 0), so the newcomer qualifies for many.
    for n in 0..300u16 {
        let mut b = [0u8; 20];
        b[1] = (n >> 8) as u8;
        b[2] = n as u8;
        b[3] = 1;
        let ok = peer.ask(
            &mut node,
            addr(0),
            t0,
            "store",
            &[bin(&id_of(1)), bin(&NodeId(b)), Value::from(n)],
        );
        assert!(ok.is_some());
    }
    // A newcomer close to us answers our verification ping: it is inserted, and gets
    // the values under the budget.
    let mut nb = [0u8; 20];
    nb[19] = 1;
    let newcomer = NodeId(nb);
    let mut other = Endpoint::new(EndpointConfig::default(), 3);
    let naddr = addr(2);
    let ping = other
        .call(
            t0,
            addr(0),
            "ping",
            &[bin(&newcomer)],
            CallOptions::default(),
        )
        .unwrap();
    let _ = ping;
    node.handle_datagram(t0, naddr, None, &other.poll_transmit().unwrap().payload);
    let _pong = node.poll_transmit();
    let t1 = t0 + Duration::from_secs(6);
    node.handle_timeout(t1);
    let verify = std::iter::from_fn(|| node.poll_transmit())
        .find(|t| t.destination == naddr)
        .unwrap();
    other.handle_datagram(t1, addr(0), &verify.payload);
    let Some(RpcEvent::Request { token, .. }) = other
        .poll_event()
        .filter(|e| matches!(e, RpcEvent::Request { .. }))
        .or_else(|| other.poll_event())
    else {
        panic!()
    };
    other.respond(t1, token, &bin(&newcomer));
    node.handle_datagram(t1, naddr, None, &other.poll_transmit().unwrap().payload);
    assert!(node.table().contains(&newcomer));

    let mut received = 0;
    let mut max_burst = 0;
    for round in 0..1000 {
        let burst: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
        max_burst = max_burst.max(burst.len());
        if burst.is_empty() {
            break;
        }
        for t in burst {
            other.handle_datagram(t1, addr(0), &t.payload);
            while let Some(e) = other.poll_event() {
                if let RpcEvent::Request { token, method, .. } = e {
                    assert_eq!(method, "store");
                    received += 1;
                    other.respond(t1, token, &Value::Boolean(true));
                }
            }
            while let Some(a) = other.poll_transmit() {
                node.handle_datagram(t1, naddr, None, &a.payload);
            }
        }
        assert!(round < 999);
    }
    assert!(
        max_burst <= 2,
        "at most 2 hand-over stores in flight, saw {max_burst}"
    );
    assert_eq!(
        received, 300,
        "the newcomer, our only contact, gets every value"
    );
    assert_eq!(node.stats().handover_stores, 300);

    // A flood of newcomers: at most 3 jobs wait, the rest are counted and dropped.
    for i in 0..10u8 {
        let mut b = [0u8; 20];
        b[19] = 2 + i;
        node.contact_answered(t1, Contact::new(NodeId(b), addr(100 + i as usize)), None);
    }
    assert!(node.handover_jobs() <= 3);
    assert!(node.stats().handover_jobs_dropped >= 7);
}

#[test]
fn a_stopped_node_refuses_commands_and_ends_its_queries_with_shut_down() {
    let mut net = Net::new(3, quiet_config());
    net.join_all();
    let now = net.now;
    let q = net.nodes[1].get(now, key(1)).unwrap();
    net.nodes[1].stop(now);
    net.flush(1);
    let ended = net.events[1].iter().find_map(|e| match e {
        Event::QueryFinished { id, result, .. } if *id == q => Some(result.clone()),
        _ => None,
    });
    assert_eq!(ended, Some(Err(CommandError::ShutDown)));
    assert_eq!(net.nodes[1].get(now, key(1)), Err(CommandError::ShutDown));
    assert_eq!(
        net.nodes[1].set(now, key(1), 1.into()),
        Err(CommandError::ShutDown)
    );
    assert_eq!(
        net.nodes[1].bootstrap(now, &[addr(0)]),
        Err(CommandError::ShutDown)
    );
    // It no longer answers.
    let mut peer = Peer::new(addr(50));
    assert_eq!(
        peer.ask(&mut net.nodes[1], addr(1), now, "ping", &[bin(&id_of(50))]),
        None
    );
}

#[test]
fn a_node_with_our_own_id_is_reported_counted_and_never_inserted() {
    let config = quiet_config();
    let now = start();
    let twin_id = id_of(0);
    let mut a = Node::new(config.clone(), twin_id, 1);
    let mut b = Node::new(config, twin_id, 2);
    let q = b.bootstrap(now, &[addr(0)]).unwrap();
    for _ in 0..5 {
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, addr(1), None, &t.payload);
        }
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, addr(0), None, &t.payload);
        }
    }
    let events: Vec<Event> = std::iter::from_fn(|| b.poll_event()).collect();
    assert!(events.contains(&Event::OwnIdSeen { addr: addr(0) }));
    assert!(events.iter().any(|e| matches!(e,
        Event::QueryFinished { id, result: Ok(QueryOutcome::Bootstrap { answered: 0, .. }), .. } if *id == q)));
    assert!(b.contacts().is_empty() && a.contacts().is_empty());
    assert!(a.stats().own_id_contacts >= 1, "the callee saw it too");
    let err = b.get(now, key(1)).unwrap_err();
    assert_eq!(err, CommandError::NoContacts { own_id_contacts: 1 });
    assert!(err.to_string().contains("same seed"), "{err}");
}

#[test]
fn a_contact_that_died_stops_being_handed_out_after_one_unanswered_rpc() {
    let mut net = Net::new(6, quiet_config());
    net.join_all();
    net.alive[4] = false;
    // Node 0 runs a lookup that asks node 4: past its RTO it is suspect, after the RPC
    // timeout it is evicted.
    let q = net.nodes[0].get(net.now, id_of(4)).unwrap();
    net.flush(0);
    assert!(net.wait(0, q, Duration::from_secs(10)).0.is_ok());
    let mut peer = Peer::new(addr(3));
    let list = peer
        .ask(
            &mut net.nodes[0],
            addr(0),
            net.now,
            "find_node",
            &[bin(&id_of(3)), bin(&id_of(5))],
        )
        .unwrap();
    let ids: Vec<NodeId> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(wire::parse_contact)
        .map(|c| c.id)
        .collect();
    assert!(
        !ids.contains(&id_of(4)),
        "suspect contacts are not handed out"
    );
    // The RPC fails at 5 s, the follow-up ping at 10 s: then it is evicted.
    net.run_for(Duration::from_secs(12));
    assert!(
        !net.nodes[0].table().contains(&id_of(4)),
        "evicted after the failed ping"
    );
    assert!(
        net.events[0].contains(&Event::ContactRemoved(id_of(4)))
            || !net.nodes[0].config().persistence
    );
}

#[test]
fn a_quiet_node_rechecks_contacts_it_hands_out_and_drops_the_dead_ones() {
    let config = NodeConfig {
        recheck_after: Duration::from_secs(30),
        ..quiet_config()
    };
    let mut net = Net::new(5, config);
    net.join_all();
    net.run_for(Duration::from_secs(40));
    net.alive[2] = false;
    let mut peer = Peer::new(addr(3));
    let ask = |net: &mut Net, peer: &mut Peer| -> Vec<NodeId> {
        let v = net
            .ask(peer, 0, "find_node", &[bin(&id_of(3)), bin(&id_of(2))])
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(wire::parse_contact)
            .map(|c| c.id)
            .collect()
    };
    // Not heard from for 40 s > recheck_after: still handed out once, and pinged.
    assert!(ask(&mut net, &mut peer).contains(&id_of(1)));
    net.run_for(Duration::from_secs(2));
    // The ping of the dead one passed its RTO: no longer handed out.
    let ids = ask(&mut net, &mut peer);
    assert!(!ids.contains(&id_of(2)), "{ids:?}");
    assert!(ids.contains(&id_of(1)));
}

#[test]
fn persistence_events_tell_the_driver_what_to_keep() {
    let config = NodeConfig {
        persistence: true,
        ..quiet_config()
    };
    let mut net = Net::new(4, config);
    net.join_all();
    assert!(
        net.events[0]
            .iter()
            .filter(|e| matches!(e, Event::ContactAdded(_)))
            .count()
            >= 3
    );
    let k = key(20);
    assert!(net.set(3, k, "p".into()).0.is_ok());
    assert!(net.events[3]
        .iter()
        .any(|e| matches!(e, Event::Published { key, .. } if *key == k)));
    // Holders acknowledged only through StoreRequested + store_durable (done by the net).
    let requested: usize = (0..3)
        .map(|i| {
            net.events[i]
                .iter()
                .filter(|e| matches!(e, Event::StoreRequested { key, .. } if *key == k))
                .count()
        })
        .sum();
    assert!(requested >= 2);
    // A restart: copies and publications come back through load_*.
    let now = net.now;
    let mut fresh = Node::new(net.nodes[3].config().clone(), id_of(3), 9);
    fresh.load_record(now, k, "p".into(), now + Duration::from_secs(10));
    fresh.load_record(now, key(21), "gone".into(), now);
    fresh.load_publication(now, k, "p".into());
    assert_eq!(
        fresh.local_value(&k, now).as_deref(),
        Some(&Value::from("p"))
    );
    assert_eq!(fresh.stored_count(), 1, "an expired copy is not loaded");
    assert_eq!(fresh.published_count(), 1);
}

#[test]
fn gets_through_one_shot_clients_find_every_value_after_churn_loss_and_a_quarter_killed() {
    let mut net = Net::new(80, quiet_config());
    net.join_all();
    net.loss = 0.05;
    let keys: Vec<NodeId> = (0..40u8).map(key).collect();
    for (n, k) in keys.iter().enumerate() {
        let (r, _) = net.set(n % 80, *k, Value::from(n as i64));
        assert!(
            matches!(r, Ok(QueryOutcome::Set { acknowledged, .. }) if acknowledged >= 10),
            "{r:?}"
        );
    }
    // 100 one-shot clients: each joins through a long-lived node, runs one get, leaves.
    // Each one-shot client: (index, how long it lived).
    let mut lives: Vec<(usize, Duration)> = Vec::new();
    let mut one_shot = |net: &mut Net, n: usize| -> (bool, Duration) {
        let c = net.add(quiet_config());
        let born = net.now;
        let via = addr(n % 40);
        let q = net.nodes[c].bootstrap(net.now, &[via]).unwrap();
        net.flush(c);
        let (r, _) = net.wait(c, q, Duration::from_secs(30));
        let mut outcome = (false, Duration::ZERO);
        if matches!(r, Ok(QueryOutcome::Bootstrap { answered: 1, .. })) {
            let (r, stats) = net.get(c, keys[n % keys.len()]);
            let want = Value::from((n % keys.len()) as i64);
            outcome = (
                r == Ok(QueryOutcome::Get { value: Some(want) }),
                stats.finished - stats.started,
            );
        }
        net.alive[c] = false;
        lives.push((c, net.now - born));
        outcome
    };
    let mut found = 0;
    for n in 0..100 {
        found += one_shot(&mut net, n).0 as usize;
        net.run_for(ms(200));
    }
    assert!(found >= 99, "before the kill: {found}/100 found");
    // A quarter of the long-lived nodes die at once (never the first 40, the bootstraps).
    for i in 60..80 {
        net.alive[i] = false;
    }
    net.run_for(Duration::from_secs(30));
    let mut found = 0;
    let mut slowest = Duration::ZERO;
    for n in 0..100 {
        let (hit, took) = one_shot(&mut net, n + 100);
        found += hit as usize;
        slowest = slowest.max(took);
        net.run_for(ms(200));
    }
    assert!(found >= 99, "after the kill: {found}/100 found");
    // Long-lived nodes hand out few dead contacts: each goes one RTO after the first RPC
    // a node sends it (bounded by `recheck_after` of silence otherwise).
    let mut peer = Peer::new(addr(500));
    let mut dead_handed = 0;
    for (i, k) in keys.iter().enumerate() {
        let v = net.ask(&mut peer, i, "find_node", &[bin(&id_of(500)), bin(k)]);
        for c in v
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(wire::parse_contact)
        {
            if Net::index(c.addr).is_some_and(|j| !net.alive[j]) {
                dead_handed += 1;
            }
        }
    }
    assert!(
        dead_handed <= 40,
        "{dead_handed} dead contacts handed out in 40 answers"
    );
    // A one-shot client that left before `verify_delay` never entered a long-lived
    // node's table (it never answered the verification ping); one that lived longer
    // answered it, and is then handed out until it fails like any dead contact.
    let verify_delay = quiet_config().verify_delay;
    let short_lived: HashSet<usize> = lives
        .iter()
        .filter(|(_, life)| *life < verify_delay)
        .map(|(c, _)| *c)
        .collect();
    assert!(
        short_lived.len() >= 150,
        "{} of 200 clients lived < verify_delay",
        short_lived.len()
    );
    let polluted = (0..80)
        .filter(|&i| {
            net.nodes[i]
                .contacts()
                .iter()
                .any(|c| Net::index(c.addr).is_some_and(|j| short_lived.contains(&j)))
        })
        .count();
    assert_eq!(
        polluted, 0,
        "short-lived one-shot clients in {polluted} tables"
    );
    eprintln!("slowest one-shot get after the kill: {slowest:?}; dead handed out: {dead_handed}");
}

#[test]
fn many_due_republishes_wait_for_a_free_slot_instead_of_spinning_the_driver() {
    let config = NodeConfig {
        republish_interval: Duration::from_secs(600),
        max_maintenance_queries: 2,
        ..quiet_config()
    };
    let mut net = Net::new(3, config);
    net.join_all();
    for n in 0..40u8 {
        assert!(net.set(2, key(n), Value::from(n)).0.is_ok());
    }
    // The other nodes die: every republish lookup now waits out dead contacts, two at
    // a time, while the other 38 are due.
    net.alive[0] = false;
    net.alive[1] = false;
    let mut steps = 0;
    let end = net.now + Duration::from_secs(1300);
    while net.now < end && steps < 200_000 {
        if !net.step() {
            break;
        }
        steps += 1;
    }
    assert!(net.now >= end, "stuck at one instant after {steps} steps");
    assert!(steps < 20_000, "{steps} steps for 80 republishes");
    assert_eq!(net.nodes[2].published_count(), 40);
}

#[test]
fn answers_go_out_from_the_address_the_request_came_to_and_requests_leave_it_to_the_kernel() {
    let now = start();
    let mut node = Node::new(quiet_config(), id_of(0), 1);
    let mut peer = Endpoint::new(EndpointConfig::default(), 5);
    let called: IpAddr = "127.0.0.2".parse().unwrap();
    peer.call(
        now,
        addr(0),
        "ping",
        &[bin(&id_of(1))],
        CallOptions::default(),
    )
    .unwrap();
    let req = peer.poll_transmit().unwrap();
    node.handle_datagram(now, addr(1), Some(called), &req.payload);
    let answer = node.poll_transmit().unwrap();
    assert_eq!((answer.destination, answer.source), (addr(1), Some(called)));
    // The same request again (a resend): answered from the duplicate cache, same source.
    node.handle_datagram(now, addr(1), Some(called), &req.payload);
    let again = node.poll_transmit().unwrap();
    assert_eq!(again.source, Some(called));
    assert_eq!(again.payload, answer.payload);
    // Our own requests (here the verification ping of the caller) carry no source.
    node.handle_timeout(now + Duration::from_secs(6));
    let ping = node.poll_transmit().unwrap();
    assert_eq!((ping.destination, ping.source), (addr(1), None));
}

#[test]
fn a_bootstrap_whose_own_id_lookup_was_lost_looks_up_again() {
    let t0 = start();
    let mut node = Node::new(quiet_config(), id_of(0), 1);
    let mut peer = Endpoint::new(EndpointConfig::default(), 5);
    let q = node.bootstrap(t0, &[addr(1)]).unwrap();
    // The ping is answered.
    peer.handle_datagram(t0, addr(0), &node.poll_transmit().unwrap().payload);
    let Some(RpcEvent::Request { token, .. }) = peer.poll_event() else {
        panic!()
    };
    peer.respond(t0, token, &bin(&id_of(1)));
    node.handle_datagram(t0, addr(1), None, &peer.poll_transmit().unwrap().payload);
    // The find_node of our own id, and its resend one RTO (1 s) later, are lost.
    let first = node.poll_transmit().unwrap();
    let t1 = t0 + Duration::from_secs(1);
    node.handle_timeout(t1);
    let resend = node.poll_transmit().unwrap();
    assert_eq!(
        resend.payload, first.payload,
        "the same datagram, resent at the RTO"
    );
    // It gives up at the RPC timeout (5 s), and looks up again rather than end knowing
    // one node.
    let t4 = t0 + Duration::from_secs(5);
    node.handle_timeout(t4);
    // (The failed contact also gets its liveness ping.)
    let out: Vec<Transmit> = std::iter::from_fn(|| node.poll_transmit()).collect();
    let other = Contact::new(id_of(2), addr(2));
    let mut lookups = 0;
    for t in out.iter().filter(|t| t.destination == addr(1)) {
        peer.handle_datagram(t4, addr(0), &t.payload);
        while let Some(RpcEvent::Request { token, method, .. }) = peer.poll_event() {
            let answer = match method.as_str() {
                "find_node" => {
                    lookups += 1;
                    Value::Array(vec![wire::contact_value(&other)])
                }
                _ => bin(&id_of(1)),
            };
            peer.respond(t4, token, &answer);
        }
    }
    assert_eq!(lookups, 1, "a new lookup of our own id");
    while let Some(t) = peer.poll_transmit() {
        node.handle_datagram(t4, addr(1), None, &t.payload);
    }
    // Still running: it now asks the contact it just learned.
    assert!(std::iter::from_fn(|| node.poll_event())
        .all(|e| !matches!(e, Event::QueryFinished { id, .. } if id == q)));
    assert!(std::iter::from_fn(|| node.poll_transmit()).any(|t| t.destination == addr(2)));
}

/// A [`ValueStore`] the test can look into (and take values out of) behind the node.
#[derive(Clone, Debug, Default)]
struct SharedValues(std::sync::Arc<std::sync::Mutex<MemoryValues>>);

impl ValueStore for SharedValues {
    fn get(&self, key: &NodeId) -> Option<Arc<Value>> {
        self.0.lock().unwrap().get(key)
    }
    fn put(&mut self, key: NodeId, value: Arc<Value>) {
        self.0.lock().unwrap().put(key, value);
    }
    fn remove(&mut self, key: &NodeId) {
        self.0.lock().unwrap().remove(key);
    }
}

#[test]
fn a_node_keeps_its_values_in_its_value_store_and_reads_them_from_there() {
    let now = start();
    let me = addr(0);
    let values = SharedValues::default();
    let mut node = Node::with_value_store(quiet_config(), id_of(0), 1, Box::new(values.clone()));
    let mut peer = Peer::new(addr(1));
    let peer_id = id_of(1);
    let k = key(7);
    let ok = peer.ask(
        &mut node,
        me,
        now,
        "store",
        &[bin(&peer_id), bin(&k), "v".into()],
    );
    assert_eq!(ok, Some(Value::Boolean(true)));
    assert_eq!(
        values.get(&k).as_deref(),
        Some(&Value::from("v")),
        "put in the store"
    );
    let found = peer.ask(&mut node, me, now, "find_value", &[bin(&peer_id), bin(&k)]);
    assert_eq!(found, Some(Value::Map(vec![("value".into(), "v".into())])));

    // Taken out of the store behind the node's back: the node answers as if it held
    // nothing (its index alone is no value), and local reads agree.
    values.0.lock().unwrap().remove(&k);
    let found = peer.ask(&mut node, me, now, "find_value", &[bin(&peer_id), bin(&k)]);
    assert!(matches!(found, Some(Value::Array(_))), "{found:?}");
    assert!(node.local_value(&k, now).is_none());
    assert_eq!(
        node.stored_count(),
        1,
        "the index still lists it until it expires"
    );

    // Reloaded by index only (as after a restart on a durable store): served from it.
    let k2 = key(9);
    values.0.lock().unwrap().put(k2, Arc::new(Value::from("w")));
    node.load_record_index(now, k2, now + Duration::from_secs(60), 6);
    assert_eq!(
        node.local_value(&k2, now).as_deref(),
        Some(&Value::from("w"))
    );
    let found = peer.ask(&mut node, me, now, "find_value", &[bin(&peer_id), bin(&k2)]);
    assert_eq!(found, Some(Value::Map(vec![("value".into(), "w".into())])));
}

#[test]
fn a_lookup_waits_for_a_slow_or_once_measured_contact_no_longer_than_for_an_unmeasured_one() {
    let config = RtoConfig::default();
    let mut pool = RttEstimator::default();
    for i in 0..20 {
        pool.sample(ms(if i % 2 == 0 { 60 } else { 120 }));
    }
    let pooled = pool.pooled_rto(&config);
    let mut peers = HashMap::new();
    // Measured once at 300 ms: RTO 300 + 4·150 = 900 ms.
    let mut slow = PeerInfo::default();
    slow.rtt.sample(ms(300));
    peers.insert(addr(1), slow);
    let mut fast = PeerInfo::default();
    for _ in 0..20 {
        fast.rtt.sample(ms(20));
    }
    peers.insert(addr(2), fast);
    let rto = |a| rto_from(&peers, &config, &pool, 20, &a);
    let wait = |a| lookup_wait_from(&peers, &config, &pool, 20, &a);
    assert_eq!(
        rto(addr(1)),
        ms(900),
        "the call still resends at its own RTO"
    );
    assert!(pooled < ms(900), "{pooled:?}");
    assert_eq!(
        wait(addr(1)),
        pooled,
        "the lookup moves on after the pooled wait"
    );
    assert!(rto(addr(2)) < pooled, "{:?}", rto(addr(2)));
    assert_eq!(
        wait(addr(2)),
        rto(addr(2)),
        "a fast contact's own RTO stands"
    );
    assert_eq!(wait(addr(9)), pooled, "never measured: the pooled wait");
    // Before the pool stands (under MIN_AGGREGATE_SAMPLES, 2), every wait is the
    // contact's RTO.
    assert_eq!(
        lookup_wait_from(&peers, &config, &pool, MIN_AGGREGATE_SAMPLES - 1, &addr(1)),
        ms(900)
    );
}

#[test]
fn stale_contacts_handed_out_while_every_recheck_slot_is_taken_are_pinged_as_slots_free() {
    let config = NodeConfig {
        recheck_after: Duration::from_secs(30),
        ..quiet_config()
    };
    let n = 26;
    let mut net = Net::new(n, config);
    net.join_all();
    net.run_for(Duration::from_secs(40));
    // Node 0 hands out the 20 nearest of its contacts to `target` (not the asker, node
    // 1); all are stale, so the nearest 16 take the recheck slots and 4 wait in line.
    let target = key(7);
    let mut order: Vec<NodeId> = net.nodes[0]
        .contacts()
        .iter()
        .map(|c| c.id)
        .filter(|id| *id != id_of(1))
        .collect();
    assert_eq!(order.len(), n - 2, "node 0 knows every other node");
    order.sort_by_key(|id| id.distance(&target));
    let waiting: Vec<NodeId> = order[16..20].to_vec();
    for id in &waiting {
        let i = (0..n).find(|&i| id_of(i) == *id).unwrap();
        net.alive[i] = false;
    }
    let mut peer = Peer::new(addr(1));
    let ask = |net: &mut Net, peer: &mut Peer| -> Vec<NodeId> {
        let v = net
            .ask(peer, 0, "find_node", &[bin(&id_of(1)), bin(&target)])
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(wire::parse_contact)
            .map(|c| c.id)
            .collect()
    };
    let first = ask(&mut net, &mut peer);
    assert!(waiting.iter().all(|id| first.contains(id)), "{first:?}");
    // The 16 live contacts answer their pings at once, freeing the slots for the 4
    // waiting ones, which are dead: their pings pass the RTO and they become suspect.
    net.run_for(Duration::from_secs(6));
    let second = ask(&mut net, &mut peer);
    let handed: Vec<&NodeId> = waiting.iter().filter(|id| second.contains(id)).collect();
    assert!(
        handed.is_empty(),
        "dead contacts still handed out: {handed:?}"
    );
    assert!(order[..16].iter().all(|id| second.contains(id)));
}

#[path = "tests_signed.rs"]
mod signed;
