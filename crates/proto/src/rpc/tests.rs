//! Endpoint tests with hand-driven time: every timer is reached by setting `now`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rmpv::Value;

use super::*;
use crate::wire::rpc::{encode_request, encode_response, Dialect, MessageId};

const SECOND: Duration = Duration::from_secs(1);

/// An arbitrary origin for virtual time. Only differences from it matter; `Instant` has
/// no other constructor, hence the one permitted clock read.
#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn a_addr() -> SocketAddr {
    addr("127.0.0.1:1000")
}

fn b_addr() -> SocketAddr {
    addr("127.0.0.1:2000")
}

fn opts(timeout_secs: u64, retries: u32) -> CallOptions {
    CallOptions {
        attempt_timeout: Duration::from_secs(timeout_secs),
        retries,
        jitter: 0.0,
        ..CallOptions::default()
    }
}

/// Two endpoints, A (caller) and B (callee), and a clock that only moves by hand.
struct Pair {
    start: Instant,
    now: Instant,
    a: Endpoint,
    b: Endpoint,
}

impl Pair {
    fn new() -> Self {
        Pair::with(EndpointConfig::default(), EndpointConfig::default())
    }

    fn with(a: EndpointConfig, b: EndpointConfig) -> Self {
        let now = t0();
        Pair {
            start: now,
            now,
            a: Endpoint::new(a, 1),
            b: Endpoint::new(b, 2),
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.start + Duration::from_secs_f64(secs)
    }

    fn advance_to(&mut self, t: Instant) {
        self.now = t;
        self.a.handle_timeout(t);
        self.b.handle_timeout(t);
    }

    fn call(&mut self, method: &str, args: &[Value], options: CallOptions) -> CallId {
        self.a
            .call(self.now, b_addr(), method, args, options)
            .unwrap()
    }

    /// Carries every datagram A wants to send to B; returns how many.
    fn a_to_b(&mut self) -> usize {
        let mut n = 0;
        while let Some(t) = self.a.poll_transmit() {
            assert_eq!(t.destination, b_addr());
            self.b.handle_datagram(self.now, a_addr(), &t.payload);
            n += 1;
        }
        n
    }

    /// Carries every datagram B wants to send to A; returns how many.
    fn b_to_a(&mut self) -> usize {
        let mut n = 0;
        while let Some(t) = self.b.poll_transmit() {
            assert_eq!(t.destination, a_addr());
            self.a.handle_datagram(self.now, b_addr(), &t.payload);
            n += 1;
        }
        n
    }

    /// B's next request event.
    fn b_request(&mut self) -> (RequestToken, String, Vec<Value>) {
        match self.b.poll_event() {
            Some(Event::Request {
                token,
                from,
                method,
                args,
            }) => {
                assert_eq!(from, a_addr());
                (token, method, args)
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }
}

fn drain(e: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| e.poll_transmit()).collect()
}

fn events(e: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn response_bytes(dialect: Dialect, id: MessageId, value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(dialect, &id, value, &mut out);
    out
}

fn request_bytes(dialect: Dialect, id: MessageId, method: &str, args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(dialect, &id, method, args, &mut out);
    out
}

#[test]
fn call_succeeds_with_the_callees_answer() {
    let mut p = Pair::new();
    let call = p.call("add", &[Value::from(2), Value::from(3)], opts(5, 0));
    assert_eq!(p.a_to_b(), 1);
    let (token, method, args) = p.b_request();
    assert_eq!(
        (method.as_str(), args),
        ("add", vec![Value::from(2), Value::from(3)])
    );
    p.b.respond(p.now, token, &Value::from(5));
    assert_eq!(p.b_to_a(), 1);
    assert_eq!(
        events(&mut p.a),
        [Event::CallSucceeded {
            call,
            value: Value::from(5)
        }]
    );
    assert_eq!(p.a.outstanding_calls(), 0);
    assert_eq!(p.a.poll_timeout(), None);
    let s = p.a.stats();
    assert_eq!(
        (
            s.calls_started,
            s.calls_succeeded,
            s.datagrams_out,
            s.datagrams_in
        ),
        (1, 1, 1, 1)
    );
    let s = p.b.stats();
    assert_eq!((s.requests_received, s.responses_sent), (1, 1));
}

#[test]
fn call_times_out_after_the_attempt_timeout_without_retries() {
    let mut p = Pair::new();
    let call = p.call("ping", &[], CallOptions::default());
    drain(&mut p.a);
    assert_eq!(p.a.poll_timeout(), Some(p.at(5.0)));
    p.advance_to(p.at(5.0) - Duration::from_nanos(1));
    assert!(events(&mut p.a).is_empty());
    p.advance_to(p.at(5.0));
    assert_eq!(
        events(&mut p.a),
        [Event::CallFailed {
            call,
            error: CallFailure::Timeout
        }]
    );
    assert!(drain(&mut p.a).is_empty(), "no resend without retries");
    assert_eq!(p.a.stats().timeouts, 1);
    assert_eq!(p.a.stats().retries, 0);
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn retries_resend_the_byte_identical_datagram_with_doubling_waits() {
    let mut p = Pair::new();
    let call = p.call("ping", &[Value::from("x")], opts(5, 2));
    let first = drain(&mut p.a);
    assert_eq!(first.len(), 1);
    let mut sends = vec![(0.0, first[0].clone())];
    for t in [5.0, 15.0] {
        assert_eq!(p.a.poll_timeout(), Some(p.at(t)));
        p.advance_to(p.at(t));
        let out = drain(&mut p.a);
        assert_eq!(out.len(), 1, "one resend at {t}");
        sends.push((t, out[0].clone()));
        assert!(events(&mut p.a).is_empty());
    }
    for (_, s) in &sends {
        assert_eq!(
            s, &sends[0].1,
            "resends are the same datagram, same message id"
        );
    }
    assert_eq!(&sends[0].1.payload[1..21], &call.message_id().0);
    assert_eq!(p.a.poll_timeout(), Some(p.at(35.0)));
    p.advance_to(p.at(35.0));
    assert_eq!(
        events(&mut p.a),
        [Event::CallFailed {
            call,
            error: CallFailure::Timeout
        }]
    );
    assert_eq!((p.a.stats().retries, p.a.stats().timeouts), (2, 1));
}

#[test]
fn a_resent_request_is_still_answered_and_counts_once() {
    let mut p = Pair::new();
    let call = p.call("ping", &[], opts(1, 3));
    drain(&mut p.a); // the first request is lost
    p.advance_to(p.at(1.0));
    assert_eq!(p.a_to_b(), 1);
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::from("pong"));
    p.b_to_a();
    assert_eq!(
        events(&mut p.a),
        [Event::CallSucceeded {
            call,
            value: "pong".into()
        }]
    );
    assert_eq!(p.a.poll_timeout(), None, "no resend after the answer");
}

#[test]
fn jittered_backoff_stays_within_each_nominal_wait_and_the_total() {
    for seed in 0..50 {
        let now = t0();
        let mut e = Endpoint::new(EndpointConfig::default(), seed);
        let o = CallOptions {
            attempt_timeout: SECOND,
            retries: 5,
            backoff: 2.0,
            jitter: 0.5,
            max_attempt_timeout: Duration::from_secs(8),
            deadline: None,
        };
        let call = e.call(now, b_addr(), "m", &[], o.clone()).unwrap();
        drain(&mut e);
        let mut last = now;
        let mut gaps = vec![];
        for _ in 0..10 {
            let Some(t) = e.poll_timeout() else { break };
            e.handle_timeout(t);
            gaps.push(t - last);
            last = t;
        }
        // waits 1, 2, 4, 8 (capped), 8 jittered down by up to half, then 8 in full.
        let nominal = [1u64, 2, 4, 8, 8, 8];
        assert_eq!(gaps.len(), 6, "seed {seed}");
        for (i, (g, n)) in gaps.iter().zip(nominal).enumerate() {
            let n = Duration::from_secs(n);
            if i < 5 {
                assert!(
                    *g <= n && *g >= n / 2,
                    "seed {seed} attempt {i}: {g:?} vs {n:?}"
                );
            } else {
                assert_eq!(*g, n, "the last attempt waits in full");
            }
        }
        assert!(last - now <= o.max_duration());
        assert_eq!(o.max_duration(), Duration::from_secs(31));
        assert_eq!(
            events(&mut e),
            [Event::CallFailed {
                call,
                error: CallFailure::Timeout
            }]
        );
        assert_eq!(e.stats().retries, 5);
    }
}

#[test]
fn jitter_depends_on_the_seed_and_replays_with_it() {
    let schedule = |seed| {
        let now = t0();
        let mut e = Endpoint::new(EndpointConfig::default(), seed);
        let o = CallOptions {
            retries: 3,
            jitter: 0.5,
            ..CallOptions::default()
        };
        e.call(now, b_addr(), "m", &[], o).unwrap();
        let mut times = vec![];
        while let Some(t) = e.poll_timeout() {
            times.push(t - now);
            e.handle_timeout(t);
        }
        (times, drain(&mut e))
    };
    assert_eq!(schedule(7), schedule(7));
    assert_ne!(schedule(7).0, schedule(8).0);
    assert_ne!(
        schedule(7).1[0].payload[1..21],
        schedule(8).1[0].payload[1..21]
    );
}

#[test]
fn the_overall_deadline_cuts_the_schedule_short() {
    let mut p = Pair::new();
    let o = CallOptions {
        deadline: Some(Duration::from_secs(12)),
        ..opts(5, 10)
    };
    assert_eq!(o.max_duration(), Duration::from_secs(12));
    let call = p.call("m", &[], o);
    drain(&mut p.a);
    p.advance_to(p.at(5.0));
    assert_eq!(drain(&mut p.a).len(), 1);
    // The next resend would be at 15 s: past the deadline, so the call ends at 12 s.
    assert_eq!(p.a.poll_timeout(), Some(p.at(12.0)));
    p.advance_to(p.at(12.0));
    assert!(drain(&mut p.a).is_empty(), "no resend at the deadline");
    assert_eq!(
        events(&mut p.a),
        [Event::CallFailed {
            call,
            error: CallFailure::Timeout
        }]
    );
    assert_eq!(p.a.stats().retries, 1);
}

#[test]
fn late_response_after_timeout_is_dropped_and_counted() {
    let mut p = Pair::new();
    let call = p.call("slow", &[], opts(5, 0));
    p.a_to_b();
    let (token, _, _) = p.b_request();
    p.advance_to(p.at(5.0));
    assert_eq!(
        events(&mut p.a),
        [Event::CallFailed {
            call,
            error: CallFailure::Timeout
        }]
    );
    p.b.respond(p.now, token, &Value::from(1));
    assert_eq!(p.b_to_a(), 1);
    assert!(
        events(&mut p.a).is_empty(),
        "no second outcome for the call"
    );
    assert_eq!(p.a.stats().unknown_responses, 1);
    assert_eq!(p.a.stats().calls_succeeded, 0);
}

#[test]
fn spoofed_response_from_another_address_is_ignored_and_the_real_one_still_accepted() {
    let mut p = Pair::new();
    let call = p.call("m", &[], opts(5, 0));
    p.a_to_b();
    let forged = response_bytes(Dialect::Rpcudp, call.message_id(), &Value::from("forged"));
    for liar in ["127.0.0.1:2001", "127.0.0.2:2000", "[::1]:2000"] {
        p.a.handle_datagram(p.now, addr(liar), &forged);
    }
    assert!(events(&mut p.a).is_empty());
    assert_eq!(p.a.stats().spoofed_responses, 3);
    assert_eq!(p.a.outstanding_calls(), 1);
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::from("real"));
    p.b_to_a();
    assert_eq!(
        events(&mut p.a),
        [Event::CallSucceeded {
            call,
            value: "real".into()
        }]
    );
}

#[test]
fn response_from_the_ipv4_mapped_form_of_the_callee_is_accepted() {
    let now = t0();
    let mut a = Endpoint::new(EndpointConfig::default(), 1);
    let call = a.call(now, b_addr(), "m", &[], opts(5, 0)).unwrap();
    let resp = response_bytes(Dialect::Rpcudp, call.message_id(), &Value::Nil);
    a.handle_datagram(now, addr("[::ffff:127.0.0.1]:2000"), &resp);
    assert_eq!(
        events(&mut a),
        [Event::CallSucceeded {
            call,
            value: Value::Nil
        }]
    );
}

#[test]
fn response_to_an_id_never_sent_is_counted_unknown() {
    let mut a = Endpoint::new(EndpointConfig::default(), 1);
    a.handle_datagram(
        t0(),
        b_addr(),
        &response_bytes(Dialect::Rpcudp, MessageId([4; 20]), &Value::Nil),
    );
    assert_eq!(a.stats().unknown_responses, 1);
    assert!(a.poll_event().is_none());
}

#[test]
fn network_duplicated_response_is_counted_unknown_after_the_first() {
    let mut p = Pair::new();
    let call = p.call("m", &[], opts(5, 0));
    p.a_to_b();
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::from(1));
    let resp = drain(&mut p.b).remove(0);
    p.a.handle_datagram(p.now, b_addr(), &resp.payload);
    p.a.handle_datagram(p.now, b_addr(), &resp.payload);
    assert_eq!(
        events(&mut p.a),
        [Event::CallSucceeded {
            call,
            value: Value::from(1)
        }]
    );
    assert_eq!(p.a.stats().unknown_responses, 1);
}

#[test]
fn cancelled_call_gets_no_event_and_its_late_response_is_counted() {
    let mut p = Pair::new();
    let call = p.call("m", &[], opts(5, 3));
    p.a_to_b();
    p.a.cancel(call);
    assert_eq!(p.a.poll_timeout(), None, "its timer is gone");
    assert_eq!(p.a.stats().calls_cancelled, 1);
    p.advance_to(p.at(100.0));
    assert!(drain(&mut p.a).is_empty(), "no resend after cancel");
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::Nil);
    p.b_to_a();
    assert!(events(&mut p.a).is_empty());
    assert_eq!(p.a.stats().unknown_responses, 1);
    p.a.cancel(call); // twice: ignored
    assert_eq!(p.a.stats().calls_cancelled, 1);
}

