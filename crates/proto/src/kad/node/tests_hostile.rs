//! Issue 10's DHT attack rows replayed against [`Node`] with hand-driven time, on public
//! (non-exempt) virtual addresses: the victim, honest nodes each on its own /24, and raw
//! attacker sockets that count every byte they send and receive.
//!
//! Each test prints its figures (`cargo test -p rpcudp-proto --lib tests_hostile --
//! --nocapture`); SECURITY.md quotes them.

use super::*;
use crate::kad::wire;
use crate::wire::rpc::{
    decode_packet, encode_request, encode_response, DecodeLimits, Dialect, MessageId, Packet,
};
use rand::Rng;

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

const VICTIM: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)),
    8468,
);

fn honest_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([198, 18, i as u8, 1], 8468))
}

fn config() -> NodeConfig {
    NodeConfig {
        persistence: false,
        refresh_interval: None,
        rpc_timeout: Duration::from_secs(1),
        ..NodeConfig::default()
    }
}

/// A raw socket: counts bytes both ways; if `id` is set it answers every request with
/// that id (as a ping answer), the way an attacker that does receive at its address
/// would.
#[derive(Default)]
struct Raw {
    id: Option<NodeId>,
    bytes_from: usize,
    bytes_to: usize,
    answers: Vec<Value>,
}

struct World {
    now: Instant,
    nodes: HashMap<SocketAddr, Node>,
    raws: HashMap<SocketAddr, Raw>,
    queue: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    rng: SmallRng,
}

impl World {
    fn new() -> World {
        let now = start();
        let mut nodes = HashMap::new();
        nodes.insert(
            VICTIM,
            Node::new(config(), NodeId::from_bytes([0x55; 20]), 1),
        );
        World {
            now,
            nodes,
            raws: HashMap::new(),
            queue: VecDeque::new(),
            rng: SmallRng::seed_from_u64(9),
        }
    }

    fn victim(&self) -> &Node {
        &self.nodes[&VICTIM]
    }

    fn victim_mut(&mut self) -> &mut Node {
        self.nodes.get_mut(&VICTIM).unwrap()
    }

    fn drain(&mut self, at: SocketAddr) {
        let node = self.nodes.get_mut(&at).unwrap();
        while let Some(t) = node.poll_transmit() {
            self.queue.push_back((at, t.destination, t.payload));
        }
        while node.poll_event().is_some() {}
    }

    /// Delivers queued datagrams until none are left (bounded).
    fn deliver(&mut self) {
        for _ in 0..1_000_000 {
            let Some((from, to, payload)) = self.queue.pop_front() else {
                return;
            };
            if let Some(node) = self.nodes.get_mut(&to) {
                node.handle_datagram(self.now, from, None, &payload);
                self.drain(to);
            } else if let Some(raw) = self.raws.get_mut(&to) {
                raw.bytes_to += payload.len();
                let packet = decode_packet(Dialect::Rpcudp, &payload, &DecodeLimits::default());
                match (packet, raw.id) {
                    (Ok(Packet::Request { id, .. }), Some(me)) => {
                        let mut out = Vec::new();
                        encode_response(Dialect::Rpcudp, &id, &wire::id_value(&me), &mut out);
                        raw.bytes_from += out.len();
                        self.queue.push_back((to, from, out));
                    }
                    (Ok(Packet::Response { value, .. }), _) => raw.answers.push(value),
                    _ => {}
                }
            }
        }
        panic!("deliver did not settle");
    }

