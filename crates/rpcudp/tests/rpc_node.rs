//! The tokio `Endpoint` over real loopback sockets: handlers, calls, errors, limits,
//! shutdown, and the core's retry / duplicate / spoofing rules seen from outside.
//!
//! Waits are bounded and ordering-based (a handler blocks on a signal the test gives)
//! rather than timing-based, so a loaded machine slows the tests down but does not fail
//! them.

use rmpv::Value;
use rpcudp::rpc::{CallError, Config, Dialect, Endpoint, HandlerError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

const LOOPBACK: &str = "127.0.0.1:0";

async fn node() -> Endpoint {
    Endpoint::bind(LOOPBACK.parse().unwrap()).await.unwrap()
}

async fn node_with(config: Config) -> Endpoint {
    Endpoint::bind_with(LOOPBACK.parse().unwrap(), config)
        .await
        .unwrap()
}

fn quick(node: &Endpoint, ms: u64) -> rpcudp::rpc::CallOptions {
    let mut o = node.default_call_options();
    o.attempt_timeout = Duration::from_millis(ms);
    o
}

/// Polls `cond` every 10 ms for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn echo_node(node: &Endpoint) {
    node.register("echo", |_from, args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::Array(args))
    });
}

#[tokio::test]
async fn dynamic_and_typed_handlers_answer_over_real_sockets() {
    let server = node().await;
    echo_node(&server);
    server.register_typed("add", |_from, (a, b): (i64, i64)| async move { a + b });
    server.register_typed(
        "whoami",
        |from: SocketAddr, ()| async move { from.to_string() },
    );
    let client = node().await;
    let to = server.local_addr();

    let v = client
        .call(to, "echo", vec![Value::from("s"), Value::Binary(vec![1])])
        .await
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![Value::from("s"), Value::Binary(vec![1])])
    );
    let sum: i64 = client.call_typed(to, "add", (40, 2)).await.unwrap();
    assert_eq!(sum, 42);
    let me: String = client.call_typed(to, "whoami", ()).await.unwrap();
    assert_eq!(me, client.local_addr().to_string());
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Reading {
    sensor: String,
    celsius: f64,
    tags: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Summary {
    count: u32,
    mean: f64,
}

#[tokio::test]
async fn typed_structs_travel_as_arrays_both_ways() {
    let server = node().await;
    server.register_typed(
        "summarize",
        |_from, (readings,): (Vec<Reading>,)| async move {
            let n = readings.len() as f64;
            Summary {
                count: readings.len() as u32,
                mean: readings.iter().map(|r| r.celsius).sum::<f64>() / n,
            }
        },
    );
    // A struct as the whole args array: its fields are the arguments.
    server.register_typed("label", |_from, r: Reading| async move {
        format!("{}={}", r.sensor, r.celsius)
    });
    let client = node().await;
    let readings = vec![
        Reading {
            sensor: "a".into(),
            celsius: 20.0,
            tags: vec![],
        },
        Reading {
            sensor: "b".into(),
            celsius: 22.0,
            tags: vec!["roof".into()],
        },
    ];
    let s: Summary = client
        .call_typed(server.local_addr(), "summarize", (readings.clone(),))
        .await
        .unwrap();
    assert_eq!(
        s,
        Summary {
            count: 2,
            mean: 21.0
        }
    );
    let label: String = client
        .call_typed(server.local_addr(), "label", readings[1].clone())
        .await
        .unwrap();
    assert_eq!(label, "b=22");
    // On the wire a struct is an array of its fields, as a Python peer would send it.
    let raw = client
        .call(
            server.local_addr(),
            "label",
            vec![Value::from("c"), Value::F64(1.5), Value::Array(vec![])],
        )
        .await
        .unwrap();
    assert_eq!(raw, Value::from("c=1.5"));
}

#[tokio::test]
async fn an_answer_of_the_wrong_type_is_a_decode_error_with_the_value() {
    let server = node().await;
    echo_node(&server);
    let client = node().await;
    let err = client
        .call_typed::<u32>(server.local_addr(), "echo", ("not a number",))
        .await
        .unwrap_err();
    match err {
        CallError::Decode { value, .. } => {
            assert_eq!(value, Value::Array(vec![Value::from("not a number")]))
        }
        other => panic!("expected Decode, got {other:?}"),
    }
}

#[tokio::test]
async fn a_typed_handler_returning_err_sends_an_error_reply_and_ok_answers_the_bare_value() {
    let server = node().await;
    server.register_typed("half", |_from, (x,): (i64,)| async move {
        if x % 2 == 0 {
            Ok(x / 2)
        } else {
            Err(format!("{x} is odd"))
        }
    });
    let client = node().await;
    // Ok(2) goes on the wire as 2, not as serde's enum form [0, [2]].
    let v = client
        .call(server.local_addr(), "half", vec![Value::from(4)])
        .await
        .unwrap();
    assert_eq!(v, Value::from(2));
    let err = client
        .call_with(
            server.local_addr(),
            "half",
            vec![Value::from(3)],
            quick(&client, 200),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Remote { message } if message == "3 is odd"),
        "{err:?}"
    );
    eventually("the Err counted", || server.stats().handler_failures == 1).await;
}

