//! Error replies end to end between two endpoints, by hand: what `respond_error` puts on
//! the wire, and what a caller makes of it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rmpv::Value;

use super::*;
use crate::wire::rpc::{
    decode_packet, error_reply, Dialect, Packet, ERROR_REPLY_KEY, MAX_ERROR_MESSAGE,
};
use crate::wire::value::DecodeLimits;

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

const A: &str = "127.0.0.1:1000";
const B: &str = "127.0.0.1:2000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A calls `method` on B; B's request event comes back with the token. The request
/// datagram is delivered, nothing else.
fn request(
    a: &mut Endpoint,
    b: &mut Endpoint,
    now: Instant,
    method: &str,
) -> (CallId, RequestToken) {
    let call = a
        .call(now, addr(B), method, &[], CallOptions::default())
        .unwrap();
    let datagram = a.poll_transmit().unwrap();
    b.handle_datagram(now, addr(A), &datagram.payload);
    let Some(Event::Request { token, .. }) = b.poll_event() else {
        panic!("no request event")
    };
    (call, token)
}

/// B's next datagram, delivered to A; returns its payload.
fn deliver(b: &mut Endpoint, a: &mut Endpoint, now: Instant) -> Vec<u8> {
    let t = b.poll_transmit().expect("B sent nothing");
    a.handle_datagram(now, addr(B), &t.payload);
    t.payload
}

#[test]
fn an_error_reply_ends_the_call_with_the_remote_message_not_a_timeout() {
    let now = t0();
    let (mut a, mut b) = (
        Endpoint::new(EndpointConfig::default(), 1),
        Endpoint::new(EndpointConfig::default(), 2),
    );
    let (call, token) = request(&mut a, &mut b, now, "half");
    b.respond_error(now, token, "3 is odd");
    let payload = deliver(&mut b, &mut a, now);
    // On the wire: an ordinary response whose body is the one-entry map.
    let Ok(Packet::Response { value, .. }) =
        decode_packet(Dialect::Rpcudp, &payload, &DecodeLimits::default())
    else {
        panic!("not a response")
    };
    assert_eq!(
        value,
        Value::Map(vec![(ERROR_REPLY_KEY.into(), "3 is odd".into())])
    );
    assert_eq!(
        a.poll_event(),
        Some(Event::CallFailed {
            call,
            error: CallFailure::Remote {
                message: "3 is odd".into()
            }
        })
    );
    assert_eq!(a.outstanding_calls(), 0, "the call is over, no timer left");
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(
        (a.stats().error_replies_received, a.stats().calls_succeeded),
        (1, 0)
    );
    assert_eq!(
        (b.stats().error_replies_sent, b.stats().responses_sent),
        (1, 1)
    );
}

#[test]
fn a_duplicate_of_a_failed_request_gets_the_same_error_reply_from_the_cache() {
    let now = t0();
    let (mut a, mut b) = (
        Endpoint::new(EndpointConfig::default(), 1),
        Endpoint::new(EndpointConfig::default(), 2),
    );
    let call = a
        .call(now, addr(B), "m", &[], CallOptions::default())
        .unwrap();
    let req = a.poll_transmit().unwrap().payload;
    b.handle_datagram(now, addr(A), &req);
    let Some(Event::Request { token, .. }) = b.poll_event() else {
        panic!()
    };
    b.respond_error(now, token, "no");
    let first = b.poll_transmit().unwrap().payload;
    b.handle_datagram(now, addr(A), &req); // the retry
    assert_eq!(b.poll_event(), None, "the handler is not run again");
    assert_eq!(b.poll_transmit().unwrap().payload, first);
    a.handle_datagram(now, addr(B), &first);
    assert!(matches!(
        a.poll_event(),
        Some(Event::CallFailed { call: c, error: CallFailure::Remote { .. } }) if c == call
    ));
}

#[test]
fn with_error_replies_off_the_map_arrives_as_an_ordinary_value() {
    let now = t0();
    let config = EndpointConfig {
        error_replies: false,
        ..EndpointConfig::default()
    };
    let (mut a, mut b) = (
        Endpoint::new(config, 1),
        Endpoint::new(EndpointConfig::default(), 2),
    );
    let (call, token) = request(&mut a, &mut b, now, "m");
    b.respond_error(now, token, "boom");
    deliver(&mut b, &mut a, now);
    assert_eq!(
        a.poll_event(),
        Some(Event::CallSucceeded {
            call,
            value: error_reply("boom")
        })
    );
}

#[test]
fn only_the_exact_error_shape_is_an_error_other_maps_are_values() {
    let now = t0();
    let (mut a, mut b) = (
        Endpoint::new(EndpointConfig::default(), 1),
        Endpoint::new(EndpointConfig::default(), 2),
    );
    let near_misses = [
        // another key beside it
        Value::Map(vec![
            (ERROR_REPLY_KEY.into(), "x".into()),
            ("other".into(), Value::Nil),
        ]),
        // a message that is not a str
        Value::Map(vec![(ERROR_REPLY_KEY.into(), 5.into())]),
        // the key as bin, not str
        Value::Map(vec![(Value::Binary(ERROR_REPLY_KEY.into()), "x".into())]),
        // the plain {"error": ...} an application might return
        Value::Map(vec![("error".into(), "x".into())]),
    ];
    for v in near_misses {
        let (call, token) = request(&mut a, &mut b, now, "m");
        b.respond(now, token, &v);
        deliver(&mut b, &mut a, now);
        assert_eq!(
            a.poll_event(),
            Some(Event::CallSucceeded { call, value: v })
        );
    }
    assert_eq!(a.stats().error_replies_received, 0);
}

#[test]
fn a_long_message_is_cut_at_a_char_boundary_and_still_sent_in_the_storj_dialect() {
    let now = t0();
    let storj = EndpointConfig::for_dialect(Dialect::Storj);
    let (mut a, mut b) = (Endpoint::new(storj.clone(), 1), Endpoint::new(storj, 2));
    // A long answer to an address that has not proven it receives there would be over
    // its 3x budget (SECURITY.md): as for any answer, the caller proves it first.
    b.mark_validated(addr(A));
    let (call, token) = request(&mut a, &mut b, now, "m");
    let long = "é".repeat(10_000); // 20 000 bytes, 2-byte chars
    b.respond_error(now, token, &long);
    let payload = deliver(&mut b, &mut a, now);
    assert!(payload.len() <= 8192);
    let Some(Event::CallFailed {
        call: c,
        error: CallFailure::Remote { message },
    }) = a.poll_event()
    else {
        panic!("no remote error")
    };
    assert_eq!(c, call);
    assert_eq!(message.len(), MAX_ERROR_MESSAGE);
    assert!(long.starts_with(&message));
}

#[test]
fn an_error_reply_to_an_unknown_token_is_ignored_and_not_counted() {
    let mut b = Endpoint::new(EndpointConfig::default(), 2);
    b.respond_error(t0(), RequestToken(99), "x");
    assert_eq!(b.poll_transmit(), None);
    assert_eq!(b.stats().error_replies_sent, 0);
}

#[test]
fn warnings_are_admitted_at_the_configured_rate() {
    let config = EndpointConfig {
        warn_lines_per_sec: 3,
        ..EndpointConfig::default()
    };
    let mut e = Endpoint::new(config, 1);
    let now = t0();
    let admitted: Vec<_> = (0..10).map(|_| e.admit_warning(now)).collect();
    assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 3);
    assert_eq!(e.admit_warning(now + Duration::from_secs(1)), Some(7));
}
