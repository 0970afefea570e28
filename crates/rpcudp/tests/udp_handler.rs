//! The handler trait and its runner (Twisted's `DatagramProtocol` + `listenUDP`):
//! callback order, connection refused, graceful stop.

use bytes::Bytes;
use rpcudp::udp::{listen, DatagramHandler, RunError, Socket, SocketConfig, Transport};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq)]
enum Event {
    Started(SocketAddr),
    Datagram(Vec<u8>, SocketAddr),
    Refused,
    Stopped,
}

/// Records every callback, echoes datagrams, and stops itself on "quit".
struct Recorder {
    events: mpsc::UnboundedSender<Event>,
    connect_to: Option<SocketAddr>,
}

impl DatagramHandler for Recorder {
    async fn start(&mut self, t: &Transport) {
        if let Some(peer) = self.connect_to {
            t.connect(peer).await.unwrap();
            t.send(b"hello").await.unwrap();
        }
        let _ = self.events.send(Event::Started(t.local_addr().unwrap()));
    }

    async fn datagram_received(&mut self, data: Bytes, from: SocketAddr, t: &Transport) {
        let _ = self.events.send(Event::Datagram(data.to_vec(), from));
        if &data[..] == b"quit" {
            t.stop_listening();
        } else {
            let _ = t.send_to(&data, from).await;
        }
    }

    async fn connection_refused(&mut self, _t: &Transport) {
        let _ = self.events.send(Event::Refused);
    }

    async fn stop(&mut self, _t: &Transport) {
        let _ = self.events.send(Event::Stopped);
    }
}

fn recorder(connect_to: Option<SocketAddr>) -> (Recorder, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Recorder {
            events: tx,
            connect_to,
        },
        rx,
    )
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the runner is alive")
}

async fn bind() -> Socket {
    Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn start_runs_first_then_each_datagram_arrives_with_its_sender() {
    let (h, mut rx) = recorder(None);
    let server = listen(bind().await, h);
    assert_eq!(next(&mut rx).await, Event::Started(server.local_addr()));
    let client = bind().await;
    for msg in [&b"a"[..], b"b"] {
        client.send_to(msg, server.local_addr()).await.unwrap();
        assert_eq!(
            next(&mut rx).await,
            Event::Datagram(msg.to_vec(), client.local_addr().unwrap())
        );
        let (echo, _) = tokio::time::timeout(WAIT, client.recv_datagram())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&echo[..], msg);
    }
    assert_eq!(server.stats().datagrams_received, 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stop_runs_the_stop_callback_and_closes_the_socket() {
    let (h, mut rx) = recorder(None);
    let server = listen(bind().await, h);
    let addr = server.local_addr();
    assert_eq!(next(&mut rx).await, Event::Started(addr));
    let handler = server.stop().await.unwrap();
    assert_eq!(next(&mut rx).await, Event::Stopped);
    drop(handler);
    // The port is free again: the socket really closed (no address reuse here).
    let again = Socket::bind_with(addr, SocketConfig::default()).await;
    assert!(again.is_ok(), "the port is still taken: {:?}", again.err());
}

#[tokio::test]
async fn handler_can_stop_its_own_runner() {
    let (h, mut rx) = recorder(None);
    let server = listen(bind().await, h);
    let addr = server.local_addr();
    let client = bind().await;
    assert!(matches!(next(&mut rx).await, Event::Started(_)));
    client.send_to(b"quit", addr).await.unwrap();
    assert!(matches!(next(&mut rx).await, Event::Datagram(d, _) if d == b"quit"));
    assert_eq!(next(&mut rx).await, Event::Stopped);
    tokio::time::timeout(WAIT, server.stopped())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn stop_handle_stops_the_runner_from_elsewhere() {
    let (h, mut rx) = recorder(None);
    let server = listen(bind().await, h);
    let handle = server.stop_handle();
    assert!(!handle.is_stopped());
    assert!(matches!(next(&mut rx).await, Event::Started(_)));
    handle.stop();
    assert_eq!(next(&mut rx).await, Event::Stopped);
    assert!(handle.is_stopped());
    tokio::time::timeout(WAIT, server.stopped())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn dropping_the_listening_handle_stops_the_runner() {
    let (h, mut rx) = recorder(None);
    let server = listen(bind().await, h);
    assert!(matches!(next(&mut rx).await, Event::Started(_)));
    drop(server);
    assert_eq!(next(&mut rx).await, Event::Stopped);
}

#[tokio::test]
async fn connected_handler_is_told_connection_refused_and_keeps_running() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let (h, mut rx) = recorder(Some(closed_addr));
    let helloer = listen(bind().await, h);
    assert!(matches!(next(&mut rx).await, Event::Started(_)));
    assert_eq!(next(&mut rx).await, Event::Refused);
    assert_eq!(helloer.stats().connection_refused, 1);
    // Still alive: a server appears at the peer address and talks to it.
    let peer = Socket::bind(closed_addr).await.unwrap();
    peer.send_to(b"now I am here", helloer.local_addr())
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Event::Datagram(b"now I am here".to_vec(), closed_addr)
    );
    helloer.stop().await.unwrap();
    assert_eq!(next(&mut rx).await, Event::Stopped);
}

#[tokio::test]
async fn oversized_datagrams_never_reach_the_handler() {
    let (h, mut rx) = recorder(None);
    let ep = Socket::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        SocketConfig {
            max_datagram: 8,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let server = listen(ep, h);
    assert!(matches!(next(&mut rx).await, Event::Started(_)));
    let client = bind().await;
    client
        .send_to(b"much too long", server.local_addr())
        .await
        .unwrap();
    client.send_to(b"short", server.local_addr()).await.unwrap();
    assert!(matches!(next(&mut rx).await, Event::Datagram(d, _) if d == b"short"));
    assert_eq!(server.stats().oversized_dropped, 1);
    server.stop().await.unwrap();
}

struct Panicker;

impl DatagramHandler for Panicker {
    async fn datagram_received(&mut self, _: Bytes, _: SocketAddr, _: &Transport) {
        panic!("handler bug");
    }
}

#[tokio::test]
async fn a_panicking_handler_is_reported_as_such() {
    let server = listen(bind().await, Panicker);
    let client = bind().await;
    client.send_to(b"boom", server.local_addr()).await.unwrap();
    let result = tokio::time::timeout(WAIT, server.stopped()).await.unwrap();
    assert!(matches!(result, Err(RunError::HandlerPanicked)));
}

/// Says goodbye to `to` from its stop callback.
struct Goodbye {
    to: SocketAddr,
}

impl DatagramHandler for Goodbye {
    async fn datagram_received(&mut self, _: Bytes, _: SocketAddr, _: &Transport) {}

    async fn stop(&mut self, t: &Transport) {
        t.send_to(b"bye", self.to).await.unwrap();
    }
}

#[tokio::test]
async fn stop_callback_can_still_send_before_the_socket_closes() {
    let client = bind().await;
    let server = listen(
        bind().await,
        Goodbye {
            to: client.local_addr().unwrap(),
        },
    );
    let from = server.local_addr();
    server.stop().await.unwrap();
    let (data, sender) = tokio::time::timeout(WAIT, client.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&data[..], sender), (&b"bye"[..], from));
}