#[tokio::test]
async fn mismatched_arguments_get_no_answer_and_are_counted() {
    let server = node().await;
    server.register_typed("double", |_from, (x,): (i64,)| async move { x * 2 });
    let client = node().await;
    let err = client
        .call_with(
            server.local_addr(),
            "double",
            vec![Value::from("seven")],
            quick(&client, 200),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    eventually("failure counted", || server.stats().handler_failures == 1).await;
    // The right arguments still work.
    let v: i64 = client
        .call_typed(server.local_addr(), "double", (7,))
        .await
        .unwrap();
    assert_eq!(v, 14);
}

#[tokio::test]
async fn unknown_method_makes_the_caller_time_out() {
    let server = node().await;
    let client = node().await;
    let err = client
        .call_with(server.local_addr(), "nope", vec![], quick(&client, 150))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    eventually("unknown method counted", || {
        server.stats().unknown_methods == 1
    })
    .await;
    assert_eq!(client.stats().core.timeouts, 1);
}

#[tokio::test]
async fn a_slow_handler_does_not_block_other_calls() {
    let server = node().await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    server.register("slow", move |_from, _args: Vec<Value>| {
        let g = g.clone();
        async move {
            // Held until the test has seen every fast call answered.
            let _permit = g
                .acquire()
                .await
                .map_err(|_| HandlerError::from("closed"))?;
            Ok(Value::from("slow done"))
        }
    });
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    let c = client.clone();
    let slow = tokio::spawn(async move { c.call(to, "slow", vec![]).await });
    eventually("slow handler running", || {
        server.stats().handlers_running == 1
    })
    .await;
    let fast: Vec<_> = (0..20)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.call(to, "echo", vec![Value::from(i)]).await })
        })
        .collect();
    for (i, f) in fast.into_iter().enumerate() {
        let v = f.await.unwrap().unwrap();
        assert_eq!(v, Value::Array(vec![Value::from(i)]));
    }
    assert!(!slow.is_finished(), "the slow call must still be waiting");
    gate.add_permits(1);
    assert_eq!(slow.await.unwrap().unwrap(), Value::from("slow done"));
}

