//! The endpoint: ties the codec, the call table, the timers and the duplicate cache.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use tracing::debug;

use super::calls::OutCall;
use super::config::{CallOptions, EndpointConfig};
use super::dedup::{Answer, DedupCache, Entry, Key, Removed};
use super::limits::{AnswerVerdict, Limits, Refusal, TableSizes};
use super::ownhash::OwnKeys;
use super::slots::Slots;
use super::stats::Stats;
use super::timers::Timers;
use super::warnings::WarnLimiter;
use super::{CallFailure, CallId, CallRefused, Event, RequestToken, Transmit};
use crate::subnet::SourceKey;
use crate::wire::rpc::{
    decode_packet, encode_request, encode_response, error_reply, error_reply_message, MessageId,
    Packet, HEADER_LEN,
};
use crate::wire::value::check_sendable;

/// One RPC endpoint: server and client on one socket, with no I/O and no clock.
///
/// # Method kinds
/// - **inputs**: [`handle_datagram`](Self::handle_datagram) (a datagram arrived),
///   [`handle_timeout`](Self::handle_timeout) (the time from `poll_timeout` came);
/// - **commands**: [`call`](Self::call), [`respond`](Self::respond),
///   [`respond_error`](Self::respond_error), [`abandon`](Self::abandon),
///   [`cancel`](Self::cancel);
/// - **outputs**: [`poll_transmit`](Self::poll_transmit) (datagrams to send, in order),
///   [`poll_event`](Self::poll_event) (requests to serve, calls finished),
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout` next);
/// - **inspection**: [`stats`](Self::stats), [`config`](Self::config) and a few sizes.
///
/// # Order
/// After any input or command, drain `poll_transmit` and `poll_event` until `None`, then
/// sleep until a datagram arrives, a command comes, or the instant of `poll_timeout`
/// (which can change after every input or command, so ask again each time). `now` must
/// not go backwards between calls; every method is cheap and never blocks.
///
/// A request becomes an [`Event::Request`]; the application runs the handler wherever it
/// likes and answers later with `respond(now, token, value)`, or `abandon(now, token)` to
/// send no answer. Each token must be answered once; the endpoint keeps at most
/// `max_concurrent_requests` unanswered and drops the excess, so a token never answered
/// holds its slot for good (a driver bounds its handlers' run time, then abandons).
///
/// # Example: two endpoints and a call, by hand
/// ```
/// use std::time::{Duration, Instant};
/// use rpcudp_proto::rpc::{CallOptions, Endpoint, EndpointConfig, Event};
///
/// let (a_addr, b_addr) = ("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:2000".parse().unwrap());
/// let mut a = Endpoint::new(EndpointConfig::default(), 1);
/// let mut b = Endpoint::new(EndpointConfig::default(), 2);
/// let now = Instant::now(); // the driver's clock; the endpoint never reads one
///
/// // A calls sayhi on B: one datagram comes out, and a timer 5 s away.
/// let call = a.call(now, b_addr, "sayhi", &["Alice".into()], CallOptions::default()).unwrap();
/// let request = a.poll_transmit().unwrap();
/// assert_eq!(request.destination, b_addr);
/// assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(5)));
///
/// // The network carries it to B, where it becomes an event for the application.
/// b.handle_datagram(now, a_addr, &request.payload);
/// let Some(Event::Request { token, from, method, args }) = b.poll_event() else { panic!() };
/// assert_eq!((from, method.as_str()), (a_addr, "sayhi"));
/// let answer = format!("hello {}", args[0].as_str().unwrap());
/// b.respond(now, token, &answer.into());
///
/// // The answer goes back to A, which reports the call done.
/// let response = b.poll_transmit().unwrap();
/// assert_eq!(response.destination, a_addr);
/// a.handle_datagram(now, b_addr, &response.payload);
/// assert_eq!(a.poll_event(), Some(Event::CallSucceeded { call, value: "hello Alice".into() }));
/// assert_eq!(a.poll_timeout(), None); // nothing left to wait for
/// ```
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    rng: SmallRng,
    /// Calls in flight, by message id (unique among them; the response must also come
    /// from `OutCall::peer`, so the effective key is (id, peer)).
    calls: HashMap<MessageId, OutCall, OwnKeys>,
    timers: Timers,
    /// Requests handed out and not yet answered: token -> dedup key, the local address
    /// the request came to (its answer leaves from there) and its arrival time (for
    /// `Stats::handler_latency`). (The key's hash rides along, so the duplicate cache
    /// never hashes it again.)
    serving: HashMap<RequestToken, Serving, OwnKeys>,
    /// Who holds the handler slots, for preemption under contention (see `slots`).
    slots: Slots,
    /// Requests whose slot was given to a newer one: the driver cancels their handlers
    /// ([`poll_preempted`](Self::poll_preempted)). At most `max_concurrent_requests`.
    preempted: VecDeque<RequestToken>,
    next_token: u64,
    dedup: DedupCache,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Per-source rates and shares, address validation (see `limits`).
    limits: Limits,
    /// Where answers are encoded before they are copied out at their exact size: one
    /// allocation per answer instead of a few reallocations of a growing `Vec` (a
    /// `find_node` answer of 20 contacts is about 800 bytes).
    scratch: Vec<u8>,
    /// The budget of warning lines (`admit_warning`).
    warnings: WarnLimiter,
}

