//! Tests of the per-source limits and address validation, with hand-driven time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rmpv::Value;

use super::*;
use crate::wire::rpc::{encode_request, encode_response, Dialect, MessageId};

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn request(n: u32, method: &str, args: &[Value]) -> Vec<u8> {
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    let mut out = Vec::new();
    encode_request(Dialect::Rpcudp, &MessageId(id), method, args, &mut out);
    out
}

/// A value whose response datagram is exactly `total` bytes (header 21, bin8/bin16 head).
fn answer_of(total: usize) -> Value {
    let n = total - 21 - 2;
    if n < 256 {
        Value::Binary(vec![0; n])
    } else {
        Value::Binary(vec![0; n - 1])
    }
}

fn drain(e: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| e.poll_transmit()).collect()
}

fn tokens(e: &mut Endpoint) -> Vec<(RequestToken, SocketAddr)> {
    std::iter::from_fn(|| e.poll_event())
        .filter_map(|ev| match ev {
            Event::Request { token, from, .. } => Some((token, from)),
            _ => None,
        })
        .collect()
}

fn strict() -> EndpointConfig {
    EndpointConfig {
        limits: LimitsConfig {
            strict_local: true,
            ..LimitsConfig::default()
        },
        ..EndpointConfig::default()
    }
}

#[test]
fn an_unvalidated_address_gets_at_most_three_times_the_bytes_it_sent() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let peer = addr("203.0.113.5:4000");
    let req = request(1, "get", &[]);
    b.handle_datagram(now, peer, &req);
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    assert_eq!(b.amplification_budget(peer), Some(3 * req.len()));
    // An answer of 10 × the request: dropped, counted, nothing sent.
    b.respond(now, token, &Value::Binary(vec![0; 10 * req.len()]));
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.stats().answers_dropped_unvalidated, 1);
    assert_eq!(b.stats().responses_sent, 0);

    // A second request: an answer within 3× of all it sent (minus nothing sent) goes.
    b.handle_datagram(now, peer, &request(2, "get", &[]));
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    b.respond(now, token, &answer_of(6 * req.len()));
    let out = drain(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 6 * req.len());
    assert_eq!(b.amplification_budget(peer), Some(0));
}

#[test]
fn an_address_that_answered_our_call_is_validated_and_has_no_budget_limit() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let peer = addr("203.0.113.5:4000");
    assert!(!b.is_validated(peer));
    let call = b
        .call(now, peer, "ping", &[], CallOptions::default())
        .unwrap();
    let sent = drain(&mut b).remove(0);
    let mut answer = Vec::new();
    encode_response(
        Dialect::Rpcudp,
        &MessageId(sent.payload[1..21].try_into().unwrap()),
        &Value::from("pong"),
        &mut answer,
    );
    b.handle_datagram(now, peer, &answer);
    assert_eq!(
        b.poll_event(),
        Some(Event::CallSucceeded {
            call,
            value: "pong".into()
        })
    );
    assert!(b.is_validated(peer));
    assert!(b.is_validated(addr("[::ffff:203.0.113.5]:4000")));
    assert_eq!(b.amplification_budget(peer), None);
    assert_eq!(b.stats().addresses_validated, 1);
    // Another port of the same IP has proven nothing.
    assert_eq!(b.amplification_budget(addr("203.0.113.5:4001")), Some(0));

    b.handle_datagram(now, peer, &request(1, "get", &[]));
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    b.respond(now, token, &Value::Binary(vec![0; 60_000]));
    assert_eq!(drain(&mut b).len(), 1);
}

#[test]
fn a_forged_answer_from_another_address_validates_nothing() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let peer = addr("203.0.113.5:4000");
    b.call(now, peer, "ping", &[], CallOptions::default())
        .unwrap();
    let sent = drain(&mut b).remove(0);
    let mut answer = Vec::new();
    let id = MessageId(sent.payload[1..21].try_into().unwrap());
    encode_response(Dialect::Rpcudp, &id, &Value::from("pong"), &mut answer);
    b.handle_datagram(now, addr("198.51.100.9:4000"), &answer);
    assert!(!b.is_validated(addr("198.51.100.9:4000")));
    assert!(!b.is_validated(peer));
    // A guessed id from the right address is no proof either.
    let mut guess = Vec::new();
    encode_response(
        Dialect::Rpcudp,
        &MessageId([7; 20]),
        &Value::Nil,
        &mut guess,
    );
    b.handle_datagram(now, peer, &guess);
    assert!(!b.is_validated(peer));
}