#[tokio::test]
async fn malformed_datagrams_are_counted_and_the_server_goes_on_answering() {
    let server = node().await;
    echo_node(&server);
    let raw = UdpSocket::bind(LOOPBACK).await.unwrap();
    let to = server.local_addr();
    let mut deep = vec![0x00];
    deep.extend_from_slice(&[7; 20]);
    deep.extend(std::iter::repeat_n(0x91, 10_000)); // arrays nested 10 000 deep
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x00; 21],                                 // header only
        [vec![0x00], vec![1; 20], vec![0xc1]].concat(), // 0xc1 is never valid
        [vec![0x00], vec![1; 20], vec![0xdd, 0xff, 0xff, 0xff, 0xff]].concat(), // huge array
        [vec![0x00], vec![1; 20], vec![0x92, 0xa1]].concat(), // truncated
        [vec![0x00], vec![1; 20], vec![0x05]].concat(), // not [method, args]
        [vec![0x09], vec![1; 20], vec![0xc0]].concat(), // unknown kind
        deep,
    ];
    for g in &garbage {
        raw.send_to(g, to).await.unwrap();
    }
    let client = node().await;
    let v = client
        .call(to, "echo", vec![Value::from("still here")])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::from("still here")]));
    eventually("garbage counted", || {
        server.stats().core.datagrams_in > garbage.len() as u64
    })
    .await;
    assert!(server.stats().core.malformed >= 7, "{:?}", server.stats());
}

#[tokio::test]
async fn a_request_over_the_body_limit_is_refused_before_sending() {
    let server = node().await;
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    // body = [ "echo", [ str ] ]: 1 + 5 + 1 + 3 (str16 header) + n bytes.
    let at_limit = "x".repeat(8192 - 10);
    let v = client
        .call(to, "echo", vec![Value::from(at_limit.as_str())])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::from(at_limit.as_str())]));
    let over = "x".repeat(8192 - 9);
    let err = client
        .call(to, "echo", vec![Value::from(over.as_str())])
        .await
        .unwrap_err();
    match err {
        CallError::RequestTooLarge { size, limit } => assert_eq!((size, limit), (8193, 8192)),
        other => panic!("expected RequestTooLarge, got {other:?}"),
    }
    // The storj dialect's limit is 8171 (the whole datagram within 8192 bytes).
    let storj = node_with(Config::for_dialect(Dialect::Storj)).await;
    let err = storj
        .call(to, "echo", vec![Value::from("x".repeat(8171 - 9).as_str())])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::RequestTooLarge {
                size: 8172,
                limit: 8171
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unsendable_argument_is_refused() {
    let client = node().await;
    let dup = Value::Map(vec![
        (Value::from("k"), Value::Nil),
        (Value::from("k"), Value::Nil),
    ]);
    let err = client
        .call("127.0.0.1:9".parse().unwrap(), "echo", vec![dup])
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unsendable(_)), "{err:?}");
}

#[tokio::test]
async fn shutdown_fails_outstanding_calls_and_later_ones() {
    let server = node().await;
    server.register("never", |_from, _args: Vec<Value>| async move {
        std::future::pending::<Result<Value, HandlerError>>().await
    });
    let client = node().await;
    let to = server.local_addr();
    let c = client.clone();
    let call = tokio::spawn(async move { c.call(to, "never", vec![]).await });
    eventually("call outstanding", || client.stats().calls_outstanding == 1).await;
    client.shutdown().await;
    assert!(matches!(call.await.unwrap(), Err(CallError::ShutDown)));
    let later = client.call(to, "never", vec![]).await;
    assert!(matches!(later, Err(CallError::ShutDown)), "{later:?}");
    client.shutdown().await; // a second shutdown returns at once
}

#[tokio::test]
async fn shutdown_lets_a_running_handler_finish_and_answer() {
    let config = Config {
        shutdown_grace: Duration::from_secs(30),
        ..Config::default()
    };
    let server = node_with(config).await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    server.register("finish", move |_from, _args: Vec<Value>| {
        let g = g.clone();
        async move {
            let _p = g
                .acquire()
                .await
                .map_err(|_| HandlerError::from("closed"))?;
            Ok(Value::from("finished"))
        }
    });
    let client = node().await;
    let to = server.local_addr();
    let c = client.clone();
    let call = tokio::spawn(async move { c.call(to, "finish", vec![]).await });
    eventually("handler running", || server.stats().handlers_running == 1).await;
    let s = server.clone();
    let stopping = tokio::spawn(async move { s.shutdown().await });
    gate.add_permits(1);
    assert_eq!(call.await.unwrap().unwrap(), Value::from("finished"));
    stopping.await.unwrap();
}

