//! Criterion micro-benchmarks of the RPC datagram codec, both dialects: encoding a
//! request and a response into a reused buffer, and decoding them (with the bounded
//! decoder untrusted bytes go through).
//!
//! `cargo bench -p rpcudp-proto --bench rpc_codec`. Under `cargo test --all-targets` each
//! benchmark runs once, as a smoke test.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmpv::Value;
use rpcudp_proto::wire::rpc::{
    decode_packet, encode_request, encode_response, DecodeLimits, Dialect, MessageId, Packet,
};
use std::hint::black_box;

const DIALECTS: [(Dialect, &str); 2] = [(Dialect::Rpcudp, "rpcudp"), (Dialect::Storj, "storj")];

/// The payloads: the bench's `ping()` and a heavier `echo` of a 1 KiB bin, an int, a
/// float and a small map (the mix a DHT `store` carries).
fn cases() -> Vec<(&'static str, &'static str, Vec<Value>, Value)> {
    let mixed = vec![
        Value::Binary(vec![0xab; 1024]),
        Value::from(1_234_567_890_i64),
        Value::from(3.25),
        Value::Map(vec![(Value::from("key"), Value::from("value"))]),
    ];
    vec![
        ("ping", "ping", vec![], Value::from("pong")),
        ("echo-1k", "echo", mixed.clone(), Value::Array(mixed)),
    ]
}

fn encode(c: &mut Criterion) {
    let id = MessageId([0x5a; 20]);
    let mut group = c.benchmark_group("rpc_encode");
    for (dialect, dname) in DIALECTS {
        for (case, method, args, value) in cases() {
            let mut out = Vec::with_capacity(2048);
            encode_request(dialect, &id, method, &args, &mut out);
            group.throughput(Throughput::Bytes(out.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("request/{dname}"), case),
                &args,
                |b, args| {
                    b.iter(|| {
                        out.clear();
                        encode_request(dialect, &id, black_box(method), black_box(args), &mut out);
                        out.len()
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("response/{dname}"), case),
                &value,
                |b, value| {
                    b.iter(|| {
                        out.clear();
                        encode_response(dialect, &id, black_box(value), &mut out);
                        out.len()
                    })
                },
            );
        }
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let id = MessageId([0x5a; 20]);
    let limits = DecodeLimits::default();
    let mut group = c.benchmark_group("rpc_decode");
    for (dialect, dname) in DIALECTS {
        for (case, method, args, value) in cases() {
            let mut request = Vec::new();
            encode_request(dialect, &id, method, &args, &mut request);
            let mut response = Vec::new();
            encode_response(dialect, &id, &value, &mut response);
            // Sanity: what is measured is a successful decode, not an early refusal.
            assert!(matches!(
                decode_packet(dialect, &request, &limits),
                Ok(Packet::Request { .. })
            ));
            assert!(matches!(
                decode_packet(dialect, &response, &limits),
                Ok(Packet::Response { .. })
            ));
            group.throughput(Throughput::Bytes(request.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("request/{dname}"), case),
                &request,
                |b, d| b.iter(|| decode_packet(dialect, black_box(d), &limits)),
            );
            group.throughput(Throughput::Bytes(response.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("response/{dname}"), case),
                &response,
                |b, d| b.iter(|| decode_packet(dialect, black_box(d), &limits)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
