//! The generic simulator's faults and controls, on a tiny protocol whose every datagram
//! can be counted: a node answers each `ping` with a `pong`, and can tick on a timer.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rpcudp_proto::{Protocol, Transmit};
use rpcudp_sim::{node_addr, Delay, LinkConfig, NetConfig, NodeIndex, RunOutcome, Sim};

/// Answers `ping` with `pong` carrying the same sequence number; reports what it got.
#[derive(Default)]
struct Pinger {
    out: VecDeque<Transmit>,
    events: VecDeque<Got>,
    /// Ticks every `tick` if set; each tick is an event.
    tick: Option<Duration>,
    next_tick: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Ping { from: SocketAddr, seq: u32 },
    Pong { from: SocketAddr, seq: u32 },
    Tick,
}

impl Pinger {
    fn ping(&mut self, to: SocketAddr, seq: u32) {
        let mut payload = b"p".to_vec();
        payload.extend_from_slice(&seq.to_be_bytes());
        self.out.push_back(Transmit {
            destination: to,
            source: None,
            payload,
        });
    }
    fn ticking(every: Duration, now: Instant) -> Self {
        Pinger {
            tick: Some(every),
            next_tick: Some(now + every),
            ..Pinger::default()
        }
    }
}

impl Protocol for Pinger {
    type Event = Got;
    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, _l: Option<IpAddr>, d: &[u8]) {
        let seq = u32::from_be_bytes(d[1..5].try_into().unwrap());
        if d[0] == b'p' {
            self.events.push_back(Got::Ping { from, seq });
            let mut payload = b"r".to_vec();
            payload.extend_from_slice(&seq.to_be_bytes());
            self.out.push_back(Transmit {
                destination: from,
                source: None,
                payload,
            });
        } else {
            self.events.push_back(Got::Pong { from, seq });
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if let (Some(every), Some(at)) = (self.tick, self.next_tick) {
            if at <= now {
                self.events.push_back(Got::Tick);
                self.next_tick = Some(at + every);
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<Got> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }
}

fn network(seed: u64, nodes: usize, link: LinkConfig) -> Sim<Pinger> {
    let mut sim = Sim::new(seed, NetConfig { link });
    for i in 0..nodes {
        sim.add_node(node_addr(i), Pinger::default());
    }
    sim
}

fn drain(sim: &mut Sim<Pinger>) -> Vec<(NodeIndex, Duration, Got)> {
    std::iter::from_fn(|| sim.poll_event()).collect()
}

fn pongs(events: &[(NodeIndex, Duration, Got)], at: NodeIndex) -> usize {
    events
        .iter()
        .filter(|(n, _, g)| *n == at && matches!(g, Got::Pong { .. }))
        .count()
}

#[test]
fn lossless_links_deliver_every_datagram_exactly_once_after_its_delay() {
    let mut sim = network(1, 2, LinkConfig::default());
    let (a, b) = (NodeIndex(0), NodeIndex(1));
    sim.command(a, |p, _| (0..10).for_each(|s| p.ping(node_addr(1), s)));
    assert!(sim.run_until_idle(1000));
    let events = drain(&mut sim);
    assert_eq!(pongs(&events, a), 10);
    let pings: Vec<_> = events.iter().filter(|(n, _, _)| *n == b).collect();
    assert_eq!(pings.len(), 10);
    // 1 ms each way, in order.
    assert!(pings
        .iter()
        .all(|(_, at, _)| *at == Duration::from_millis(1)));
    assert_eq!(sim.now(), Duration::from_millis(2));
    let s = sim.stats();
    assert_eq!((s.sent, s.delivered, s.lost), (20, 20, 0));
}

#[test]
fn a_killed_node_receives_nothing_and_a_restarted_one_answers_again() {
    let mut sim = network(2, 2, LinkConfig::default());
    let (a, b) = (NodeIndex(0), NodeIndex(1));
    assert!(sim.kill(b).is_some());
    assert!(!sim.is_alive(b));
    assert!(
        sim.command(b, |_, _| ()).is_none(),
        "a dead node takes no command"
    );
    sim.command(a, |p, _| p.ping(node_addr(1), 1));
    sim.run_until_idle(100);
    assert_eq!(pongs(&drain(&mut sim), a), 0);
    assert_eq!(sim.stats().to_dead, 1);

    sim.restart(b, Pinger::default());
    sim.command(a, |p, _| p.ping(node_addr(1), 2));
    sim.run_until_idle(100);
    let events = drain(&mut sim);
    assert_eq!(
        events.last().map(|e| e.2.clone()),
        Some(Got::Pong {
            from: node_addr(1),
            seq: 2
        })
    );
}

#[test]
fn partitioned_sets_reach_only_their_own_members_until_healed() {
    let mut sim = network(3, 4, LinkConfig::default());
    let ids: Vec<NodeIndex> = (0..4).map(NodeIndex).collect();
    sim.partition(&[&ids[..2], &ids[2..]]);
    let everyone = |sim: &mut Sim<Pinger>| {
        for i in 0..4u32 {
            sim.command(NodeIndex(i), |p, _| {
                (0..4)
                    .filter(|&j| j != i)
                    .for_each(|j| p.ping(node_addr(j as usize), j))
            });
        }
        sim.run_until_idle(1000);
        drain(sim)
    };
    let events = everyone(&mut sim);
    // Each node reaches only its one partner.
    for &id in &ids {
        assert_eq!(pongs(&events, id), 1, "{id:?}");
    }
    assert_eq!(sim.stats().partitioned, 8);
    sim.heal();
    let events = everyone(&mut sim);
    for &id in &ids {
        assert_eq!(pongs(&events, id), 3, "{id:?}");
    }
}

#[test]
fn a_per_link_override_loses_only_that_direction() {
    let mut sim = network(4, 3, LinkConfig::default());
    let lossy = LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    };
    sim.set_link(NodeIndex(0), NodeIndex(1), lossy);
    sim.command(NodeIndex(0), |p, _| {
        p.ping(node_addr(1), 1);
        p.ping(node_addr(2), 2);
    });
    sim.command(NodeIndex(1), |p, _| p.ping(node_addr(0), 3));
    sim.run_until_idle(100);
    let events = drain(&mut sim);
    // 0 -> 1 is lost; 0 -> 2 and 2 -> 0 work; 1 -> 0 works but its pong (0 -> 1) is lost.
    assert_eq!(pongs(&events, NodeIndex(0)), 1);
    assert_eq!(pongs(&events, NodeIndex(1)), 0);
    assert_eq!(sim.stats().lost, 2);
    sim.reset_link(NodeIndex(0), NodeIndex(1));
    sim.command(NodeIndex(0), |p, _| p.ping(node_addr(1), 4));
    sim.run_until_idle(100);
    assert_eq!(pongs(&drain(&mut sim), NodeIndex(0)), 1);
}

#[test]
fn duplication_delivers_extra_copies_and_reordering_lets_later_datagrams_overtake() {
    let link = LinkConfig {
        duplicate: 0.5,
        reorder: 0.3,
        reorder_delay: Duration::from_millis(50),
        ..LinkConfig::default()
    };
    let mut sim = network(5, 2, link);
    sim.command(NodeIndex(0), |p, _| {
        (0..200).for_each(|s| p.ping(node_addr(1), s))
    });
    sim.run_until_idle(10_000);
    let events = drain(&mut sim);
    let seqs: Vec<u32> = events
        .iter()
        .filter_map(|(_, _, g)| match g {
            Got::Ping { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    let s = sim.stats().clone();
    assert!(s.duplicated > 50 && s.reordered > 30, "{s:?}");
    // Every ping arrived at least once (no loss), each copy was answered, and what
    // arrived is what was sent plus the extra copies.
    assert!(seqs.len() > 200);
    assert_eq!(s.sent, 200 + seqs.len() as u64);
    assert_eq!(s.delivered, s.sent + s.duplicated);
    assert_eq!(s.delivered, events.len() as u64);
    assert!(
        seqs.windows(2).any(|w| w[1] < w[0]),
        "some arrive out of order"
    );
}

#[test]
fn log_normal_round_trips_centre_on_their_median_with_a_heavy_tail() {
    let link = LinkConfig {
        delay: Delay::LogNormal {
            median_rtt: Duration::from_millis(80),
            sigma: 0.5,
            jitter: 0.0,
        },
        ..LinkConfig::default()
    };
    let n = 400;
    let mut sim = network(6, n, link);
    // Node 0 pings everyone once; each pong arrives one round trip after its ping.
    sim.command(NodeIndex(0), |p, _| {
        (1..n).for_each(|j| p.ping(node_addr(j), 0))
    });
    sim.run_until_idle(10_000);
    let mut rtts: Vec<Duration> = drain(&mut sim)
        .into_iter()
        .filter(|(id, _, g)| *id == NodeIndex(0) && matches!(g, Got::Pong { .. }))
        .map(|(_, at, _)| at)
        .collect();
    rtts.sort();
    assert_eq!(rtts.len(), n - 1);
    let median = rtts[rtts.len() / 2].as_secs_f64();
    let p99 = rtts[rtts.len() * 99 / 100].as_secs_f64();
    assert!((0.070..0.090).contains(&median), "median {median}");
    // exp(2.33 * 0.5) = 3.2: the tail is far above the median, as on the internet.
    assert!(p99 > 2.5 * median, "p99 {p99} vs median {median}");
}

#[test]
fn timers_fire_at_their_deadlines_and_a_dead_node_never_wakes() {
    let mut sim: Sim<Pinger> = Sim::new(7, NetConfig::default());
    let origin = sim.origin();
    let a = sim.add_node(
        node_addr(0),
        Pinger::ticking(Duration::from_secs(1), origin),
    );
    let b = sim.add_node(
        node_addr(1),
        Pinger::ticking(Duration::from_secs(3), origin),
    );
    assert_eq!(
        sim.run_for(Duration::from_millis(6500)),
        RunOutcome::Deadline
    );
    assert_eq!(sim.now(), Duration::from_millis(6500));
    let events = drain(&mut sim);
    let ticks = |id| {
        events
            .iter()
            .filter(|e| e.0 == id)
            .map(|e| e.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ticks(a),
        (1..=6).map(Duration::from_secs).collect::<Vec<_>>()
    );
    assert_eq!(
        ticks(b),
        vec![Duration::from_secs(3), Duration::from_secs(6)]
    );
    sim.kill(a);
    sim.run_for(Duration::from_secs(10));
    assert!(drain(&mut sim).iter().all(|e| e.0 == b));
}

#[test]
fn run_until_stops_as_soon_as_its_predicate_holds() {
    let mut sim = network(8, 2, LinkConfig::default());
    sim.command(NodeIndex(0), |p, _| {
        (0..5).for_each(|s| p.ping(node_addr(1), s))
    });
    let outcome = sim.run_until(Duration::from_secs(1), |s| s.pending_events() >= 3);
    assert_eq!(outcome, RunOutcome::Stopped);
    assert_eq!(sim.pending_events(), 3);
    assert_eq!(
        sim.run_until(Duration::from_secs(1), |_| false),
        RunOutcome::Idle
    );
}

#[test]
fn the_heap_holds_one_timer_per_node_plus_what_is_in_flight_at_scale() {
    let n = 20_000;
    let mut sim: Sim<Pinger> = Sim::new(9, NetConfig::default());
    sim.reserve(n);
    let origin = sim.origin();
    for i in 0..n {
        let every = Duration::from_millis(100 + (i % 97) as u64);
        sim.add_node(node_addr(i), Pinger::ticking(every, origin));
    }
    assert_eq!(sim.queued(), n);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.queued(), n, "one live timer each, no stale pile-up");
    let ticks = std::iter::from_fn(|| sim.poll_event()).count();
    assert!(ticks > n * 10, "{ticks}");
}

#[test]
fn the_same_seed_replays_the_same_trace() {
    let trace = |seed| {
        let link = LinkConfig {
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.2,
            reorder_delay: Duration::from_millis(30),
            delay: Delay::LogNormal {
                median_rtt: Duration::from_millis(80),
                sigma: 0.6,
                jitter: 0.3,
            },
        };
        let mut sim = network(seed, 20, link);
        for i in 0..20u32 {
            sim.command(NodeIndex(i), |p, _| {
                (0..20)
                    .filter(|&j| j != i)
                    .for_each(|j| p.ping(node_addr(j as usize), i))
            });
        }
        sim.run_until_idle(100_000);
        (drain(&mut sim), sim.stats().clone())
    };
    assert_eq!(trace(11), trace(11));
    assert_ne!(trace(11).0, trace(12).0);
}
