//! The RPC endpoint state machine (`rpcudp_proto::rpc::Endpoint`) fed arbitrary datagram
//! sequences, commands and time steps, with hand-driven time.
//!
//! Input (via `arbitrary`): a small configuration (caps of 0..8 calls, requests and cache
//! entries, a few hundred bytes of cache, short lifetimes) and up to 256 operations: raw
//! datagrams, well-formed requests (ids from a pool of 4, so duplicates happen),
//! responses to the requests we sent (from the right peer or another), calls, answers,
//! abandons, cancels, and time steps, punctual (every deadline of `poll_timeout` handled
//! at its instant) or late (one jump). Seven peer addresses, among them an IPv4-mapped
//! IPv6 twin of one and two IPv6 link-local forms of another (scope 2 and 0).
//!
//! Checked after every operation, against a model kept here:
//! - bounded memory: calls in flight, requests in progress, cache entries and bytes, timer
//!   heap entries within the configured caps;
//! - every call ends exactly once (success, timeout, or cancelled by us), never with an
//!   event after `cancel`; a success only for a response from the peer called; a timeout
//!   never before `min(attempt_timeout, deadline)`; with punctual time, no later than
//!   `CallOptions::max_duration` after the call; after a final punctual run, none is left;
//! - a request is handed to the application at most once while in progress; a duplicate
//!   answered from the cache gets the very bytes of the first answer;
//! - every request sent is one of a live call's, to its peer, byte-identical on resends;
//! - after `handle_timeout(now)`, `poll_timeout` is later than `now` (no busy loop), and
//!   it is never behind the time last given (every deadline counts from a given `now`);
//! - the counters add up (started = succeeded + timed out + cancelled + in flight;
//!   received = answered + abandoned + unsendable + too large + in progress).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rmpv::Value;
use rpcudp_proto::rpc::{
    CallId, CallOptions, Endpoint, EndpointConfig, Event, RequestToken, ValidationProbe,
};
use rpcudp_proto::wire::rpc::{
    decode_packet, encode_request, encode_response, Dialect, MessageId, Packet, HEADER_LEN,
};
use rpcudp_proto::wire::value::DecodeLimits;

/// The peers, and which of them are one peer for responses (`same_peer`) and for the
/// duplicate cache (the canonical address: IPv4-mapped written as IPv4, scope kept).
const PEERS: [&str; 7] = [
    "127.0.0.1:1000",
    "[::ffff:127.0.0.1]:1000",
    "127.0.0.2:1000",
    "[::1]:1000",
    "[fe80::1%2]:1000",
    "[fe80::1]:1000",
    "127.0.0.1:1001",
];
const PEER_CLASS: [usize; 7] = [0, 0, 2, 3, 4, 4, 6];
const DEDUP_CLASS: [usize; 7] = [0, 0, 2, 3, 4, 5, 6];

/// IPv4-mapped IPv6 written as IPv4 (the endpoint's key for a peer; flow labels are 0 here).
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[derive(Arbitrary, Debug)]
struct Config {
    storj: bool,
    max_outstanding_calls: u8,
    max_concurrent_requests: u8,
    dedup_capacity: u8,
    dedup_max_bytes: u16,
    dedup_lifetime_ms: u16,
    max_response_body: Option<u16>,
    max_depth: u8,
    seed: u64,
    /// The hardening limits (per-subnet rates and shares, anti-amplification).
    strict_local: bool,
    requests_per_sec: u8,
    max_requests_per_source: u8,
    amplification_factor: u8,
    probe: bool,
    max_held_answers: u8,
    max_held_bytes: u16,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Any bytes from a peer.
    Raw {
        peer: u8,
        bytes: Vec<u8>,
    },
    /// A well-formed request `m(arg)` with an id from a pool of four.
    Request {
        peer: u8,
        id: u8,
        arg: u8,
    },
    /// A response to the `nth` request we sent, from its peer or from `peer`.
    Response {
        nth: u8,
        from_callee: bool,
        peer: u8,
        value: u8,
    },
    /// Start a call.
    Call {
        peer: u8,
        timeout_ms: u16,
        retries: u8,
        backoff: u8,
        jitter: u8,
        max_attempt_ms: u16,
        deadline_ms: Option<u16>,
    },
    /// Answer the `nth` request in progress with a value of about `size` × 8 bytes, or
    /// with an unsendable one (a map with a duplicate key).
    Respond {
        nth: u8,
        size: u8,
        unsendable: bool,
    },
    Abandon {
        nth: u8,
    },
    Cancel {
        nth: u8,
    },
    /// Let `ms` milliseconds pass, handling each deadline on time, or jumping late.
    Advance {
        ms: u16,
        late: bool,
    },
    /// `handle_timeout` at an arbitrary moment (harmless, says the doc).
    TimeoutNow,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    ops: Vec<Op>,
}