    /// Runs `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..1_000_000 {
            self.deliver();
            let next = self.nodes.values().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let due: Vec<SocketAddr> = self
                        .nodes
                        .iter()
                        .filter(|(_, n)| n.poll_timeout().is_some_and(|t| t <= self.now))
                        .map(|(a, _)| *a)
                        .collect();
                    for a in due {
                        self.nodes.get_mut(&a).unwrap().handle_timeout(self.now);
                        self.drain(a);
                    }
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("run_for did not settle");
    }

    /// `n` honest nodes, each on its own /24, bootstrapped through the victim twice (so
    /// that the victim verified them and they know each other).
    fn honest(&mut self, n: usize) {
        for i in 0..n {
            let id = NodeId::from_bytes(self.rng.random());
            self.nodes
                .insert(honest_addr(i), Node::new(config(), id, 100 + i as u64));
        }
        for _ in 0..2 {
            for i in 0..n {
                let a = honest_addr(i);
                let now = self.now;
                self.nodes
                    .get_mut(&a)
                    .unwrap()
                    .bootstrap(now, &[VICTIM])
                    .unwrap();
                self.drain(a);
                self.run_for(Duration::from_millis(200));
            }
            self.run_for(Duration::from_secs(8));
        }
    }

    /// A request from raw socket `from` (created if new) to the victim.
    fn raw_send(&mut self, from: SocketAddr, method: &str, args: &[Value]) {
        let mut out = Vec::new();
        let id = MessageId(self.rng.random());
        encode_request(Dialect::Rpcudp, &id, method, args, &mut out);
        let raw = self.raws.entry(from).or_default();
        raw.bytes_from += out.len();
        self.queue.push_back((from, VICTIM, out));
    }
}

fn bin(id: &NodeId) -> Value {
    wire::id_value(id)
}

fn value_8k() -> Value {
    Value::Binary(vec![0xEE; 8000])
}

#[test]
fn forged_requests_from_silent_addresses_get_at_most_three_times_their_bytes() {
    let mut w = World::new();
    w.honest(20);
    let now = w.now;
    let key = NodeId::from_bytes([0x56; 20]);
    let far = now + Duration::from_secs(3600);
    w.victim_mut().load_record(now, key, value_8k(), far);
    for i in 0..50u8 {
        let k = NodeId::from_bytes([i; 20]);
        w.victim_mut().load_record(now, k, value_8k(), far);
    }
    let rows: [(&str, SocketAddr, &str, Vec<Value>); 3] = [
        (
            "ping from a new id",
            "203.0.113.1:1".parse().unwrap(),
            "ping",
            vec![bin(&NodeId::from_bytes([0x57; 20]))],
        ),
        (
            "find_node",
            "203.0.113.2:1".parse().unwrap(),
            "find_node",
            vec![
                bin(&NodeId::from_bytes([0x58; 20])),
                bin(&NodeId::from_bytes([0x10; 20])),
            ],
        ),
        (
            "find_value of an 8 KB value",
            "203.0.113.3:1".parse().unwrap(),
            "find_value",
            vec![bin(&NodeId::from_bytes([0x59; 20])), bin(&key)],
        ),
    ];
    for (what, from, method, args) in rows {
        w.raw_send(from, method, &args);
        w.run_for(Duration::from_secs(30));
        let raw = &w.raws[&from];
        eprintln!(
            "{what} from a silent address: {} B in, {} B out ({:.2}×)",
            raw.bytes_from,
            raw.bytes_to,
            raw.bytes_to as f64 / raw.bytes_from as f64
        );
        assert!(raw.bytes_to <= 3 * raw.bytes_from, "{what}");
        match method {
            // Its answer waits for the ping it does not answer.
            "find_value" => assert!(raw.answers.is_empty(), "{what}: answer held"),
            // Cut to the nearest contacts that fit.
            "find_node" => {
                let n = raw.answers[0].as_array().map_or(0, Vec::len);
                assert!((1..20).contains(&n), "{what}: {n} contacts");
            }
            _ => {}
        }
    }
    assert_eq!(w.victim().stats().handover_stores, 0);
}

#[test]
fn an_asker_that_receives_where_it_says_gets_its_big_answer_after_one_ping() {
    let mut w = World::new();
    w.honest(5);
    let now = w.now;
    let key = NodeId::from_bytes([0x56; 20]);
    let far = now + Duration::from_secs(3600);
    w.victim_mut().load_record(now, key, value_8k(), far);
    let from: SocketAddr = "203.0.113.9:1".parse().unwrap();
    w.raws.insert(
        from,
        Raw {
            id: Some(NodeId::from_bytes([0x60; 20])),
            ..Raw::default()
        },
    );
    w.raw_send(
        from,
        "find_value",
        &[bin(&NodeId::from_bytes([0x60; 20])), bin(&key)],
    );
    w.run_for(Duration::from_secs(2));
    let raw = &w.raws[&from];
    assert_eq!(
        raw.answers,
        vec![Value::Map(vec![(Value::from("value"), value_8k())])]
    );
}

