//! The per-source limits' refusals (issue 10's `LimitsConfig`) as metrics: counters move
//! by exactly the requests a test had refused.

use rmpv::Value;
use rpcudp::metrics::Metrics;
use rpcudp::rpc::{Config, Endpoint, HandlerError};
use rpcudp_proto::wire::rpc::{encode_request, Dialect, MessageId};
use rpcudp_testkit::prometheus::{promtool_check_metrics, require_prometheus};
use std::time::{Duration, Instant};

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn requests_over_the_rate_limit_are_counted_exactly_as_rate_limited_drops() {
    const ALLOWED: u64 = 6;
    const LIMITED: u64 = 4;
    let mut config = Config::default();
    // Loopback is exempt unless strict; a burst of ALLOWED and a refill too slow to
    // matter during the test; a load threshold so low that the node counts as loaded
    // (the per-subnet rate refuses only under load).
    config.endpoint.limits.strict_local = true;
    config.endpoint.limits.load_requests_per_sec = 0.001;
    config.endpoint.limits.requests_burst = ALLOWED as f64;
    config.endpoint.limits.requests_per_sec = 0.001;
    let server = Endpoint::bind_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    server.register("ping", |_from, _args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::from("pong"))
    });
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..ALLOWED + LIMITED {
        let mut d = Vec::new();
        encode_request(
            Dialect::Rpcudp,
            &MessageId([i as u8 + 1; 20]),
            "ping",
            &[],
            &mut d,
        );
        raw.send_to(&d, server.local_addr()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().core.datagrams_in < ALLOWED + LIMITED {
        assert!(Instant::now() < deadline, "{:?}", server.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = Metrics::new().with_node(&server).render();
    assert_eq!(
        sample(
            &text,
            "rpcudp_rpc_dropped_total{reason=\"rate_limited_requests\"}"
        ),
        Some(LIMITED as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rpcudp_rpc_requests_received_total"),
        Some(ALLOWED as f64)
    );
    if require_prometheus("requests_over_the_rate_limit_are_counted") {
        promtool_check_metrics(&text).unwrap();
    }
    server.shutdown().await;
}