#[test]
fn a_cached_duplicate_answer_obeys_the_budget_too() {
    let now = t0();
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    let peer = addr("203.0.113.5:4000");
    let req = request(1, "get", &[]);
    b.handle_datagram(now, peer, &req);
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    // Exactly 3× the request: sent.
    b.respond(now, token, &answer_of(3 * req.len()));
    assert_eq!(drain(&mut b)[0].payload.len(), 3 * req.len());
    // Each resend adds its bytes to the budget: 3 × 1 request's worth per resend, so the
    // cached copy (3× one request) fits exactly once per resend.
    b.handle_datagram(now, peer, &req);
    assert_eq!(drain(&mut b).len(), 1);
    assert_eq!(b.stats().duplicates_answered, 1);
    // An answer that used an earlier request's surplus: request 2 and 3 arrive, 2 is
    // answered with 5× (budget 3 × 4 − 6 = 6 lengths, fits); a resend of 2 adds one
    // request's worth: 3 × 5 − 11 = 4 lengths < 5, so the cached copy is dropped.
    let (r2, r3) = (request(2, "get", &[]), request(3, "get", &[]));
    b.handle_datagram(now, peer, &r2);
    b.handle_datagram(now, peer, &r3);
    let toks = tokens(&mut b);
    b.respond(now, toks[0].0, &answer_of(5 * req.len()));
    assert_eq!(drain(&mut b).len(), 1);
    b.handle_datagram(now, peer, &r2);
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.stats().answers_dropped_unvalidated, 1);
    assert_eq!(b.stats().duplicates_answered, 1);
}

fn with_probe() -> EndpointConfig {
    EndpointConfig {
        limits: LimitsConfig {
            validation_probe: Some(ValidationProbe {
                method: "ping".into(),
                args: vec![Value::from(42)],
                options: CallOptions {
                    attempt_timeout: Duration::from_secs(1),
                    ..CallOptions::default()
                },
            }),
            ..LimitsConfig::default()
        },
        ..EndpointConfig::default()
    }
}

#[test]
fn with_a_probe_a_big_answer_waits_until_the_address_answers_the_probe() {
    let now = t0();
    let mut b = Endpoint::new(with_probe(), 2);
    let peer = addr("203.0.113.5:4000");
    b.handle_datagram(now, peer, &request(1, "find_value", &[]));
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    b.respond(now, token, &Value::Binary(vec![1; 8000]));
    // Only the probe goes out, and it is small.
    let out = drain(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload[0], Dialect::Rpcudp.request_kind());
    assert!(out[0].payload.len() < 40);
    assert_eq!(b.stats().answers_held, 1);
    assert_eq!(b.stats().validation_probes_sent, 1);
    assert_eq!(b.limit_tables().held_answers, 1);

    // The peer answers the probe: the held answer goes, and no event surfaces for the
    // probe (nobody called it).
    let mut pong = Vec::new();
    let id = MessageId(out[0].payload[1..21].try_into().unwrap());
    encode_response(Dialect::Rpcudp, &id, &Value::from(42), &mut pong);
    b.handle_datagram(now, peer, &pong);
    assert_eq!(b.poll_event(), None);
    let out = drain(&mut b);
    assert_eq!(out.len(), 1);
    assert!(out[0].payload.len() > 8000);
    assert_eq!(out[0].destination, peer);
    assert_eq!(b.stats().answers_released, 1);
    assert_eq!(b.limit_tables().held_answers, 0);
}

#[test]
fn a_held_answer_is_dropped_when_the_probe_gets_no_answer() {
    let now = t0();
    let mut b = Endpoint::new(with_probe(), 2);
    let peer = addr("203.0.113.5:4000");
    for n in 0..3 {
        b.handle_datagram(now, peer, &request(n, "find_value", &[]));
    }
    for (token, _) in tokens(&mut b) {
        b.respond(now, token, &Value::Binary(vec![1; 8000]));
    }
    // One probe for the three held answers.
    assert_eq!(drain(&mut b).len(), 1);
    assert_eq!(b.stats().answers_held, 3);
    b.handle_timeout(now + Duration::from_secs(2));
    assert_eq!(b.poll_event(), None);
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.stats().held_answers_dropped, 3);
    assert_eq!(b.limit_tables().held_bytes, 0);
}