#[test]
fn forged_pings_carrying_honest_ids_re_point_none_of_them() {
    let mut w = World::new();
    w.honest(30);
    let before: Vec<Contact> = w.victim().contacts();
    assert!(before.len() >= 25, "{}", before.len());
    // One port claims every id, and answers the verification pings with the claimed id.
    let attacker: SocketAddr = "203.0.113.66:6666".parse().unwrap();
    for c in &before {
        w.raws.insert(
            attacker,
            Raw {
                id: Some(c.id),
                ..Raw::default()
            },
        );
        w.raw_send(attacker, "ping", &[bin(&c.id)]);
        w.run_for(Duration::from_secs(7));
    }
    let repointed = w
        .victim()
        .contacts()
        .iter()
        .filter(|c| c.addr == attacker)
        .count();
    eprintln!(
        "forged pings with {} honest ids from one port: {repointed} re-pointed, {} address checks",
        before.len(),
        w.victim().stats().address_checks
    );
    assert_eq!(repointed, 0);
    assert!(w.victim().stats().address_checks >= before.len() as u64 / 2);
}

#[test]
fn chosen_ids_from_one_ip_get_at_most_ten_contacts_into_the_table() {
    let mut w = World::new();
    w.honest(12);
    let mut rng = SmallRng::seed_from_u64(3);
    // 3,200 chosen ids from 3,200 ports of one IP, each answering its verification.
    for batch in 0..32u16 {
        for i in 0..100u16 {
            let from = SocketAddr::from(([203, 0, 113, 7], 1000 + batch * 100 + i));
            let id = NodeId::from_bytes(rng.random());
            w.raws.insert(
                from,
                Raw {
                    id: Some(id),
                    ..Raw::default()
                },
            );
            w.raw_send(from, "ping", &[bin(&id)]);
        }
        w.run_for(Duration::from_secs(6));
    }
    let fake = w
        .victim()
        .contacts()
        .iter()
        .filter(|c| c.addr.ip() == std::net::IpAddr::from([203, 0, 113, 7]))
        .count();
    // What a find_node for random keys hands out.
    let asker: SocketAddr = "198.19.0.1:1".parse().unwrap();
    w.raws.insert(
        asker,
        Raw {
            id: Some(NodeId::from_bytes([0x61; 20])),
            ..Raw::default()
        },
    );
    for _ in 0..20 {
        let target = NodeId::from_bytes(rng.random());
        w.raw_send(
            asker,
            "find_node",
            &[bin(&NodeId::from_bytes([0x61; 20])), bin(&target)],
        );
        w.run_for(Duration::from_millis(100));
    }
    let mut handed_fake = std::collections::HashSet::new();
    let mut handed = 0;
    for a in &w.raws[&asker].answers {
        for c in a.as_array().into_iter().flatten() {
            let c = wire::parse_contact(c).expect("a contact");
            handed += 1;
            if c.addr.ip() == std::net::IpAddr::from([203, 0, 113, 7]) {
                handed_fake.insert(c.id);
            }
        }
    }
    eprintln!(
        "3,200 chosen ids from one IP: {fake} in the table, {} distinct handed out in 20 find_node \
         answers ({handed} contacts in all); {} refused for the subnet limit",
        handed_fake.len(),
        w.victim().stats().contacts_refused_subnet
    );
    assert!(fake <= 10, "{fake}");
    assert!(handed_fake.len() <= 10);
    assert!(handed > 0);
}