#[test]
fn duplicate_request_is_answered_from_cache_without_a_second_request_event() {
    let mut p = Pair::new();
    p.call("count", &[], opts(1, 2));
    let req = drain(&mut p.a).remove(0);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::from(1));
    let first = drain(&mut p.b);
    // The response was lost; the caller's resend (same bytes) arrives, twice.
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    assert!(
        events(&mut p.b).is_empty(),
        "the handler does not run again"
    );
    let again = drain(&mut p.b);
    assert_eq!(again.len(), 2);
    assert_eq!(again[0], first[0], "same bytes as the first answer");
    assert_eq!(again[1], first[0]);
    assert_eq!(p.b.stats().duplicates_answered, 2);
    assert_eq!(p.b.stats().requests_received, 1);
    assert_eq!(p.b.stats().responses_sent, 1);
    assert_eq!(p.b.stats().datagrams_out, 3);
}

#[test]
fn duplicate_request_while_in_progress_is_dropped() {
    let mut p = Pair::new();
    p.call("slow", &[], opts(1, 2));
    let req = drain(&mut p.a).remove(0);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    let evs = events(&mut p.b);
    assert_eq!(evs.len(), 1);
    assert!(drain(&mut p.b).is_empty());
    assert_eq!(p.b.stats().duplicates_in_progress, 1);
}