#[tokio::test]
async fn shutdown_drops_handlers_that_outlive_the_grace() {
    let config = Config {
        shutdown_grace: Duration::ZERO,
        ..Config::default()
    };
    let server = node_with(config).await;
    let dropped = Arc::new(AtomicUsize::new(0));
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let d = dropped.clone();
    server.register("forever", move |_from, _args: Vec<Value>| {
        let guard = OnDrop(d.clone());
        async move {
            let _guard = guard;
            std::future::pending::<Result<Value, HandlerError>>().await
        }
    });
    let client = node().await;
    let to = server.local_addr();
    let c = client.clone();
    tokio::spawn(async move { c.call(to, "forever", vec![]).await });
    eventually("handler running", || server.stats().handlers_running == 1).await;
    server.shutdown().await;
    eventually("handler dropped", || dropped.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn a_panicking_handler_gets_no_answer_and_the_node_goes_on() {
    let server = node().await;
    server.register("boom", |_from, _args: Vec<Value>| async move {
        if true {
            panic!("handler bug");
        }
        Ok::<_, HandlerError>(Value::Nil)
    });
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    let err = client
        .call_with(to, "boom", vec![], quick(&client, 200))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)));
    eventually("panic counted", || server.stats().handler_panics == 1).await;
    assert!(client.call(to, "echo", vec![]).await.is_ok());
}

/// A relay between a client and a server that drops the first `drop_first` datagrams
/// towards the server and sends every datagram towards the server `copies` times.
/// Returns the relay's address (the one the client calls).
async fn relay(server: SocketAddr, drop_first: usize, copies: usize) -> SocketAddr {
    let front = UdpSocket::bind(LOOPBACK).await.unwrap();
    let back = UdpSocket::bind(LOOPBACK).await.unwrap();
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut client = None;
        let mut seen = 0;
        let (mut b1, mut b2) = (vec![0u8; 65536], vec![0u8; 65536]);
        loop {
            tokio::select! {
                r = front.recv_from(&mut b1) => {
                    let Ok((n, from)) = r else { return };
                    client = Some(from);
                    seen += 1;
                    if seen > drop_first {
                        for _ in 0..copies {
                            let _ = back.send_to(&b1[..n], server).await;
                        }
                    }
                }
                r = back.recv_from(&mut b2) => {
                    let Ok((n, _)) = r else { return };
                    if let Some(c) = client {
                        let _ = front.send_to(&b2[..n], c).await;
                    }
                }
            }
        }
    });
    addr
}

fn counting_node(server: &Endpoint) -> Arc<AtomicUsize> {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    server.register("count", move |_from, _args: Vec<Value>| {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, HandlerError>(Value::from(n)) }
    });
    runs
}

