//! Connected UDP: `connect`, `send`/`recv`, peer filtering, and the ICMP port unreachable
//! surfaced as "connection refused" that leaves the endpoint usable.

use rpcudp::udp::{is_connection_refused, Socket};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn bind() -> Socket {
    Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// A loopback port nobody listens on: bound, then closed.
fn closed_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[tokio::test]
async fn connected_endpoint_sends_without_an_address_and_knows_its_peer() {
    let server = bind().await;
    let client = bind().await;
    client.connect(server.local_addr().unwrap()).await.unwrap();
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
    client.send(b"hello").await.unwrap();
    let (data, from) = tokio::time::timeout(WAIT, server.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"hello");
    assert_eq!(from, client.local_addr().unwrap());
    server.send_to(b"back", from).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"back");
}

#[tokio::test]
async fn connected_endpoint_only_receives_from_its_peer() {
    let peer = bind().await;
    let stranger = bind().await;
    let client = bind().await;
    client.connect(peer.local_addr().unwrap()).await.unwrap();
    let to = client.local_addr().unwrap();
    stranger.send_to(b"from a stranger", to).await.unwrap();
    peer.send_to(b"from the peer", to).await.unwrap();
    let (data, from) = tokio::time::timeout(WAIT, client.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"from the peer");
    assert_eq!(from, peer.local_addr().unwrap());
}

#[tokio::test]
async fn connected_endpoint_sending_to_a_closed_port_sees_connection_refused_on_recv() {
    let client = bind().await;
    client.connect(closed_port()).await.unwrap();
    client.send(b"anyone?").await.unwrap();
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .expect("the refusal arrives within 5 s")
        .unwrap_err();
    assert!(is_connection_refused(&err), "{err:?}");
    assert_eq!(client.stats().connection_refused, 1);
}

#[tokio::test]
async fn connection_refused_does_not_kill_the_endpoint() {
    // A peer port that is closed now and opened later.
    let std_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = std_peer.local_addr().unwrap();
    drop(std_peer);
    let client = bind().await;
    client.connect(peer_addr).await.unwrap();
    client.send(b"first").await.unwrap();
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Someone starts listening there: the same endpoint now talks to it.
    let peer = Socket::bind(peer_addr).await.unwrap();
    client.send(b"second").await.unwrap();
    let (data, from) = tokio::time::timeout(WAIT, peer.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"second");
    peer.send_to(b"reply", from).await.unwrap();
    let n = tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"reply");
}

#[tokio::test]
async fn refusal_is_reported_by_the_next_send_when_nobody_receives() {
    let client = bind().await;
    client.connect(closed_port()).await.unwrap();
    client.send(b"one").await.unwrap();
    // The ICMP error is queued on the socket; the next send reports it (bounded retries,
    // up to 5 s, since the ICMP may take a moment on a loaded machine).
    let mut refused = false;
    for _ in 0..250 {
        match client.send(b"again").await {
            Err(e) if is_connection_refused(&e) => {
                refused = true;
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(refused, "send never reported the refusal");
    assert!(client.stats().connection_refused >= 1);
}

#[tokio::test]
async fn unconnected_endpoint_is_not_told_about_refusals() {
    // Without connect, Linux keeps ICMP errors to itself (no IP_RECVERR): the endpoint
    // just sees the next datagram, as Twisted's unconnected ports do.
    let client = bind().await;
    let helper = bind().await;
    client.send_to(b"lost", closed_port()).await.unwrap();
    helper
        .send_to(b"next", client.local_addr().unwrap())
        .await
        .unwrap();
    let (data, _) = tokio::time::timeout(WAIT, client.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"next");
    assert_eq!(client.stats().connection_refused, 0);
}
