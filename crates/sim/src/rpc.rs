//! The RPC workload: many [`Endpoint`]s calling each other on a hostile [`Sim`], with every
//! invariant of the RPC layer checked.
//!
//! Owns: the workload (who calls whom, when, with what; handlers that echo their
//! arguments after a random delay, or give up on the method `nosuch` as the Python peers
//! do for an unknown method), the on-path attacker that races responses with forgeries,
//! and the checks. Does not own: the network, which is the generic [`Sim`].
//!
//! Checked on every run (a violation is an `Err` naming the seed): every call ends exactly
//! once, with the answer to *its own* request or a timeout; calls to `nosuch` never
//! succeed; a forged response is never accepted; each request's handler runs at most once
//! (unless the callee's duplicate cache evicted entries at capacity, or the callee gave
//! a request's slot to a newer one, counted in [`Report::reruns_after_eviction`]); the endpoints' counters agree with what the
//! network carried.
//!
//! ```
//! use rpcudp_sim::rpc::{run, Scenario};
//! let config = Scenario { nodes: 3, calls_per_node: 5, ..Scenario::default() };
//! let report = run(42, &config).unwrap();
//! assert_eq!(report.calls, 15);
//! assert_eq!(report.succeeded + report.timed_out, report.calls);
//! assert_eq!(run(42, &config).unwrap(), report); // the seed replays the run
//! ```

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use rpcudp_proto::rpc::{
    CallFailure, CallId, CallOptions, Endpoint, EndpointConfig, Event, RequestToken, Stats,
};
use rpcudp_proto::wire::rpc::HEADER_LEN;
use rpcudp_proto::wire::value::encode_value;

use crate::net::{node_addr, sub_seed, Delay, Injection, LinkConfig, NetConfig, NodeIndex, Sim};

/// One simulation's shape: nodes, workload, links, endpoint settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
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
    /// Every link's behaviour (default: 10% loss, 5% duplicates, 1-50 ms one way).
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

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 4,
            calls_per_node: 20,
            start_window: Duration::from_secs(2),
            nosuch_fraction: 0.1,
            handler_delay: (Duration::ZERO, Duration::from_millis(300)),
            link: LinkConfig {
                loss: 0.1,
                duplicate: 0.05,
                delay: Delay::Uniform {
                    min: Duration::from_millis(1),
                    max: Duration::from_millis(50),
                },
                ..LinkConfig::default()
            },
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
    /// duplicate cache had evicted entries at capacity or it had preempted requests
    /// (0 unless the cache or the slots are tiny).
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

/// The attacker's address: no node has it.
pub fn attacker_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 66], 6666))
}

/// Something the workload does at a virtual time (the network's own schedule is the
/// simulator's).
enum Action {
    /// A handler finishes: answer with the value, or give up (`None`).
    Answer {
        node: NodeIndex,
        token: RequestToken,
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

struct Workload<'c> {
    seed: u64,
    config: &'c Scenario,
    sim: Sim<Endpoint>,
    actions: BinaryHeap<Scheduled>,
    seq: u64,
    rng: SmallRng,
    forged: Rc<Cell<u64>>,
    calls: HashMap<(NodeIndex, CallId), CallRecord>,
    /// Handler runs per call identity (caller node, call number).
    runs: HashMap<(u64, u64), u32>,
    report: Report,
}

/// Runs one simulation; `Err` names the first violated invariant and the seed.
pub fn run(seed: u64, config: &Scenario) -> Result<Report, SimError> {
    Workload::new(seed, config).run()
}

impl<'c> Workload<'c> {
    fn new(seed: u64, config: &'c Scenario) -> Self {
        let mut sim = Sim::new(
            seed,
            NetConfig {
                link: config.link.clone(),
            },
        );
        for i in 0..config.nodes {
            let ep = Endpoint::new(config.endpoint.clone(), sub_seed(seed, 1000 + i as u64));
            sim.add_node(node_addr(i), ep);
        }
        let forged = Rc::new(Cell::new(0));
        if config.spoof > 0.0 {
            let mut attacker = SmallRng::seed_from_u64(sub_seed(seed, 2));
            let response_kind = config.endpoint.dialect.response_kind();
            let spoof = config.spoof;
            let lead = match config.link.delay {
                Delay::Uniform { min, .. } => min / 2,
                Delay::LogNormal { .. } => Duration::ZERO,
            };
            let count = Rc::clone(&forged);
            sim.set_tap(Box::new(move |_from, t| {
                if t.payload.first() != Some(&response_kind) || attacker.random::<f64>() >= spoof {
                    return None;
                }
                // Race the real answer with a forged one: same id, another value.
                let mut payload = t.payload[..HEADER_LEN.min(t.payload.len())].to_vec();
                encode_value(&Value::from("forged"), &mut payload);
                count.set(count.get() + 1);
                Some(Injection {
                    delay: lead,
                    from: attacker_addr(),
                    payload,
                })
            }));
        }
        Workload {
            seed,
            config,
            sim,
            actions: BinaryHeap::new(),
            seq: 0,
            rng: SmallRng::seed_from_u64(sub_seed(seed, 1)),
            forged,
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
        }
    }

