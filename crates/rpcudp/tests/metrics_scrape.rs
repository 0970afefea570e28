//! The metrics layer end to end: counters that move by exactly the traffic a test sent,
//! the text format checked by `promtool` and scraped by a real Prometheus server, the
//! `/status` JSON, the HTTP bounds, and a stuck scraper that does not slow RPC answers.

use rmpv::Value;
use rpcudp::kad::{Dht, DhtConfig, LookupKind, LookupOutcome, NodeConfig};
use rpcudp::metrics::{Metrics, MetricsServer, MetricsServerConfig, Status};
use rpcudp::rpc::{Endpoint, HandlerError};
use rpcudp_proto::wire::rpc::{encode_request, Dialect, MessageId};
use rpcudp_testkit::prometheus::{
    http_get, promtool_check_metrics, require_prometheus, Prometheus,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PINGS: usize = 7;
const MALFORMED: usize = 5;
const UNKNOWN_METHOD: usize = 3;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn ping_server() -> Endpoint {
    let node = Endpoint::bind(local()).await.unwrap();
    node.register("ping", |_from, _args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::from("pong"))
    });
    node
}

/// Sends PINGS answered pings, MALFORMED datagrams that do not parse and UNKNOWN_METHOD
/// requests for a method nobody serves, then waits until the server has read them all.
async fn send_known_traffic(server: &Endpoint) {
    let client = Endpoint::bind(local()).await.unwrap();
    for _ in 0..PINGS {
        let v = client
            .call(server.local_addr(), "ping", vec![])
            .await
            .unwrap();
        assert_eq!(v, Value::from("pong"));
    }
    let raw = tokio::net::UdpSocket::bind(local()).await.unwrap();
    for i in 0..MALFORMED {
        // 0x07 is no kind byte of either dialect.
        raw.send_to(&[0x07, i as u8, 1, 2, 3], server.local_addr())
            .await
            .unwrap();
    }
    for i in 0..UNKNOWN_METHOD {
        let mut d = Vec::new();
        encode_request(
            Dialect::Rpcudp,
            &MessageId([i as u8 + 1; 20]),
            "no_such_method",
            &[],
            &mut d,
        );
        raw.send_to(&d, server.local_addr()).await.unwrap();
    }
    let total = (PINGS + MALFORMED + UNKNOWN_METHOD) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().core.datagrams_in < total || server.stats().unknown_methods < 3 {
        assert!(Instant::now() < deadline, "server saw {:?}", server.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.shutdown().await;
}

/// The value of a one-sample instant-vector answer of Prometheus' query API.
fn scalar(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

fn sample_line(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_counters_move_by_exactly_the_pings_malformed_datagrams_and_unknown_methods_sent() {
    if !require_prometheus("scraped_counters_move_by_exactly_the_traffic_sent") {
        return;
    }
    let server = ping_server().await;
    let metrics = MetricsServer::start(local(), Metrics::new().with_node(&server)).unwrap();
    let before = metrics_text(metrics.local_addr());
    assert_eq!(
        sample_line(&before, "rpcudp_rpc_requests_received_total"),
        Some(0.0)
    );
    send_known_traffic(&server).await;

    let text = metrics_text(metrics.local_addr());
    promtool_check_metrics(&text).unwrap();
    let expect = [
        (
            "rpcudp_rpc_datagrams_received_total",
            (PINGS + MALFORMED + UNKNOWN_METHOD) as f64,
        ),
        (
            "rpcudp_rpc_requests_received_total",
            (PINGS + UNKNOWN_METHOD) as f64,
        ),
        ("rpcudp_rpc_responses_sent_total", PINGS as f64),
        (
            "rpcudp_rpc_dropped_total{reason=\"malformed\"}",
            MALFORMED as f64,
        ),
        (
            "rpcudp_rpc_dropped_total{reason=\"unknown_method\"}",
            UNKNOWN_METHOD as f64,
        ),
        ("rpcudp_rpc_dropped_total{reason=\"overload\"}", 0.0),
        (
            "rpcudp_rpc_handler_duration_seconds_count",
            (PINGS + UNKNOWN_METHOD) as f64,
        ),
    ];
    for (series, value) in expect {
        assert_eq!(
            sample_line(&text, series),
            Some(value),
            "{series} in\n{text}"
        );
    }

    // The same numbers through a real Prometheus server's scrape and query API.
    let prom = Prometheus::start(&[metrics.local_addr()]);
    let deadline = Instant::now() + Duration::from_secs(40);
    for (series, value) in expect {
        loop {
            let got = scalar(&prom.query(series));
            if got == Some(value) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus has {series} = {got:?}, not {value}\ntargets: {}\nlog: {}",
                prom.api("targets"),
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert_eq!(scalar(&prom.query("up{job=\"rpcudp\"}")), Some(1.0));
    drop(prom);
    metrics.shutdown();
    server.shutdown().await;
}

fn metrics_text(addr: SocketAddr) -> String {
    let (code, body) = http_get(addr, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn every_family_has_help_and_passes_promtool_even_before_any_traffic() {
    if !require_prometheus("every_family_has_help_and_passes_promtool") {
        return;
    }
    let server = ping_server().await;
    let text = Metrics::new().with_node(&server).render();
    promtool_check_metrics(&text).unwrap();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert!(families.len() >= 20, "{text}");
    for f in families {
        let name = f.split(' ').next().unwrap();
        assert!(name.starts_with("rpcudp_"), "{name}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_status_view_shows_the_bound_address_and_the_top_drop_reasons() {
    let server = ping_server().await;
    let metrics = MetricsServer::start(local(), Metrics::new().with_node(&server)).unwrap();
    send_known_traffic(&server).await;
    let (code, body) = http_get(metrics.local_addr(), "/status", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200);
    let status: Status = serde_json::from_str(&body).unwrap();
    assert_eq!(status.bound_address, Some(server.local_addr()));
    assert!(status.node_id.is_none() && status.routing_table.is_none());
    let top: Vec<(&str, u64)> = status
        .top_drop_reasons
        .iter()
        .map(|d| (d.reason.as_str(), d.count))
        .collect();
    assert_eq!(
        top,
        [
            ("malformed", MALFORMED as u64),
            ("unknown_method", UNKNOWN_METHOD as u64)
        ]
    );
    let rpc = status.rpc.unwrap();
    assert_eq!(rpc.responses_sent, PINGS as u64);
    assert_eq!(rpc.calls_in_flight, 0);
    metrics.shutdown();
    server.shutdown().await;
}

#[tokio::test]
async fn the_listener_answers_only_get_of_its_two_paths_and_refuses_an_oversized_head() {
    let server = ping_server().await;
    let metrics = MetricsServer::start(local(), Metrics::new().with_node(&server)).unwrap();
    let addr = metrics.local_addr();
    let t = Duration::from_secs(5);
    assert_eq!(http_get(addr, "/", t).unwrap().0, 404);
    assert_eq!(http_get(addr, "/metrics?x=1", t).unwrap().0, 200);
    let raw = |request: &[u8]| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(t)).unwrap();
        // The server may answer and close before taking all of a long head.
        let _ = s.write_all(request);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(raw(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(raw(b"\x00\x01 nonsense\r\n\r\n").starts_with("HTTP/1.1 400"));
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    assert!(raw(&huge).starts_with("HTTP/1.1 431"));
    metrics.shutdown();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_that_connects_and_never_reads_does_not_slow_rpc_answers() {
    use std::io::Write;
    let server = ping_server().await;
    let mut config = MetricsServerConfig::default();
    config.read_timeout = Duration::from_secs(4);
    let metrics =
        MetricsServer::start_with(local(), Metrics::new().with_node(&server), config).unwrap();
    let addr = metrics.local_addr();
    let mut stuck = Vec::new();
    // Scrapers that ask and never read the answer...
    for _ in 0..4 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        stuck.push(s);
    }
    // (Their answers sit unread in the socket buffers; their slots are free again once
    // written, which these 300 ms leave ample time for.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and more than the listener serves at once that never finish asking.
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        stuck.push(s);
    }
    let stuck_since = Instant::now();
    // The listener is full of slow heads: a scrape now evicts the oldest and is answered.
    let evicting = http_get(addr, "/metrics", Duration::from_secs(2));
    assert!(matches!(evicting, Ok((200, _))), "{evicting:?}");
    assert!(metrics.evicted_and_refused().0 >= 1);

    let client = Endpoint::bind(local()).await.unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        let v = client
            .call(server.local_addr(), "ping", vec![])
            .await
            .unwrap();
        assert_eq!(v, Value::from("pong"));
        slowest = slowest.max(t.elapsed());
    }
    eprintln!(
        "200 pings beside 104 stuck scrapers in {:?}: slowest answer {slowest:?}",
        stuck_since.elapsed()
    );
    assert!(
        slowest < Duration::from_millis(250),
        "slowest answer {slowest:?}"
    );
    // Once the stuck ones time out, scraping works again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, body)) = http_get(addr, "/metrics", Duration::from_secs(2)) {
            assert!(sample_line(&body, "rpcudp_rpc_responses_sent_total").unwrap() >= 200.0);
            break;
        }
        assert!(Instant::now() < deadline, "the listener did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stuck);
    client.shutdown().await;
    metrics.shutdown();
    server.shutdown().await;
}

#[tokio::test]
async fn a_dht_node_reports_its_buckets_records_and_lookups() {
    let config = |seed| DhtConfig {
        node: NodeConfig {
            rpc_timeout: Duration::from_secs(1),
            ..NodeConfig::default()
        },
        seed: Some(seed),
        ..DhtConfig::default()
    };
    let mut nodes: Vec<Dht> = Vec::new();
    for i in 0..4 {
        let dht = Dht::start(local(), config(700 + i)).await.unwrap();
        if let Some(first) = nodes.first() {
            assert_eq!(dht.bootstrap(&[first.local_addr()]).await.unwrap(), 1);
        }
        nodes.push(dht);
    }
    nodes[1].set("colour", Value::from("blue")).await.unwrap();
    assert_eq!(
        nodes[2].get("colour").await.unwrap(),
        Some(Value::from("blue"))
    );
    let s = nodes[0].metrics_snapshot();
    assert_eq!(s.id, nodes[0].id());
    assert_eq!(s.contacts, 3);
    assert_eq!(s.buckets.iter().map(|b| b.contacts).sum::<usize>(), 3);
    assert_eq!(
        s.records, 1,
        "four nodes, k = 20: every node keeps the value"
    );
    // "blue" as charged against the store's byte cap: its 4 bytes plus 5.
    assert_eq!(s.record_bytes, 9);
    assert!(s.oldest_record_unix.is_some());
    let s1 = nodes[1].metrics_snapshot();
    let count = |kind, outcome| {
        s1.lookups
            .counts
            .iter()
            .find(|(k, o, _)| *k == kind && *o == outcome)
            .map_or(0, |c| c.2)
    };
    assert!(count(LookupKind::FindNode, LookupOutcome::Converged) >= 2); // join + set
    assert_eq!(
        s1.lookups.duration.count,
        s1.lookups.counts.iter().map(|c| c.2).sum::<u64>()
    );

    let metrics = Metrics::new().with_dht(&nodes[0]);
    let text = metrics.render();
    assert_eq!(sample_line(&text, "rpcudp_dht_contacts"), Some(3.0));
    assert_eq!(sample_line(&text, "rpcudp_dht_records"), Some(1.0));
    if require_prometheus("a_dht_node_reports_its_buckets_records_and_lookups") {
        promtool_check_metrics(&text).unwrap();
    }
    let status = metrics.status();
    assert_eq!(status.node_id, Some(nodes[0].id().to_string()));
    let table = status.routing_table.unwrap();
    assert_eq!(table.contacts, 3);
    let store = status.store.unwrap();
    assert_eq!((store.records, store.bytes), (1, 9));
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_dht_node_counts_requests_of_the_wrong_shape_in_its_metrics_and_status() {
    const BAD: u64 = 3;
    let dht = Dht::start(
        local(),
        DhtConfig {
            seed: Some(751),
            ..DhtConfig::default()
        },
    )
    .await
    .unwrap();
    let raw = tokio::net::UdpSocket::bind(local()).await.unwrap();
    for i in 0..BAD {
        // A ping must carry the caller's 20-byte id; a str is the wrong shape.
        let mut d = Vec::new();
        encode_request(
            Dialect::Rpcudp,
            &MessageId([i as u8 + 1; 20]),
            "ping",
            &[Value::from("not an id")],
            &mut d,
        );
        raw.send_to(&d, dht.local_addr()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while dht.stats().node.bad_requests < BAD {
        assert!(Instant::now() < deadline, "node saw {:?}", dht.stats().node);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = Metrics::new().with_dht(&dht);
    let text = metrics.render();
    assert_eq!(
        sample_line(&text, r#"rpcudp_dht_dropped_total{reason="bad_request"}"#),
        Some(BAD as f64)
    );
    assert_eq!(
        sample_line(&text, r#"rpcudp_dht_dropped_total{reason="own_id"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample_line(&text, "rpcudp_dht_contacts_evicted_total"),
        Some(0.0)
    );
    let status = metrics.status();
    assert!(
        status
            .top_drop_reasons
            .iter()
            .any(|d| d.reason == "dht_bad_request" && d.count == BAD),
        "{:?}",
        status.top_drop_reasons
    );
    if require_prometheus("a_dht_node_counts_requests_of_the_wrong_shape_in_its_metrics_and_status")
    {
        promtool_check_metrics(&text).unwrap();
    }
    dht.shutdown().await;
}

#[tokio::test]
async fn a_fresh_nodes_start_up_and_an_introduce_count_no_lookup_a_real_join_counts_one() {
    let config = |seed| {
        let mut config = DhtConfig {
            seed: Some(seed),
            ..DhtConfig::default()
        };
        config.node.rpc_timeout = Duration::from_secs(1);
        config
    };
    let lookups = |dht: &Dht| dht.metrics_snapshot().lookups;
    // A fresh node starting alone: `dht run` without --bootstrap rejoins through its
    // saved contacts, of which it has none. Nothing was looked up: nothing is counted,
    // in particular no `find_node` `no_answer`.
    let first = Dht::start(local(), config(800)).await.unwrap();
    assert_eq!(first.rejoin().await.unwrap(), 0);
    assert_eq!(first.bootstrap(&[]).await.unwrap(), 0);
    assert_eq!(lookups(&first).counts, []);
    assert_eq!(lookups(&first).duration.count, 0);

    // A one-shot client only pings: no lookup either.
    let client = Dht::start(local(), config(801)).await.unwrap();
    assert_eq!(client.introduce(&[first.local_addr()]).await.unwrap(), 1);
    assert_eq!(lookups(&client).counts, []);

    // A real join looks up its own id: one converged find_node.
    let joiner = Dht::start(local(), config(802)).await.unwrap();
    assert_eq!(joiner.bootstrap(&[first.local_addr()]).await.unwrap(), 1);
    assert_eq!(
        lookups(&joiner).counts,
        [(LookupKind::FindNode, LookupOutcome::Converged, 1)]
    );
    // `/status` lists them with the metric's labels; the lone node's list is empty.
    let listed = Metrics::new().with_dht(&joiner).status().lookups.unwrap();
    assert_eq!(
        (
            listed[0].kind.as_str(),
            listed[0].outcome.as_str(),
            listed[0].count,
            listed.len()
        ),
        ("find_node", "converged", 1, 1)
    );
    assert_eq!(
        Metrics::new().with_dht(&first).status().lookups,
        Some(vec![])
    );
    for dht in [joiner, client, first] {
        dht.shutdown().await;
    }
}

#[tokio::test]
async fn an_unknown_method_counts_once_as_abandoned_and_once_as_dropped_as_documented() {
    let server = ping_server().await;
    send_known_traffic(&server).await;
    let text = Metrics::new().with_node(&server).render();
    // One event, two families (README, "Operating a node"): do not add them up.
    assert_eq!(
        sample_line(&text, "rpcudp_rpc_requests_abandoned_total"),
        Some(UNKNOWN_METHOD as f64),
        "{text}"
    );
    assert_eq!(
        sample_line(&text, "rpcudp_rpc_dropped_total{reason=\"unknown_method\"}"),
        Some(UNKNOWN_METHOD as f64),
        "{text}"
    );
    // A malformed datagram is a drop only: it never was a request to abandon.
    assert_eq!(
        sample_line(&text, "rpcudp_rpc_dropped_total{reason=\"malformed\"}"),
        Some(MALFORMED as f64)
    );
    server.shutdown().await;
}

/// Stores keys `from..to` on `dht` through `client`, 64 in flight.
async fn store_keys(client: &Endpoint, dht: &Dht, from: u32, to: u32) {
    let sender = Value::Binary(vec![0x5a; 20]);
    let mut next = from;
    while next < to {
        let end = (next + 64).min(to);
        let calls = (next..end).map(|i| {
            let mut key = [0u8; 20];
            key[..4].copy_from_slice(&i.to_be_bytes());
            let args = vec![sender.clone(), Value::Binary(key.to_vec()), Value::from(i)];
            client.call(dht.local_addr(), "store", args)
        });
        for answer in futures::future::join_all(calls).await {
            assert_eq!(answer.unwrap(), Value::Boolean(true));
        }
        next = end;
    }
}

/// The median time of one `/status` and one `/metrics` (taken together), over 101.
fn scrape_time(metrics: &Metrics) -> Duration {
    let mut times: Vec<Duration> = (0..101)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(metrics.status());
            std::hint::black_box(metrics.render());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_costs_no_more_at_50_000_records_than_at_1_000() {
    let dht = Dht::start(
        local(),
        DhtConfig {
            seed: Some(760),
            ..DhtConfig::default()
        },
    )
    .await
    .unwrap();
    let client = Endpoint::bind(local()).await.unwrap();
    let metrics = Metrics::new().with_dht(&dht);
    store_keys(&client, &dht, 0, 1_000).await;
    assert_eq!(metrics.status().store.unwrap().records, 1_000);
    let small = scrape_time(&metrics);
    store_keys(&client, &dht, 1_000, 50_000).await;
    assert_eq!(metrics.status().store.unwrap().records, 50_000);
    let large = scrape_time(&metrics);
    eprintln!("scrape (status + metrics): {small:?} at 1,000 records, {large:?} at 50,000");
    // A walk of the records would cost 50 times as much; counters cost the same. The
    // slack absorbs a busy machine's noise at these microsecond scales.
    assert!(
        large <= small * 3 + Duration::from_micros(300),
        "a scrape took {large:?} at 50,000 records against {small:?} at 1,000"
    );
    client.shutdown().await;
    dht.shutdown().await;
}