impl Endpoint {
    /// A new endpoint. `seed` drives the message ids and the retry jitter: the same seed
    /// and the same inputs give the same outputs. (A driver talking to the Internet seeds
    /// it from the OS; ids need to be unpredictable only as far as the peers care.)
    pub fn new(config: EndpointConfig, seed: u64) -> Self {
        let dedup = DedupCache::new(
            config.dedup_capacity,
            config.dedup_lifetime,
            config.dedup_max_bytes,
        );
        let limits = Limits::new(config.limits.clone());
        Endpoint {
            limits,
            warnings: WarnLimiter::new(config.warn_lines_per_sec),
            scratch: Vec::new(),
            config,
            rng: SmallRng::seed_from_u64(seed),
            calls: HashMap::default(),
            timers: Timers::default(),
            serving: HashMap::default(),
            slots: Slots::default(),
            preempted: VecDeque::new(),
            next_token: 0,
            dedup,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Starts a call of `method(args…)` on the peer at `to`: the request datagram is
    /// queued for `poll_transmit` and the call's timer set (see [`CallOptions`] for the
    /// schedule of resends and the timeout). The outcome comes later as
    /// [`Event::CallSucceeded`] or [`Event::CallFailed`] with the returned [`CallId`].
    ///
    /// Refused, with nothing sent, if the body exceeds the request limit, an argument
    /// cannot be sent to the peers, or too many calls are in flight.
    pub fn call(
        &mut self,
        now: Instant,
        to: SocketAddr,
        method: &str,
        args: &[Value],
        options: CallOptions,
    ) -> Result<CallId, CallRefused> {
        if self.calls.len() >= self.config.max_outstanding_calls {
            self.stats.refused_overload += 1;
            self.stats.calls_refused_outstanding += 1;
            return Err(CallRefused::TooManyOutstanding {
                limit: self.config.max_outstanding_calls,
            });
        }
        let max_depth = self.config.decode_limits.max_depth;
        // The receiving decoder counts the body `[method, args]` and the args array as two
        // levels, so an argument may nest two fewer than the limit.
        let arg_depth = max_depth.saturating_sub(2);
        for arg in args {
            if let Err(e) = check_sendable(arg, arg_depth) {
                self.stats.calls_refused_unsendable += 1;
                return Err(CallRefused::Unsendable(e));
            }
        }
        let mut datagram = Vec::new();
        // Encode with a placeholder id: the size check needs the bytes, the id comes after.
        encode_request(
            self.config.dialect,
            &MessageId([0; 20]),
            method,
            args,
            &mut datagram,
        );
        let size = datagram.len() - HEADER_LEN;
        let limit = self.config.effective_max_request_body();
        if size > limit {
            self.stats.calls_refused_too_large += 1;
            return Err(CallRefused::RequestTooLarge { size, limit });
        }
        let id = self.fresh_message_id();
        datagram[1..HEADER_LEN].copy_from_slice(&id.0);

        let call = OutCall::start(now, to, &datagram, options, &mut self.rng);
        self.timers.push(call.timer, id);
        self.calls.insert(id, call);
        self.stats.calls_started += 1;
        self.transmit(to, datagram);
        Ok(CallId(id))
    }

    /// Feeds one datagram that arrived from `from`. Requests become [`Event::Request`]
    /// (or are answered from the duplicate cache, or dropped); responses end their call.
    /// Anything malformed, unknown, late or from the wrong address is dropped and
    /// counted in [`Stats`]; nothing here panics on any input.
    ///
    /// The local address the datagram came to is not known here, so answers leave with
    /// [`Transmit::source`] `None`; a driver that knows it (IP_PKTINFO) calls
    /// [`Protocol::handle_datagram`](crate::Protocol::handle_datagram) instead.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.receive(now, from, None, datagram)
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, local: Option<IpAddr>, datagram: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        let peer = canonical(from);
        self.limits.on_received(peer, datagram.len());
        // Rate limits come before decoding, so a flood costs a table lookup per datagram.
        // Responses are not limited: one that matches no call costs a lookup anyway.
        if datagram.first() == Some(&self.config.dialect.request_kind()) {
            match self.limits.admit_rate(now, peer, datagram.len()) {
                Ok(()) => {}
                Err(Refusal::Requests) => {
                    self.stats.requests_rate_limited += 1;
                    debug!(%from, "dropped request: source over its request rate");
                    return;
                }
                Err(Refusal::Bytes) => {
                    self.stats.bytes_rate_limited += 1;
                    debug!(%from, "dropped request: source over its byte rate");
                    return;
                }
            }
        }
        self.expire_dedup(now);
        let packet = match decode_packet(self.config.dialect, datagram, &self.config.decode_limits)
        {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                debug!(%from, len = datagram.len(), error = %e, "dropped malformed datagram");
                return;
            }
        };
        match packet {
            Packet::Request { id, method, args } => {
                self.on_request(now, from, local, datagram.len(), id, method, args)
            }
            Packet::Response { id, value } => self.on_response(from, id, value),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<IpAddr>,
        len: usize,
        id: MessageId,
        method: String,
        args: Vec<Value>,
    ) {
        let key = (canonical(from), id);
        let hash = self.dedup.hash(&key);
        match self.dedup.get(hash, &key) {
            Some(Entry::Done {
                answer: Some(bytes),
                ..
            }) => {
                let payload = bytes.as_slice().to_vec();
                // A cached answer obeys the amplification budget like a fresh one, but is
                // never held: the first copy is (or was) already. It leaves from the
                // address this copy came to, as the first answer went.
                if self.limits.offer_answer(key.0, &payload, local, false) != AnswerVerdict::Send {
                    self.stats.answers_dropped_unvalidated += 1;
                } else if !self.limits.take_destination(now, key.0, payload.len(), len) {
                    self.stats.answers_dropped_destination_budget += 1;
                } else {
                    self.stats.duplicates_answered += 1;
                    self.limits.on_sent(key.0, payload.len());
                    self.transmit_from(from, local, payload);
                }
                return;
            }
            Some(Entry::Done { answer: None, .. }) => {
                self.stats.duplicates_abandoned += 1;
                return;
            }
            Some(Entry::InProgress) => {
                self.stats.duplicates_in_progress += 1;
                return;
            }
            None => {}
        }
        let subnet = SourceKey::of(key.0.ip());
        let validated = self.limits.is_validated(key.0);
        if self.serving.len() >= self.config.max_concurrent_requests {
            match self.slots.victim(subnet, validated) {
                Some(victim) => self.preempt(RequestToken(victim)),
                None => {
                    // Not remembered: a resend may find room later.
                    self.stats.refused_overload += 1;
                    self.stats.requests_dropped_overload += 1;
                    debug!(%from, %method, "dropped request: too many in progress");
                    return;
                }
            }
        }
        let token = RequestToken(self.next_token);
        self.next_token += 1;
        self.slots.start(token.0, subnet, validated);
        self.serving.insert(
            token,
            Serving {
                key,
                hash,
                local,
                arrived: now,
                len,
            },
        );
        // An answer of an earlier round (its entry expired or was evicted) may still be
        // held for the probe: it must not follow this round's answer.
        self.stats.held_answers_dropped += self.limits.drop_held_round(key.0, &id) as u64;
        self.dedup.start(hash, key);
        self.stats.requests_received += 1;
        self.events.push_back(Event::Request {
            token,
            from,
            method,
            args,
        });
    }

    fn on_response(&mut self, from: SocketAddr, id: MessageId, value: Value) {
        // One lookup for the usual case; a response from the wrong address (rare) puts
        // the call back untouched.
        match self.calls.remove(&id) {
            None => {
                self.stats.unknown_responses += 1;
                debug!(%from, %id, "dropped response to no call in flight");
            }
            Some(call) if !same_peer(call.peer, from) => {
                self.stats.spoofed_responses += 1;
                debug!(%from, expected = %call.peer, %id, "dropped response from the wrong address");
                self.calls.insert(id, call);
            }
            Some(_) => {
                self.clean_timers();
                // The answer carried our random message id: `from` receives there.
                self.validate(from);
                let remote = match self.config.error_replies {
                    true => error_reply_message(&value).map(str::to_owned),
                    false => None,
                };
                match remote {
                    Some(_) => self.stats.error_replies_received += 1,
                    None => self.stats.calls_succeeded += 1,
                }
                if self.limits.take_probe(&id).is_some() {
                    return; // our own probe: nobody waits for an event
                }
                let call = CallId(id);
                self.events.push_back(match remote {
                    Some(message) => Event::CallFailed {
                        call,
                        error: CallFailure::Remote { message },
                    },
                    None => Event::CallSucceeded { call, value },
                });
            }
        }
    }

    /// Handles every timer due at `now`: resends, timeouts, duplicate-cache expiry. Call it
    /// when the instant of [`poll_timeout`](Self::poll_timeout) has come (calling it at
    /// other times is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, id)) = self.timers.pop_due(now) {
            let Some(call) = self.calls.get_mut(&id) else {
                continue; // stale: the call ended
            };
            if call.timer != at {
                continue; // stale: the call was rescheduled
            }
            if call.is_over(now) {
                self.calls.remove(&id);
                self.stats.timeouts += 1;
                debug!(%id, "call timed out");
                if let Some(addr) = self.limits.take_probe(&id) {
                    if !self.limits.is_validated(addr) {
                        self.stats.held_answers_dropped += self.limits.drop_held(addr) as u64;
                    }
                    continue;
                }
                self.events.push_back(Event::CallFailed {
                    call: CallId(id),
                    error: CallFailure::Timeout,
                });
                continue;
            }
            let payload = call.next_attempt(now, &mut self.rng);
            let (peer, timer) = (call.peer, call.timer);
            self.timers.push(timer, id);
            if let Some(payload) = payload {
                self.stats.retries += 1;
                self.transmit(peer, payload.into_vec());
            }
        }
        self.clean_timers();
        self.expire_dedup(now);
    }

    /// Answers the request `token` with `value`: the response is queued for
    /// `poll_transmit` and remembered for duplicates. If the value cannot be sent to the
    /// peers, or its body is over `max_response_body`, nothing is sent (as if abandoned)
    /// and it is counted. An unknown or already answered token is ignored.
    pub fn respond(&mut self, now: Instant, token: RequestToken, value: &Value) {
        let Some(Serving {
            key,
            hash,
            local,
            arrived,
            len,
        }) = self.serving.remove(&token)
        else {
            debug!(?token, "respond for a request not in progress; ignored");
            return;
        };
        self.stats
            .handler_latency
            .record(now.saturating_duration_since(arrived));
        let (peer, id) = key;
        self.slots.end(token.0);
        if let Err(e) = check_sendable(value, self.config.decode_limits.max_depth) {
            self.stats.unsendable_responses += 1;
            debug!(%peer, %id, error = %e, "response not sent: unsendable value");
            self.finish(now, hash, key, None);
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        encode_response(self.config.dialect, &id, value, &mut scratch);
        let datagram = scratch.as_slice().to_vec();
        self.scratch = scratch;
        let size = datagram.len() - HEADER_LEN;
        if size > self.config.effective_max_response_body() {
            self.stats.responses_too_large += 1;
            debug!(%peer, %id, size, "response not sent: body over the limit");
            self.finish(now, hash, key, None);
            return;
        }
        self.finish(now, hash, key, Some(Answer::new(&datagram)));
        self.send_answer(now, peer, local, len, datagram);
    }

    /// Answers the request `token` with an error reply carrying `message` (the map
    /// `{"__rpcudp_error__": message}`, cut to `MAX_ERROR_MESSAGE` bytes; docs/wire.md):
    /// a Python caller receives that map as its value, one of ours ends the call with
    /// [`CallFailure::Remote`]. Otherwise as [`respond`](Self::respond): the same
    /// limits, the same duplicate cache.
    pub fn respond_error(&mut self, now: Instant, token: RequestToken, message: &str) {
        if self.serving.contains_key(&token) {
            self.stats.error_replies_sent += 1;
        }
        self.respond(now, token, &error_reply(message));
    }

    /// Sends a fresh answer (to a request of `request_len` bytes) within `peer`'s
    /// amplification budget and its destination budget, or holds it while a probe
    /// validates `peer` (if configured), or drops it.
    fn send_answer(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        local: Option<IpAddr>,
        request_len: usize,
        datagram: Vec<u8>,
    ) {
        match self.limits.offer_answer(peer, &datagram, local, true) {
            AnswerVerdict::Send
                if !self
                    .limits
                    .take_destination(now, peer, datagram.len(), request_len) =>
            {
                self.stats.answers_dropped_destination_budget += 1;
                debug!(%peer, len = datagram.len(), "answer not sent: over the destination budget");
            }
            AnswerVerdict::Send => {
                self.stats.responses_sent += 1;
                self.limits.on_sent(peer, datagram.len());
                self.transmit_from(peer, local, datagram);
            }
            AnswerVerdict::Drop => {
                self.stats.answers_dropped_unvalidated += 1;
                debug!(%peer, len = datagram.len(), "answer not sent: over the unvalidated budget");
            }
            AnswerVerdict::Held { probe } => {
                self.stats.answers_held += 1;
                if !probe {
                    return;
                }
                let Some(p) = self.config.limits.validation_probe.clone() else {
                    return;
                };
                match self.call(now, peer, &p.method, &p.args, p.options) {
                    Ok(call) => {
                        self.stats.validation_probes_sent += 1;
                        self.limits.probe_started(peer, call.0);
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "validation probe not started; held answers dropped");
                        self.stats.held_answers_dropped += self.limits.drop_held(peer) as u64;
                    }
                }
            }
        }
    }

    fn validate(&mut self, addr: SocketAddr) {
        let addr = canonical(addr);
        let (newly, released) = self.limits.validate(addr);
        if newly {
            self.stats.addresses_validated += 1;
        }
        for (datagram, local) in released {
            self.stats.answers_released += 1;
            self.stats.responses_sent += 1;
            self.transmit_from(addr, local, datagram);
        }
    }

    /// Whether `addr` has proven it receives at that address (answered a call of ours, or
    /// was marked with [`mark_validated`](Self::mark_validated)). Answers to it are then
    /// not held to the amplification budget.
    pub fn is_validated(&self, addr: SocketAddr) -> bool {
        self.limits.is_validated(canonical(addr))
    }

    /// How many more bytes of answers may go to `addr` now: `None` if it is validated
    /// (no limit), else `amplification_factor` × the bytes received from it, minus the
    /// bytes of answers already sent to it (our own requests do not count). A layer above with a big answer checks this and, when
    /// the answer does not fit, proves the address first (a call it must answer).
    ///
    /// ```
    /// use std::time::Instant;
    /// use rpcudp_proto::rpc::{Endpoint, EndpointConfig};
    /// let mut e = Endpoint::new(EndpointConfig::default(), 1);
    /// let peer = "192.0.2.1:4000".parse().unwrap();
    /// assert_eq!(e.amplification_budget(peer), Some(0)); // never heard from
    /// e.handle_datagram(Instant::now(), peer, &[9; 30]); // 30 bytes (malformed; counted)
    /// assert_eq!(e.amplification_budget(peer), Some(90));
    /// e.mark_validated(peer);
    /// assert_eq!(e.amplification_budget(peer), None);
    /// ```
    pub fn amplification_budget(&self, addr: SocketAddr) -> Option<usize> {
        self.limits.budget(canonical(addr))
    }

    /// Marks `addr` validated: the layer above learned that it receives there (say, it
    /// answered a request that went through another endpoint). Answers held for it are
    /// queued for `poll_transmit` now.
    pub fn mark_validated(&mut self, addr: SocketAddr) {
        self.validate(addr);
    }

    /// Requests from `addr`'s subnet (/24 or /64) handed out and not yet answered.
    pub fn requests_in_progress_from(&self, addr: SocketAddr) -> usize {
        self.slots.of(SourceKey::of(canonical(addr).ip()))
    }

    /// How full the per-source tables are (each bounded by its `LimitsConfig` field).
    pub fn limit_tables(&self) -> TableSizes {
        TableSizes {
            inflight_sources: self.slots.subnets(),
            ..self.limits.table_sizes()
        }
    }

    /// The next request whose handler slot was given to a newer request (all slots were
    /// taken; see [`LimitsConfig`](super::LimitsConfig) on handler slots): it is no
    /// longer in progress, `respond` / `abandon` for it are ignored, and a driver
    /// cancels its handler. A resend of it is served afresh. Drain it after every input,
    /// with `poll_event`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use rpcudp_proto::rpc::{Endpoint, EndpointConfig, Event};
    /// use rpcudp_proto::wire::rpc::{encode_request, Dialect, MessageId};
    /// let config = EndpointConfig { max_concurrent_requests: 1, ..EndpointConfig::default() };
    /// let mut e = Endpoint::new(config, 1);
    /// let now = Instant::now();
    /// for (n, from) in ["192.0.2.1:1", "198.51.100.1:1"].into_iter().enumerate() {
    ///     let mut d = Vec::new();
    ///     encode_request(Dialect::Rpcudp, &MessageId([n as u8; 20]), "sleep", &[], &mut d);
    ///     e.handle_datagram(now, from.parse().unwrap(), &d);
    /// }
    /// let Some(Event::Request { token: first, .. }) = e.poll_event() else { panic!() };
    /// assert_eq!(e.poll_preempted(), Some(first)); // the second took its slot
    /// assert_eq!(e.requests_in_progress(), 1);
    /// ```
    pub fn poll_preempted(&mut self) -> Option<RequestToken> {
        self.preempted.pop_front()
    }

    /// Gives the slot of `token` up for a newer request: forgotten (a resend is served
    /// afresh), queued for the driver to cancel.
    fn preempt(&mut self, token: RequestToken) {
        let Some(s) = self.serving.remove(&token) else {
            return;
        };
        self.slots.end(token.0);
        self.dedup.forget_in_progress(s.hash, &s.key);
        self.stats.requests_preempted += 1;
        debug!(peer = %s.key.0, "request preempted: its slot went to a newer request");
        if self.preempted.len() >= self.config.max_concurrent_requests.max(1) {
            self.preempted.pop_front();
        }
        self.preempted.push_back(token);
    }

    /// Gives up the request `token` without answering, as the Python peers do when the
    /// method is unknown or the handler fails: the caller times out, and duplicates of the
    /// request are dropped rather than handled again, for `dedup_lifetime` from `now`.
    pub fn abandon(&mut self, now: Instant, token: RequestToken) {
        let Some(Serving {
            key, hash, arrived, ..
        }) = self.serving.remove(&token)
        else {
            return;
        };
        self.stats.requests_abandoned += 1;
        self.stats
            .handler_latency
            .record(now.saturating_duration_since(arrived));
        self.slots.end(token.0);
        self.finish(now, hash, key, None);
    }

    /// Withdraws a call the caller no longer waits for: no event will come for it, and a
    /// late response is dropped and counted in `unknown_responses`. Unknown ids are
    /// ignored.
    pub fn cancel(&mut self, call: CallId) {
        if self.calls.remove(&call.0).is_some() {
            self.stats.calls_cancelled += 1;
            self.clean_timers();
        }
    }

    /// Whether a driver may log a warning line at `now` about a failure a peer caused
    /// (an unknown method, wrong arguments, a handler's error or panic): `Some(n)` yes,
    /// saying that `n` were left out since the last one; `None` no. At most
    /// [`EndpointConfig::warn_lines_per_sec`] a second, so a flood cannot fill the log.
    pub fn admit_warning(&mut self, now: Instant) -> Option<u64> {
        self.warnings.admit(now)
    }

    /// The next datagram to send, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the earliest
    /// resend, call timeout or duplicate-cache expiry. `None`: nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.peek(), self.dedup.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Calls in flight.
    pub fn outstanding_calls(&self) -> usize {
        self.calls.len()
    }

    /// Requests handed out and not yet answered or abandoned.
    pub fn requests_in_progress(&self) -> usize {
        self.serving.len()
    }

    /// Entries in the duplicate cache (in progress and answered).
    pub fn dedup_entries(&self) -> usize {
        self.dedup.len()
    }

    /// Bytes of responses held in the duplicate cache.
    pub fn dedup_bytes(&self) -> usize {
        self.dedup.bytes()
    }

    /// Entries in the timer heap, live and stale: at most 2 × the calls in flight + 65
    /// after any input (the tests and the `rpc_endpoint` fuzz target check it).
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// The call whose request `transmit` is (its first attempt or a resend), if that
    /// call is still in flight: how a driver that failed to send a datagram tells which
    /// caller to report the error to, without guessing from the destination.
    pub fn call_of(&self, transmit: &Transmit) -> Option<CallId> {
        let header = transmit.payload.get(..HEADER_LEN)?;
        if header[0] != self.config.dialect.request_kind() {
            return None;
        }
        let mut id = MessageId([0; 20]);
        id.0.copy_from_slice(&header[1..]);
        let call = self.calls.get(&id)?;
        same_peer(call.peer, transmit.destination).then_some(CallId(id))
    }

    fn transmit(&mut self, destination: SocketAddr, payload: Vec<u8>) {
        self.transmit_from(destination, None, payload)
    }

    fn transmit_from(&mut self, destination: SocketAddr, source: Option<IpAddr>, payload: Vec<u8>) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.transmits.push_back(Transmit {
            destination,
            source,
            payload,
        });
    }

    fn finish(&mut self, now: Instant, hash: u64, key: Key, answer: Option<Answer>) {
        let removed = self.dedup.finish(now, hash, key, answer);
        self.count_removed(removed);
    }

    fn expire_dedup(&mut self, now: Instant) {
        let removed = self.dedup.expire(now);
        self.count_removed(removed);
    }

    fn count_removed(&mut self, removed: Removed) {
        self.stats.dedup_evictions += removed.evicted;
        self.stats.dedup_expired += removed.expired;
    }

    /// A random id not used by any call in flight.
    fn fresh_message_id(&mut self) -> MessageId {
        loop {
            let id = MessageId(self.rng.random());
            // 160 random bits: a clash is practically impossible, but never reuse one.
            if !self.calls.contains_key(&id) {
                return id;
            }
        }
    }

    /// Keeps the timer heap's top live (so `poll_timeout` is exact) and its size
    /// proportional to the calls in flight.
    fn clean_timers(&mut self) {
        let calls = &self.calls;
        let live = |at: Instant, id: &MessageId| calls.get(id).is_some_and(|c| c.timer == at);
        self.timers.clean_top(live);
        self.timers
            .maybe_compact(calls.len(), |e| live(e.0 .0, &e.0 .1));
    }
}

