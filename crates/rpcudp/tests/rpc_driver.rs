//! The `Endpoint` driver's fast path seen from outside: handlers that answer at once are
//! answered inline, handlers that wait are handed to a task, and datagrams that queue up
//! are all read and answered. Every wait is bounded; nothing depends on timing.

use rmpv::Value;
use rpcudp::rpc::{CallError, Config, Endpoint, HandlerError};
use rpcudp_proto::wire::rpc::{decode_packet, encode_request, Dialect, MessageId, Packet};
use rpcudp_proto::wire::value::DecodeLimits;
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::UdpSocket;

async fn node() -> Endpoint {
    Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn echo_node(node: &Endpoint) {
    node.register("echo", |_from, args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::Array(args))
    });
}

#[tokio::test]
async fn a_burst_of_requests_sent_before_any_answer_is_all_answered() {
    let server = node().await;
    echo_node(&server);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Few and small enough that the loopback receive buffer never overflows.
    const N: u8 = 48;
    let mut expected = HashMap::new();
    for i in 0..N {
        let id = MessageId([i; 20]);
        let mut datagram = Vec::new();
        encode_request(
            Dialect::Rpcudp,
            &id,
            "echo",
            &[Value::from(i)],
            &mut datagram,
        );
        client
            .send_to(&datagram, server.local_addr())
            .await
            .unwrap();
        expected.insert(id, Value::Array(vec![Value::from(i)]));
    }
    let mut buf = vec![0u8; 2048];
    for _ in 0..N {
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert_eq!(from, server.local_addr());
        match decode_packet(Dialect::Rpcudp, &buf[..n], &DecodeLimits::default()).unwrap() {
            Packet::Response { id, value } => {
                assert_eq!(expected.remove(&id), Some(value), "answer to {id}");
            }
            other => panic!("not a response: {other:?}"),
        }
    }
    assert!(expected.is_empty());
    let stats = server.stats();
    assert_eq!(stats.core.requests_received, u64::from(N));
    assert_eq!(stats.core.responses_sent, u64::from(N));
    assert_eq!(stats.handlers_running, 0);
}

#[tokio::test]
async fn a_handler_pending_on_its_first_poll_is_finished_by_a_task_and_answered() {
    let server = node().await;
    // `yield_now` is pending once and wakes the waker of that poll: the driver's first
    // poll uses a no-op waker, so only the task's poll can finish it.
    server.register("later", |_from, args: Vec<Value>| async move {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<_, HandlerError>(Value::Array(args))
    });
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    for i in 0..5 {
        let v = client
            .call(to, "later", vec![Value::from(i)])
            .await
            .unwrap();
        assert_eq!(v, Value::Array(vec![Value::from(i)]));
        let v = client.call(to, "echo", vec![Value::from(i)]).await.unwrap();
        assert_eq!(v, Value::Array(vec![Value::from(i)]));
    }
    assert_eq!(server.stats().core.responses_sent, 10);
}

#[tokio::test]
async fn a_handler_that_panics_before_making_its_future_gets_no_answer_and_the_node_goes_on() {
    let server = node().await;
    server.register(
        "boom",
        |_from, _args: Vec<Value>| -> std::future::Ready<Result<Value, HandlerError>> {
            panic!("handler bug before any await")
        },
    );
    echo_node(&server);
    let client = node().await;
    let to = server.local_addr();
    let mut options = client.default_call_options();
    options.attempt_timeout = Duration::from_millis(200);
    options.retries = 0;
    let err = client
        .call_with(to, "boom", vec![], options)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    assert_eq!(server.stats().handler_panics, 1);
    assert_eq!(
        client.call(to, "echo", vec![Value::from(1)]).await.unwrap(),
        Value::Array(vec![Value::from(1)])
    );
}

/// One request datagram calling `echo(tag)` with `id`, padded by a string argument.
fn echo_request(id: MessageId, tag: u32, pad: usize) -> Vec<u8> {
    let mut datagram = Vec::new();
    encode_request(
        Dialect::Rpcudp,
        &id,
        "echo",
        &[Value::from(tag), Value::from("x".repeat(pad))],
        &mut datagram,
    );
    datagram
}

#[tokio::test]
async fn a_burst_from_several_senders_is_answered_each_to_its_own_sender_and_an_oversized_request_is_dropped_whole(
) {
    // Receive buffers of 256 bytes: a request of 400 bytes is dropped (never served
    // truncated), while the batch it arrived in is served.
    let config = Config {
        recv_buffer: 256,
        ..Config::default()
    };
    let server = Endpoint::bind_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    echo_node(&server);
    let to = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    // 3 x 12 requests, interleaved, small enough that loopback buffers never overflow.
    let mut expected: Vec<HashMap<MessageId, u32>> = vec![HashMap::new(); 3];
    let mut tag = 0u32;
    for round in 0..12u8 {
        for (c, client) in clients.iter().enumerate() {
            let id = MessageId([round * 3 + c as u8; 20]);
            if round == 5 && c == 1 {
                let big = echo_request(id, 9999, 400);
                assert!(big.len() > 256);
                client.send_to(&big, to).await.unwrap();
                continue;
            }
            client.send_to(&echo_request(id, tag, 8), to).await.unwrap();
            expected[c].insert(id, tag);
            tag += 1;
        }
    }
    let mut buf = vec![0u8; 2048];
    for (c, client) in clients.iter().enumerate() {
        while !expected[c].is_empty() {
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
                    .await
                    .expect("an answer within 10 s")
                    .unwrap();
            assert_eq!(from, to);
            match decode_packet(Dialect::Rpcudp, &buf[..n], &DecodeLimits::default()).unwrap() {
                Packet::Response { id, value } => {
                    let want = expected[c]
                        .remove(&id)
                        .unwrap_or_else(|| panic!("client {c} got an answer to {id}"));
                    assert_eq!(
                        value,
                        Value::Array(vec![Value::from(want), Value::from("x".repeat(8))])
                    );
                }
                other => panic!("not a response: {other:?}"),
            }
        }
    }
    let stats = server.stats();
    assert_eq!(
        stats.core.requests_received, 35,
        "the oversized one never got in"
    );
    assert_eq!(stats.core.responses_sent, 35);
    // The oversized request has no answer: nothing more is queued for client 1.
    let err = clients[1].try_recv_from(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
}