#[test]
fn a_store_flood_from_one_subnet_leaves_room_for_a_legitimate_store() {
    let mut w = World::new();
    w.honest(3);
    let sender = NodeId::from_bytes([0x70; 20]);
    let mut rng = SmallRng::seed_from_u64(4);
    // 10,000 stores from ports of one /24 (twice the per-source share).
    for n in 0..10_000u32 {
        let from = SocketAddr::from(([203, 0, 113, (n % 200) as u8], 2000 + (n / 200) as u16));
        let key = NodeId::from_bytes(rng.random());
        w.raw_send(from, "store", &[bin(&sender), bin(&key), Value::from(n)]);
        if n % 100 == 99 {
            w.run_for(Duration::from_millis(50));
        }
    }
    w.run_for(Duration::from_secs(1));
    let v = w.victim();
    let rate_limited = v.endpoint().stats().requests_rate_limited;
    eprintln!(
        "10,000 stores from one /24: {} kept, {} refused for the share, {rate_limited} \
         rate-limited",
        v.stored_count(),
        v.stats().stores_refused_source_share
    );
    assert_eq!(v.largest_store_share(), 5000);
    assert_eq!(v.stats().stores_refused_source_share + rate_limited, 5000);
    // A legitimate store from another /24 is accepted.
    let honest: SocketAddr = "198.19.5.5:8468".parse().unwrap();
    w.raw_send(
        honest,
        "store",
        &[
            bin(&sender),
            bin(&NodeId::from_bytes([1; 20])),
            Value::from("mine"),
        ],
    );
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.raws[&honest].answers, vec![Value::Boolean(true)]);
}

#[test]
fn a_full_store_evicts_the_largest_sources_farthest_keys_for_a_newcomer() {
    let mut w = World::new();
    let small = NodeConfig {
        max_records: 1000,
        max_records_per_source: 400,
        ..config()
    };
    w.nodes
        .insert(VICTIM, Node::new(small, NodeId::from_bytes([0x55; 20]), 1));
    w.honest(3);
    let sender = NodeId::from_bytes([0x70; 20]);
    let mut rng = SmallRng::seed_from_u64(5);
    // Three subnets fill the store: 400 + 400 + 300 offered.
    for (subnet, count) in [(1u8, 400u32), (2, 400), (3, 300)] {
        for n in 0..count {
            let from = SocketAddr::from(([203, 0, subnet, (n % 200) as u8], 3000));
            let key = NodeId::from_bytes(rng.random());
            w.raw_send(from, "store", &[bin(&sender), bin(&key), Value::from(n)]);
        }
        w.run_for(Duration::from_millis(100));
    }
    let v = w.victim();
    assert!(v.stored_count() <= 1000);
    let evicted_before = v.stats().records_evicted;
    // A newcomer's store is accepted; it costs the largest source its farthest key.
    let honest: SocketAddr = "198.19.5.5:8468".parse().unwrap();
    w.raw_send(
        honest,
        "store",
        &[
            bin(&sender),
            bin(&NodeId::from_bytes([0x55; 20])),
            Value::from("near"),
        ],
    );
    w.run_for(Duration::from_millis(100));
    let v = w.victim();
    eprintln!(
        "store of 1000 records filled by 3 subnets: a newcomer's store {:?}, {} evicted in all",
        w.raws[&honest].answers,
        v.stats().records_evicted
    );
    assert_eq!(w.raws[&honest].answers, vec![Value::Boolean(true)]);
    assert!(v.stats().records_evicted > evicted_before);
    assert!(v.stored_count() <= 1000);
    assert!(v.largest_store_share() <= 400);
}

#[test]
fn a_value_over_the_size_cap_is_refused_both_ways() {
    let mut w = World::new();
    w.honest(2);
    let from: SocketAddr = "198.19.5.5:8468".parse().unwrap();
    let big = Value::Binary(vec![1; 65_000]);
    w.raw_send(
        from,
        "store",
        &[
            bin(&NodeId::from_bytes([0x70; 20])),
            bin(&NodeId::from_bytes([2; 20])),
            big.clone(),
        ],
    );
    w.run_for(Duration::from_millis(100));
    assert!(w.raws[&from].answers.is_empty());
    assert_eq!(w.victim().stats().stores_refused_too_large, 1);
    let now = w.now;
    let err = w
        .nodes
        .get_mut(&VICTIM)
        .unwrap()
        .set(now, NodeId::from_bytes([3; 20]), big)
        .unwrap_err();
    assert!(
        matches!(err, CommandError::ValueTooLarge { limit: 8192, .. }),
        "{err:?}"
    );
}

