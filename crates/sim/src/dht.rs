//! The DHT scenario of `rpcudp sim dht`: a Kademlia network of [`kad::Node`]s (the same
//! node code as `rpcudp dht run`) on a lossy [`Sim`] with heavy-tailed round trips.
//!
//! Owns: the script (join, store, kill without warning, look up, store and look up
//! again, optionally restart killed nodes as newcomers), its bookkeeping and the figures
//! it reports ([`Report`]). Does not own: the node's logic (`rpcudp_proto::kad`) or
//! the network (the generic [`Sim`]).
//!
//! The script, for a seed:
//! 1. node 0 starts alone; every `join_interval` (more often in a big network, see
//!    [`Scenario::join_window`]) the next node bootstraps through a random node that
//!    has already joined (a node whose bootstrap found nobody tries again through
//!    another, up to [`Scenario::join_attempts`] times); then the network settles for
//!    `settle`;
//! 2. `gets` values are stored through random nodes, one every `op_interval`;
//! 3. a `kill` fraction of the nodes is killed at once, without warning;
//! 4. every value is looked up through a random surviving node;
//! 5. `rejoin` of the killed nodes come back as newcomers (fresh id, empty state, same
//!    address) and bootstrap;
//! 6. `gets` new values are stored through random live nodes and looked up through
//!    others.
//!
//! With [`Scenario::adversarial`] above 0, that fraction of the nodes (chosen by the
//! seed, never node 0, which the others bootstrap through first) is hostile from the
//! start ([`crate::hostile`]): they join like the others, are never killed, and never
//! carry a store or a get. Nodes bootstrap through honest nodes only (the address a user
//! bootstraps through is one they trust); hostile nodes are met through lookups. A get
//! counts as found only if it returned the genuine value; one that returned another
//! value counts in [`Report::forged_accepted`].
//!
//! A run is an `Err` ([`SimError`], naming the seed) only when the script cannot go on:
//! a query that never finishes, or no node left to act through. Figures that miss a
//! target are the caller's to judge.
//!
//! ```
//! use rpcudp_sim::dht::{run, Scenario};
//! let scenario = Scenario { nodes: 40, gets: 10, ..Scenario::default() };
//! let report = run(3, &scenario).unwrap();
//! assert_eq!(report.gets, 10);
//! assert_eq!(run(3, &scenario).unwrap(), report); // the seed replays the run
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use rpcudp_proto::kad::record::{RecordPick, SignedRecord};
use rpcudp_proto::kad::{self, Event, NodeConfig, QueryId, QueryOutcome};

use crate::hostile::{Attack, Crowd, Forger, Role, SimNode};
use crate::net::{node_addr, sub_seed, Delay, LinkConfig, NetConfig, NodeIndex, RunOutcome, Sim};
use crate::SimError;