#[test]
fn duplicate_of_an_abandoned_request_is_dropped_without_running_the_handler_again() {
    let mut p = Pair::new();
    p.call("nosuch", &[], opts(1, 2));
    let req = drain(&mut p.a).remove(0);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    let (token, _, _) = p.b_request();
    p.b.abandon(p.now, token);
    assert!(drain(&mut p.b).is_empty(), "abandon sends nothing");
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    assert!(events(&mut p.b).is_empty());
    assert!(drain(&mut p.b).is_empty());
    assert_eq!(p.b.stats().duplicates_abandoned, 1);
    assert_eq!(p.b.stats().requests_abandoned, 1);
    assert_eq!(p.b.requests_in_progress(), 0);
}

#[test]
fn a_resend_of_a_request_abandoned_after_a_long_handler_on_an_idle_endpoint_is_still_dropped() {
    // The fuzz finding (fuzz/README.md): a request at t0, nothing else for 38 s, then
    // `abandon`. The duplicate entry's lifetime (12 s here) must start at the abandon,
    // not at the last time the endpoint saw before it.
    let b = EndpointConfig {
        dedup_lifetime: Duration::from_secs(12),
        ..EndpointConfig::default()
    };
    let mut p = Pair::with(EndpointConfig::default(), b);
    p.call("nosuch", &[], opts(60, 0));
    let req = drain(&mut p.a).remove(0);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    let (token, _, _) = p.b_request();
    let abandoned_at = p.at(38.0);
    p.b.abandon(abandoned_at, token);
    assert!(drain(&mut p.b).is_empty(), "abandon sends nothing");
    let next =
        p.b.poll_timeout()
            .expect("the duplicate entry has a deadline");
    assert!(
        next >= abandoned_at + Duration::from_secs(12),
        "the entry expires 12 s after the abandon, not {:?} after t0",
        next - p.start
    );
    p.now = abandoned_at + Duration::from_millis(1);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    assert!(
        events(&mut p.b).is_empty(),
        "the resend is not handed out again"
    );
    assert_eq!(p.b.stats().duplicates_abandoned, 1);
    assert_eq!(p.b.stats().handler_latency.sum_micros, 38_000_000);
    // Once the lifetime is over, the entry goes (a late resend is a new request again).
    p.advance_to(abandoned_at + Duration::from_secs(13));
    assert_eq!(p.b.stats().dedup_expired, 1);
}

#[test]
fn the_same_message_id_from_another_peer_is_another_request() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let req = request_bytes(Dialect::Rpcudp, MessageId([1; 20]), "m", &[]);
    b.handle_datagram(now, addr("127.0.0.1:1000"), &req);
    b.handle_datagram(now, addr("127.0.0.1:1001"), &req);
    assert_eq!(events(&mut b).len(), 2);
    assert_eq!(b.stats().duplicates_in_progress, 0);
}

