//! The anti-amplification rule on real sockets (issue 10): whatever a raw socket sends a
//! `Endpoint` (or a `Dht`) from an address that never proved it receives there, it gets back
//! at most 3× the bytes, counted on the raw socket. Over loopback: the rule applies to
//! every address, loopback included.

use rmpv::Value;
use rpcudp::kad::{Dht, DhtConfig};
use rpcudp::rpc::{CallOptions, Config, Endpoint, LimitsConfig, ValidationProbe};
use rpcudp_proto::wire::rpc::{
    decode_packet, encode_request, encode_response, DecodeLimits, Dialect, MessageId, Packet,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn request(n: u8, method: &str, args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(Dialect::Rpcudp, &MessageId([n; 20]), method, args, &mut out);
    out
}

/// A raw socket that counts every byte it sends and receives.
struct Raw {
    sock: UdpSocket,
    sent: usize,
    received: usize,
}

impl Raw {
    async fn new() -> Raw {
        Raw {
            sock: UdpSocket::bind(local()).await.unwrap(),
            sent: 0,
            received: 0,
        }
    }

    async fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.sent += self.sock.send_to(datagram, to).await.unwrap();
    }

    /// Every datagram that arrives within `wait` of the last one.
    async fn collect(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok((len, _))) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf)).await
        {
            self.received += len;
            out.push(buf[..len].to_vec());
        }
        out
    }
}

async fn big_server(config: Config) -> Endpoint {
    let node = Endpoint::bind_with(local(), config).await.unwrap();
    node.register("big", |_from, _args: Vec<Value>| async move {
        Ok(Value::Binary(vec![7; 60_000]))
    });
    node.register("small", |_from, _args: Vec<Value>| async move {
        Ok(Value::from("ok"))
    });
    node
}

#[tokio::test]
async fn a_big_answer_to_an_address_that_proved_nothing_is_dropped_and_counted() {
    let server = big_server(Config::default()).await;
    let mut raw = Raw::new().await;
    for n in 0..20 {
        raw.send(server.local_addr(), &request(n, "big", &[])).await;
    }
    raw.send(server.local_addr(), &request(99, "small", &[]))
        .await;
    let got = raw.collect(Duration::from_millis(500)).await;
    eprintln!(
        "20 × big + small from a raw socket: {} B in, {} B out ({} datagrams back)",
        raw.sent,
        raw.received,
        got.len()
    );
    assert!(raw.received <= 3 * raw.sent);
    assert_eq!(got.len(), 1, "only the small answer");
    let s = server.stats();
    assert_eq!(s.core.answers_dropped_unvalidated, 20);
    server.shutdown().await;
}

#[tokio::test]
async fn with_a_probe_the_big_answer_follows_the_askers_answer_to_it() {
    let mut config = Config::default();
    config.endpoint.limits = LimitsConfig {
        validation_probe: Some(ValidationProbe {
            method: "ping".into(),
            args: vec![],
            options: CallOptions {
                attempt_timeout: Duration::from_secs(2),
                ..CallOptions::default()
            },
        }),
        ..LimitsConfig::default()
    };
    let server = big_server(config).await;
    let mut raw = Raw::new().await;
    raw.send(server.local_addr(), &request(1, "big", &[])).await;
    let got = raw.collect(Duration::from_millis(300)).await;
    assert!(
        raw.received <= 3 * raw.sent,
        "{} > 3 × {}",
        raw.received,
        raw.sent
    );
    let [probe] = &got[..] else {
        panic!("expected only the probe, got {} datagrams", got.len())
    };
    let Ok(Packet::Request { id, method, .. }) =
        decode_packet(Dialect::Rpcudp, probe, &DecodeLimits::default())
    else {
        panic!("the probe is a request")
    };
    assert_eq!(method, "ping");
    // Answering from another socket proves nothing.
    let mut answer = Vec::new();
    encode_response(Dialect::Rpcudp, &id, &Value::from("pong"), &mut answer);
    let mut other = Raw::new().await;
    other.send(server.local_addr(), &answer).await;
    assert!(raw.collect(Duration::from_millis(200)).await.is_empty());
    // The asker answers: the held answer comes.
    raw.send(server.local_addr(), &answer).await;
    let got = raw.collect(Duration::from_millis(300)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].len() > 60_000);
    let s = server.stats().core;
    assert_eq!((s.answers_held, s.answers_released), (1, 1));
    server.shutdown().await;
}