/// The scenario's shape. The defaults are `rpcudp sim dht`'s.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Nodes in the network (at least 2).
    pub nodes: usize,
    /// Values stored before the kill, and again after it (each looked up once).
    pub gets: usize,
    /// Fraction of the nodes killed at once (0 to 1, the last node is always spared).
    pub kill: f64,
    /// Fraction of the killed nodes that come back as newcomers before the second round.
    pub rejoin: f64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Median round trip.
    pub rtt: Duration,
    /// Spread of the round trips: the standard deviation of ln(rtt).
    pub rtt_sigma: f64,
    /// Per-datagram stretch of the one-way delay (see [`Delay::LogNormal`]).
    pub jitter: f64,
    /// Time between two nodes' joins (default 50 ms). A node inserts a caller only after
    /// verifying it (`NodeConfig::verify_delay`, 5 s), so joins much faster than that
    /// meet tables that are still empty: at 10 ms, a lossless 200-node network settled
    /// with a median of 3 contacts per table.
    pub join_interval: Duration,
    /// The longest the joins may take (default 100 s): with more than
    /// `join_window / join_interval` nodes, they join every `join_window / nodes` instead.
    /// Why: a node rechecks a contact it hands out when it has not heard from it for
    /// `NodeConfig::recheck_after`, so the joins' traffic grows with nodes × their length;
    /// at 10,000 nodes every 50 ms (500 s of joins) the joins took 85% of the run's 11.6
    /// million steps. (At 5,000 nodes, joins every 10 ms built the same tables as every
    /// 50 ms: median 43 contacts, 10th percentile 29.)
    pub join_window: Duration,
    /// Bootstraps a node tries before it counts as not joined.
    pub join_attempts: u32,
    /// Quiet time after the joins, before the first store.
    pub settle: Duration,
    /// Time between two stores or two lookups of one round.
    pub op_interval: Duration,
    /// How long a round may take before the run is an error (a query that never ends).
    pub round_limit: Duration,
    /// Every node's configuration, started through [`kad::NodeSetup::new`] as the tokio
    /// `Dht` starts its node (persistence is turned off: nothing is durable here).
    pub node: NodeConfig,
    /// Fraction of the nodes that are hostile from the start (0 to 1; default 0).
    pub adversarial: f64,
    /// What the hostile nodes do.
    pub attack: Attack,
    /// Whether the values are stored as signed records (one key pair per value), which
    /// gets verify. Forgers then answer a well-formed record of a higher seq with a bad
    /// signature.
    pub signed: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 1000,
            gets: 1000,
            kill: 0.25,
            rejoin: 0.0,
            loss: 0.05,
            rtt: Duration::from_millis(80),
            rtt_sigma: 0.5,
            jitter: 0.2,
            join_interval: Duration::from_millis(50),
            join_window: Duration::from_secs(100),
            join_attempts: 3,
            settle: Duration::from_secs(30),
            op_interval: Duration::from_millis(1),
            round_limit: Duration::from_secs(600),
            // The node the tokio `Dht` and `rpcudp dht run` run: the core's defaults.
            node: NodeConfig::default(),
            adversarial: 0.0,
            attack: Attack::Eclipse,
            signed: false,
        }
    }
}

/// Percentiles of a set of virtual durations, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    /// How many.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut d: Vec<Duration>) -> Latency {
        d.sort_unstable();
        let at = |q: f64| -> f64 {
            if d.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest value with at least q of the set at or below it.
            let rank = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
            d[rank - 1].as_secs_f64() * 1000.0
        };
        Latency {
            count: d.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// What a run found. Equal for equal seeds and scenarios.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Nodes in the network.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// Values stored (and looked up) per round.
    pub gets: usize,
    /// Nodes whose bootstrap succeeded.
    pub joined: usize,
    /// Nodes killed.
    pub killed: usize,
    /// Killed nodes that came back as newcomers.
    pub rejoined: usize,
    /// Stores of the first round that at least one other node acknowledged.
    pub sets_acknowledged: usize,
    /// Stores of the second round that at least one other node acknowledged.
    pub sets_acknowledged_new: usize,
    /// Mean acknowledgements per store (both rounds).
    pub acks_mean: f64,
    /// Time per store (both rounds).
    pub set_latency: Latency,
    /// Lookups of first-round values that found the value.
    pub found: usize,
    /// Lookups of second-round values that found the value.
    pub found_new: usize,
    /// `found / gets`.
    pub get_success_rate: f64,
    /// `found_new / gets`.
    pub get_success_rate_new: f64,
    /// Time per lookup (both rounds).
    pub lookup_latency: Latency,
    /// Time per lookup of the first round only (right after the kill).
    pub lookup_latency_after_kill: Latency,
    /// Mean hops per lookup (both rounds).
    pub hops_mean: f64,
    /// Mean RPCs sent per lookup (both rounds).
    pub messages_per_lookup: f64,
    /// Commands a node refused (no contacts, ...).
    pub refused: usize,
    /// Virtual time the whole run covered.
    pub virtual_time: Duration,
    /// Datagrams sent by all nodes.
    pub datagrams: u64,
    /// Datagrams the links lost.
    pub lost: u64,
    /// Simulator steps taken.
    pub steps: u64,
    /// Routing-table size of the 10th-percentile node once the network settled (before
    /// the first store).
    pub table_p10: usize,
    /// Median routing-table size once the network settled.
    pub table_p50: usize,
    /// Nodes with fewer than k contacts once the network settled.
    pub small_tables: usize,
    /// Contacts evicted after failed RPCs while joining and settling.
    pub evicted_joining: u64,
    /// Contacts evicted by the nodes alive at the end, over the whole run.
    pub evicted: u64,
    /// Hostile nodes.
    pub adversarial: usize,
    /// What they did.
    pub attack: Attack,
    /// With hostile nodes: the mean number of honest nodes holding each first-round
    /// value once its round of stores ended (what an eclipse leaves to find).
    pub honest_holders_mean: f64,
    /// With hostile nodes: the share of hostile contacts in the honest nodes' routing
    /// tables once the network settled.
    pub table_hostile_share: f64,
    /// Gets (both rounds) that returned a value other than the genuine one.
    pub forged_accepted: usize,
}