#[test]
fn answered_requests_are_forgotten_after_the_lifetime_and_served_again() {
    let config = EndpointConfig {
        dedup_lifetime: Duration::from_secs(30),
        ..EndpointConfig::default()
    };
    let mut p = Pair::with(EndpointConfig::default(), config);
    let req = request_bytes(Dialect::Rpcudp, MessageId([1; 20]), "m", &[]);
    p.b.handle_datagram(p.now, a_addr(), &req);
    let (token, _, _) = p.b_request();
    p.advance_to(p.at(10.0));
    p.b.respond(p.now, token, &Value::Nil);
    drain(&mut p.b);
    assert_eq!(
        p.b.poll_timeout(),
        Some(p.at(40.0)),
        "lifetime counts from the answer"
    );
    p.advance_to(p.at(40.0) - Duration::from_nanos(1));
    p.b.handle_datagram(p.now, a_addr(), &req);
    assert_eq!(p.b.stats().duplicates_answered, 1);
    drain(&mut p.b);
    p.advance_to(p.at(40.0));
    assert_eq!(p.b.dedup_entries(), 0);
    assert_eq!(p.b.stats().dedup_expired, 1);
    assert_eq!(p.b.poll_timeout(), None);
    p.b.handle_datagram(p.now, a_addr(), &req);
    assert_eq!(
        events(&mut p.b).len(),
        1,
        "a request older than the lifetime is new again"
    );
}

#[test]
fn the_cache_evicts_the_oldest_answer_at_capacity() {
    let config = EndpointConfig {
        dedup_capacity: 2,
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let reqs: Vec<Vec<u8>> = (0..3u8)
        .map(|i| request_bytes(Dialect::Rpcudp, MessageId([i; 20]), "m", &[]))
        .collect();
    for r in &reqs {
        b.handle_datagram(now, a_addr(), r);
        let Some(Event::Request { token, .. }) = b.poll_event() else {
            panic!()
        };
        b.respond(now, token, &Value::Nil);
    }
    drain(&mut b);
    assert_eq!(b.dedup_entries(), 2);
    assert_eq!(b.stats().dedup_evictions, 1);
    // The newest two are answered from cache, the oldest is handled again.
    b.handle_datagram(now, a_addr(), &reqs[2]);
    b.handle_datagram(now, a_addr(), &reqs[1]);
    assert_eq!(b.stats().duplicates_answered, 2);
    b.handle_datagram(now, a_addr(), &reqs[0]);
    assert_eq!(events(&mut b).len(), 1);
}

#[test]
fn the_cache_evicts_the_oldest_answers_past_its_byte_limit() {
    let config = EndpointConfig {
        dedup_max_bytes: 2500,
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let big = Value::Binary(vec![0; 1000]);
    for i in 0..3u8 {
        b.handle_datagram(
            now,
            a_addr(),
            &request_bytes(Dialect::Rpcudp, MessageId([i; 20]), "m", &[]),
        );
        let Some(Event::Request { token, .. }) = b.poll_event() else {
            panic!()
        };
        b.respond(now, token, &big);
    }
    assert!(b.dedup_bytes() <= 2500);
    assert_eq!(b.dedup_entries(), 2);
    assert_eq!(b.stats().dedup_evictions, 1);
}

#[test]
fn in_progress_requests_are_never_evicted_by_the_capacity() {
    let config = EndpointConfig {
        dedup_capacity: 0,
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let req = request_bytes(Dialect::Rpcudp, MessageId([1; 20]), "m", &[]);
    b.handle_datagram(now, a_addr(), &req);
    b.handle_datagram(now, a_addr(), &req);
    assert_eq!(events(&mut b).len(), 1);
    assert_eq!(b.stats().duplicates_in_progress, 1);
}

#[test]
fn request_body_of_exactly_the_limit_is_sent_and_one_byte_more_refused() {
    for dialect in [Dialect::Rpcudp, Dialect::Storj] {
        let limit = dialect.max_body();
        let now = t0();
        let mut a = Endpoint::new(EndpointConfig::for_dialect(dialect), 1);
        // body = 0x92, 0xa1 'm', 0x91, bin16 header (3) + n bytes: 7 + n.
        let arg = |n: usize| [Value::Binary(vec![0; n])];
        assert!(a
            .call(now, b_addr(), "m", &arg(limit - 7), opts(5, 0))
            .is_ok());
        let sent = drain(&mut a).remove(0);
        assert_eq!(sent.payload.len(), 21 + limit);
        assert_eq!(
            a.call(now, b_addr(), "m", &arg(limit - 6), opts(5, 0)),
            Err(CallRefused::RequestTooLarge {
                size: limit + 1,
                limit
            })
        );
        assert!(drain(&mut a).is_empty());
        assert_eq!(a.stats().calls_refused_too_large, 1);
        assert_eq!(a.outstanding_calls(), 1);
    }
}

#[test]
fn storj_limit_holds_even_when_only_the_dialect_field_is_set() {
    let config = EndpointConfig {
        dialect: Dialect::Storj,
        ..EndpointConfig::default()
    };
    assert_eq!(config.max_request_body, 8192);
    let mut a = Endpoint::new(config, 1);
    let r = a.call(
        t0(),
        b_addr(),
        "m",
        &[Value::Binary(vec![0; 8172 - 7])],
        opts(5, 0),
    );
    assert_eq!(
        r,
        Err(CallRefused::RequestTooLarge {
            size: 8172,
            limit: 8171
        })
    );
}

#[test]
fn storj_response_over_8171_bytes_is_not_sent() {
    let config = EndpointConfig::for_dialect(Dialect::Storj);
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    // Answers far bigger than the requests: only to an address that proved it receives
    // there (the amplification rule is tested in tests_limits.rs).
    b.mark_validated(a_addr());
    for (i, n) in [(0u8, 8171 - 3), (1, 8172 - 3)] {
        b.handle_datagram(
            now,
            a_addr(),
            &request_bytes(Dialect::Storj, MessageId([i; 20]), "m", &[]),
        );
        let Some(Event::Request { token, .. }) = b.poll_event() else {
            panic!()
        };
        b.respond(now, token, &Value::Binary(vec![0; n]));
    }
    let out = drain(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 8192);
    assert_eq!(out[0].payload[0], 0x03);
    assert_eq!(b.stats().responses_too_large, 1);
}

#[test]
fn calls_past_max_outstanding_are_refused_until_one_ends() {
    let config = EndpointConfig {
        max_outstanding_calls: 2,
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut a = Endpoint::new(config, 1);
    let first = a.call(now, b_addr(), "m", &[], opts(5, 0)).unwrap();
    a.call(now, b_addr(), "m", &[], opts(5, 0)).unwrap();
    assert_eq!(
        a.call(now, b_addr(), "m", &[], opts(5, 0)),
        Err(CallRefused::TooManyOutstanding { limit: 2 })
    );
    assert_eq!(a.stats().refused_overload, 1);
    assert_eq!(a.stats().calls_refused_outstanding, 1);
    a.cancel(first);
    assert!(a.call(now, b_addr(), "m", &[], opts(5, 0)).is_ok());
}

#[test]
fn requests_of_a_validated_peer_past_max_concurrent_are_dropped_until_one_is_answered() {
    let config = EndpointConfig {
        max_concurrent_requests: 2,
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    // Validated: its requests are not preempted by its own (unvalidated ones are, see
    // tests_limits).
    b.mark_validated(a_addr());
    let reqs: Vec<Vec<u8>> = (0..3u8)
        .map(|i| request_bytes(Dialect::Rpcudp, MessageId([i; 20]), "m", &[]))
        .collect();
    for r in &reqs {
        b.handle_datagram(now, a_addr(), r);
    }
    let evs = events(&mut b);
    assert_eq!(evs.len(), 2);
    assert_eq!(b.stats().refused_overload, 1);
    assert_eq!(b.stats().requests_dropped_overload, 1);
    let Event::Request { token, .. } = evs[0] else {
        panic!()
    };
    b.respond(now, token, &Value::Nil);
    // The dropped request was not remembered: its resend is served now.
    b.handle_datagram(now, a_addr(), &reqs[2]);
    assert_eq!(events(&mut b).len(), 1);
}

#[test]
fn unsendable_arguments_are_refused_before_anything_is_sent() {
    let mut a = Endpoint::new(EndpointConfig::default(), 1);
    let dup = Value::Map(vec![
        (Value::from(1), Value::Nil),
        (Value::F64(1.0), Value::Nil),
    ]);
    let r = a.call(t0(), b_addr(), "m", &[dup], opts(5, 0));
    assert_eq!(
        r,
        Err(CallRefused::Unsendable(
            crate::wire::value::UnsendableValue::DuplicateMapKey
        ))
    );
    // Nesting: the decoder's 512 levels include the body and the args array.
    let mut deep = Value::Nil;
    for _ in 0..511 {
        deep = Value::Array(vec![deep]);
    }
    let r = a.call(t0(), b_addr(), "m", &[deep], opts(5, 0));
    assert!(matches!(r, Err(CallRefused::Unsendable(_))), "{r:?}");
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.stats().calls_refused_unsendable, 2);
}

#[test]
fn arguments_at_the_depth_limit_reach_the_callee() {
    let mut p = Pair::new();
    let mut deep = Value::Nil;
    for _ in 0..510 {
        deep = Value::Array(vec![deep]);
    }
    p.call("m", &[deep.clone()], opts(5, 0));
    p.a_to_b();
    let (_, _, args) = p.b_request();
    assert_eq!(args, vec![deep]);
}

#[test]
fn unsendable_response_is_not_sent_and_its_duplicates_are_dropped() {
    let mut p = Pair::new();
    p.call("m", &[], opts(1, 1));
    let req = drain(&mut p.a).remove(0);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    let (token, _, _) = p.b_request();
    let bad = Value::Map(vec![(Value::Map(vec![]), Value::Nil)]);
    p.b.respond(p.now, token, &bad);
    assert!(drain(&mut p.b).is_empty());
    assert_eq!(p.b.stats().unsendable_responses, 1);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    assert!(events(&mut p.b).is_empty());
    assert_eq!(p.b.stats().duplicates_abandoned, 1);
}

#[test]
fn respond_twice_or_with_an_unknown_token_sends_one_answer() {
    let mut p = Pair::new();
    p.call("m", &[], opts(5, 0));
    p.a_to_b();
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::from(1));
    p.b.respond(p.now, token, &Value::from(2));
    p.b.abandon(p.now, token);
    p.b.respond(p.now, RequestToken(999), &Value::from(3));
    assert_eq!(drain(&mut p.b).len(), 1);
    assert_eq!(p.b.stats().requests_abandoned, 0);
}

#[test]
fn malformed_datagrams_of_every_kind_are_counted_and_the_endpoint_goes_on_serving() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let id = [7u8; 20];
    let with_body = |kind: u8, body: &[u8]| {
        let mut d = vec![kind];
        d.extend(id);
        d.extend(body);
        d
    };
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 21],
        with_body(0x02, b"\x92\xa1m\x90"), // storj kind on an rpcudp endpoint
        with_body(0x07, b"\xc0"),          // unknown kind
        with_body(0x00, b"\xc1"),          // reserved marker
        with_body(0x00, b"\x92\xa1m"),     // truncated
        with_body(0x00, b"\x92\x01\x90"),  // method not a str
        with_body(0x00, b"\x92\xa1m\xc0"), // args not an array
        with_body(0x00, &[0x91; 200]),     // too deep
        with_body(0x01, b"\xdd\xff\xff\xff\xff"), // forged length
        with_body(0x00, b"\x92\xa2\xff\xfe\x90"), // method not UTF-8
    ];
    for d in &bad {
        b.handle_datagram(now, a_addr(), d);
    }
    assert_eq!(b.stats().malformed, bad.len() as u64);
    assert_eq!(b.stats().datagrams_in, bad.len() as u64);
    assert!(b.poll_event().is_none());
    assert!(b.poll_transmit().is_none());
    // Trailing bytes are not malformed; and it still serves.
    let mut ok = request_bytes(Dialect::Rpcudp, MessageId(id), "m", &[]);
    ok.extend(b"\xc1 trailing");
    b.handle_datagram(now, a_addr(), &ok);
    assert!(matches!(b.poll_event(), Some(Event::Request { .. })));
    assert_eq!(b.stats().malformed, bad.len() as u64);
}

