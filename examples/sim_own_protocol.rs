//! Your own protocol on the simulator: a `Protocol` written here (a sender that resends
//! each numbered message until it is acknowledged, a receiver that acknowledges and
//! delivers each message once) run by `rpcudp_sim::Sim` on a network that loses 10% of
//! the datagrams, in virtual time: seconds of protocol time take milliseconds, and the
//! seed replays a run exactly.
//!
//! `cargo run -p rpcudp-examples --example sim_own_protocol [SEED]` prints what the
//! network lost and what got through, and exits 1 unless every message was delivered
//! exactly once and acknowledged.
//!
//! The only dependency it needs is `rpcudp-sim`, which re-exports the `Protocol` trait
//! and `Transmit` of `rpcudp-proto`.

use rpcudp_sim::{node_addr, LinkConfig, NetConfig, Protocol, Sim, Transmit};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long the sender waits for an acknowledgement before resending.
const RESEND: Duration = Duration::from_millis(50);
/// Sends of one message before the sender gives up on it.
const MAX_SENDS: u32 = 20;
const MESSAGES: u32 = 100;

/// What the application is told.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// The receiver got message `seq` (once, however many copies arrived).
    Delivered(u32),
    /// The sender's message `seq` was acknowledged.
    Acked(u32),
    /// The sender gave up on `seq` after `MAX_SENDS` sends.
    GaveUp(u32),
}

/// One outstanding message of the sender.
struct Pending {
    to: SocketAddr,
    resend_at: Instant,
    sends: u32,
}

/// The whole protocol: both roles in one state machine. Wire: one tag byte (0: data,
/// 1: ack) and the sequence number, 4 bytes big-endian.
#[derive(Default)]
struct Reliable {
    pending: BTreeMap<u32, Pending>,
    delivered: BTreeSet<u32>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    resends: u64,
}

fn datagram(tag: u8, seq: u32, to: SocketAddr) -> Transmit {
    let mut payload = vec![tag];
    payload.extend_from_slice(&seq.to_be_bytes());
    Transmit {
        destination: to,
        source: None,
        payload,
    }
}

impl Reliable {
    /// A command of this protocol: send message `seq` to `to` until it is acknowledged.
    fn send(&mut self, now: Instant, to: SocketAddr, seq: u32) {
        self.outbox.push_back(datagram(0, seq, to));
        self.pending.insert(
            seq,
            Pending {
                to,
                resend_at: now + RESEND,
                sends: 1,
            },
        );
    }
}

impl Protocol for Reliable {
    type Event = Event;

    fn handle_datagram(
        &mut self,
        _now: Instant,
        from: SocketAddr,
        _local: Option<IpAddr>,
        datagram_in: &[u8],
    ) {
        // A malformed datagram is dropped, never a panic.
        let Some((&tag, rest)) = datagram_in.split_first() else {
            return;
        };
        let Ok(seq) = <[u8; 4]>::try_from(rest).map(u32::from_be_bytes) else {
            return;
        };
        match tag {
            0 => {
                // Acknowledge every copy (the previous ack may have been lost), deliver once.
                self.outbox.push_back(datagram(1, seq, from));
                if self.delivered.insert(seq) {
                    self.events.push_back(Event::Delivered(seq));
                }
            }
            1 if self.pending.remove(&seq).is_some() => {
                self.events.push_back(Event::Acked(seq));
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.resend_at <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in due {
            let p = self.pending.get_mut(&seq).expect("due");
            if p.sends == MAX_SENDS {
                self.pending.remove(&seq);
                self.events.push_back(Event::GaveUp(seq));
                continue;
            }
            p.sends += 1;
            p.resend_at = now + RESEND;
            let to = p.to;
            self.resends += 1;
            self.outbox.push_back(datagram(0, seq, to));
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.resend_at).min()
    }
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SEED is a number"))
        .unwrap_or(1u64);
    let config = NetConfig {
        link: LinkConfig {
            loss: 0.10,
            ..LinkConfig::default()
        },
    };
    let mut sim: Sim<Reliable> = Sim::new(seed, config);
    let sender = sim.add_node(node_addr(0), Reliable::default());
    let receiver = sim.add_node(node_addr(1), Reliable::default());
    let to = sim.addr(receiver);
    sim.command(sender, |p, now| {
        (0..MESSAGES).for_each(|seq| p.send(now, to, seq))
    });

    let (mut delivered, mut acked, mut gave_up) = (Vec::new(), 0u32, 0u32);
    // Bounded in virtual time: a run that never settles ends at the deadline.
    sim.run_until(Duration::from_secs(60), |sim| {
        while let Some((_node, _at, event)) = sim.poll_event() {
            match event {
                Event::Delivered(seq) => delivered.push(seq),
                Event::Acked(_) => acked += 1,
                Event::GaveUp(_) => gave_up += 1,
            }
        }
        acked + gave_up == MESSAGES
    });

    let stats = sim.stats();
    let resends = sim.node(sender).map_or(0, |p| p.resends);
    println!(
        "seed {seed}: {} datagrams sent, {} lost by the network",
        stats.sent, stats.lost
    );
    println!(
        "{MESSAGES} messages: {} delivered, {acked} acknowledged, {gave_up} given up",
        delivered.len()
    );
    println!(
        "{resends} resends, {:.3} s of virtual time",
        sim.now().as_secs_f64()
    );
    delivered.sort_unstable();
    let once: Vec<u32> = (0..MESSAGES).collect();
    if delivered != once || acked != MESSAGES {
        eprintln!("not every message was delivered exactly once and acknowledged");
        std::process::exit(1);
    }
}
