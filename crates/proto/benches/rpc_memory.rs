//! Memory benchmark: resident bytes per outstanding call with 100 000 calls in flight in
//! one [`Endpoint`], and per duplicate-cache entry with 100 000 answered requests
//! remembered. Reads VmRSS from /proc/self/status before and after (Linux only), so the
//! numbers include the allocator's and the tables' slack, as a process would see them.
//! Each measurement runs in a fresh child process (this binary, re-run with `--measure`):
//! memory one measurement freed would otherwise be reused by the next and hide it.
//!
//! `cargo bench -p rpcudp-proto --bench rpc_memory` prints the table for BENCHMARKS.md.
//! Under `cargo test --all-targets` it runs with 1 000 entries as a smoke test (RSS moves
//! in pages, so only the full run gives meaningful per-entry numbers).

use rmpv::Value;
use rpcudp_proto::rpc::{CallOptions, Endpoint, EndpointConfig, Event};
use rpcudp_proto::wire::rpc::{encode_request, Dialect, MessageId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Resident set size in bytes, from /proc/self/status (`None` off Linux).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The one real instant the virtual clock starts from (the core itself reads no clock).
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

struct Row {
    what: String,
    entries: usize,
    bytes: i64,
    payload: usize,
}

/// `n` calls of `ping()` in flight; the request datagrams are sent (dropped here).
fn outstanding_calls(n: usize, retries: u32) -> Row {
    let now = origin();
    let before = rss();
    let config = EndpointConfig {
        max_outstanding_calls: n,
        ..EndpointConfig::default()
    };
    let mut ep = Endpoint::new(config, 1);
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let options = CallOptions {
        attempt_timeout: Duration::from_secs(5),
        retries,
        ..CallOptions::default()
    };
    let mut request_bytes = 0;
    for _ in 0..n {
        ep.call(now, peer, "ping", &[], options.clone()).unwrap();
        request_bytes = ep.poll_transmit().unwrap().payload.len();
    }
    assert_eq!(ep.outstanding_calls(), n);
    let after = rss();
    let row = Row {
        what: format!("outstanding call, ping(), retries={retries}"),
        entries: n,
        bytes: delta(before, after),
        // With resends left, the endpoint keeps the request datagram for them.
        payload: if retries > 0 { request_bytes } else { 0 },
    };
    drop(ep);
    row
}

/// `n` distinct requests answered, each remembered in the duplicate cache.
fn dedup_entries(n: usize) -> Row {
    let mut now = origin();
    let before = rss();
    let config = EndpointConfig {
        dedup_capacity: n,
        dedup_max_bytes: 1 << 30,
        ..EndpointConfig::default()
    };
    let mut ep = Endpoint::new(config, 2);
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut request = Vec::new();
    encode_request(
        Dialect::Rpcudp,
        &MessageId([0; 20]),
        "ping",
        &[],
        &mut request,
    );
    let pong = Value::from("pong");
    for i in 0..n as u64 {
        request[1..9].copy_from_slice(&i.to_be_bytes());
        now += Duration::from_nanos(1);
        ep.handle_datagram(now, peer, &request);
        let Some(Event::Request { token, .. }) = ep.poll_event() else {
            panic!("request {i} was not handed out");
        };
        ep.respond(now, token, &pong);
        ep.poll_transmit().unwrap();
    }
    assert_eq!(ep.dedup_entries(), n);
    let after = rss();
    let row = Row {
        what: "duplicate-cache entry (answered ping)".into(),
        entries: n,
        bytes: delta(before, after),
        payload: ep.dedup_bytes() / n.max(1),
    };
    drop(ep);
    row
}

fn delta(before: Option<u64>, after: Option<u64>) -> i64 {
    match (before, after) {
        (Some(b), Some(a)) => a as i64 - b as i64,
        _ => -1,
    }
}

fn measure(what: &str, n: usize) -> Row {
    match what {
        "calls" => outstanding_calls(n, 0),
        "calls-retries" => outstanding_calls(n, 2),
        "dedup" => dedup_entries(n),
        other => panic!("unknown measurement {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        // Child: one measurement, one tab-separated line.
        let what = &args[i + 1];
        let n: usize = args[i + 2].parse().expect("entry count");
        let r = measure(what, n);
        println!("{}\t{}\t{}\t{}", r.what, r.entries, r.bytes, r.payload);
        return;
    }
    if rss().is_none() {
        println!("rpc_memory: /proc/self/status is not readable here; no numbers");
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let n = if full { 100_000 } else { 1_000 };
    let exe = std::env::current_exe().expect("own path");
    println!("| what | entries | RSS growth | bytes per entry | of which payload |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for what in ["calls", "calls-retries", "dedup"] {
        let out = std::process::Command::new(&exe)
            .args(["--measure", what, &n.to_string()])
            .output()
            .expect("the measurement runs");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.trim().split('\t').collect();
        let (entries, bytes): (f64, f64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        println!(
            "| {} | {} | {:.1} MiB | {:.0} | {} |",
            f[0],
            f[1],
            bytes / (1024.0 * 1024.0),
            bytes / entries,
            f[3]
        );
    }
    if !full {
        println!("(smoke run with {n} entries: per-entry numbers are page-granular noise)");
    }
}