#[test]
fn storj_endpoints_talk_kinds_2_and_3_and_ignore_rpcudp_kinds() {
    let cfg = EndpointConfig::for_dialect(Dialect::Storj);
    let mut p = Pair::with(cfg.clone(), cfg);
    let call = p.call("m", &[Value::from("x")], opts(5, 0));
    let req = drain(&mut p.a).remove(0);
    assert_eq!(req.payload[0], 0x02);
    p.b.handle_datagram(p.now, a_addr(), &req.payload);
    let (token, _, args) = p.b_request();
    assert_eq!(args, vec![Value::from("x")]);
    p.b.respond(p.now, token, &Value::from("y"));
    let resp = drain(&mut p.b).remove(0);
    assert_eq!(resp.payload[0], 0x03);
    // An rpcudp-kind copy of the response is not a response in this dialect.
    let mut rpcudp_copy = resp.payload.clone();
    rpcudp_copy[0] = 0x01;
    p.a.handle_datagram(p.now, b_addr(), &rpcudp_copy);
    assert_eq!(p.a.stats().malformed, 1);
    p.a.handle_datagram(p.now, b_addr(), &resp.payload);
    assert_eq!(
        events(&mut p.a),
        [Event::CallSucceeded {
            call,
            value: "y".into()
        }]
    );
}

