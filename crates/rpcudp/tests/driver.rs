//! The generic driver (`rpcudp::driver`) seen from outside: answers leave from the
//! address a request came to on wildcard-bound sockets (IP_PKTINFO / IPV6_PKTINFO),
//! time is tokio's (paused time runs a 5 s timeout in no real time), and any
//! `Application` runs on it.
//!
//! Loopback only: 127.0.0.2 is a loopback address on Linux without any setup.

use rmpv::Value;
use rpcudp::driver::{Application, Driver, Flow};
use rpcudp::proto::rpc::{Endpoint as CoreEndpoint, EndpointConfig, Event};
use rpcudp::rpc::{CallError, Endpoint, HandlerError};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn echo_node(node: &Endpoint) {
    node.register("echo", |_from, args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::Array(args))
    });
}

/// Calls `echo(7)` on `to` from a fresh node bound to `client_bind`, with a bounded wait.
async fn echo_from(client_bind: &str, to: SocketAddr) -> Result<Value, CallError> {
    let client = Endpoint::bind(client_bind.parse().unwrap()).await.unwrap();
    let mut options = client.default_call_options();
    options.attempt_timeout = Duration::from_millis(1500);
    let r = client
        .call_with(to, "echo", vec![Value::from(7)], options)
        .await;
    client.shutdown().await;
    r
}

fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_node_bound_to_the_ipv4_wildcard_answers_from_the_called_address() {
    let server = Endpoint::bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    echo_node(&server);
    let port = server.local_addr().port();
    // The caller, on 127.0.0.1, accepts answers only from 127.0.0.2; the kernel's own
    // choice of source for a reply to 127.0.0.1 would be 127.0.0.1.
    let v = echo_from("127.0.0.1:0", at("127.0.0.2", port))
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::from(7)]));
    let v = echo_from("127.0.0.1:0", at("127.0.0.1", port))
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::from(7)]));
    assert_eq!(server.stats().core.responses_sent, 2);
    server.shutdown().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_duplicate_request_to_a_wildcard_bound_node_is_answered_from_the_called_address() {
    use rpcudp::proto::wire::rpc::{encode_request, Dialect, MessageId};
    let server = Endpoint::bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    echo_node(&server);
    let to = at("127.0.0.2", server.local_addr().port());
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut request = Vec::new();
    encode_request(
        Dialect::Rpcudp,
        &MessageId([9; 20]),
        "echo",
        &[Value::from(1)],
        &mut request,
    );
    let mut buf = [0u8; 256];
    for copy in 0..2 {
        raw.send_to(&request, to).await.unwrap();
        let (_, from) = tokio::time::timeout(Duration::from_secs(5), raw.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(from, to, "copy {copy} answered from the called address");
    }
    assert_eq!(server.stats().core.duplicates_answered, 1);
    server.shutdown().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_node_bound_to_the_ipv6_wildcard_answers_on_ipv6_loopback_and_on_127_0_0_2() {
    let Ok(server) = Endpoint::bind("[::]:0".parse().unwrap()).await else {
        eprintln!("SKIP: no IPv6 on this host");
        return;
    };
    echo_node(&server);
    let port = server.local_addr().port();
    let Ok(v) = echo_from("[::1]:0", at("::1", port)).await else {
        panic!("no answer on ::1");
    };
    assert_eq!(v, Value::Array(vec![Value::from(7)]));
    // A dual-stack socket (the Linux default) takes IPv4 too: it answers from the
    // IPv4 address that was called (an IPv4-mapped source on the IPv6 socket).
    let dual = rpcudp::udp::Socket::bind("[::]:0".parse().unwrap())
        .await
        .unwrap();
    let dual_stack = socket2::SockRef::from(dual.socket())
        .only_v6()
        .is_ok_and(|v6only| !v6only);
    if dual_stack {
        let v = echo_from("127.0.0.1:0", at("127.0.0.2", port))
            .await
            .unwrap();
        assert_eq!(v, Value::Array(vec![Value::from(7)]));
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_silent_peer_times_out_after_five_seconds_of_paused_time() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let real = std::time::Instant::now();
    // The default: the Python peers' 5 s, no retries.
    let err = client
        .call(silent.local_addr().unwrap(), "ping", vec![])
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "timed out after {waited:?} of tokio time"
    );
    // Paused time jumps to the deadline: no 5 s of real waiting.
    assert!(
        real.elapsed() < Duration::from_secs(4),
        "{:?}",
        real.elapsed()
    );
    let mut buf = [0u8; 64];
    let (_, from) = silent.recv_from(&mut buf).await.unwrap();
    assert_eq!(from, client.local_addr(), "the request did go out");
    client.shutdown().await;
}

/// A minimal application: answers `ping` with a count, records the events it saw.
struct Counting {
    pings: u64,
    started: Option<Instant>,
}

enum Command {
    Stop,
}

impl Application<CoreEndpoint> for Counting {
    type Command = Command;

    fn on_event(&mut self, core: &mut CoreEndpoint, now: Instant, event: Event) {
        self.started.get_or_insert(now);
        if let Event::Request { token, method, .. } = event {
            if method == "ping" {
                self.pings += 1;
                core.respond(now, token, &Value::from(self.pings));
            } else {
                core.abandon(now, token);
            }
        }
    }

    fn on_command(&mut self, _core: &mut CoreEndpoint, _now: Instant, command: Command) -> Flow {
        match command {
            Command::Stop => Flow::Stop,
        }
    }
}

#[tokio::test]
async fn any_application_runs_on_the_driver_and_gets_itself_back_when_stopped() {
    let socket = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let core = CoreEndpoint::new(EndpointConfig::default(), 1);
    let app = Counting {
        pings: 0,
        started: None,
    };
    let (driver, handle) = Driver::new(socket, core, app, 4);
    let task = tokio::spawn(driver.run());
    let client = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for n in 1..=3u64 {
        let v = client.call(addr, "ping", vec![]).await.unwrap();
        assert_eq!(v, Value::from(n));
    }
    assert!(handle.send(Command::Stop).await.is_ok());
    let app = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the driver stops")
        .unwrap();
    assert_eq!(app.pings, 3);
    assert!(app.started.is_some());
    assert!(handle.is_closed(), "a stopped driver takes no commands");
    assert!(handle.send(Command::Stop).await.is_err());
    client.shutdown().await;
}

#[tokio::test]
async fn a_driver_whose_handles_are_all_dropped_stops_by_default() {
    let socket = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let core = CoreEndpoint::new(EndpointConfig::default(), 1);
    let app = Counting {
        pings: 0,
        started: None,
    };
    let (driver, handle) = Driver::new(socket, core, app, 4);
    drop(handle);
    let app = tokio::time::timeout(Duration::from_secs(5), driver.run())
        .await
        .expect("the driver stops");
    assert_eq!(app.pings, 0);
}

#[tokio::test(start_paused = true)]
async fn resends_leave_on_the_cores_schedule_in_paused_time() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut options = client.default_call_options();
    options.attempt_timeout = Duration::from_secs(1);
    options.max_attempt_timeout = Duration::from_secs(1);
    options.backoff = 1.0;
    options.jitter = 0.0;
    options.retries = 2;
    let started = tokio::time::Instant::now();
    let to = silent.local_addr().unwrap();
    let call = client.call_with(to, "ping", vec![], options);
    let listen = async {
        let mut buf = [0u8; 64];
        let mut copies = Vec::new();
        for _ in 0..3 {
            let (n, _) = silent.recv_from(&mut buf).await.unwrap();
            copies.push((buf[..n].to_vec(), started.elapsed()));
        }
        copies
    };
    let (result, copies) = tokio::join!(call, listen);
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3500),
        "{waited:?}"
    );
    // The same datagram (same message id) each time, one attempt timeout apart.
    assert!(copies.iter().all(|(d, _)| *d == copies[0].0));
    for (i, (_, at)) in copies.iter().enumerate() {
        let want = Duration::from_secs(i as u64);
        assert!(
            *at >= want && *at < want + Duration::from_millis(100),
            "copy {i} at {at:?}"
        );
    }
    assert_eq!(client.stats().core.retries, 2);
    client.shutdown().await;
}
