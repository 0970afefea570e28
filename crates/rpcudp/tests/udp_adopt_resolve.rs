//! Adopting existing sockets (Twisted's `adoptDatagramPort`) and name resolution.

use rpcudp::udp::{resolve, resolve_ip, ResolveError, Socket};
use std::os::fd::OwnedFd;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn adopted_std_socket_keeps_its_port_and_carries_traffic() {
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = std_socket.local_addr().unwrap().port();
    let adopted = Socket::from_std(std_socket).unwrap();
    assert_eq!(adopted.local_addr().unwrap().port(), port);
    let peer = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    peer.send_to(b"to adopted", adopted.local_addr().unwrap())
        .await
        .unwrap();
    let (data, from) = tokio::time::timeout(WAIT, adopted.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"to adopted");
    adopted.send_to(b"back", from).await.unwrap();
    let (data, _) = tokio::time::timeout(WAIT, peer.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"back");
}

#[tokio::test]
async fn adopted_raw_fd_of_an_ipv6_socket_carries_traffic() {
    let std_socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let addr = std_socket.local_addr().unwrap();
    let fd: OwnedFd = std_socket.into();
    let adopted = Socket::from_fd(fd).unwrap();
    assert_eq!(adopted.local_addr().unwrap(), addr);
    let peer = Socket::bind("[::1]:0".parse().unwrap()).await.unwrap();
    peer.send_to(b"via fd", addr).await.unwrap();
    let (data, _) = tokio::time::timeout(WAIT, adopted.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"via fd");
}

#[tokio::test]
async fn adopting_a_tcp_socket_or_a_file_is_refused() {
    let tcp: OwnedFd = std::net::TcpListener::bind("127.0.0.1:0").unwrap().into();
    let err = Socket::from_fd(tcp).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let file: OwnedFd = tempfile::tempfile().unwrap().into();
    assert!(Socket::from_fd(file).is_err());
}

#[tokio::test]
async fn localhost_resolves_to_a_loopback_address() {
    let addrs = resolve("localhost", 9000).await.unwrap();
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9000),
        "{addrs:?}"
    );
    let ips = resolve_ip("localhost").await.unwrap();
    assert!(ips.iter().all(|ip| ip.is_loopback()));
}

#[tokio::test]
async fn ip_literals_resolve_without_the_resolver() {
    assert_eq!(
        resolve("::1", 5).await.unwrap(),
        vec!["[::1]:5".parse().unwrap()]
    );
    assert_eq!(
        resolve("[::1]", 5).await.unwrap(),
        vec!["[::1]:5".parse().unwrap()]
    );
}

#[tokio::test]
async fn unknown_name_fails_with_an_error_naming_it() {
    // `.invalid` is reserved (RFC 2606): no resolver may answer it.
    let err = resolve("no-such-host.invalid", 1).await.unwrap_err();
    assert!(matches!(err, ResolveError::Lookup { ref host, .. } if host == "no-such-host.invalid"));
    assert!(err.to_string().contains("no-such-host.invalid"));
}