#[test]
fn poll_timeout_is_the_earliest_of_call_timers_and_cache_expiry() {
    let config = EndpointConfig {
        dedup_lifetime: Duration::from_secs(3),
        ..EndpointConfig::default()
    };
    let mut p = Pair::with(config.clone(), config);
    p.call("m", &[], opts(5, 0));
    assert_eq!(p.a.poll_timeout(), Some(p.at(5.0)));
    p.a_to_b();
    let (token, _, _) = p.b_request();
    p.b.respond(p.now, token, &Value::Nil);
    // B's answer is remembered 3 s; A's call was answered, so its timer is gone.
    assert_eq!(p.b.poll_timeout(), Some(p.at(3.0)));
    p.b_to_a();
    assert_eq!(p.a.poll_timeout(), None);
    let c = p.call("m", &[], opts(5, 0));
    p.a.cancel(c);
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn stale_timer_entries_stay_proportional_to_calls_in_flight() {
    let now = t0();
    let mut a = Endpoint::new(EndpointConfig::default(), 1);
    let keep = a.call(now, b_addr(), "m", &[], opts(1, 0)).unwrap();
    for _ in 0..10_000 {
        // Each call ends before its timer: its heap entry goes stale.
        let c = a.call(now, b_addr(), "m", &[], opts(5, 0)).unwrap();
        let resp = response_bytes(Dialect::Rpcudp, c.message_id(), &Value::Nil);
        a.handle_datagram(now, b_addr(), &resp);
    }
    assert!(
        a.timer_entries() <= 2 * a.outstanding_calls() + 65,
        "{} entries",
        a.timer_entries()
    );
    drain(&mut a);
    events(&mut a);
    a.handle_timeout(now + SECOND);
    assert_eq!(
        events(&mut a),
        [Event::CallFailed {
            call: keep,
            error: CallFailure::Timeout
        }]
    );
}

#[test]
fn a_call_entry_stays_well_under_256_bytes() {
    let entry = std::mem::size_of::<(MessageId, super::calls::OutCall)>();
    let timer = std::mem::size_of::<(Instant, MessageId)>();
    assert!(
        entry + timer <= 256 - 16,
        "call entry {entry} + timer {timer} bytes"
    );
}

#[test]
fn message_ids_come_from_the_seed() {
    let ids = |seed| {
        let mut a = Endpoint::new(EndpointConfig::default(), seed);
        (0..3)
            .map(|_| {
                a.call(t0(), b_addr(), "m", &[], opts(5, 0))
                    .unwrap()
                    .message_id()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(5), ids(5));
    assert_ne!(ids(5), ids(6));
    let v = ids(5);
    assert!(v[0] != v[1] && v[1] != v[2]);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic_and_are_all_counted(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40),
        kinds in proptest::collection::vec(0u8..5, 40),
    ) {
        let now = t0();
        let mut e = Endpoint::new(EndpointConfig::default(), 3);
        let call = e.call(now, b_addr(), "m", &[], opts(5, 0)).unwrap();
        for (mut d, k) in datagrams.clone().into_iter().zip(kinds) {
            if d.len() >= 21 && k < 4 {
                d[0] = k; // make a valid kind more likely
                if k == 1 { d[1..21].copy_from_slice(&call.message_id().0); }
            }
            e.handle_datagram(now, b_addr(), &d);
        }
        let s = e.stats().clone();
        prop_assert_eq!(s.datagrams_in, datagrams.len() as u64);
        // Every datagram ended up in exactly one bucket.
        let requests = s.requests_received + s.duplicates_in_progress + s.requests_dropped_overload;
        let responses = s.calls_succeeded + s.unknown_responses + s.spoofed_responses;
        prop_assert_eq!(s.datagrams_in, s.malformed + requests + responses);
        prop_assert!(s.calls_succeeded <= 1);
    }
}

#[test]
fn endpoint_can_move_into_a_task_on_another_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Endpoint>();
    assert_send::<Event>();
}

#[test]
fn attempt_waits_grow_by_the_backoff_up_to_the_cap() {
    let o = CallOptions {
        attempt_timeout: SECOND,
        backoff: 3.0,
        max_attempt_timeout: Duration::from_secs(20),
        ..CallOptions::default()
    };
    let waits: Vec<u64> = (0..5).map(|i| o.attempt_wait(i).as_secs()).collect();
    assert_eq!(waits, [1, 3, 9, 20, 20]);
    // A cap below the first wait does not shorten it.
    let o = CallOptions {
        attempt_timeout: Duration::from_secs(90),
        ..CallOptions::default()
    };
    assert_eq!(o.attempt_wait(0), Duration::from_secs(90));
    assert_eq!(o.attempt_wait(3), Duration::from_secs(90));
    // Nonsense knobs fall back to safe values: no shrinking, no negative waits.
    for backoff in [0.5, -1.0, f64::NAN, f64::INFINITY] {
        let o = CallOptions {
            backoff,
            ..opts(2, 3)
        };
        assert_eq!(
            o.attempt_wait(2),
            Duration::from_secs(2),
            "backoff {backoff}"
        );
    }
    let huge = CallOptions {
        retries: u32::MAX,
        max_attempt_timeout: Duration::MAX,
        ..opts(1, 0)
    };
    assert!(huge.attempt_wait(u32::MAX) >= SECOND);
}

#[test]
fn jitter_outside_zero_to_one_is_clamped() {
    for (jitter, lo) in [(-1.0, 5.0), (7.0, 0.0), (f64::NAN, 5.0)] {
        let now = t0();
        let mut e = Endpoint::new(EndpointConfig::default(), 9);
        let o = CallOptions {
            jitter,
            ..opts(5, 1)
        };
        e.call(now, b_addr(), "m", &[], o).unwrap();
        let first = e.poll_timeout().unwrap() - now;
        assert!(
            first >= Duration::from_secs_f64(lo) && first <= Duration::from_secs(5),
            "{jitter}: {first:?}"
        );
    }
}

#[test]
fn an_answer_from_cache_goes_to_the_address_the_duplicate_came_from() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let req = request_bytes(Dialect::Rpcudp, MessageId([1; 20]), "m", &[]);
    b.handle_datagram(now, a_addr(), &req);
    let Some(Event::Request { token, .. }) = b.poll_event() else {
        panic!()
    };
    b.respond(now, token, &Value::Nil);
    drain(&mut b);
    // The same peer seen through a dual-stack socket: same request, answered from cache.
    let mapped = addr("[::ffff:127.0.0.1]:1000");
    b.handle_datagram(now, mapped, &req);
    let out = drain(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, mapped);
    assert_eq!(b.stats().duplicates_answered, 1);
}