struct LiveCall {
    peer: usize,
    earliest_failure: Instant,
    latest_end: Instant,
    /// `CallOptions::max_duration`: late driving shifts the schedule, but from any moment
    /// on, what is left of it is no longer than the whole.
    max_duration: Duration,
    /// Every deadline since the start was handled on time, so `latest_end` must hold.
    punctual: bool,
    datagram: Option<Vec<u8>>,
}

struct Harness {
    ep: Endpoint,
    config: EndpointConfig,
    peers: Vec<SocketAddr>,
    now: Instant,
    calls: HashMap<CallId, LiveCall>,
    by_message: HashMap<MessageId, CallId>,
    ended: HashSet<CallId>,
    cancelled: HashSet<CallId>,
    /// Requests we sent: (message id, peer index).
    sent: Vec<(MessageId, usize)>,
    /// Requests handed to us and not yet answered: token, dedup key.
    serving: Vec<(RequestToken, (usize, MessageId))>,
    in_progress: HashSet<(usize, MessageId)>,
    /// The last answer sent for each dedup key.
    answers: HashMap<(usize, MessageId), Vec<u8>>,
    /// Validation probes the endpoint made on its own (message id -> peer).
    probes: HashMap<MessageId, usize>,
    /// Bytes received from, and answer bytes sent to, each address while unvalidated.
    bytes_in: HashMap<SocketAddr, u64>,
    unvalidated_out: HashMap<SocketAddr, u64>,
}

impl Harness {
    fn peer_index(&self, addr: SocketAddr) -> usize {
        self.peers
            .iter()
            .position(|p| *p == addr)
            .unwrap_or_else(|| panic!("an address we never used: {addr}"))
    }

    /// Feeds a datagram from peer `p`, then checks what came out.
    fn datagram(&mut self, p: usize, bytes: &[u8]) {
        // The message id, should the endpoint take it as a request.
        let request = match decode_packet(self.config.dialect, bytes, &self.config.decode_limits) {
            Ok(Packet::Request { id, .. }) => Some(id),
            _ => None,
        };
        *self.bytes_in.entry(canonical(self.peers[p])).or_default() += bytes.len() as u64;
        self.ep.handle_datagram(self.now, self.peers[p], bytes);
        self.drain(Some((p, request)));
    }

    fn timeout(&mut self) {
        self.ep.handle_timeout(self.now);
        if let Some(next) = self.ep.poll_timeout() {
            assert!(
                next > self.now,
                "poll_timeout not later than the handle_timeout"
            );
        }
        self.drain(None);
        for (id, live) in &self.calls {
            if live.punctual {
                assert!(
                    self.now < live.latest_end,
                    "call {id:?} outlived its schedule"
                );
            }
        }
    }