/// The nearest-rank percentile of sorted sizes (0 for none).
fn percentile(sorted: &[usize], q: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Which round a query belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    Before,
    After,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    Join { attempt: u32 },
    Set { round: Round },
    Get { round: Round, value: usize },
}

struct Run<'s> {
    seed: u64,
    scenario: &'s Scenario,
    sim: Sim<SimNode>,
    /// Whether each node (by index) is hostile.
    hostile: Vec<bool>,
    crowd: Rc<RefCell<Crowd>>,
    /// The genuine signed records by key, which forgers know (they are public).
    records: Rc<RefCell<HashMap<kad::NodeId, SignedRecord>>>,
    forged_accepted: usize,
    rng: SmallRng,
    pending: HashMap<(NodeIndex, QueryId), Purpose>,
    joined: Vec<NodeIndex>,
    /// Nodes to bootstrap again (their last bootstrap found nobody), with the attempt.
    retry: Vec<(NodeIndex, u32)>,
    alive: Vec<NodeIndex>,
    values: Vec<(kad::NodeId, Value)>,
    set_times: Vec<Duration>,
    acks: u64,
    sets: u64,
    acknowledged: [usize; 2],
    lookups: [Vec<Duration>; 2],
    found: [usize; 2],
    hops: u64,
    messages: u64,
    refused: usize,
    restarts: u64,
}

/// Runs the scenario for `seed`; `Err` when it could not go on (see the module docs).
pub fn run(seed: u64, scenario: &Scenario) -> Result<Report, SimError> {
    Run::new(seed, scenario)?.run()
}

impl<'s> Run<'s> {
    fn new(seed: u64, scenario: &'s Scenario) -> Result<Self, SimError> {
        let link = LinkConfig {
            loss: scenario.loss,
            delay: Delay::LogNormal {
                median_rtt: scenario.rtt,
                sigma: scenario.rtt_sigma,
                jitter: scenario.jitter,
            },
            ..LinkConfig::default()
        };
        let sim = Sim::new(seed, NetConfig { link });
        let run = Run {
            seed,
            scenario,
            sim,
            hostile: choose_hostile(seed, scenario),
            crowd: Rc::default(),
            records: Rc::default(),
            forged_accepted: 0,
            rng: SmallRng::seed_from_u64(sub_seed(seed, 0xD47)),
            pending: HashMap::new(),
            joined: Vec::new(),
            retry: Vec::new(),
            alive: Vec::new(),
            values: Vec::new(),
            set_times: Vec::new(),
            acks: 0,
            sets: 0,
            acknowledged: [0; 2],
            lookups: [Vec::new(), Vec::new()],
            found: [0; 2],
            hops: 0,
            messages: 0,
            refused: 0,
            restarts: 0,
        };
        if scenario.nodes < 2 {
            return Err(run.fail("need at least two nodes"));
        }
        Ok(run)
    }