#[test]
fn a_call_with_zero_timeout_fails_at_the_next_timeout_handling() {
    let now = t0();
    let mut a = Endpoint::new(EndpointConfig::default(), 1);
    let call = a.call(now, b_addr(), "m", &[], opts(0, 0)).unwrap();
    assert_eq!(drain(&mut a).len(), 1, "the request is still sent once");
    assert_eq!(a.poll_timeout(), Some(now));
    a.handle_timeout(now);
    assert_eq!(
        events(&mut a),
        [Event::CallFailed {
            call,
            error: CallFailure::Timeout
        }]
    );
}

/// One step of a random interleaving between two endpoints.
#[derive(Clone, Debug)]
enum Op {
    Call { retries: u32, nosuch: bool },
    Deliver(prop::sample::Index),
    Lose(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Answer(prop::sample::Index),
    Abandon(prop::sample::Index),
    Cancel(prop::sample::Index),
    Advance(u16),
    Garbage(Vec<u8>),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..3, any::<bool>()).prop_map(|(retries, nosuch)| Op::Call { retries, nosuch }),
        any::<prop::sample::Index>().prop_map(Op::Deliver),
        any::<prop::sample::Index>().prop_map(Op::Deliver),
        any::<prop::sample::Index>().prop_map(Op::Lose),
        any::<prop::sample::Index>().prop_map(Op::Duplicate),
        any::<prop::sample::Index>().prop_map(Op::Answer),
        any::<prop::sample::Index>().prop_map(Op::Abandon),
        any::<prop::sample::Index>().prop_map(Op::Cancel),
        (0u16..3000).prop_map(Op::Advance),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
    ]
}

proptest! {
    #[test]
    fn random_interleavings_keep_every_call_ending_at_most_once(ops in proptest::collection::vec(arb_op(), 1..120)) {
        use std::collections::HashMap;
        // A cache lifetime longer than any run (120 steps of at most 3 s): within it, no
        // handler may run twice, however the datagrams are lost, duplicated or reordered.
        let config = EndpointConfig { dedup_lifetime: Duration::from_secs(3600), ..EndpointConfig::default() };
        let mut p = Pair::with(config.clone(), config);
        // In flight on the "wire": (to_b, payload).
        let mut wire: Vec<(bool, Vec<u8>)> = vec![];
        let mut pending: Vec<RequestToken> = vec![];
        let mut calls: Vec<CallId> = vec![];
        let mut outcomes: HashMap<CallId, u32> = HashMap::new();
        let mut cancelled = std::collections::HashSet::new();
        for op in ops {
            match op {
                Op::Call { retries, nosuch } => {
                    let o = CallOptions { attempt_timeout: SECOND, retries, ..CallOptions::default() };
                    let c = p.call(if nosuch { "nosuch" } else { "echo" }, &[Value::from(calls.len())], o);
                    calls.push(c);
                }
                Op::Deliver(i) | Op::Lose(i) | Op::Duplicate(i) if !wire.is_empty() => {
                    let at = i.index(wire.len());
                    let (to_b, payload) = if matches!(op, Op::Duplicate(_)) { wire[at].clone() } else { wire.remove(at) };
                    if !matches!(op, Op::Lose(_)) {
                        if to_b { p.b.handle_datagram(p.now, a_addr(), &payload) } else { p.a.handle_datagram(p.now, b_addr(), &payload) }
                    }
                }
                Op::Answer(i) | Op::Abandon(i) if !pending.is_empty() => {
                    let t = pending.remove(i.index(pending.len()));
                    if matches!(op, Op::Answer(_)) { p.b.respond(p.now, t, &Value::from("ok")) } else { p.b.abandon(p.now, t) }
                }
                Op::Cancel(i) if !calls.is_empty() => {
                    let c = calls[i.index(calls.len())];
                    if !outcomes.contains_key(&c) { cancelled.insert(c); }
                    p.a.cancel(c);
                }
                Op::Advance(ms) => {
                    let t = p.now + Duration::from_millis(u64::from(ms));
                    p.advance_to(t);
                    for e in [&p.a, &p.b] {
                        prop_assert!(e.poll_timeout().is_none_or(|d| d > t), "a due timer was left");
                    }
                }
                Op::Garbage(bytes) => p.b.handle_datagram(p.now, a_addr(), &bytes),
                _ => {}
            }
            wire.extend(drain(&mut p.a).into_iter().map(|t| (true, t.payload)));
            wire.extend(drain(&mut p.b).into_iter().map(|t| (false, t.payload)));
            for e in events(&mut p.b) {
                match e {
                    Event::Request { token, method, .. } if method == "echo" => pending.push(token),
                    Event::Request { token, .. } => p.b.abandon(p.now, token),
                    other => prop_assert!(false, "B made no calls: {other:?}"),
                }
            }
            for e in events(&mut p.a) {
                let c = match e {
                    Event::CallSucceeded { call, .. } | Event::CallFailed { call, .. } => call,
                    other => return Err(TestCaseError::fail(format!("A serves nothing: {other:?}"))),
                };
                prop_assert!(!cancelled.contains(&c), "outcome after cancel");
                *outcomes.entry(c).or_default() += 1;
                prop_assert_eq!(outcomes[&c], 1, "second outcome");
            }
        }
        let s = p.a.stats();
        prop_assert_eq!(s.calls_started as usize, calls.len());
        prop_assert_eq!(p.a.outstanding_calls() as u64, s.calls_started - s.calls_succeeded - s.timeouts - s.calls_cancelled);
        prop_assert_eq!(p.b.requests_in_progress(), pending.len());
        prop_assert!(p.b.stats().requests_received <= calls.len() as u64, "a handler ran twice within the cache lifetime");
    }
}

