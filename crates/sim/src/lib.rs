//! A simulated network on virtual time: seeded loss, duplication, reordering and delay,
//! for many-seed tests of the sans-IO core. It owns no sockets and reads no clock (one
//! `Instant` is taken as the origin; only offsets from it matter).
//!
//! [`run`] builds N [`Endpoint`]s on made-up loopback addresses, has each make calls to
//! the others at random times, serves every request with a handler that echoes its
//! arguments after a random delay (or gives up on the method `nosuch`, as the Python
//! peers do for an unknown method), and carries every datagram through a lossy link.
//! Time jumps straight to the next arrival, handler completion or endpoint timer, so a
//! run that covers minutes of virtual time takes milliseconds.
//!
//! Everything random comes from the seed: one RNG per directed link (loss, duplication,
//! delay, hence reordering), one for the workload, one for the attacker that forges
//! responses, and the endpoints' own seeds. The same seed replays the same run, so a
//! failure is reported with its seed (see [`SimError`]) and replayed with
//! `SIM_SEED=<seed>` in the crate's tests.
//!
//! Checked on every run (a violation is an `Err`): every call ends exactly once, with the
//! answer to *its own* request or a timeout; calls to `nosuch` never succeed; a forged
//! response is never accepted; each request's handler runs at most once (unless the
//! callee's duplicate cache evicted entries at capacity, counted in
//! [`Report::reruns_after_eviction`]); the endpoints' counters agree with what the
//! network carried.
//!
//! ```
//! use rpcudp_sim::{run, SimConfig};
//! let config = SimConfig { nodes: 3, calls_per_node: 5, ..SimConfig::default() };
//! let report = run(42, &config).unwrap();
//! assert_eq!(report.calls, 15);
//! assert_eq!(report.succeeded + report.timed_out, report.calls);
//! assert_eq!(run(42, &config).unwrap(), report); // the seed replays the run
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use rpcudp_proto::rpc::{CallFailure, CallId, CallOptions, Endpoint, EndpointConfig, Event, Stats};
use rpcudp_proto::wire::rpc::HEADER_LEN;
use rpcudp_proto::wire::value::encode_value;

/// What one directed link does to each datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Probability that a datagram is lost (0 to 1).
    pub loss: f64,
    /// Probability that a delivered datagram is delivered twice (with its own delay).
    pub duplicate: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay; a wide range reorders datagrams.
    pub max_delay: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            loss: 0.1,
            duplicate: 0.05,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
        }
    }
}

/// One simulation's shape: nodes, workload, links, endpoint settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// How many endpoints.
    pub nodes: usize,
    /// How many calls each endpoint makes (to random other nodes).
    pub calls_per_node: usize,
    /// Calls start at random times within this window.
    pub start_window: Duration,
    /// Fraction of calls made to the method `nosuch`, whose handler gives up.
    pub nosuch_fraction: f64,
    /// Handlers answer after a random delay in this range (inclusive).
    pub handler_delay: (Duration, Duration),
    /// Every link's behaviour.
    pub link: LinkConfig,
    /// Probability that an attacker, seeing a response go by, races it with a forged
    /// copy (same message id, another value) from its own address.
    pub spoof: f64,
    /// Options of every call.
    pub call_options: CallOptions,
    /// Configuration of every endpoint.
    pub endpoint: EndpointConfig,
    /// Bound on simulation steps, so a bug cannot loop forever.
    pub max_steps: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 4,
            calls_per_node: 20,
            start_window: Duration::from_secs(2),
            nosuch_fraction: 0.1,
            handler_delay: (Duration::ZERO, Duration::from_millis(300)),
            link: LinkConfig::default(),
            spoof: 0.05,
            call_options: CallOptions {
                attempt_timeout: Duration::from_millis(200),
                retries: 4,
                ..CallOptions::default()
            },
            endpoint: EndpointConfig::default(),
            max_steps: 1_000_000,
        }
    }
}

/// What a run did, for assertions and snapshots. Equal for equal seeds and configs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Calls started.
    pub calls: u64,
    /// Calls that got their own answer.
    pub succeeded: u64,
    /// Calls that timed out.
    pub timed_out: u64,
    /// Handler runs (requests handed to the application).
    pub handler_runs: u64,
    /// Datagrams delivered (duplicates and forgeries included).
    pub delivered: u64,
    /// Datagrams the links lost.
    pub lost: u64,
    /// Extra copies the links delivered.
    pub duplicated: u64,
    /// Forged responses injected by the attacker.
    pub forged: u64,
    /// Handler runs for a request already handled, allowed only because the callee's
    /// duplicate cache had evicted entries at capacity (0 unless the cache is tiny).
    pub reruns_after_eviction: u64,
    /// Virtual time when the last thing happened.
    pub end: Duration,
    /// Each endpoint's counters at the end.
    pub stats: Vec<Stats>,
}