#[test]
fn a_held_answer_of_a_forgotten_round_is_not_sent_after_the_next_rounds_answer() {
    // The fuzz finding (fuzz/README.md): round 1's answer is held for the probe; the
    // duplicate entry expires meanwhile; a resend of the request is a new round, answered
    // at once. When the probe is answered, only the new round's answer may have gone.
    let config = EndpointConfig {
        dedup_lifetime: Duration::from_millis(500),
        limits: LimitsConfig {
            validation_probe: Some(ValidationProbe {
                method: "ping".into(),
                args: vec![Value::from(42)],
                options: CallOptions {
                    attempt_timeout: Duration::from_secs(5),
                    ..CallOptions::default()
                },
            }),
            ..LimitsConfig::default()
        },
        ..EndpointConfig::default()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let peer = addr("203.0.113.5:4000");
    let req = request(1, "find_value", &[]);
    b.handle_datagram(now, peer, &req);
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    b.respond(now, token, &Value::Binary(vec![1; 8000]));
    let probe = drain(&mut b).remove(0);
    assert_eq!(b.stats().answers_held, 1);

    let later = now + Duration::from_millis(600);
    b.handle_timeout(later);
    b.handle_datagram(later, peer, &req);
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!("the resend is a new round")
    };
    b.respond(later, token, &Value::from("small"));
    let second = drain(&mut b);
    assert_eq!(
        second.len(),
        1,
        "the new round's small answer fits the budget"
    );

    let mut pong = Vec::new();
    let id = MessageId(probe.payload[1..21].try_into().unwrap());
    encode_response(Dialect::Rpcudp, &id, &Value::from(42), &mut pong);
    b.handle_datagram(later, peer, &pong);
    assert!(
        drain(&mut b).is_empty(),
        "round 1's held answer went after round 2's"
    );
    assert_eq!(b.stats().held_answers_dropped, 1);
    assert_eq!(b.limit_tables().held_answers, 0);
    assert_eq!(b.limit_tables().held_bytes, 0);
}

#[test]
fn held_answers_are_bounded_in_count_and_bytes() {
    let mut config = with_probe();
    config.limits.max_held_answers = 5;
    config.limits.max_held_bytes = 20_000;
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    for n in 0..50u32 {
        let peer = SocketAddr::from(([203, 0, 113, (n % 250) as u8], 4000));
        b.handle_datagram(now, peer, &request(n, "find_value", &[]));
    }
    for (token, _) in tokens(&mut b) {
        b.respond(now, token, &Value::Binary(vec![1; 8000]));
    }
    let t = b.limit_tables();
    assert!(t.held_answers <= 5 && t.held_bytes <= 20_000, "{t:?}");
    assert_eq!(b.stats().answers_held as usize, t.held_answers);
    assert_eq!(
        b.stats().answers_dropped_unvalidated as usize,
        50 - t.held_answers
    );
}

/// Every request token handed out, answered at once with `pong` if it is a ping.
fn serve_pings(b: &mut Endpoint, now: Instant) -> Vec<(RequestToken, SocketAddr)> {
    let mut held = Vec::new();
    while let Some(ev) = b.poll_event() {
        if let Event::Request {
            token,
            from,
            method,
            ..
        } = ev
        {
            if method == "ping" {
                b.respond(now, token, &Value::from("pong"));
            } else {
                held.push((token, from));
            }
        }
    }
    held
}