    fn fail(&self, message: impl Into<String>) -> SimError {
        SimError {
            seed: self.seed,
            message: format!("at {:?}: {}", self.sim.now(), message.into()),
        }
    }

    /// A fresh node for address index `index`: its own id and seed, drawn from the
    /// run's seed; hostile if `index` was chosen so.
    fn fresh_node(&mut self, index: usize, salt: u64) -> SimNode {
        let config = NodeConfig {
            persistence: false,
            ..self.scenario.node.clone()
        };
        let id = kad::NodeId::random(&mut self.rng);
        let setup = kad::NodeSetup::new(config, sub_seed(self.seed, 0x10_0000 + salt));
        let node = kad::Node::new(setup.config, id, setup.seed);
        if !self.hostile[index] {
            return SimNode::honest(node);
        }
        self.crowd
            .borrow_mut()
            .insert(kad::Contact::new(id, node_addr(index)));
        let records = self.records.clone();
        let forger: Forger = Rc::new(move |key: &kad::NodeId| forge(&records.borrow(), key));
        let role = Role::new(
            self.scenario.attack,
            self.crowd.clone(),
            forger,
            self.scenario.node.k,
        );
        SimNode::hostile(node, role)
    }

    fn is_hostile(&self, id: NodeIndex) -> bool {
        self.hostile[id.index()]
    }

    /// The joined honest nodes, in order: those that carry the script's stores and gets.
    fn honest_joined(&self) -> Vec<NodeIndex> {
        let mut alive: Vec<NodeIndex> = self
            .joined
            .iter()
            .copied()
            .filter(|&j| !self.is_hostile(j))
            .collect();
        alive.sort_unstable();
        alive
    }

    fn run(mut self) -> Result<Report, SimError> {
        let s = self.scenario;
        self.sim.reserve(s.nodes);
        // 1. Joins.
        let first = self.fresh_node(0, 0);
        let first = self.sim.add_node(node_addr(0), first);
        self.joined.push(first);
        let every = s.join_interval.min(s.join_window / s.nodes as u32);
        for i in 1..s.nodes {
            let at = every * i as u32;
            self.pump(at)?;
            let node = self.fresh_node(i, i as u64);
            let id = self.sim.add_node(node_addr(i), node);
            self.bootstrap(id, 1);
            for (id, attempt) in std::mem::take(&mut self.retry) {
                self.bootstrap(id, attempt);
            }
        }
        self.finish_round()?;
        while !self.retry.is_empty() {
            for (id, attempt) in std::mem::take(&mut self.retry) {
                self.bootstrap(id, attempt);
            }
            self.finish_round()?;
        }
        let settled = self.sim.now() + s.settle;
        self.pump(settled)?;
        self.alive = self.honest_joined();
        let joined = self.joined.len();
        let tables = self.table_sizes();
        let table_hostile_share = self.table_hostile_share();
        let evicted_joining = self.evicted();

        // 2. Stores, 3. the kill, 4. lookups.
        self.store_round(Round::Before)?;
        let honest_holders_mean = self.honest_holders_mean();
        let killed = self.kill();
        self.get_round(Round::Before)?;

        // 5. Newcomers at killed addresses.
        let rejoined = self.rejoin(&killed)?;

        // 6. New values, stored and looked up.
        self.values.clear();
        self.store_round(Round::After)?;
        self.get_round(Round::After)?;

        let lookups_total = (self.lookups[0].len() + self.lookups[1].len()).max(1) as f64;
        let mut all = self.lookups[0].clone();
        all.extend_from_slice(&self.lookups[1]);
        let net = self.sim.stats();
        let gets = s.gets.max(1) as f64;
        Ok(Report {
            nodes: s.nodes,
            seed: self.seed,
            gets: s.gets,
            joined,
            killed: killed.len(),
            rejoined,
            sets_acknowledged: self.acknowledged[0],
            sets_acknowledged_new: self.acknowledged[1],
            acks_mean: self.acks as f64 / self.sets.max(1) as f64,
            set_latency: Latency::of(std::mem::take(&mut self.set_times)),
            found: self.found[0],
            found_new: self.found[1],
            get_success_rate: self.found[0] as f64 / gets,
            get_success_rate_new: self.found[1] as f64 / gets,
            lookup_latency: Latency::of(all),
            lookup_latency_after_kill: Latency::of(self.lookups[0].clone()),
            hops_mean: self.hops as f64 / lookups_total,
            messages_per_lookup: self.messages as f64 / lookups_total,
            refused: self.refused,
            virtual_time: self.sim.now(),
            datagrams: net.sent,
            lost: net.lost,
            steps: net.steps,
            table_p10: percentile(&tables, 0.10),
            table_p50: percentile(&tables, 0.50),
            small_tables: tables.iter().filter(|&&t| t < s.node.k).count(),
            evicted_joining,
            evicted: self.evicted(),
            adversarial: self.hostile.iter().filter(|&&h| h).count(),
            attack: s.attack,
            honest_holders_mean,
            table_hostile_share,
            forged_accepted: self.forged_accepted,
        })
    }

