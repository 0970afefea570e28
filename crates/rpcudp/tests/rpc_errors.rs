//! What a caller sees when a handler fails, between two of our nodes over real sockets:
//! error replies and silence, typed values in the named encoding, and the warn lines a
//! flood of failures yields (bounded by the core's budget).

use rmpv::Value;
use rpcudp::rpc::{CallError, Config, Endpoint, HandlerError, NoAnswer};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn node() -> Endpoint {
    Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn quick(node: &Endpoint, ms: u64) -> rpcudp::rpc::CallOptions {
    let mut o = node.default_call_options();
    o.attempt_timeout = Duration::from_millis(ms);
    o
}

#[tokio::test]
async fn handler_errors_are_error_replies_unless_the_handler_asks_for_silence() {
    let server = node().await;
    server.register("reply", |_from, _args: Vec<Value>| async move {
        Err::<Value, _>(HandlerError::new("disk full"))
    });
    server.register("silent", |_from, _args: Vec<Value>| async move {
        Err::<Value, _>(HandlerError::no_answer("not telling"))
    });
    server.register_typed("typed_silent", |_from, ()| async move {
        Err::<i64, _>(NoAnswer)
    });
    // A handler that waits first (so it runs as a task): the same reply.
    server.register_typed("slow_fail", |_from, ()| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err::<i64, _>("late failure")
    });
    let client = node().await;
    let to = server.local_addr();
    let remote = |r: Result<Value, CallError>| match r {
        Err(CallError::Remote { message }) => message,
        other => panic!("expected a remote error, got {other:?}"),
    };
    // A 5 s timeout: an error reply that came back as a timeout would fail the match.
    let long = quick(&client, 5_000);
    assert_eq!(
        remote(client.call_with(to, "reply", vec![], long.clone()).await),
        "disk full"
    );
    assert_eq!(
        remote(client.call_with(to, "slow_fail", vec![], long).await),
        "late failure"
    );
    for method in ["silent", "typed_silent"] {
        let err = client
            .call_with(to, method, vec![], quick(&client, 200))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Timeout(_)), "{method}: {err:?}");
    }
    let s = server.stats();
    assert_eq!(s.handler_failures, 4);
    assert_eq!(s.core.error_replies_sent, 2);
    assert_eq!(client.stats().core.error_replies_received, 2);
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Shape {
    Dot,
    Circle { center: Point, r: u8 },
}

#[tokio::test]
async fn typed_structs_and_enums_travel_as_maps_with_their_names() {
    let server = node().await;
    server.register_typed("grow", |_from, (s,): (Shape,)| async move {
        match s {
            Shape::Dot => Shape::Circle {
                center: Point { x: 0, y: 0 },
                r: 1,
            },
            Shape::Circle { center, r } => Shape::Circle { center, r: r + 1 },
        }
    });
    server.register("echo", |_from, args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::Array(args))
    });
    let client = node().await;
    let to = server.local_addr();
    let grown: Shape = client.call_typed(to, "grow", (Shape::Dot,)).await.unwrap();
    assert_eq!(
        grown,
        Shape::Circle {
            center: Point { x: 0, y: 0 },
            r: 1
        }
    );
    // On the wire: {"Circle": {"center": {"x": 0, "y": 0}, "r": 1}}.
    let raw = client
        .call(to, "grow", vec![Value::from("Dot")])
        .await
        .unwrap();
    assert_eq!(
        raw.to_string(),
        r#"{"Circle": {"center": {"x": 0, "y": 0}, "r": 1}}"#
    );
    // A struct as the whole args is one map argument, which decodes back.
    let raw = client
        .call_typed::<Value>(to, "echo", Point { x: 3, y: -4 })
        .await
        .unwrap();
    assert_eq!(raw.to_string(), r#"[{"x": 3, "y": -4}]"#);
    let got: (Point,) = client
        .call_typed(to, "echo", Point { x: 3, y: -4 })
        .await
        .unwrap();
    assert_eq!(got.0, Point { x: 3, y: -4 });
}

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// An unknown-method request with its own message id.
fn unknown_request(i: u32) -> Vec<u8> {
    let mut d = vec![0x00];
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&i.to_be_bytes());
    d.extend_from_slice(&id);
    rmpv::encode::write_value(
        &mut d,
        &Value::Array(vec![Value::from("no_such_method"), Value::Array(vec![])]),
    )
    .unwrap();
    d
}

/// The core's budget (10 lines a second by default) bounds the warn lines however many
/// failures an attacker causes, and every failure left out is counted in a later line.
/// (A current-thread runtime: the node's driver runs on this thread, where the
/// capturing subscriber is the default.)
#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_unknown_methods_yields_a_bounded_number_of_warn_lines() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = Config::default();
    assert_eq!(config.endpoint.warn_lines_per_sec, 10);
    let server = Endpoint::bind_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = std::time::Instant::now();
    for i in 0..2_000u32 {
        attacker
            .send_to(&unknown_request(i), server.local_addr())
            .await
            .unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(1)).await; // let the node read
        }
    }
    // Wait until the node has seen the flood (some datagrams may be lost on the way).
    let mut seen = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = server.stats().unknown_methods;
        if now == seen && now > 0 {
            break;
        }
        seen = now;
    }
    let flood_secs = started.elapsed().as_secs_f64();
    // One more failure after the window: its line reports the rest of the flood.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    attacker
        .send_to(&unknown_request(9_999), server.local_addr())
        .await
        .unwrap();
    let total = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let n = server.stats().unknown_methods;
        if n > seen {
            break n;
        }
    };
    // The counter moves before the handler's warn line is written: wait (bounded) until
    // the lines account for every failure, then check them.
    let count = |text: &str| -> u64 {
        let lines = text.lines().filter(|l| l.contains("unknown method"));
        lines
            .map(|l| {
                1 + l
                    .split("suppressed=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    };
    let mut text = String::new();
    for _ in 0..200 {
        text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        if count(&text) >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("unknown method"))
        .collect();
    assert!(total > 100, "the flood reached the node: {total}");
    let windows = (flood_secs + 1.1).ceil() as usize + 1;
    assert!(
        lines.len() <= 10 * windows,
        "{} warn lines for {total} failures in {flood_secs:.2} s",
        lines.len()
    );
    for l in &lines {
        assert!(l.contains(" WARN "), "{l}");
        assert!(l.contains("method=\"no_such_method\""), "{l}");
        assert!(l.contains("peer=127.0.0.1:"), "{l}");
    }
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.split("suppressed=").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        lines.len() as u64 + suppressed,
        total,
        "every failure is a line or counted in one"
    );
    eprintln!(
        "{total} unknown-method requests in {flood_secs:.2} s: {} warn lines, {suppressed} suppressed",
        lines.len()
    );
}
