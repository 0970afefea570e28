//! The reusable simulator: any [`Protocol`] on a seeded, faulty network in virtual time.
//!
//! Owns: the nodes (each a `P` at a made-up address), the address-to-node map, one heap of
//! everything scheduled (datagram arrivals and each node's next deadline), the network's
//! faults (loss, duplication, reordering, heavy-tailed round trips, partitions, kill and
//! restart) and its counters. Does not own: any workload or any check of a protocol's
//! behaviour; those are the caller's, who issues commands through [`Sim::command`], reads
//! the protocols' events with [`Sim::poll_event`] and decides when to stop
//! ([`Sim::run_until`], [`Sim::run_for`], [`Sim::run_until_idle`]).
//!
//! Cost: each step pops one heap entry and touches one node, so it is O(log H) for a heap
//! of H entries, never O(N) in the number of nodes. A node's deadline is pushed only when
//! it moves earlier than the one already queued; a queued deadline that turns out early is
//! re-queued at the node's real deadline instead of waking it, so the heap holds about one
//! timer per node plus the datagrams in flight. Per node the simulator keeps one small
//! fixed-size record (address, queued deadline, life, partition group) and one map
//! entry; it allocates nothing per node besides `P` itself.
//!
//! Determinism: everything random comes from one RNG seeded with the run's seed, and the
//! heap breaks ties by insertion order, so the same seed and the same script replay the
//! same run, step for step. Virtual time starts at one `Instant` origin taken when the
//! simulator is built; only offsets from it ([`Sim::now`]) matter.
//!
//! ```
//! use std::time::Duration;
//! use rpcudp_proto::rpc::{CallOptions, Endpoint, EndpointConfig, Event};
//! use rpcudp_sim::{node_addr, NetConfig, Sim};
//!
//! let mut sim = Sim::new(7, NetConfig::default());
//! let a = sim.add_node(node_addr(0), Endpoint::new(EndpointConfig::default(), 1));
//! let b = sim.add_node(node_addr(1), Endpoint::new(EndpointConfig::default(), 2));
//! sim.command(a, |ep, now| {
//!     ep.call(now, node_addr(1), "ping", &[], CallOptions::default()).unwrap()
//! });
//! // Run until b sees the request, then answer it.
//! sim.run_until(Duration::from_secs(5), |s| s.pending_events() > 0);
//! let (node, _at, event) = sim.poll_event().unwrap();
//! assert_eq!(node, b);
//! let Event::Request { token, .. } = event else { panic!("{event:?}") };
//! sim.command(b, |ep, now| ep.respond(now, token, &"pong".into()));
//! sim.run_until(Duration::from_secs(5), |s| s.pending_events() > 0);
//! assert!(matches!(sim.poll_event(), Some((n, _, Event::CallSucceeded { .. })) if n == a));
//! ```

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rpcudp_proto::{Protocol, Transmit};

/// A node's handle: its index in the order of [`Sim::add_node`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIndex(pub u32);

impl NodeIndex {
    /// The index, for the caller's own per-node tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How long a datagram takes on a link.
#[derive(Clone, Debug, PartialEq)]
pub enum Delay {
    /// One-way delay drawn uniformly for each datagram; a wide range reorders.
    Uniform {
        /// Shortest one-way delay.
        min: Duration,
        /// Longest one-way delay.
        max: Duration,
    },
    /// Round trips log-normally distributed around a median, as measured on the
    /// internet: most paths near the median, a heavy tail of slow ones. Each pair of
    /// nodes gets its own round trip (drawn from the seed and the pair, so it costs no
    /// memory), and each datagram takes half of it, stretched by up to `jitter`.
    LogNormal {
        /// The median round trip over all pairs.
        median_rtt: Duration,
        /// The standard deviation of ln(rtt); 0.5 puts about 1% of pairs above 3.2x
        /// the median.
        sigma: f64,
        /// Each datagram's one-way delay is multiplied by `1 + jitter * u`, u uniform in
        /// [0, 1): a jitter above 0 reorders datagrams on one link.
        jitter: f64,
    },
}

/// What a link does to each datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Probability that a datagram is lost (0 to 1).
    pub loss: f64,
    /// Probability that a delivered datagram is delivered twice (each copy with its own
    /// delay).
    pub duplicate: f64,
    /// Probability that a datagram is held back by an extra delay of up to
    /// `reorder_delay`, so that later datagrams overtake it.
    pub reorder: f64,
    /// The longest extra delay of a held-back datagram.
    pub reorder_delay: Duration,
    /// How long a datagram takes.
    pub delay: Delay,
}