#[test]
fn pings_from_never_seen_ids_at_a_node_holding_100k_values_cost_bounded_work() {
    let mut w = World::new();
    w.honest(3);
    let now = w.now;
    let far = now + Duration::from_secs(3600);
    let mut rng = SmallRng::seed_from_u64(6);
    for n in 0..100_000u32 {
        let k = NodeId::from_bytes(rng.random());
        w.victim_mut().load_record(now, k, Value::from(n), far);
    }
    let sent_before = w.victim().endpoint().stats().datagrams_out;
    // 200 never-seen ids, from addresses that do not answer.
    for n in 0..200u32 {
        let from = SocketAddr::from(([203, 0, 113, (n % 250) as u8], 7000 + n as u16));
        let id = NodeId::from_bytes(rng.random());
        w.raw_send(from, "ping", &[bin(&id)]);
    }
    // Each ping is answered at once: the next datagram from another source is not
    // delayed behind any per-record work.
    w.deliver();
    let answered = w.raws.values().filter(|r| !r.answers.is_empty()).count();
    w.run_for(Duration::from_secs(30));
    let v = w.victim();
    let sent = v.endpoint().stats().datagrams_out - sent_before;
    eprintln!(
        "200 pings from new silent ids at a node with 100k values: {answered} answered at once, \
         {sent} datagrams sent in 30 s, {} hand-over stores",
        v.stats().handover_stores
    );
    assert_eq!(answered, 200);
    // An answer and one verification ping each; nothing per record.
    assert!(sent <= 400 + 16, "{sent}");
    assert_eq!(v.stats().handover_stores, 0);
}

#[test]
fn cut_find_node_answers_name_the_nearest_and_a_sample_of_the_others() {
    let mut w = World::new();
    w.honest(20);
    let target = NodeId::from_bytes([0x10; 20]);
    let nearest: Vec<NodeId> = w
        .victim()
        .table()
        .closest(&target, 20)
        .iter()
        .map(|c| c.id)
        .collect();
    assert!(nearest.len() >= 15, "the victim knows {}", nearest.len());
    let mut named = HashSet::new();
    let mut most = 0;
    for i in 0..8u8 {
        let from: SocketAddr = format!("203.0.113.{}:1", 10 + i).parse().unwrap();
        let asker = NodeId::from_bytes([0x60 + i; 20]);
        w.raw_send(from, "find_node", &[bin(&asker), bin(&target)]);
        w.run_for(Duration::from_secs(1));
        let raw = &w.raws[&from];
        assert!(raw.bytes_to <= 3 * raw.bytes_from, "asker {i}: over 3×");
        let Some(wire::FindAnswer::Contacts(cs)) =
            wire::parse_find_answer(raw.answers[0].clone(), 20)
        else {
            panic!("asker {i}: not a contact list: {:?}", raw.answers);
        };
        assert!(cs.len() < nearest.len(), "asker {i}: answer not cut");
        // The nearest is always named; every contact named is among the k nearest.
        assert_eq!(cs[0].id, nearest[0], "asker {i}");
        for c in &cs {
            assert!(
                nearest.contains(&c.id),
                "asker {i}: {c:?} is not among the nearest"
            );
            named.insert(c.id);
        }
        most = most.max(cs.len());
    }
    eprintln!(
        "8 cut answers of at most {most} contacts named {} of the {} nearest",
        named.len(),
        nearest.len()
    );
    // Askers of the same key learn different contacts: a lookup is not stuck with the
    // nearest few.
    assert!(named.len() >= most + 4, "only {} named", named.len());
}