#[tokio::test]
async fn a_lost_request_is_resent_with_the_same_id_and_answered() {
    let server = node().await;
    let runs = counting_node(&server);
    let via = relay(server.local_addr(), 1, 1).await;
    let client = node().await;
    let mut options = quick(&client, 200);
    options.retries = 3;
    let v = client
        .call_with(via, "count", vec![], options)
        .await
        .unwrap();
    assert_eq!(v, Value::from(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(client.stats().core.retries >= 1, "{:?}", client.stats());
}

#[tokio::test]
async fn a_duplicated_request_runs_the_handler_once() {
    let server = node().await;
    let runs = counting_node(&server);
    let via = relay(server.local_addr(), 0, 3).await;
    let client = node().await;
    for i in 1..=5 {
        let v = client.call(via, "count", vec![]).await.unwrap();
        assert_eq!(v, Value::from(i));
    }
    eventually("duplicates seen", || {
        let s = server.stats().core;
        s.duplicates_answered + s.duplicates_in_progress == 10
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_response_from_another_address_is_ignored() {
    let fake_server = UdpSocket::bind(LOOPBACK).await.unwrap();
    let spoofer = UdpSocket::bind(LOOPBACK).await.unwrap();
    let client = node().await;
    let to = fake_server.local_addr().unwrap();
    let c = client.clone();
    let call = tokio::spawn(async move { c.call(to, "ping", vec![]).await });
    let mut buf = [0u8; 1024];
    let (n, from) = fake_server.recv_from(&mut buf).await.unwrap();
    assert_eq!(buf[0], 0x00, "an rpcudp request");
    let mut answer = vec![0x01];
    answer.extend_from_slice(&buf[1..21]);
    answer.extend_from_slice(&[0xa4, b'p', b'o', b'n', b'g']);
    assert!(n > 21);
    spoofer.send_to(&answer, from).await.unwrap();
    eventually("spoof counted", || {
        client.stats().core.spoofed_responses == 1
    })
    .await;
    assert!(
        !call.is_finished(),
        "a spoofed answer must not complete the call"
    );
    fake_server.send_to(&answer, from).await.unwrap();
    assert_eq!(call.await.unwrap().unwrap(), Value::from("pong"));
}

#[tokio::test]
async fn dropping_a_call_future_forgets_the_call() {
    let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
    let client = node().await;
    let to = silent.local_addr().unwrap();
    let call = client.call(to, "ping", vec![]);
    let gave_up = tokio::time::timeout(Duration::from_millis(50), call).await;
    assert!(gave_up.is_err());
    eventually("call forgotten", || {
        let s = client.stats();
        s.calls_outstanding == 0 && s.core.calls_cancelled == 1
    })
    .await;
}

#[tokio::test]
async fn a_request_beyond_the_concurrency_limit_takes_the_slot_of_the_oldest_unvalidated_one() {
    let mut config = Config::default();
    config.endpoint.max_concurrent_requests = 2;
    let server = node_with(config).await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    server.register("wait", move |_from, _args: Vec<Value>| {
        let g = g.clone();
        async move {
            let _p = g
                .acquire()
                .await
                .map_err(|_| HandlerError::from("closed"))?;
            Ok(Value::from("done"))
        }
    });
    let client = node().await;
    let to = server.local_addr();
    let mut calls = Vec::new();
    for running in 1..=2 {
        let c = client.clone();
        let options = quick(&client, 3000);
        calls.push(tokio::spawn(async move {
            c.call_with(to, "wait", vec![], options).await
        }));
        eventually("one more handler running", || {
            server.stats().handlers_running == running
        })
        .await;
    }
    // The client proved nothing (the server never called it): the oldest of its
    // requests gives its slot up, and its handler is cancelled.
    let c = client.clone();
    let third = tokio::spawn(async move { c.call(to, "wait", vec![]).await });
    eventually("the first request preempted and counted", || {
        let s = server.stats();
        s.core.requests_preempted == 1 && s.core.requests_received == 3 && s.handlers_running == 2
    })
    .await;
    gate.add_permits(3);
    let first = calls.remove(0).await.unwrap();
    assert!(matches!(first, Err(CallError::Timeout(_))), "{first:?}");
    assert_eq!(calls.remove(0).await.unwrap().unwrap(), Value::from("done"));
    assert_eq!(third.await.unwrap().unwrap(), Value::from("done"));
    assert_eq!(server.stats().core.requests_dropped_overload, 0);
}

#[tokio::test]
async fn outstanding_calls_beyond_the_limit_are_refused_as_overloaded() {
    let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
    let mut config = Config::default();
    config.endpoint.max_outstanding_calls = 1;
    let client = node_with(config).await;
    let to = silent.local_addr().unwrap();
    let c = client.clone();
    let first = tokio::spawn(async move { c.call(to, "ping", vec![]).await });
    eventually("first call outstanding", || {
        client.stats().calls_outstanding == 1
    })
    .await;
    let err = client.call(to, "ping", vec![]).await.unwrap_err();
    assert!(matches!(err, CallError::Overloaded { limit: 1 }), "{err:?}");
    first.abort();
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let Ok(server) = Endpoint::bind("[::1]:0".parse().unwrap()).await else {
        eprintln!("SKIP ipv6_loopback_works: no IPv6 loopback on this host");
        return;
    };
    echo_node(&server);
    let client = Endpoint::bind("[::1]:0".parse().unwrap()).await.unwrap();
    let v = client
        .call(server.local_addr(), "echo", vec![Value::from(6)])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::from(6)]));
}

#[tokio::test]
async fn a_destination_the_socket_cannot_reach_is_an_io_error() {
    let client = node().await;
    let err = client
        .call("[::1]:9".parse().unwrap(), "ping", vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Io(_)), "{err:?}");
    assert_eq!(client.stats().calls_outstanding, 0);
}

#[tokio::test]
async fn nodes_of_different_dialects_do_not_understand_each_other() {
    let storj_server = node_with(Config::for_dialect(Dialect::Storj)).await;
    echo_node(&storj_server);
    let storj_client = node_with(Config::for_dialect(Dialect::Storj)).await;
    let v = storj_client
        .call(storj_server.local_addr(), "echo", vec![Value::Nil])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::Nil]));
    let rpcudp_client = node().await;
    let err = rpcudp_client
        .call_with(
            storj_server.local_addr(),
            "echo",
            vec![],
            quick(&rpcudp_client, 150),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)));
}