impl Default for LinkConfig {
    /// Lossless, in order, 1 ms each way.
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            delay: Delay::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(1),
            },
        }
    }
}

/// The network's shape.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NetConfig {
    /// What every link does, unless [`Sim::set_link`] overrides one.
    pub link: LinkConfig,
}

/// What the network did, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams the nodes handed out (`poll_transmit`).
    pub sent: u64,
    /// Datagrams handed to a live node (duplicates and injections included).
    pub delivered: u64,
    /// Datagrams the links lost.
    pub lost: u64,
    /// Extra copies the links delivered.
    pub duplicated: u64,
    /// Datagrams held back to be overtaken.
    pub reordered: u64,
    /// Datagrams a partition stopped.
    pub partitioned: u64,
    /// Datagrams that arrived at a dead node.
    pub to_dead: u64,
    /// Datagrams sent to an address no node has.
    pub unroutable: u64,
    /// Datagrams a [`Tap`] injected.
    pub injected: u64,
    /// Timer wake-ups handed to nodes (`handle_timeout`).
    pub timeouts: u64,
    /// Heap entries processed.
    pub steps: u64,
}

/// A datagram a [`Tap`] injects: it arrives at the transmit's destination after `delay`,
/// from `from` (any address, a node's or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    /// After how long it arrives.
    pub delay: Duration,
    /// Where it claims to come from.
    pub from: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Sees every datagram a node sends, before the link acts on it (an on-path attacker, a
/// recorder), and may inject one more.
pub type Tap = Box<dyn FnMut(SocketAddr, &Transmit) -> Option<Injection>>;

/// Why [`Sim::run_until`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The predicate held.
    Stopped,
    /// Virtual time reached the deadline (nothing earlier is left to do).
    Deadline,
    /// Nothing is scheduled at all.
    Idle,
}

/// One node's record. Kept small: 100,000 of them is a target.
struct Slot<P> {
    proto: Option<P>,
    addr: SocketAddr,
    /// The earliest deadline of this node queued in the heap, if any.
    queued: Option<Duration>,
    /// Bumped on every kill and restart, so timers of an earlier life are ignored.
    life: u32,
    /// Partition group: two nodes reach each other only in the same group.
    group: u32,
}

enum Kind {
    Timer {
        node: u32,
        life: u32,
    },
    Deliver {
        to: u32,
        from: SocketAddr,
        payload: Vec<u8>,
    },
}

/// A delivery waiting in the heap: kept out of the heap's entries (in [`Sim`]'s
/// `deliveries`), so that an entry is 32 bytes and sifting moves little memory.
struct Delivery {
    to: u32,
    from: SocketAddr,
    payload: Vec<u8>,
}

/// What a heap entry stands for: a node's deadline, or a delivery by its slot.
#[derive(Clone, Copy)]
enum Queued {
    Timer { node: u32, life: u32 },
    Deliver { slot: u32 },
}