    /// Bootstraps `id` through a random joined node (not itself).
    fn bootstrap(&mut self, id: NodeIndex, attempt: u32) {
        let hostile = &self.hostile;
        let candidates: Vec<NodeIndex> = if self.joined.len() > 64 {
            (0..8)
                .map(|_| self.joined[self.rng.random_range(0..self.joined.len())])
                .filter(|&j| j != id && !hostile[j.index()] && self.sim.is_alive(j))
                .take(1)
                .collect()
        } else {
            self.joined
                .iter()
                .copied()
                .filter(|&j| j != id && !hostile[j.index()] && self.sim.is_alive(j))
                .collect()
        };
        if candidates.is_empty() {
            self.refused += 1;
            return;
        }
        let via = candidates[self.rng.random_range(0..candidates.len())];
        let addr = self.sim.addr(via);
        match self
            .sim
            .command(id, |n, now| n.kad_mut().bootstrap(now, &[addr]))
        {
            Some(Ok(q)) => {
                self.pending.insert((id, q), Purpose::Join { attempt });
            }
            _ => self.refused += 1,
        }
    }

    /// Kills the scenario's fraction of the nodes at once; returns them.
    fn kill(&mut self) -> Vec<NodeIndex> {
        let n = self.alive.len();
        let count = ((self.scenario.kill * n as f64).round() as usize).min(n.saturating_sub(1));
        // A partial Fisher-Yates shuffle: the first `count` are the victims.
        for i in 0..count {
            let j = self.rng.random_range(i..n);
            self.alive.swap(i, j);
        }
        let killed: Vec<NodeIndex> = self.alive.drain(..count).collect();
        for &id in &killed {
            self.sim.kill(id);
        }
        self.alive.sort_unstable();
        killed
    }

    fn rejoin(&mut self, killed: &[NodeIndex]) -> Result<usize, SimError> {
        let count = (self.scenario.rejoin * killed.len() as f64).round() as usize;
        if count == 0 {
            return Ok(0);
        }
        self.joined = self.alive.clone();
        let before = self.joined.len();
        for &id in killed.iter().take(count) {
            self.restarts += 1;
            let node = self.fresh_node(id.index(), 1 << 40 | self.restarts);
            self.sim.restart(id, node);
            self.bootstrap(id, 1);
            let at = self.sim.now() + self.scenario.join_interval;
            self.pump(at)?;
        }
        self.finish_round()?;
        let settled = self.sim.now() + self.scenario.settle;
        self.pump(settled)?;
        self.alive = self.honest_joined();
        Ok(self.joined.len() - before)
    }