    fn fail(&self, message: impl Into<String>) -> SimError {
        SimError {
            seed: self.seed,
            message: format!("at {:?}: {}", self.sim.now(), message.into()),
        }
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.actions.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }

    fn steps(&self) -> usize {
        self.sim.stats().steps as usize + self.seq as usize
    }

    fn run(mut self) -> Result<Report, SimError> {
        if self.config.nodes < 2 {
            return Err(self.fail("need at least two nodes"));
        }
        for node in 0..self.config.nodes {
            for k in 0..self.config.calls_per_node {
                let window = self.config.start_window.as_secs_f64();
                let at = Duration::from_secs_f64(self.rng.random::<f64>() * window);
                self.schedule(at, Action::Start { node, k });
            }
        }
        // The seq above counted scheduling, not work: steps count from here.
        let budget = self.config.max_steps + self.steps();
        loop {
            if self.steps() > budget {
                return Err(self.fail("did not settle within max_steps"));
            }
            let deadline = self.actions.peek().map_or(Duration::MAX, |s| s.at);
            let limit = budget.saturating_sub(self.seq as usize) as u64;
            self.sim.run_until(deadline, |s| {
                s.pending_events() > 0 || s.stats().steps > limit
            });
            let mut any = false;
            while let Some((node, _at, event)) = self.sim.poll_event() {
                any = true;
                self.on_event(node, event)?;
            }
            if any {
                continue; // the events may have scheduled something earlier
            }
            if self.sim.next_at().is_some_and(|at| at <= deadline) {
                continue; // stopped by the step limit; checked above
            }
            match self.actions.pop() {
                Some(s) => self.act(s.action)?,
                None => break,
            }
        }
        self.finish()
    }

    fn act(&mut self, action: Action) -> Result<(), SimError> {
        match action {
            Action::Answer { node, token, value } => {
                self.sim.command(node, |ep, now| match value {
                    Some(v) => ep.respond(now, token, &v),
                    None => ep.abandon(now, token),
                });
            }
            Action::Start { node, k } => {
                let n = self.config.nodes;
                let to = (node + 1 + self.rng.random_range(0..n - 1)) % n;
                let nosuch = self.rng.random::<f64>() < self.config.nosuch_fraction;
                let args = [Value::from(node as u64), Value::from(k as u64)];
                let method = if nosuch { "nosuch" } else { "echo" };
                let options = self.config.call_options.clone();
                let id = NodeIndex(node as u32);
                let call = self
                    .sim
                    .command(id, |ep, now| {
                        ep.call(now, node_addr(to), method, &args, options)
                    })
                    .expect("nodes never die in this workload")
                    .map_err(|e| self.fail(format!("node {node} call refused: {e}")))?;
                self.report.calls += 1;
                let expected = (!nosuch).then(|| Value::Array(args.to_vec()));
                let record = CallRecord {
                    expected,
                    outcome: None,
                };
                if self.calls.insert((id, call), record).is_some() {
                    return Err(self.fail(format!("node {node} reused call id {call:?}")));
                }
            }
        }
        Ok(())
    }