/// A request handed out and not yet answered.
#[derive(Debug)]
struct Serving {
    /// Its duplicate-cache key and the key's hash (so the cache never hashes it again).
    key: Key,
    hash: u64,
    /// The local address it came to (its answer leaves from there).
    local: Option<IpAddr>,
    /// When it arrived (for `Stats::handler_latency`).
    arrived: Instant,
    /// Its datagram's length (for the destination budget).
    len: usize,
}

/// The address with IPv4-mapped IPv6 written as IPv4 and the flow label cleared, so one
/// peer has one key whatever socket family saw it.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
        },
    }
}

/// Whether a response from `from` may answer a request sent to `to`: same IP (IPv4-mapped
/// IPv6 equal to IPv4) and port; IPv6 scope ids must agree when both are known.
pub(crate) fn same_peer(to: SocketAddr, from: SocketAddr) -> bool {
    match (canonical(to), canonical(from)) {
        (SocketAddr::V6(a), SocketAddr::V6(b)) => {
            a.ip() == b.ip()
                && a.port() == b.port()
                && (a.scope_id() == 0 || b.scope_id() == 0 || a.scope_id() == b.scope_id())
        }
        (a, b) => a == b,
    }
}

impl crate::Protocol for Endpoint {
    type Event = Event;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
    ) {
        Endpoint::receive(self, now, from, local, datagram)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Endpoint::handle_timeout(self, now)
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Endpoint::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Endpoint::poll_timeout(self)
    }
}