    fn random_alive(&mut self) -> Result<NodeIndex, SimError> {
        if self.alive.is_empty() {
            return Err(self.fail("no live node left"));
        }
        Ok(self.alive[self.rng.random_range(0..self.alive.len())])
    }

    fn store_round(&mut self, round: Round) -> Result<(), SimError> {
        for i in 0..self.scenario.gets {
            let tag = if round == Round::Before { "v" } else { "w" };
            let value = Value::from(format!("{tag}{i}-{}", self.seed));
            let (key, value) = if self.scenario.signed {
                let secret: [u8; 32] = self.rng.random();
                let rec = SignedRecord::sign(&secret, b"", 1, value)
                    .map_err(|e| self.fail(format!("signing: {e}")))?;
                let key = rec.target();
                let wire = rec.to_value();
                self.records.borrow_mut().insert(key, rec);
                (key, wire)
            } else {
                (kad::NodeId::random(&mut self.rng), value)
            };
            self.values.push((key, value.clone()));
            let via = self.random_alive()?;
            match self
                .sim
                .command(via, |n, now| n.kad_mut().set(now, key, value))
            {
                Some(Ok(q)) => {
                    self.pending.insert((via, q), Purpose::Set { round });
                }
                _ => self.refused += 1,
            }
            let at = self.sim.now() + self.scenario.op_interval;
            self.pump(at)?;
        }
        self.finish_round()
    }

    fn get_round(&mut self, round: Round) -> Result<(), SimError> {
        for i in 0..self.values.len() {
            let key = self.values[i].0;
            let via = self.random_alive()?;
            let pick = self
                .records
                .borrow()
                .get(&key)
                .map(|r| RecordPick::signed(r.public_key, r.salt.clone()));
            let get = |n: &mut SimNode, now| match pick {
                Some(pick) => n.kad_mut().get_record(now, pick),
                None => n.kad_mut().get(now, key),
            };
            match self.sim.command(via, get) {
                Some(Ok(q)) => {
                    self.pending
                        .insert((via, q), Purpose::Get { round, value: i });
                }
                _ => self.refused += 1,
            }
            let at = self.sim.now() + self.scenario.op_interval;
            self.pump(at)?;
        }
        self.finish_round()
    }