    fn on_event(&mut self, node: NodeIndex, event: Event) -> Result<(), SimError> {
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
                    return Err(self.fail(format!(
                        "node {} got foreign args {args:?} from {from}",
                        node.0
                    )));
                };
                if node_addr(caller as usize) != from {
                    return Err(self.fail(format!("request of node {caller} seen from {from}")));
                }
                let runs = self.runs.entry((caller, k)).or_insert(0);
                *runs += 1;
                let runs = *runs;
                // A bounded cache may forget an answered request early (capacity), and a
                // request whose slot went to a newer one (preempted) is forgotten; only
                // then may a late resend run the handler again.
                let forgot = self.sim.node(node).is_some_and(|ep| {
                    ep.stats().dedup_evictions > 0 || ep.stats().requests_preempted > 0
                });
                if runs > 1 && forgot {
                    self.report.reruns_after_eviction += 1;
                } else if runs > 1 {
                    return Err(self.fail(format!(
                        "handler ran {runs} times for call {k} of node {caller}"
                    )));
                }
                let (lo, hi) = self.config.handler_delay;
                let delay = lo + hi.saturating_sub(lo).mul_f64(self.rng.random::<f64>());
                let value = (method == "echo").then_some(Value::Array(args));
                let at = self.sim.now() + delay;
                self.schedule(at, Action::Answer { node, token, value });
            }
            Event::CallSucceeded { call, value } => {
                let record = self.record(node, call)?;
                let expected = record.expected.clone();
                record.outcome = Some(Ok(()));
                if expected.as_ref() != Some(&value) {
                    return Err(self.fail(format!(
                        "node {} call {call:?} succeeded with {}, expected {}",
                        node.0,
                        rpcudp_proto::wire::value::display(&value),
                        expected.as_ref().map_or("no answer".into(), |e| {
                            rpcudp_proto::wire::value::display(e).to_string()
                        }),
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
    fn record(&mut self, node: NodeIndex, call: CallId) -> Result<&mut CallRecord, SimError> {
        let err = match self.calls.get(&(node, call)) {
            None => Some(format!(
                "node {}: outcome for unknown call {call:?}",
                node.0
            )),
            Some(r) if r.outcome.is_some() => {
                Some(format!("node {}: second outcome for {call:?}", node.0))
            }
            Some(_) => None,
        };
        if let Some(e) = err {
            return Err(self.fail(e));
        }
        Ok(self.calls.get_mut(&(node, call)).expect("checked above"))
    }

    fn finish(mut self) -> Result<Report, SimError> {
        let net = self.sim.stats().clone();
        self.report.end = self.sim.now();
        self.report.delivered = net.delivered;
        self.report.lost = net.lost;
        self.report.duplicated = net.duplicated;
        self.report.forged = self.forged.get();
        if net.unroutable > 0 {
            return Err(self.fail(format!("{} datagrams to unknown addresses", net.unroutable)));
        }
        if let Some(((node, call), _)) = self.calls.iter().find(|(_, r)| r.outcome.is_none()) {
            return Err(self.fail(format!("node {} call {call:?} never ended", node.0)));
        }
        let nodes: Vec<&Endpoint> = (0..self.config.nodes)
            .filter_map(|i| self.sim.node(NodeIndex(i as u32)))
            .collect();
        let (mut sent, mut received) = (0, 0);
        for (i, n) in nodes.iter().enumerate() {
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
                + s.spoofed_responses
                + s.requests_rate_limited
                + s.bytes_rate_limited
                + s.requests_dropped_source_share;
            // A resent request whose cached answer is over the amplification budget is
            // counted in `answers_dropped_unvalidated`, which also counts fresh answers
            // (not arrivals): the one bucket that is only a bound.
            check(
                sorted <= s.datagrams_in
                    && s.datagrams_in <= sorted + s.answers_dropped_unvalidated,
                "datagrams in != datagrams sorted into buckets",
            )?;
            sent += s.datagrams_out;
            received += s.datagrams_in;
        }
        if sent != net.sent {
            return Err(self.fail(format!(
                "endpoints counted {sent} out, the network saw {}",
                net.sent
            )));
        }
        if received != net.delivered {
            return Err(self.fail(format!(
                "endpoints counted {received} in, the network delivered {}",
                net.delivered
            )));
        }
        let succeeded: u64 = nodes.iter().map(|n| n.stats().calls_succeeded).sum();
        if succeeded != self.report.succeeded
            || self.report.succeeded + self.report.timed_out != self.report.calls
        {
            return Err(self.fail("call outcomes and counters disagree"));
        }
        let handled: u64 = nodes.iter().map(|n| n.stats().requests_received).sum();
        if handled != self.report.handler_runs {
            return Err(self.fail("handler runs and requests_received disagree"));
        }
        self.report.stats = nodes.iter().map(|n| n.stats().clone()).collect();
        Ok(self.report)
    }
}