/// A violated invariant, with the seed that replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    /// The seed of the failing run.
    pub seed: u64,
    /// What went wrong, and at what virtual time.
    pub message: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} (replay with SIM_SEED={})",
            self.seed, self.message, self.seed
        )
    }
}

impl std::error::Error for SimError {}

/// Something scheduled at a virtual time.
enum Action {
    /// A datagram arrives at node `to`.
    Deliver {
        to: usize,
        from: SocketAddr,
        payload: Vec<u8>,
    },
    /// A handler finishes: answer with the value, or give up (`None`).
    Answer {
        node: usize,
        token: rpcudp_proto::rpc::RequestToken,
        value: Option<Value>,
    },
    /// A node starts its `k`-th call.
    Start { node: usize, k: usize },
}

struct Scheduled {
    at: Duration,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the `BinaryHeap` pops the earliest; `seq` breaks ties by insertion.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What the simulation expects of one call.
struct CallRecord {
    expected: Option<Value>,
    outcome: Option<Result<(), CallFailure>>,
}

/// A node's made-up address (never used on a real network).
pub fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 1, (i % 250) as u8 + 1], 7000 + (i / 250) as u16))
}

/// The attacker's address: no node has it.
pub fn attacker_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 2, 66], 6666))
}

/// Mixes the seed with a stream number so every RNG gets its own sequence (SplitMix64).
fn sub_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Sim<'c> {
    seed: u64,
    config: &'c SimConfig,
    origin: Instant,
    now: Duration,
    nodes: Vec<Endpoint>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    links: HashMap<(usize, usize), SmallRng>,
    workload: SmallRng,
    attacker: SmallRng,
    calls: HashMap<(usize, CallId), CallRecord>,
    /// Handler runs per call identity (caller node, call number).
    runs: HashMap<(u64, u64), u32>,
    report: Report,
    transmitted: u64,
}

/// Runs one simulation; `Err` names the first violated invariant and the seed.
pub fn run(seed: u64, config: &SimConfig) -> Result<Report, SimError> {
    Sim::new(seed, config).run()
}

impl<'c> Sim<'c> {
    fn new(seed: u64, config: &'c SimConfig) -> Self {
        let nodes = (0..config.nodes)
            .map(|i| Endpoint::new(config.endpoint.clone(), sub_seed(seed, 1000 + i as u64)))
            .collect();
        #[allow(clippy::disallowed_methods)] // the origin of virtual time; only offsets matter
        let origin = Instant::now();
        Sim {
            seed,
            config,
            origin,
            now: Duration::ZERO,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            links: HashMap::new(),
            workload: SmallRng::seed_from_u64(sub_seed(seed, 1)),
            attacker: SmallRng::seed_from_u64(sub_seed(seed, 2)),
            calls: HashMap::new(),
            runs: HashMap::new(),
            report: Report {
                calls: 0,
                succeeded: 0,
                timed_out: 0,
                handler_runs: 0,
                delivered: 0,
                lost: 0,
                duplicated: 0,
                forged: 0,
                reruns_after_eviction: 0,
                end: Duration::ZERO,
                stats: Vec::new(),
            },
            transmitted: 0,
        }
    }

    fn fail(&self, message: impl Into<String>) -> SimError {
        SimError {
            seed: self.seed,
            message: format!("at {:?}: {}", self.now, message.into()),
        }
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }

    fn instant(&self) -> Instant {
        self.origin + self.now
    }