    /// Runs until every pending query finished; an error past the round limit.
    fn finish_round(&mut self) -> Result<(), SimError> {
        let limit = self.sim.now() + self.scenario.round_limit;
        while !self.pending.is_empty() {
            match self.sim.run_until(limit, |s| s.pending_events() > 0) {
                RunOutcome::Stopped => self.drain(),
                RunOutcome::Deadline | RunOutcome::Idle => {
                    self.drain();
                    if !self.pending.is_empty() {
                        return Err(self.fail(format!(
                            "{} queries never finished, e.g. {:?}",
                            self.pending.len(),
                            self.pending.iter().min_by_key(|(k, _)| **k)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs to `at` (virtual time since the origin), handling every event on the way.
    fn pump(&mut self, at: Duration) -> Result<(), SimError> {
        while self.sim.run_until(at, |s| s.pending_events() > 0) == RunOutcome::Stopped {
            self.drain();
        }
        self.drain();
        Ok(())
    }

    /// Routing-table sizes of the live nodes, smallest first.
    fn table_sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self
            .alive
            .iter()
            .filter_map(|&id| self.sim.node(id).map(|n| n.kad().table().len()))
            .collect();
        sizes.sort_unstable();
        sizes
    }

    /// With hostile nodes, the mean count of live honest nodes holding each value
    /// (O(values × nodes): only then); 0 without.
    fn honest_holders_mean(&self) -> f64 {
        if !self.hostile.contains(&true) || self.values.is_empty() {
            return 0.0;
        }
        let now = self.sim.instant();
        let mut held = 0usize;
        for &id in &self.alive {
            let Some(node) = self.sim.node(id) else {
                continue;
            };
            held += self
                .values
                .iter()
                .filter(|(key, v)| node.kad().local_value(key, now).is_some_and(|h| *h == *v))
                .count();
        }
        held as f64 / self.values.len() as f64
    }

    /// The share of hostile contacts in the live honest nodes' tables (0 without).
    fn table_hostile_share(&self) -> f64 {
        let crowd = self.crowd.borrow();
        if crowd.is_empty() {
            return 0.0;
        }
        let (mut hostile, mut all) = (0usize, 0usize);
        for &id in &self.alive {
            let Some(node) = self.sim.node(id) else {
                continue;
            };
            for c in node.kad().table().contacts() {
                all += 1;
                hostile += usize::from(crowd.contains(&c.id));
            }
        }
        hostile as f64 / all.max(1) as f64
    }

    /// Contacts the live nodes evicted after failed RPCs, so far.
    fn evicted(&self) -> u64 {
        self.alive
            .iter()
            .filter_map(|&id| self.sim.node(id).map(|n| n.kad().stats().evicted))
            .sum()
    }

    fn drain(&mut self) {
        while let Some((node, _at, event)) = self.sim.poll_event() {
            let Event::QueryFinished { id, result, stats } = event else {
                continue; // routing and record changes: nothing is persisted here
            };
            let Some(purpose) = self.pending.remove(&(node, id)) else {
                continue;
            };
            let took = stats.finished.saturating_duration_since(stats.started);
            match (purpose, result) {
                (Purpose::Join { .. }, Ok(QueryOutcome::Bootstrap { answered, .. }))
                    if answered > 0 =>
                {
                    self.joined.push(node);
                }
                (Purpose::Join { attempt }, _) => {
                    if attempt < self.scenario.join_attempts && self.sim.is_alive(node) {
                        self.retry.push((node, attempt + 1));
                    }
                }
                (Purpose::Set { round }, result) => {
                    self.sets += 1;
                    self.set_times.push(took);
                    if let Ok(QueryOutcome::Set { acknowledged, .. }) = result {
                        self.acks += acknowledged as u64;
                        if acknowledged > 0 {
                            self.acknowledged[round as usize] += 1;
                        }
                    }
                }
                (Purpose::Get { round, value }, result) => {
                    self.lookups[round as usize].push(took);
                    self.hops += u64::from(stats.hops);
                    self.messages += u64::from(stats.messages);
                    let expected = &self.values[value].1;
                    if let Ok(QueryOutcome::Get { value: Some(v) }) = result {
                        if &v == expected {
                            self.found[round as usize] += 1;
                        } else {
                            self.forged_accepted += 1;
                        }
                    }
                }
            }
        }
    }
}

/// Which node indexes are hostile: the scenario's fraction of them, drawn from the seed
/// (by its own RNG, so an honest run draws the same ids as before), never node 0.
fn choose_hostile(seed: u64, scenario: &Scenario) -> Vec<bool> {
    let n = scenario.nodes;
    let mut hostile = vec![false; n];
    let count = ((scenario.adversarial * n as f64).round() as usize).min(n.saturating_sub(1));
    if count == 0 {
        return hostile;
    }
    let mut rng = SmallRng::seed_from_u64(sub_seed(seed, 0xAD5));
    let mut order: Vec<usize> = (1..n).collect();
    for i in 0..count {
        let j = rng.random_range(i..order.len());
        order.swap(i, j);
        hostile[order[i]] = true;
    }
    hostile
}

/// What a forger answers for `key`: for a genuine signed record it knows, the same
/// record with another value and a higher seq, its signature left as it was (so it is
/// well formed and does not verify); for any other key, a plain forged value.
fn forge(records: &HashMap<kad::NodeId, SignedRecord>, key: &kad::NodeId) -> Value {
    match records.get(key) {
        Some(rec) => SignedRecord {
            seq: rec.seq + 1,
            value: Value::from("forged"),
            ..rec.clone()
        }
        .to_value(),
        None => Value::from("forged"),
    }
}
