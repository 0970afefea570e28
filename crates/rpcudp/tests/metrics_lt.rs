//! A length-type server's counters through `rpcudp::metrics`.

mod lt_common;

use lt_common::*;
use rpcudp::lt::{Frame, ServerConfig};
use rpcudp::metrics::Metrics;
use tokio::io::AsyncWriteExt;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn an_lt_server_reports_its_connections_and_bad_frames() {
    let (addr, handle, _task) = spawn_server::<Frame, _>(ServerConfig::default(), echo).await;
    let metrics = Metrics::new().with_lt_server(&handle);
    let _a = raw_peer(addr).await;
    let _b = raw_peer(addr).await;
    eventually("2 live connections", || handle.live_count() == 2).await;
    let text = metrics.render();
    assert_eq!(
        sample(&text, "rpcudp_lt_connections_accepted_total"),
        Some(2.0)
    );
    assert_eq!(sample(&text, "rpcudp_lt_connections"), Some(2.0));
    assert_eq!(sample(&text, "rpcudp_lt_bad_frames_total"), Some(0.0));
    // A length below the header's own size is a bad frame: the connection is closed.
    let mut bad = tokio::net::TcpStream::connect(addr).await.unwrap();
    bad.write_all(&[0, 0, 0, 0, 0, 0]).await.unwrap();
    eventually("a bad frame counted", || handle.stats().bad_frames == 1).await;
    let text = metrics.render();
    assert_eq!(sample(&text, "rpcudp_lt_bad_frames_total"), Some(1.0));
    assert_eq!(
        sample(&text, "rpcudp_lt_connections_accepted_total"),
        Some(3.0)
    );
}