#[tokio::test]
async fn a_node_that_answered_our_call_gets_big_answers() {
    let server = big_server(Config::default()).await;
    let client = Endpoint::bind(local()).await.unwrap();
    client.register("hello", |_from, _args: Vec<Value>| async move {
        Ok(Value::from("hi"))
    });
    let mut quick = client.default_call_options();
    quick.attempt_timeout = Duration::from_millis(300);
    assert!(client
        .call_with(server.local_addr(), "big", vec![], quick.clone())
        .await
        .is_err());
    // The server calls the client once; the answer proves the client's address.
    assert_eq!(
        server
            .call(client.local_addr(), "hello", vec![])
            .await
            .unwrap(),
        Value::from("hi")
    );
    let big = client
        .call_with(server.local_addr(), "big", vec![], quick)
        .await
        .unwrap();
    assert_eq!(big, Value::Binary(vec![7; 60_000]));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_dht_sends_a_forged_find_node_no_more_than_three_times_its_bytes() {
    let config = |seed: u64| DhtConfig {
        node: rpcudp::kad::NodeConfig {
            rpc_timeout: Duration::from_secs(1),
            ..rpcudp::kad::NodeConfig::default()
        },
        seed: Some(seed),
        ..DhtConfig::default()
    };
    let mut nodes: Vec<Dht> = Vec::new();
    for i in 0..10 {
        let dht = Dht::start(local(), config(500 + i)).await.unwrap();
        if let Some(first) = nodes.first() {
            dht.bootstrap(&[first.local_addr()]).await.unwrap();
        }
        nodes.push(dht);
    }
    let target = nodes[0].local_addr();
    let mut raw = Raw::new().await;
    let find = request(
        3,
        "find_node",
        &[Value::Binary(vec![0xAB; 20]), Value::Binary(vec![0x11; 20])],
    );
    // The raw socket never answers the probe ping.
    for n in 0..5u8 {
        let mut d = find.clone();
        d[1] = n;
        raw.send(target, &d).await;
    }
    let got = raw.collect(Duration::from_millis(1500)).await;
    eprintln!(
        "find_node from a silent address, 5 times: {} B in, {} B out ({} datagrams)",
        raw.sent,
        raw.received,
        got.len()
    );
    assert!(
        raw.received <= 3 * raw.sent,
        "{} > 3 × {}",
        raw.received,
        raw.sent
    );
    // And one that answers the ping gets its contacts.
    let mut honest = Raw::new().await;
    honest.send(target, &find).await;
    let mut contacts = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while contacts.is_none() && Instant::now() < deadline {
        for d in honest.collect(Duration::from_millis(300)).await {
            match decode_packet(Dialect::Rpcudp, &d, &DecodeLimits::default()) {
                Ok(Packet::Request { id, .. }) => {
                    let mut pong = Vec::new();
                    encode_response(
                        Dialect::Rpcudp,
                        &id,
                        &Value::Binary(vec![0xCD; 20]),
                        &mut pong,
                    );
                    honest.send(target, &pong).await;
                }
                Ok(Packet::Response { value, .. }) => contacts = Some(value),
                Err(e) => panic!("bad datagram: {e}"),
            }
        }
    }
    let contacts = contacts.expect("find_node answered after the ping");
    assert!(
        contacts.as_array().is_some_and(|a| a.len() >= 5),
        "{contacts:?}"
    );
    for n in &nodes {
        n.shutdown().await;
    }
}