    /// Moves to `target`, handling every deadline at its instant (bounded: each deadline
    /// is a call attempt or a cache entry, and the test asserts progress).
    fn advance_punctually(&mut self, target: Instant) {
        for _ in 0..100_000 {
            match self.ep.poll_timeout() {
                Some(at) if at <= target => {
                    // Every deadline is set from a `now` the endpoint was given, and each
                    // past one was handled by the last `handle_timeout`: none is behind
                    // us. (`abandon` used to take no `now` and could stamp a cache entry
                    // long in the past: fuzz/README.md, finding 2.)
                    assert!(at >= self.now, "poll_timeout in the past");
                    self.now = at;
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

    fn advance_late(&mut self, target: Instant) {
        if self.ep.poll_timeout().is_some_and(|at| at < target) {
            for c in self.calls.values_mut() {
                c.punctual = false;
            }
        }
        self.now = target;
        self.timeout();
    }

    /// Drains transmits and events, checking each against the model. `from`: the peer
    /// whose datagram was just fed, if any, and its message id if it parses as a request.
    fn drain(&mut self, fed: Option<(usize, Option<MessageId>)>) {
        let from = fed.map(|(p, _)| p);
        let dialect = self.config.dialect;
        let lenient = DecodeLimits { max_depth: 200 };
        while let Some(t) = self.ep.poll_transmit() {
            let to = self.peer_index(t.destination);
            let packet = decode_packet(dialect, &t.payload, &lenient)
                .unwrap_or_else(|e| panic!("we sent a datagram we cannot decode: {e}"));
            match packet {
                Packet::Request { id, method, .. } => {
                    let Some(call) = self.by_message.get(&id) else {
                        // Not ours: a validation probe, to a peer whose answer is held.
                        let probe = self.config.limits.validation_probe.as_ref();
                        let probe = probe.expect("a request of no call, and no probe configured");
                        assert_eq!(method, probe.method);
                        assert!(
                            !self.ep.is_validated(t.destination),
                            "probing a validated peer"
                        );
                        self.probes.insert(id, to);
                        self.sent.push((id, to));
                        continue;
                    };
                    let live = self
                        .calls
                        .get_mut(call)
                        .expect("a request of an ended call");
                    assert_eq!(live.peer, to, "a request to another peer");
                    match &live.datagram {
                        None => live.datagram = Some(t.payload.clone()),
                        Some(first) => assert_eq!(first, &t.payload, "a resend differs"),
                    }
                    assert!(
                        t.payload.len() - HEADER_LEN <= self.config.effective_max_request_body()
                    );
                    self.sent.push((id, to));
                }
                Packet::Response { id, .. } => {
                    assert!(
                        t.payload.len() - HEADER_LEN <= self.config.effective_max_response_body()
                    );
                    let key = (DEDUP_CLASS[to], id);
                    match self.answers.get(&key) {
                        Some(first) => assert_eq!(first, &t.payload, "an answer changed its bytes"),
                        None => {
                            self.answers.insert(key, t.payload.clone());
                        }
                    }
                    // QUIC's rule: at most `amplification_factor` × the bytes received go
                    // to an address that has not proven it receives there.
                    let addr = canonical(t.destination);
                    if !self.ep.is_validated(addr) {
                        let out = self.unvalidated_out.entry(addr).or_default();
                        *out += t.payload.len() as u64;
                        let budget = self.config.limits.amplification_factor as u64
                            * self.bytes_in.get(&addr).copied().unwrap_or(0);
                        assert!(
                            *out <= budget,
                            "{out} bytes to unvalidated {addr}, budget {budget}"
                        );
                    }
                }
            }
        }
        while let Some(e) = self.ep.poll_event() {
            match e {
                Event::Request {
                    token, from: addr, ..
                } => {
                    let Some((p, Some(id))) = fed else {
                        panic!("a request event without a request datagram");
                    };
                    assert_eq!(addr, self.peers[p]);
                    let key = (DEDUP_CLASS[p], id);
                    // A new round: its answer may differ from an earlier round's.
                    self.answers.remove(&key);
                    assert!(
                        self.in_progress.insert(key),
                        "a request handed out twice while in progress"
                    );
                    assert!(
                        self.serving.iter().all(|(t, _)| *t != token),
                        "a token reused"
                    );
                    self.serving.push((token, key));
                }
                Event::CallSucceeded { call, .. } => {
                    let live = self.end(call);
                    let p = from.expect("a success without a datagram");
                    assert_eq!(
                        PEER_CLASS[p], PEER_CLASS[live.peer],
                        "a success from the wrong peer"
                    );
                }
                Event::CallFailed { call, .. } => {
                    let live = self.end(call);
                    assert!(self.now >= live.earliest_failure, "a call failed too early");
                    assert!(from.is_none(), "a call failed on a datagram");
                }
            }
        }
        // A request whose slot a newer one took is forgotten by the endpoint (a resend
        // is served afresh): it is no longer ours to answer.
        while let Some(token) = self.ep.poll_preempted() {
            let at = self
                .serving
                .iter()
                .position(|(t, _)| *t == token)
                .expect("a preempted token that was not being served");
            let (_, key) = self.serving.remove(at);
            self.in_progress.remove(&key);
        }
        self.check();
    }

    fn end(&mut self, call: CallId) -> LiveCall {
        assert!(
            !self.cancelled.contains(&call),
            "an event for a cancelled call"
        );
        assert!(self.ended.insert(call), "a call ended twice");
        self.calls
            .remove(&call)
            .expect("an event for an unknown call")
    }

    fn check(&self) {
        let c = &self.config;
        let ep = &self.ep;
        assert!(ep.outstanding_calls() <= c.max_outstanding_calls);
        // Validation probes are calls too, without events.
        assert!(ep.outstanding_calls() >= self.calls.len());
        if self.config.limits.validation_probe.is_none() {
            assert_eq!(ep.outstanding_calls(), self.calls.len());
        }
        assert!(ep.requests_in_progress() <= c.max_concurrent_requests);
        assert_eq!(ep.requests_in_progress(), self.serving.len());
        assert!(ep.dedup_entries() <= c.dedup_capacity + c.max_concurrent_requests);
        assert!(ep.dedup_bytes() <= c.dedup_max_bytes);
        assert!(ep.timer_entries() <= 2 * ep.outstanding_calls() + 65);
        for (id, live) in &self.calls {
            if live.punctual {
                assert!(
                    self.now <= live.latest_end,
                    "call {id:?} outlived its schedule"
                );
            }
        }
        let s = ep.stats();
        if self.config.limits.validation_probe.is_none() {
            assert_eq!(
                s.calls_started,
                s.calls_succeeded + s.timeouts + s.calls_cancelled + ep.outstanding_calls() as u64
            );
        }
        // Every request handed out ends one way (a released answer was counted held
        // first, then sent; a preempted one gave its slot up). Drops over the budget also
        // count duplicates answered from the cache, hence a range rather than an equation.
        let ended = s.responses_sent - s.answers_released
            + s.requests_abandoned
            + s.requests_preempted
            + s.unsendable_responses
            + s.responses_too_large
            + ep.requests_in_progress() as u64;
        assert!(s.requests_received >= ended, "{s:?}");
        assert!(
            s.requests_received <= ended + s.answers_dropped_unvalidated + s.answers_held,
            "{s:?}"
        );
    }
}

fuzz_target!(|input: Input| {
    let cfg = &input.config;
    let dialect = if cfg.storj {
        Dialect::Storj
    } else {
        Dialect::Rpcudp
    };
    let mut config = EndpointConfig::for_dialect(dialect);
    config.max_outstanding_calls = usize::from(cfg.max_outstanding_calls % 9);
    config.max_concurrent_requests = usize::from(cfg.max_concurrent_requests % 9);
    config.dedup_capacity = usize::from(cfg.dedup_capacity % 9);
    config.dedup_max_bytes = usize::from(cfg.dedup_max_bytes % 1024);
    config.dedup_lifetime = Duration::from_millis(u64::from(cfg.dedup_lifetime_ms % 4000));
    if let Some(m) = cfg.max_response_body {
        config.max_response_body = usize::from(m);
    }
    config.decode_limits.max_depth = usize::from(cfg.max_depth % 16);
    let l = &mut config.limits;
    l.strict_local = cfg.strict_local;
    if cfg.requests_per_sec < 128 {
        l.requests_per_sec = f64::from(cfg.requests_per_sec % 8);
        l.requests_burst = f64::from(cfg.requests_per_sec % 5);
    }
    l.max_requests_per_source = usize::from(cfg.max_requests_per_source % 9);
    l.amplification_factor = usize::from(cfg.amplification_factor % 5);
    l.validation_probe = cfg.probe.then(|| ValidationProbe {
        method: "ping".into(),
        args: vec![],
        options: CallOptions {
            attempt_timeout: Duration::from_millis(200),
            ..CallOptions::default()
        },
    });
    l.max_held_answers = usize::from(cfg.max_held_answers % 5);
    l.max_held_bytes = usize::from(cfg.max_held_bytes % 2048);
    let base = Instant::now();
    let mut h = Harness {
        ep: Endpoint::new(config.clone(), cfg.seed),
        config,
        peers: PEERS.iter().map(|p| p.parse().unwrap()).collect(),
        now: base,
        calls: HashMap::new(),
        by_message: HashMap::new(),
        ended: HashSet::new(),
        cancelled: HashSet::new(),
        sent: Vec::new(),
        serving: Vec::new(),
        in_progress: HashSet::new(),
        answers: HashMap::new(),
        probes: HashMap::new(),
        bytes_in: HashMap::new(),
        unvalidated_out: HashMap::new(),
    };
    let n = PEERS.len();
    for op in input.ops.iter().take(256) {
        match op {
            Op::Raw { peer, bytes } => h.datagram(usize::from(*peer) % n, bytes),
            Op::Request { peer, id, arg } => {
                let p = usize::from(*peer) % n;
                let id = MessageId([id % 4; 20]);
                let mut d = Vec::new();
                encode_request(dialect, &id, "m", &[Value::from(*arg)], &mut d);
                h.datagram(p, &d);
            }
            Op::Response {
                nth,
                from_callee,
                peer,
                value,
            } => {
                if h.sent.is_empty() {
                    continue;
                }
                let (id, callee) = h.sent[usize::from(*nth) % h.sent.len()];
                let p = if *from_callee {
                    callee
                } else {
                    usize::from(*peer) % n
                };
                let mut d = Vec::new();
                encode_response(dialect, &id, &Value::from(*value), &mut d);
                h.datagram(p, &d);
            }
            Op::Call {
                peer,
                timeout_ms,
                retries,
                backoff,
                jitter,
                max_attempt_ms,
                deadline_ms,
            } => {
                let p = usize::from(*peer) % n;
                let options = CallOptions {
                    attempt_timeout: Duration::from_millis(u64::from(*timeout_ms)),
                    retries: u32::from(retries % 8),
                    backoff: 1.0 + f64::from(backoff % 4) / 2.0,
                    max_attempt_timeout: Duration::from_millis(u64::from(*max_attempt_ms)),
                    jitter: f64::from(*jitter) / 200.0,
                    deadline: deadline_ms.map(|d| Duration::from_millis(u64::from(d))),
                };
                let earliest = options
                    .attempt_timeout
                    .min(options.deadline.unwrap_or(Duration::MAX));
                let latest = options.max_duration();
                match h
                    .ep
                    .call(h.now, h.peers[p], "m", &[Value::from(1)], options)
                {
                    Ok(call) => {
                        assert!(h.calls.len() < h.config.max_outstanding_calls);
                        h.by_message.insert(call.message_id(), call);
                        h.calls.insert(
                            call,
                            LiveCall {
                                peer: p,
                                earliest_failure: h.now + earliest,
                                latest_end: h.now + latest,
                                max_duration: latest,
                                punctual: true,
                                datagram: None,
                            },
                        );
                    }
                    // Refused only when full (validation probes take slots too).
                    Err(_) => assert_eq!(h.ep.outstanding_calls(), h.config.max_outstanding_calls),
                }
                h.drain(None);
            }
            Op::Respond {
                nth,
                size,
                unsendable,
            } => {
                if h.serving.is_empty() {
                    continue;
                }
                let (token, key) = h.serving.remove(usize::from(*nth) % h.serving.len());
                h.in_progress.remove(&key);
                let value = if *unsendable {
                    Value::Map(vec![(1.into(), 1.into()), (1.into(), 2.into())])
                } else {
                    Value::Binary(vec![7; usize::from(*size) * 8])
                };
                h.ep.respond(h.now, token, &value);
                h.drain(None);
            }
            Op::Abandon { nth } => {
                if h.serving.is_empty() {
                    continue;
                }
                let (token, key) = h.serving.remove(usize::from(*nth) % h.serving.len());
                h.in_progress.remove(&key);
                h.ep.abandon(h.now, token);
                h.drain(None);
            }
            Op::Cancel { nth } => {
                let mut live: Vec<CallId> = h.calls.keys().copied().collect();
                if live.is_empty() {
                    continue;
                }
                live.sort_by_key(|c| c.message_id());
                let call = live[usize::from(*nth) % live.len()];
                h.ep.cancel(call);
                h.calls.remove(&call);
                h.cancelled.insert(call);
                h.drain(None);
            }
            Op::Advance { ms, late } => {
                let target = h.now + Duration::from_millis(u64::from(*ms));
                if *late {
                    h.advance_late(target);
                } else {
                    h.advance_punctually(target);
                }
            }
            Op::TimeoutNow => h.timeout(),
        }
    }
    // Every call ends: run the clock on time until the longest schedule is over.
    let now = h.now;
    let last = h
        .calls
        .values()
        .map(|c| {
            if c.punctual {
                c.latest_end
            } else {
                now + c.max_duration
            }
        })
        .max();
    if let Some(last) = last {
        h.advance_punctually(last.max(h.now));
    }
    assert!(h.calls.is_empty(), "{} calls never ended", h.calls.len());
});