#[test]
fn forged_sleeps_from_17_subnets_never_keep_a_ping_from_its_slot() {
    // The `serve --strict-local` row of issue 16: 64 sleep(3600000) per /24 from 17 /24s
    // (1,088 requests for 1,024 slots), then pings from three other /24s.
    let now = t0();
    let mut b = Endpoint::new(strict(), 2);
    let mut n = 0u32;
    for net in 0..17u8 {
        for host in 0..64u8 {
            let from = SocketAddr::from(([203, 0, net, host], 1000));
            b.handle_datagram(now, from, &request(n, "sleep", &[Value::from(3_600_000)]));
            n += 1;
        }
    }
    assert_eq!(serve_pings(&mut b, now).len(), 1088);
    assert_eq!(b.requests_in_progress(), 1024);
    assert_eq!(b.stats().requests_preempted, 64);
    // The preempted came from the biggest subnets: none holds more than 64.
    let preempted: Vec<RequestToken> = std::iter::from_fn(|| b.poll_preempted()).collect();
    assert_eq!(preempted.len(), 64);
    for net in 0..17u8 {
        let held = b.requests_in_progress_from(SocketAddr::from(([203, 0, net, 1], 1)));
        assert!(held <= 64, "/24 {net} holds {held}");
    }
    for (k, net) in [(0u32, 100u8), (1, 101), (2, 102)] {
        for i in 0..20u32 {
            let honest = SocketAddr::from(([198, 51, net, 7], 5000));
            b.handle_datagram(now, honest, &request(10_000 + k * 100 + i, "ping", &[]));
            assert!(serve_pings(&mut b, now).is_empty());
            let out = drain(&mut b);
            assert_eq!(out.len(), 1, "ping {i} from /24 {net} answered");
            assert_eq!(out[0].destination, honest);
        }
    }
    assert_eq!(b.stats().requests_dropped_overload, 0);
}

