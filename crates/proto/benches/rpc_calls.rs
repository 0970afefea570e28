//! Criterion micro-benchmarks of the RPC endpoint's tables, on a virtual clock:
//! - the call table: `call` (insert + encode) then the response (`handle_datagram`,
//!   complete), and `call` then `handle_timeout` (expire), each with 0 and 100 000 other
//!   calls in flight, to show the cost stays O(log n) in the number in flight;
//! - the serving side: a request in, its event out, `respond`, the response out (this is
//!   the server's whole per-request work, duplicate cache included).
//!
//! `cargo bench -p rpcudp-proto --bench rpc_calls`. Under `cargo test --all-targets` each
//! benchmark runs once, as a smoke test.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rmpv::Value;
use rpcudp_proto::rpc::{CallOptions, Endpoint, EndpointConfig, Event};
use rpcudp_proto::wire::rpc::{encode_request, encode_response, Dialect, MessageId, HEADER_LEN};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The one real instant the virtual clock starts from (the core itself reads no clock).
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

const BACKGROUND: [usize; 2] = [0, 100_000];

fn peer() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

/// An endpoint with `n` calls in flight that will not end during the benchmark.
fn endpoint_with_background(n: usize, now: Instant) -> Endpoint {
    let config = EndpointConfig {
        max_outstanding_calls: n + 16,
        ..EndpointConfig::default()
    };
    let mut ep = Endpoint::new(config, 7);
    let long = CallOptions {
        attempt_timeout: Duration::from_secs(365 * 24 * 3600),
        ..CallOptions::default()
    };
    let other: SocketAddr = "127.0.0.1:4001".parse().unwrap();
    for _ in 0..n {
        ep.call(now, other, "ping", &[], long.clone()).unwrap();
    }
    while ep.poll_transmit().is_some() {}
    ep
}

fn call_complete(c: &mut Criterion) {
    let mut group = c.benchmark_group("call_table");
    for n in BACKGROUND {
        let now = origin();
        let mut ep = endpoint_with_background(n, now);
        let mut response = Vec::new();
        encode_response(
            Dialect::Rpcudp,
            &MessageId([0; 20]),
            &Value::from("pong"),
            &mut response,
        );
        group.bench_function(BenchmarkId::new("call+complete", n), |b| {
            b.iter(|| {
                let call = ep
                    .call(now, peer(), "ping", &[], CallOptions::default())
                    .unwrap();
                let request = ep.poll_transmit().unwrap();
                response[1..HEADER_LEN].copy_from_slice(&request.payload[1..HEADER_LEN]);
                ep.handle_datagram(now, peer(), &response);
                match ep.poll_event() {
                    Some(Event::CallSucceeded { call: done, .. }) => assert_eq!(done, call),
                    other => panic!("expected the call to succeed, got {other:?}"),
                }
            })
        });
        assert_eq!(ep.outstanding_calls(), n);
    }
    group.finish();
}

fn call_expire(c: &mut Criterion) {
    let mut group = c.benchmark_group("call_table");
    let timeout = Duration::from_millis(5);
    for n in BACKGROUND {
        let mut now = origin();
        let mut ep = endpoint_with_background(n, now);
        let options = CallOptions {
            attempt_timeout: timeout,
            ..CallOptions::default()
        };
        group.bench_function(BenchmarkId::new("call+expire", n), |b| {
            b.iter(|| {
                ep.call(now, peer(), "ping", &[], options.clone()).unwrap();
                ep.poll_transmit().unwrap();
                now += timeout;
                ep.handle_timeout(black_box(now));
                match ep.poll_event() {
                    Some(Event::CallFailed { .. }) => {}
                    other => panic!("expected a timeout, got {other:?}"),
                }
            })
        });
        assert_eq!(ep.outstanding_calls(), n);
    }
    group.finish();
}

fn serve(c: &mut Criterion) {
    let mut group = c.benchmark_group("serve");
    let mut now = origin();
    let mut ep = Endpoint::new(EndpointConfig::default(), 9);
    let mut request = Vec::new();
    encode_request(
        Dialect::Rpcudp,
        &MessageId([0; 20]),
        "ping",
        &[],
        &mut request,
    );
    let pong = Value::from("pong");
    let mut counter: u64 = 0;
    group.bench_function("request+respond", |b| {
        b.iter(|| {
            // A fresh id each time: a repeated one would be answered from the cache.
            counter += 1;
            request[1..9].copy_from_slice(&counter.to_be_bytes());
            now += Duration::from_micros(1);
            ep.handle_datagram(now, peer(), &request);
            let Some(Event::Request { token, .. }) = ep.poll_event() else {
                panic!("expected a request event");
            };
            ep.respond(now, token, &pong);
            black_box(ep.poll_transmit().unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, call_complete, call_expire, serve);
criterion_main!(benches);
