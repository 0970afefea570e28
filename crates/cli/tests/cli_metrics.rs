//! `--metrics ADDR` on `serve` and `dht run`, `rpcudp dht status`, and `--log-format
//! json`, against docs/cli.md, with a real Prometheus server scraping the CLI.

use rpcudp_testkit::prometheus::{
    http_get, promtool_check_metrics, require_prometheus, Prometheus,
};
use rpcudp_testkit::Child;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);

/// Waits for `metrics on IP:PORT` and returns the address.
fn wait_metrics(child: &mut Child) -> SocketAddr {
    let line = child.wait_line(START, |l| l.starts_with("metrics on "));
    line["metrics on ".len()..]
        .parse()
        .expect("metrics on IP:PORT")
}

fn scalar(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let result = v["data"]["result"].as_array()?;
    (result.len() == 1)
        .then(|| result[0]["value"][1].as_str()?.parse().ok())
        .flatten()
}

/// A ping over a plain UDP socket, answered or not within 2 s.
fn ping(to: SocketAddr, id: u8) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut d = vec![0x00];
    d.extend_from_slice(&[id; 20]);
    d.extend_from_slice(&[0x92, 0xa4, b'p', b'i', b'n', b'g', 0x90]);
    s.send_to(&d, to).unwrap();
    let mut buf = [0u8; 100];
    s.recv_from(&mut buf).is_ok()
}

#[test]
fn serve_with_metrics_prints_its_address_after_listening_and_prometheus_scrapes_the_exact_counts() {
    if !require_prometheus("serve_with_metrics_prints_its_address_after_listening") {
        return;
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let mut server = Child::spawn("rpcudp serve --metrics", cmd);
    let udp = server.wait_listening(START);
    let metrics = wait_metrics(&mut server);
    let lines = server.lines_so_far();
    assert_eq!(
        lines[..2],
        [
            format!("listening on {udp}"),
            format!("metrics on {metrics}")
        ]
    );
    let (pings, malformed) = (4u8, 6u8);
    for i in 0..pings {
        assert!(ping(udp, i + 1), "ping {i} not answered");
    }
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..malformed {
        raw.send_to(&[0x09, i], udp).unwrap();
    }
    let (code, text) = http_get(metrics, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200);
    promtool_check_metrics(&text).unwrap();

    let prom = Prometheus::start(&[metrics]);
    let expect = [
        ("rpcudp_rpc_responses_sent_total", f64::from(pings)),
        (
            "rpcudp_rpc_dropped_total{reason=\"malformed\"}",
            f64::from(malformed),
        ),
        (
            "rpcudp_rpc_datagrams_received_total",
            f64::from(pings + malformed),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(40);
    for (series, value) in expect {
        loop {
            let got = scalar(&prom.query(series));
            if got == Some(value) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {series} = {got:?}, want {value}; {}",
                prom.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    drop(prom);
    server.terminate(Duration::from_secs(10));
}

#[test]
fn dht_run_with_metrics_serves_its_status_and_dht_status_prints_it() {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "dht",
        "run",
        "--bind",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut node = Child::spawn("rpcudp dht run --metrics", cmd);
    let udp = node.wait_listening(START);
    let id_line = node.wait_line(START, |l| l.starts_with("node id "));
    let metrics = wait_metrics(&mut node);
    let lines = node.lines_so_far();
    assert_eq!(
        lines[..3],
        [
            format!("listening on {udp}"),
            id_line.clone(),
            format!("metrics on {metrics}")
        ]
    );
    let id = &id_line["node id ".len()..];

    let out = Command::new(BIN)
        .args(["dht", "status", "--metrics-addr", &metrics.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("node id          {id}")), "{text}");
    assert!(text.contains(&format!("bound address    {udp}")), "{text}");
    assert!(text.contains("routing table    0 contacts"), "{text}");
    assert!(
        text.contains("store            0 records, 0 bytes"),
        "{text}"
    );

    let out = Command::new(BIN)
        .args([
            "dht",
            "status",
            "--json",
            "--metrics-addr",
            &metrics.to_string(),
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["node_id"], id);
    assert_eq!(json["bound_address"], udp.to_string());

    let (code, body) = http_get(metrics, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200);
    assert!(body.lines().any(|l| l == "rpcudp_dht_contacts 0"), "{body}");
    if require_prometheus("dht_run_with_metrics_serves_its_status") {
        promtool_check_metrics(&body).unwrap();
    }
    node.terminate(Duration::from_secs(10));
}

#[test]
fn dht_status_of_an_address_where_nothing_listens_exits_1_and_a_bad_address_exits_2() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let out = Command::new(BIN)
        .args(["dht", "status", "--metrics-addr", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr.to_string()));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:notaport",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notaport"));
}

#[test]
fn log_format_json_writes_one_object_a_line_with_the_calls_method_and_outcome() {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "-vv",
        "--log-format",
        "json",
        "serve",
        "--bind",
        "127.0.0.1:0",
    ]);
    let mut server = Child::spawn("rpcudp serve --log-format json", cmd);
    let udp = server.wait_listening(START);
    let out = Command::new(BIN)
        .args([
            "-vv",
            "--log-format",
            "json",
            "call",
            &udp.to_string(),
            "add",
            "2",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["name"] == "rpc_call"
            && l["span"]["method"] == "add"
            && l["fields"]["outcome"] == "answered"),
        "{lines:?}"
    );
    server.terminate(Duration::from_secs(10));
    let logged = server.stderr();
    let served: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        served.iter().any(|l| l["span"]["name"] == "rpc_request"
            && l["span"]["method"] == "add"
            && l["fields"]["outcome"] == "answered"),
        "{logged}"
    );
}