#[test]
fn extreme_durations_never_overflow_the_clock() {
    let config = EndpointConfig {
        dedup_lifetime: Duration::MAX,
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut p = Pair::with(config.clone(), config);
    let o = CallOptions {
        attempt_timeout: Duration::MAX,
        max_attempt_timeout: Duration::MAX,
        deadline: Some(Duration::MAX),
        retries: 3,
        ..CallOptions::default()
    };
    assert_eq!(o.attempt_wait(0), Duration::MAX);
    p.call("m", &[], o);
    p.a_to_b();
    let (token, _, _) = p.b_request();
    p.b.respond(now, token, &Value::Nil);
    assert_eq!(
        p.b.poll_timeout(),
        None,
        "an unrepresentable expiry is never"
    );
    // The call's wait is capped (a year), not overflowed.
    let t = p.a.poll_timeout().unwrap();
    assert!(t > now + Duration::from_secs(300 * 24 * 3600));
    p.advance_to(now + Duration::from_secs(3600));
    p.b_to_a();
    assert_eq!(p.a.stats().calls_succeeded, 1);
}

/// Bodies that are valid MessagePack of any shape, cut anywhere or whole, behind a request
/// header of either dialect (or of the other dialect): only a whole `[str, array]` becomes
/// a request, carrying exactly the decoded method and arguments; everything else is
/// counted malformed and never answered.
fn structured_body() -> impl Strategy<Value = (Value, Option<usize>)> {
    let request_shaped = (
        ".{0,12}",
        proptest::collection::vec(crate::wire::value::tests::arb_value(), 0..4),
    )
        .prop_map(|(m, args)| Value::Array(vec![Value::from(m), Value::Array(args)]));
    let any_shape = crate::wire::value::tests::arb_value();
    (
        prop_oneof![request_shaped, any_shape],
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(v, cut)| {
            let mut body = Vec::new();
            crate::wire::value::encode_value(&v, &mut body);
            (v, cut.map(|i| i.index(body.len())))
        })
}

proptest! {
    // Each case decodes up to a dozen sizeable values: 64 cases keep it to seconds.
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn structured_hostile_bodies_become_requests_only_when_whole_and_request_shaped(
        bodies in proptest::collection::vec(structured_body(), 1..12),
        storj in any::<bool>(),
        wrong_dialect in any::<bool>(),
    ) {
        let dialect = if storj { Dialect::Storj } else { Dialect::Rpcudp };
        let now = t0();
        let mut e = Endpoint::new(EndpointConfig::for_dialect(dialect), 4);
        let request_kind = match (dialect, wrong_dialect) {
            (Dialect::Rpcudp, false) | (Dialect::Storj, true) => 0x00,
            _ => 0x02,
        };
        let mut expected_requests = Vec::new();
        for (i, (value, cut)) in bodies.iter().enumerate() {
            let mut body = Vec::new();
            crate::wire::value::encode_value(value, &mut body);
            let whole = cut.is_none();
            if let Some(cut) = cut {
                body.truncate(*cut); // MessagePack is prefix-free: a cut value is incomplete
            }
            let mut d = vec![request_kind];
            d.extend([i as u8; 20]); // distinct ids: no duplicate suppression in play
            d.extend(&body);
            e.handle_datagram(now, a_addr(), &d);
            if let (true, false, Value::Array(parts)) = (whole, wrong_dialect, value) {
                if let [Value::String(m), Value::Array(args)] = parts.as_slice() {
                    expected_requests.push((m.as_str().unwrap().to_string(), args.clone()));
                }
            }
        }
        let mut got = Vec::new();
        while let Some(ev) = e.poll_event() {
            match ev {
                Event::Request { method, args, from, .. } => {
                    prop_assert_eq!(from, a_addr());
                    got.push((method, args));
                }
                other => prop_assert!(false, "unexpected event {:?}", other),
            }
        }
        prop_assert_eq!(&got, &expected_requests);
        let s = e.stats();
        prop_assert_eq!(s.datagrams_in, bodies.len() as u64);
        prop_assert_eq!(s.malformed, (bodies.len() - expected_requests.len()) as u64);
        prop_assert!(e.poll_transmit().is_none(), "nothing is answered by itself");
    }
}

// --- The local address a request came to, and whose a transmit is ---

#[test]
fn an_answer_and_its_duplicate_replays_leave_from_the_address_each_request_came_to() {
    use crate::Protocol;
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let called: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let request = request_bytes(Dialect::Rpcudp, MessageId([5; 20]), "echo", &[]);
    Protocol::handle_datagram(&mut b, now, a_addr(), Some(called), &request);
    let Some(Event::Request { token, .. }) = b.poll_event() else {
        panic!("a request event");
    };
    b.respond(now, token, &Value::from(1));
    let answer = b.poll_transmit().unwrap();
    assert_eq!(answer.destination, a_addr());
    assert_eq!(answer.source, Some(called));
    // A resend that came to another of our addresses is answered from that one.
    let other: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    Protocol::handle_datagram(&mut b, now, a_addr(), Some(other), &request);
    let replay = b.poll_transmit().unwrap();
    assert_eq!(replay.payload, answer.payload);
    assert_eq!(replay.source, Some(other));
    // Through the inherent method the local address is unknown: the kernel chooses.
    b.handle_datagram(now, a_addr(), &request);
    assert_eq!(b.poll_transmit().unwrap().source, None);
}

#[test]
fn call_of_names_the_call_whose_request_a_transmit_is_and_nothing_else() {
    let mut p = Pair::new();
    let id = p.call("ping", &[], opts(5, 1));
    let request = p.a.poll_transmit().unwrap();
    assert_eq!(p.a.call_of(&request), Some(id));
    // Another destination, a response, a short datagram: not this call's request.
    let elsewhere = Transmit {
        destination: addr("127.0.0.1:2001"),
        ..request.clone()
    };
    assert_eq!(p.a.call_of(&elsewhere), None);
    let mut response = request.clone();
    response.payload[0] = Dialect::Rpcudp.response_kind();
    assert_eq!(p.a.call_of(&response), None);
    let short = Transmit {
        payload: request.payload[..5].to_vec(),
        ..request.clone()
    };
    assert_eq!(p.a.call_of(&short), None);
    // The resend is the same call's; once the call ended, nobody's.
    p.advance_to(p.at(5.0));
    let resend = p.a.poll_transmit().unwrap();
    assert_eq!(p.a.call_of(&resend), Some(id));
    p.a.cancel(id);
    assert_eq!(p.a.call_of(&request), None);
}