#[tokio::test]
async fn counters_track_traffic_on_both_sides() {
    let server = node().await;
    echo_node(&server);
    let client = node().await;
    for _ in 0..3 {
        client
            .call(server.local_addr(), "echo", vec![])
            .await
            .unwrap();
    }
    let c = client.stats().core;
    assert_eq!((c.datagrams_out, c.datagrams_in), (3, 3));
    eventually("server counted", || server.stats().core.datagrams_out == 3).await;
    assert_eq!(server.stats().core.datagrams_in, 3);
}

#[tokio::test]
async fn an_answer_too_large_for_a_datagram_is_not_sent_and_is_counted() {
    let server = node().await;
    server.register("big", |_from, _args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::Binary(vec![0; 70_000]))
    });
    let client = node().await;
    let err = client
        .call_with(server.local_addr(), "big", vec![], quick(&client, 200))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    eventually("counted", || server.stats().core.responses_too_large == 1).await;
}

#[tokio::test]
async fn an_unregistered_method_is_no_longer_served() {
    let server = node().await;
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    assert!(client.call(to, "echo", vec![]).await.is_ok());
    assert!(server.unregister("echo"));
    assert!(!server.unregister("echo"));
    let err = client
        .call_with(to, "echo", vec![], quick(&client, 150))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)));
}

/// A value whose serialization always fails, as a buggy `Serialize` impl would.
struct Unserializable;

impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

#[tokio::test]
async fn typed_arguments_that_fail_to_serialize_are_an_encode_error_and_nothing_is_sent() {
    let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
    let client = node().await;
    let err = client
        .call_typed::<Value>(silent.local_addr().unwrap(), "m", (Unserializable,))
        .await
        .unwrap_err();
    match err {
        CallError::Encode(reason) => assert!(reason.contains("refuses to serialize"), "{reason}"),
        other => panic!("expected an encode error, got {other:?}"),
    }
    assert_eq!(client.stats().core.datagrams_out, 0);
    assert_eq!(client.stats().core.calls_started, 0);
}

#[tokio::test]
async fn typed_arguments_map_to_the_args_array_as_documented() {
    let server = node().await;
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    let echoed = |v: Vec<Value>| Value::Array(v);
    let got: Value = client.call_typed(to, "echo", ()).await.unwrap();
    assert_eq!(got, echoed(vec![]));
    let got: Value = client.call_typed(to, "echo", (1, "two")).await.unwrap();
    assert_eq!(got, echoed(vec![Value::from(1), Value::from("two")]));
    let got: Value = client.call_typed(to, "echo", 7).await.unwrap();
    assert_eq!(got, echoed(vec![Value::from(7)]));
    let got: Value = client.call_typed(to, "echo", None::<u8>).await.unwrap();
    assert_eq!(got, echoed(vec![]));
    let got: Value = client.call_typed(to, "echo", (None::<u8>,)).await.unwrap();
    assert_eq!(got, echoed(vec![Value::Nil]));
}
