//! Decode throughput of the length-type frame decoder.
//!
//! Run: `cargo bench -p rpcudp-proto --bench lt_decode`. Each case decodes a stream of
//! back-to-back frames fed in 64 KiB reads (as a TCP read loop would), and reports
//! throughput both in frames and in bytes.
//!
//! Measured on the project's 2-core machine (shared, so noisy), criterion medians:
//! 19-byte frames ('>HB', 16-byte body) 16.0 M frames/s, 419 MiB/s; 259-byte frames
//! 13.5 M frames/s, 3.2 GiB/s; 4102-byte frames ('>IH') 3.5 M frames/s, 9.0 GiB/s.
//! Decoding itself does not copy bodies (`split_to` + `freeze`); the per-byte cost is the
//! copy of each read into the buffer, which the bench includes as a socket read would.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rpcudp_proto::wire::lt::{FrameDecoder, FrameFormat, Width};
use std::hint::black_box;

const READ: usize = 64 * 1024;

fn stream(format: FrameFormat, body: usize, count: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    let payload = vec![0xA5u8; body];
    for i in 0..count {
        format.encode((i % 200) as u64, &payload, &mut out).unwrap();
    }
    out.to_vec()
}

fn decode_all(format: FrameFormat, stream: &[u8]) -> usize {
    let mut decoder = FrameDecoder::new(format);
    let mut buf = BytesMut::with_capacity(READ * 2);
    let mut frames = 0;
    for chunk in stream.chunks(READ) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            black_box(&frame);
            frames += 1;
        }
    }
    frames
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("lt_decode");
    for (name, format, body) in [
        ("H_B_body16", FrameFormat::default(), 16),
        ("H_B_body256", FrameFormat::default(), 256),
        ("I_H_body4096", FrameFormat::new(Width::W4, Width::W2), 4096),
    ] {
        let count = (4 * 1024 * 1024 / (body + format.header_len())).max(1);
        let data = stream(format, body, count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("frames", name), &data, |b, data| {
            b.iter(|| assert_eq!(decode_all(format, data), count))
        });
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("bytes", name), &data, |b, data| {
            b.iter(|| assert_eq!(decode_all(format, data), count))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