struct Entry {
    /// Virtual nanoseconds since the origin.
    at: u64,
    seq: u64,
    what: Queued,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so the `BinaryHeap` pops the earliest; `seq` breaks ties by insertion.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Virtual time as the heap keeps it (nanoseconds; 584 years is far enough).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Mixes a seed with a stream number into an independent one (SplitMix64's finaliser).
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A made-up IPv4 address for node `i` (never used on a real network): unique for every
/// `i` below 2^32, in 10.0.0.0/8 with a port in 1024..=65535.
pub fn node_addr(i: usize) -> SocketAddr {
    let ports = 64_512u64;
    let i = i as u64;
    let host = (i / ports) as u32;
    let port = 1024 + (i % ports) as u16;
    SocketAddr::from(((10u32 << 24 | (host & 0x00ff_ffff)).to_be_bytes(), port))
}

/// A standard normal sample from two uniforms (Box-Muller).
fn std_normal(u1: f64, u2: f64) -> f64 {
    let u1 = u1.max(f64::MIN_POSITIVE);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Any [`Protocol`] on a simulated network; see the [module docs](self).
pub struct Sim<P: Protocol> {
    seed: u64,
    origin: Instant,
    now: Duration,
    nodes: Vec<Slot<P>>,
    by_addr: HashMap<SocketAddr, u32>,
    heap: BinaryHeap<Entry>,
    /// The payloads of the queued deliveries, by slot (see [`Delivery`]), and free slots.
    deliveries: Vec<Option<Delivery>>,
    free: Vec<u32>,
    seq: u64,
    rng: SmallRng,
    config: NetConfig,
    links: HashMap<(u32, u32), LinkConfig>,
    partitioned: bool,
    events: VecDeque<(NodeIndex, Duration, P::Event)>,
    tap: Option<Tap>,
    stats: NetStats,
}

impl<P: Protocol> Sim<P> {
    /// An empty network; `seed` decides everything random the network does.
    pub fn new(seed: u64, config: NetConfig) -> Self {
        #[allow(clippy::disallowed_methods)] // the origin of virtual time; only offsets matter
        let origin = Instant::now();
        Sim {
            seed,
            origin,
            now: Duration::ZERO,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            heap: BinaryHeap::new(),
            deliveries: Vec::new(),
            free: Vec::new(),
            seq: 0,
            rng: SmallRng::seed_from_u64(sub_seed(seed, 0x5EED)),
            config,
            links: HashMap::new(),
            partitioned: false,
            events: VecDeque::new(),
            tap: None,
            stats: NetStats::default(),
        }
    }

    /// The seed this network was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time elapsed since the origin.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The current virtual time as an `Instant`, as the protocols see it.
    pub fn instant(&self) -> Instant {
        self.origin + self.now
    }

    /// The `Instant` at which virtual time started.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The network's counters so far.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// How many nodes were added (alive or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Reserves room for `n` more nodes (avoids regrowing the tables at scale).
    pub fn reserve(&mut self, n: usize) {
        self.nodes.reserve(n);
        self.by_addr.reserve(n);
    }

    /// Heap entries queued (timers and datagrams in flight).
    pub fn queued(&self) -> usize {
        self.heap.len()
    }

    /// Adds a live node at `addr` running `proto`, and queues its first deadline.
    ///
    /// # Panics
    /// If another node already has `addr` (a script error, not a network condition).
    pub fn add_node(&mut self, addr: SocketAddr, proto: P) -> NodeIndex {
        let id = u32::try_from(self.nodes.len()).expect("at most 2^32 nodes");
        let previous = self.by_addr.insert(addr, id);
        assert!(previous.is_none(), "two nodes at {addr}");
        self.nodes.push(Slot {
            proto: Some(proto),
            addr,
            queued: None,
            life: 0,
            group: 0,
        });
        let id = NodeIndex(id);
        self.settle(id);
        id
    }

    /// The node at `addr`, if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeIndex> {
        self.by_addr.get(&addr).map(|&i| NodeIndex(i))
    }

    /// A node's address.
    pub fn addr(&self, id: NodeIndex) -> SocketAddr {
        self.nodes[id.index()].addr
    }

    /// Whether the node is alive (added or restarted, and not killed since).
    pub fn is_alive(&self, id: NodeIndex) -> bool {
        self.nodes[id.index()].proto.is_some()
    }

    /// A live node's state machine, to read.
    pub fn node(&self, id: NodeIndex) -> Option<&P> {
        self.nodes[id.index()].proto.as_ref()
    }

    /// Runs `f` on a live node's state machine with the current time (to issue a
    /// command), then sends what it transmits, queues its events and its new deadline.
    /// `None` if the node is dead.
    pub fn command<R>(&mut self, id: NodeIndex, f: impl FnOnce(&mut P, Instant) -> R) -> Option<R> {
        let now = self.instant();
        let proto = self.nodes[id.index()].proto.as_mut()?;
        let r = f(proto, now);
        self.settle(id);
        Some(r)
    }

    /// Kills a node without warning: it stops receiving, sending and waking, datagrams
    /// to it are dropped, and its state machine is handed back (or dropped).
    pub fn kill(&mut self, id: NodeIndex) -> Option<P> {
        let slot = &mut self.nodes[id.index()];
        slot.queued = None;
        slot.life = slot.life.wrapping_add(1);
        slot.proto.take()
    }

    /// Brings a node back at its address with a new (or the old) state machine.
    /// Datagrams still in flight to the address reach it, as they would on UDP.
    pub fn restart(&mut self, id: NodeIndex, proto: P) {
        let slot = &mut self.nodes[id.index()];
        slot.queued = None;
        slot.life = slot.life.wrapping_add(1);
        slot.proto = Some(proto);
        self.settle(id);
    }

    /// Splits the network: the nodes of each set reach each other and nobody else; nodes
    /// in no set reach only each other. Replaces any earlier partition. Datagrams
    /// already in flight still arrive.
    pub fn partition(&mut self, sets: &[&[NodeIndex]]) {
        self.heal();
        for (g, set) in sets.iter().enumerate() {
            for id in set.iter() {
                self.nodes[id.index()].group = g as u32 + 1;
            }
        }
        self.partitioned = true;
    }

    /// Ends any partition: every node reaches every other again.
    pub fn heal(&mut self) {
        if self.partitioned {
            for slot in &mut self.nodes {
                slot.group = 0;
            }
            self.partitioned = false;
        }
    }

    /// Overrides what the link from `from` to `to` (one direction) does.
    pub fn set_link(&mut self, from: NodeIndex, to: NodeIndex, link: LinkConfig) {
        self.links.insert((from.0, to.0), link);
    }

    /// Back to the default behaviour on the link from `from` to `to`.
    pub fn reset_link(&mut self, from: NodeIndex, to: NodeIndex) {
        self.links.remove(&(from.0, to.0));
    }

    /// Changes what every link without an override does, from now on.
    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.config.link = link;
    }

    /// Sees every datagram sent from now on (see [`Tap`]).
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Delivers `payload` to the node at `to` after `delay`, from `from`, bypassing the
    /// links (a datagram from outside the simulated nodes).
    pub fn inject(&mut self, delay: Duration, to: SocketAddr, from: SocketAddr, payload: Vec<u8>) {
        match self.by_addr.get(&to) {
            Some(&to) => {
                self.stats.injected += 1;
                self.push(self.now + delay, Kind::Deliver { to, from, payload });
            }
            None => self.stats.unroutable += 1,
        }
    }

    /// Events the nodes produced and nobody took yet.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The oldest event not taken yet: which node, when, and what.
    pub fn poll_event(&mut self) -> Option<(NodeIndex, Duration, P::Event)> {
        self.events.pop_front()
    }

    /// When the next queued thing happens, if anything is queued (possibly a stale
    /// timer, which costs a step and nothing else).
    pub fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|e| Duration::from_nanos(e.at))
    }

    /// Processes the earliest queued thing, advancing time to it. `false` when nothing
    /// is queued.
    pub fn step(&mut self) -> bool {
        let Some(entry) = self.heap.pop() else {
            return false;
        };
        let at = Duration::from_nanos(entry.at);
        debug_assert!(at >= self.now, "time went backwards");
        self.now = self.now.max(at);
        self.stats.steps += 1;
        match entry.what {
            Queued::Timer { node, life } => self.wake(node, life, at),
            Queued::Deliver { slot } => {
                let Some(Delivery { to, from, payload }) = self.deliveries[slot as usize].take()
                else {
                    debug_assert!(false, "a delivery slot queued twice");
                    return true;
                };
                self.free.push(slot);
                let slot = &mut self.nodes[to as usize];
                let local = Some(slot.addr.ip());
                match slot.proto.as_mut() {
                    Some(p) => {
                        self.stats.delivered += 1;
                        p.handle_datagram(self.origin + self.now, from, local, &payload);
                        self.settle(NodeIndex(to));
                    }
                    None => self.stats.to_dead += 1,
                }
            }
        }
        true
    }

    /// Steps until `stop` holds (checked before every step), until the next thing is
    /// later than `deadline` (time then advances to `deadline`), or until nothing is
    /// queued. `deadline` is virtual time since the origin.
    pub fn run_until(
        &mut self,
        deadline: Duration,
        mut stop: impl FnMut(&mut Self) -> bool,
    ) -> RunOutcome {
        loop {
            if stop(self) {
                return RunOutcome::Stopped;
            }
            match self.next_at() {
                None => return RunOutcome::Idle,
                Some(at) if at > deadline => {
                    self.now = self.now.max(deadline);
                    return RunOutcome::Deadline;
                }
                Some(_) => {
                    self.step();
                }
            }
        }
    }

    /// Runs for `d` of virtual time (events pile up for the caller to take).
    pub fn run_for(&mut self, d: Duration) -> RunOutcome {
        let deadline = self.now + d;
        self.run_until(deadline, |_| false)
    }

    /// Runs until nothing is queued, or `max_steps` steps were taken (`false` then).
    pub fn run_until_idle(&mut self, max_steps: u64) -> bool {
        for _ in 0..max_steps {
            if !self.step() {
                return true;
            }
        }
        self.heap.is_empty()
    }

    fn push(&mut self, at: Duration, kind: Kind) {
        self.seq += 1;
        let what = match kind {
            Kind::Timer { node, life } => Queued::Timer { node, life },
            Kind::Deliver { to, from, payload } => {
                let d = Some(Delivery { to, from, payload });
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.deliveries[slot as usize] = d;
                        slot
                    }
                    None => {
                        self.deliveries.push(d);
                        u32::try_from(self.deliveries.len() - 1).expect("2^32 in flight")
                    }
                };
                Queued::Deliver { slot }
            }
        };
        self.heap.push(Entry {
            at: nanos(at),
            seq: self.seq,
            what,
        });
    }

    /// A queued deadline of `node` came up.
    fn wake(&mut self, node: u32, life: u32, at: Duration) {
        let slot = &mut self.nodes[node as usize];
        if slot.life != life || slot.queued != Some(at) {
            return; // stale: an earlier life's, or superseded by an earlier deadline
        }
        slot.queued = None;
        let now = self.origin + self.now;
        let Some(p) = slot.proto.as_mut() else {
            return;
        };
        if p.poll_timeout().is_some_and(|t| t <= now) {
            self.stats.timeouts += 1;
            p.handle_timeout(now);
        }
        self.settle(NodeIndex(node));
    }

    /// After a node was touched: send its transmits, queue its events, queue its
    /// deadline if it moved earlier than the queued one.
    fn settle(&mut self, id: NodeIndex) {
        let i = id.index();
        let Some(p) = self.nodes[i].proto.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = p.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = p.poll_event() {
            self.events.push_back((id, self.now, e));
        }
        let deadline = p
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.origin).max(self.now));
        for t in out {
            self.send(id, t);
        }
        let slot = &mut self.nodes[i];
        if let Some(d) = deadline {
            if slot.queued.is_none_or(|q| d < q) {
                slot.queued = Some(d);
                let life = slot.life;
                self.push(d, Kind::Timer { node: id.0, life });
            }
        }
    }

    fn send(&mut self, from: NodeIndex, t: Transmit) {
        self.stats.sent += 1;
        let from_addr = self.nodes[from.index()].addr;
        if let Some(tap) = self.tap.as_mut() {
            if let Some(inj) = tap(from_addr, &t) {
                self.inject(inj.delay, t.destination, inj.from, inj.payload);
            }
        }
        let Some(&to) = self.by_addr.get(&t.destination) else {
            self.stats.unroutable += 1;
            return;
        };
        if self.partitioned && self.nodes[from.index()].group != self.nodes[to as usize].group {
            self.stats.partitioned += 1;
            return;
        }
        let link = self.links.get(&(from.0, to)).unwrap_or(&self.config.link);
        let (loss, duplicate, reorder, reorder_delay) =
            (link.loss, link.duplicate, link.reorder, link.reorder_delay);
        let delay = link.delay.clone();
        if loss > 0.0 && self.rng.random::<f64>() < loss {
            self.stats.lost += 1;
            return;
        }
        let copies = if duplicate > 0.0 && self.rng.random::<f64>() < duplicate {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut payload = Some(t.payload);
        for c in 0..copies {
            let mut d = self.one_way(&delay, from.0, to);
            if reorder > 0.0 && self.rng.random::<f64>() < reorder {
                self.stats.reordered += 1;
                d += reorder_delay.mul_f64(self.rng.random::<f64>());
            }
            let bytes = if c + 1 == copies {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            self.push(
                self.now + d,
                Kind::Deliver {
                    to,
                    from: from_addr,
                    payload: bytes,
                },
            );
        }
    }

    /// One datagram's one-way delay from `a` to `b`.
    fn one_way(&mut self, delay: &Delay, a: u32, b: u32) -> Duration {
        match *delay {
            Delay::Uniform { min, max } => {
                min + max.saturating_sub(min).mul_f64(self.rng.random::<f64>())
            }
            Delay::LogNormal {
                median_rtt,
                sigma,
                jitter,
            } => {
                // The pair's own round trip, the same both ways and for every datagram,
                // from the seed and the pair alone: no table of N^2 links.
                let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
                let h = sub_seed(self.seed, lo << 32 | hi);
                let z = std_normal(unit(h), unit(sub_seed(h, 1)));
                let rtt = median_rtt.as_secs_f64() * (sigma * z).exp();
                let stretch = 1.0 + jitter * self.rng.random::<f64>();
                // Capped at a minute so a freak draw cannot overflow a Duration.
                Duration::from_secs_f64((rtt / 2.0 * stretch).min(60.0))
            }
        }
    }
}