    fn run(mut self) -> Result<Report, SimError> {
        if self.config.nodes < 2 {
            return Err(self.fail("need at least two nodes"));
        }
        for node in 0..self.config.nodes {
            for k in 0..self.config.calls_per_node {
                let window = self.config.start_window.as_secs_f64();
                let at = Duration::from_secs_f64(self.workload.random::<f64>() * window);
                self.schedule(at, Action::Start { node, k });
            }
        }
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > self.config.max_steps {
                return Err(self.fail("did not settle within max_steps"));
            }
            let next_action = self.queue.peek().map(|s| s.at);
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|n| n.poll_timeout())
                .min()
                .map(|t| t.saturating_duration_since(self.origin));
            let (at, is_timer) = match (next_action, next_timer) {
                (None, None) => break,
                (Some(a), Some(t)) if t < a => (t, true),
                (Some(a), _) => (a, false),
                (None, Some(t)) => (t, true),
            };
            if at < self.now {
                return Err(self.fail(format!("time went backwards to {at:?}")));
            }
            self.now = at;
            let now = self.instant();
            if is_timer {
                for n in &mut self.nodes {
                    if n.poll_timeout().is_some_and(|t| t <= now) {
                        n.handle_timeout(now);
                    }
                }
            } else if let Some(s) = self.queue.pop() {
                self.act(s.action)?;
            }
            self.flush()?;
        }
        self.finish()
    }

    fn act(&mut self, action: Action) -> Result<(), SimError> {
        let now = self.instant();
        match action {
            Action::Deliver { to, from, payload } => {
                self.report.delivered += 1;
                self.nodes[to].handle_datagram(now, from, &payload);
            }
            Action::Answer { node, token, value } => match value {
                Some(v) => self.nodes[node].respond(now, token, &v),
                None => self.nodes[node].abandon(token),
            },
            Action::Start { node, k } => {
                let n = self.config.nodes;
                let to = (node + 1 + self.workload.random_range(0..n - 1)) % n;
                let nosuch = self.workload.random::<f64>() < self.config.nosuch_fraction;
                let args = [Value::from(node as u64), Value::from(k as u64)];
                let method = if nosuch { "nosuch" } else { "echo" };
                let options = self.config.call_options.clone();
                let call = self.nodes[node]
                    .call(now, node_addr(to), method, &args, options)
                    .map_err(|e| self.fail(format!("node {node} call refused: {e}")))?;
                self.report.calls += 1;
                let expected = (!nosuch).then(|| Value::Array(args.to_vec()));
                let record = CallRecord {
                    expected,
                    outcome: None,
                };
                if self.calls.insert((node, call), record).is_some() {
                    return Err(self.fail(format!("node {node} reused call id {call:?}")));
                }
            }
        }
        Ok(())
    }

    /// Moves every node's transmits onto the links and handles every node's events.
    fn flush(&mut self) -> Result<(), SimError> {
        for node in 0..self.nodes.len() {
            while let Some(t) = self.nodes[node].poll_transmit() {
                self.transmitted += 1;
                self.send(node, t.destination, t.payload)?;
            }
            while let Some(event) = self.nodes[node].poll_event() {
                self.on_event(node, event)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to_addr: SocketAddr, payload: Vec<u8>) -> Result<(), SimError> {
        let Some(to) = (0..self.config.nodes).find(|&i| node_addr(i) == to_addr) else {
            return Err(self.fail(format!("node {from} sent to unknown address {to_addr}")));
        };
        let response_kind = self.config.endpoint.dialect.response_kind();
        if payload.first() == Some(&response_kind)
            && self.attacker.random::<f64>() < self.config.spoof
        {
            // Race the real answer with a forged one: same id, another value.
            let mut forged = payload[..HEADER_LEN.min(payload.len())].to_vec();
            encode_value(&Value::from("forged"), &mut forged);
            self.report.forged += 1;
            let at = self.now + self.config.link.min_delay / 2;
            self.schedule(
                at,
                Action::Deliver {
                    to,
                    from: attacker_addr(),
                    payload: forged,
                },
            );
        }
        let link = &self.config.link;
        let rng = self.links.entry((from, to)).or_insert_with(|| {
            SmallRng::seed_from_u64(sub_seed(
                self.seed,
                1 << 32 | (from as u64) << 16 | to as u64,
            ))
        });
        if rng.random::<f64>() < link.loss {
            self.report.lost += 1;
            return Ok(());
        }
        let copies = if rng.random::<f64>() < link.duplicate {
            2
        } else {
            1
        };
        let mut arrivals = Vec::with_capacity(copies);
        for _ in 0..copies {
            let span = link.max_delay.saturating_sub(link.min_delay).as_secs_f64();
            arrivals.push(
                self.now + link.min_delay + Duration::from_secs_f64(rng.random::<f64>() * span),
            );
        }
        self.report.duplicated += copies as u64 - 1;
        let from_addr = node_addr(from);
        for at in arrivals {
            self.schedule(
                at,
                Action::Deliver {
                    to,
                    from: from_addr,
                    payload: payload.clone(),
                },
            );
        }
        Ok(())
    }

    fn on_event(&mut self, node: usize, event: Event) -> Result<(), SimError> {
        match event {
            Event::Request {
                token,
                from,
                method,
                args,
            } => {
                self.report.handler_runs += 1;
                let identity = (
                    args.first().and_then(Value::as_u64),
                    args.get(1).and_then(Value::as_u64),
                );
                let (Some(caller), Some(k)) = identity else {
                    return Err(
                        self.fail(format!("node {node} got foreign args {args:?} from {from}"))
                    );
                };
                if node_addr(caller as usize) != from {
                    return Err(self.fail(format!("request of node {caller} seen from {from}")));
                }
                let runs = self.runs.entry((caller, k)).or_insert(0);
                *runs += 1;
                let runs = *runs;
                // A bounded cache may forget an answered request early (capacity); only
                // then may a late resend run the handler again.
                let forgot = self.nodes[node].stats().dedup_evictions > 0;
                if runs > 1 && forgot {
                    self.report.reruns_after_eviction += 1;
                } else if runs > 1 {
                    return Err(self.fail(format!(
                        "handler ran {runs} times for call {k} of node {caller}"
                    )));
                }
                let (lo, hi) = self.config.handler_delay;
                let delay = lo + hi.saturating_sub(lo).mul_f64(self.workload.random::<f64>());
                let value = (method == "echo").then_some(Value::Array(args));
                self.schedule(self.now + delay, Action::Answer { node, token, value });
            }
            Event::CallSucceeded { call, value } => {
                let record = self.record(node, call)?;
                let expected = record.expected.clone();
                record.outcome = Some(Ok(()));
                if expected.as_ref() != Some(&value) {
                    return Err(self.fail(format!(
                        "node {node} call {call:?} succeeded with {value:?}, expected {expected:?}"
                    )));
                }
                self.report.succeeded += 1;
            }
            Event::CallFailed { call, error } => {
                self.record(node, call)?.outcome = Some(Err(error));
                self.report.timed_out += 1;
            }
        }
        Ok(())
    }

    /// The record of a call that has not ended yet.
    fn record(&mut self, node: usize, call: CallId) -> Result<&mut CallRecord, SimError> {
        let err = match self.calls.get(&(node, call)) {
            None => Some(format!("node {node}: outcome for unknown call {call:?}")),
            Some(r) if r.outcome.is_some() => {
                Some(format!("node {node}: second outcome for {call:?}"))
            }
            Some(_) => None,
        };
        if let Some(e) = err {
            return Err(self.fail(e));
        }
        Ok(self.calls.get_mut(&(node, call)).expect("checked above"))
    }

    fn finish(mut self) -> Result<Report, SimError> {
        self.report.end = self.now;
        if let Some(((node, call), _)) = self.calls.iter().find(|(_, r)| r.outcome.is_none()) {
            return Err(self.fail(format!("node {node} call {call:?} never ended")));
        }
        let (mut sent, mut received) = (0, 0);
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.stats();
            let check = |ok: bool, what: &str| {
                if ok {
                    Ok(())
                } else {
                    Err(self.fail(format!("node {i}: {what}: {s:?}")))
                }
            };
            check(n.outstanding_calls() == 0, "calls left in flight")?;
            check(n.requests_in_progress() == 0, "requests left unanswered")?;
            check(
                s.calls_started == s.calls_succeeded + s.timeouts,
                "started != succeeded + timed out",
            )?;
            check(
                s.retries <= s.calls_started * u64::from(self.config.call_options.retries),
                "more resends than allowed",
            )?;
            check(s.malformed == 0, "well-formed traffic counted malformed")?;
            let sorted = s.requests_received
                + s.duplicates_answered
                + s.duplicates_in_progress
                + s.duplicates_abandoned
                + s.requests_dropped_overload
                + s.calls_succeeded
                + s.unknown_responses
                + s.spoofed_responses;
            check(
                sorted == s.datagrams_in,
                "datagrams in != datagrams sorted into buckets",
            )?;
            sent += s.datagrams_out;
            received += s.datagrams_in;
        }
        if sent != self.transmitted {
            return Err(self.fail(format!(
                "endpoints counted {sent} out, the network saw {}",
                self.transmitted
            )));
        }
        if received != self.report.delivered {
            return Err(self.fail(format!(
                "endpoints counted {received} in, the network delivered {}",
                self.report.delivered
            )));
        }
        let succeeded: u64 = self.nodes.iter().map(|n| n.stats().calls_succeeded).sum();
        if succeeded != self.report.succeeded
            || self.report.succeeded + self.report.timed_out != self.report.calls
        {
            return Err(self.fail("call outcomes and counters disagree"));
        }
        let handled: u64 = self.nodes.iter().map(|n| n.stats().requests_received).sum();
        if handled != self.report.handler_runs {
            return Err(self.fail("handler runs and requests_received disagree"));
        }
        self.report.stats = self.nodes.iter().map(|n| n.stats().clone()).collect();
        Ok(self.report)
    }
}