#[test]
fn an_honest_subnet_with_one_slot_loses_it_after_the_forgers_biggest_subnets() {
    let config = EndpointConfig {
        max_concurrent_requests: 10,
        ..strict()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let honest = addr("[2001:db8:9:9::1]:4000");
    // The honest sleep came first (oldest), then a /64 of forgers fills the rest.
    b.handle_datagram(now, honest, &request(0, "sleep", &[]));
    for n in 1..100u32 {
        let from: SocketAddr = format!("[2001:db8:1:2::{:x}]:4000", n).parse().unwrap();
        b.handle_datagram(now, from, &request(n, "sleep", &[]));
    }
    let _ = tokens(&mut b);
    // IPv6 counts by /64: the forgers' /64 holds 9 and gave up its oldest each time.
    assert_eq!(b.requests_in_progress_from(honest), 1);
    assert_eq!(
        b.requests_in_progress_from(addr("[2001:db8:1:2::ffff]:1")),
        9
    );
    assert_eq!(b.stats().requests_preempted, 90);
}

#[test]
fn unvalidated_requests_never_preempt_validated_ones_and_a_validated_share_binds_only_under_contention(
) {
    let config = EndpointConfig {
        max_concurrent_requests: 4,
        ..strict()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let bench = addr("198.51.100.1:4000");
    b.mark_validated(bench);
    // One validated source may use every slot while nobody else wants one.
    for n in 0..4u32 {
        b.handle_datagram(now, bench, &request(n, "sleep", &[]));
    }
    assert_eq!(tokens(&mut b).len(), 4);
    // An unvalidated newcomer cannot take a validated slot.
    b.handle_datagram(now, addr("203.0.113.1:1"), &request(100, "ping", &[]));
    assert!(tokens(&mut b).is_empty());
    assert_eq!(b.stats().requests_dropped_overload, 1);
    // A validated newcomer from another subnet takes one from the biggest holder.
    let other = addr("192.0.2.9:4000");
    b.mark_validated(other);
    b.handle_datagram(now, other, &request(101, "sleep", &[]));
    assert_eq!(tokens(&mut b).len(), 1);
    assert_eq!(b.requests_in_progress_from(bench), 3);
    assert_eq!(b.stats().requests_preempted, 1);
}

#[test]
fn a_preempted_request_is_forgotten_so_its_resend_is_served_afresh() {
    let config = EndpointConfig {
        max_concurrent_requests: 1,
        ..strict()
    };
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let first = request(1, "sleep", &[]);
    b.handle_datagram(now, addr("203.0.113.1:1"), &first);
    let [(t1, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    b.handle_datagram(now, addr("198.51.100.1:1"), &request(2, "sleep", &[]));
    let [(t2, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    assert_eq!(b.poll_preempted(), Some(t1));
    // Its late answer is ignored; its resend gets a slot again (preempting the other).
    b.respond(now, t1, &Value::Nil);
    assert!(drain(&mut b).is_empty());
    b.handle_datagram(now, addr("203.0.113.1:1"), &first);
    assert_eq!(tokens(&mut b).len(), 1);
    assert_eq!(b.poll_preempted(), Some(t2));
}

#[test]
fn loopback_sources_share_slots_too_but_are_exempt_from_rates_unless_strict() {
    let now = t0();
    let config = |strict_local| EndpointConfig {
        max_concurrent_requests: 64,
        limits: LimitsConfig {
            strict_local,
            load_requests_per_sec: 1.0,
            requests_per_sec: 10.0,
            requests_burst: 10.0,
            ..LimitsConfig::default()
        },
        ..EndpointConfig::default()
    };
    let mut lenient = Endpoint::new(config(false), 2);
    let mut strict = Endpoint::new(config(true), 2);
    for n in 0..200u32 {
        let from = SocketAddr::from(([127, 0, 1, 1], 1000 + n as u16));
        lenient.handle_datagram(now, from, &request(n, "sleep", &[]));
        strict.handle_datagram(now, from, &request(n, "sleep", &[]));
    }
    // Loaded (the load rate is 1/s): the strict endpoint rate-limits loopback.
    assert_eq!(tokens(&mut lenient).len(), 200);
    assert_eq!(tokens(&mut strict).len(), 10);
    // Slots: the lenient endpoint holds 64, the rest were preempted (no exemption).
    assert_eq!(lenient.requests_in_progress(), 64);
    assert_eq!(lenient.stats().requests_preempted, 136);
    assert_eq!(lenient.requests_in_progress_from(addr("127.0.1.1:1")), 64);
    // The amplification rule is no per-address limit: it holds on loopback too.
    assert_eq!(
        lenient
            .amplification_budget(addr("127.0.1.1:1000"))
            .map(|b| b > 0),
        Some(true)
    );
    assert_eq!(lenient.amplification_budget(addr("127.0.1.1:999")), Some(0));
}

/// A strict endpoint whose rate limits are 10 requests (burst and per second), and
/// which counts as loaded above `load` requests per second.
fn rate_limited(load: f64) -> Endpoint {
    let mut config = strict();
    config.limits.requests_per_sec = 10.0;
    config.limits.requests_burst = 10.0;
    config.limits.load_requests_per_sec = load;
    Endpoint::new(config, 2)
}

#[test]
fn a_flooding_subnet_is_rate_limited_under_load_and_its_bucket_refills_with_time() {
    let now = t0();
    let mut b = rate_limited(5.0);
    for n in 0..30u32 {
        let from = SocketAddr::from(([127, 0, 1, 1], 1000 + n as u16));
        b.handle_datagram(now, from, &request(n, "ping", &[]));
    }
    assert_eq!(tokens(&mut b).len(), 10);
    assert_eq!(b.stats().requests_rate_limited, 20);
    // Another /24 has its own bucket.
    b.handle_datagram(now, addr("127.0.2.1:9"), &request(100, "ping", &[]));
    assert_eq!(tokens(&mut b).len(), 1);
    // Half a second later, five more.
    let later = now + Duration::from_millis(500);
    for n in 200..210u32 {
        b.handle_datagram(later, addr("127.0.1.1:1"), &request(n, "ping", &[]));
    }
    assert_eq!(tokens(&mut b).len(), 5);
    // Responses are not rate limited (they cost one lookup and are counted unknown).
    let mut resp = Vec::new();
    encode_response(Dialect::Rpcudp, &MessageId([3; 20]), &Value::Nil, &mut resp);
    b.handle_datagram(later, addr("127.0.1.1:1"), &resp);
    assert_eq!(b.stats().unknown_responses, 1);
}

#[test]
fn a_forged_flood_from_a_victims_subnet_does_not_refuse_the_victim_while_there_is_capacity() {
    let now = t0();
    let mut b = rate_limited(1000.0);
    // 500 forged pings "from" 203.0.113.0/24 in one instant (50× its bucket), then the
    // victim on that /24: all served, nothing refused, the endpoint is not loaded.
    for n in 0..500u32 {
        let from = SocketAddr::from(([203, 0, 113, (n % 250) as u8], 1000));
        b.handle_datagram(now, from, &request(n, "ping", &[]));
    }
    b.handle_datagram(now, addr("203.0.113.77:5000"), &request(9999, "ping", &[]));
    assert_eq!(tokens(&mut b).len(), 501);
    assert_eq!(b.stats().requests_rate_limited, 0);
}

#[test]
fn under_load_a_validated_address_keeps_its_own_bucket_apart_from_its_subnet() {
    let now = t0();
    let mut b = rate_limited(1.0);
    let victim = addr("203.0.113.77:5000");
    b.mark_validated(victim);
    for n in 0..100u32 {
        let from = SocketAddr::from(([203, 0, 113, (n % 250) as u8], 1000));
        b.handle_datagram(now, from, &request(n, "ping", &[]));
    }
    assert_eq!(
        tokens(&mut b).len(),
        10,
        "the forged subnet is limited under load"
    );
    for n in 0..5u32 {
        b.handle_datagram(now, victim, &request(1000 + n, "ping", &[]));
    }
    assert_eq!(
        tokens(&mut b).len(),
        5,
        "the validated victim has its own bucket"
    );
}

#[test]
fn a_subnet_over_its_byte_rate_is_refused_before_decoding_under_load() {
    let mut config = strict();
    config.limits.bytes_per_sec = 1000.0;
    config.limits.bytes_burst = 1000.0;
    config.limits.load_bytes_per_sec = 100.0;
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let big = request(1, "echo", &[Value::Binary(vec![0; 400])]);
    for n in 0..5u32 {
        let mut d = big.clone();
        d[1] = n as u8;
        b.handle_datagram(now, addr("127.0.1.1:1"), &d);
    }
    assert_eq!(tokens(&mut b).len(), 2);
    assert_eq!(b.stats().bytes_rate_limited, 3);
}

#[test]
fn amplified_answers_to_one_destination_are_held_to_its_byte_budget_even_when_validated() {
    let mut config = strict();
    config.limits.destination_bytes_per_sec = 10_000.0;
    config.limits.destination_bytes_burst = 20_000.0;
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    let h = addr("198.51.100.5:4000");
    b.mark_validated(h);
    // 10 requests of ~30 B "from" H, each answered with 5,000 B: the burst takes 4.
    for n in 0..10u32 {
        b.handle_datagram(now, h, &request(n, "get", &[]));
    }
    for (token, _) in tokens(&mut b) {
        b.respond(now, token, &answer_of(5000));
    }
    assert_eq!(drain(&mut b).len(), 4);
    assert_eq!(b.stats().answers_dropped_destination_budget, 6);
    // An answer within 3× of its request never counts: pings still go.
    b.handle_datagram(now, h, &request(100, "ping", &[]));
    let [(token, _)] = tokens(&mut b)[..] else {
        panic!()
    };
    b.respond(now, token, &Value::from("pong"));
    assert_eq!(drain(&mut b).len(), 1);
    // A second later, the budget has refilled by 10,000 B: two more.
    let later = now + Duration::from_secs(1);
    for n in 200..205u32 {
        b.handle_datagram(later, h, &request(n, "get", &[]));
    }
    for (token, _) in tokens(&mut b) {
        b.respond(later, token, &answer_of(5000));
    }
    assert_eq!(drain(&mut b).len(), 2);
}

#[test]
fn per_source_tables_stay_bounded_under_a_flood_from_many_addresses() {
    let mut config = strict();
    config.limits.max_sources = 1000;
    config.limits.max_unvalidated_addresses = 2000;
    let now = t0();
    let mut b = Endpoint::new(config, 2);
    for n in 0..100_000u32 {
        let [_, x, y, z] = n.to_be_bytes();
        let from = SocketAddr::from(([10, x, y, z], 1000 + (n % 7) as u16));
        // Malformed junk and requests alike.
        let d = if n % 2 == 0 {
            vec![0xff; 30]
        } else {
            request(n, "ping", &[])
        };
        b.handle_datagram(now, from, &d);
        if let Some(Event::Request { token, .. }) = b.poll_event() {
            b.abandon(now, token);
        }
        let t = b.limit_tables();
        assert!(t.sources <= 1000 && t.unvalidated <= 2000, "{t:?}");
    }
    assert!(b.limit_tables().inflight_sources == 0);
}
