//! Socket basics over real loopback sockets: binding, both IP stacks, buffers, the
//! largest datagram, oversize detection, the datagram stream, adoption, resolution.

use futures::StreamExt;
use rpcudp::udp::{BindError, IpStack, Socket, SocketConfig};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn recv(ep: &Socket, buf: &mut [u8]) -> (usize, SocketAddr) {
    tokio::time::timeout(WAIT, ep.recv_from(buf))
        .await
        .expect("a datagram within 5 s")
        .expect("recv_from")
}

#[tokio::test]
async fn port_zero_binds_a_free_port_reported_by_local_addr() {
    let ep = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let local = ep.local_addr().unwrap();
    assert_eq!(local.ip().to_string(), "127.0.0.1");
    assert_ne!(local.port(), 0);
}

#[tokio::test]
async fn binding_a_taken_port_without_reuse_fails_with_a_bind_error() {
    let first = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let taken = first.local_addr().unwrap();
    let err = Socket::bind_with(taken, SocketConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BindError::Bind { addr, .. } if addr == taken),
        "{err}"
    );
    assert!(err.to_string().contains(&taken.to_string()));
}

#[tokio::test]
async fn listen_multiple_lets_two_endpoints_share_a_port() {
    let a = Socket::bind_with(addr("127.0.0.1:0"), SocketConfig::listen_multiple())
        .await
        .unwrap();
    let port = a.local_addr().unwrap().port();
    let b = Socket::bind_with(
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketConfig::listen_multiple(),
    )
    .await
    .unwrap();
    assert_eq!(b.local_addr().unwrap().port(), port);
}

#[tokio::test]
async fn datagram_round_trips_over_ipv4_with_the_senders_address() {
    let a = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 100];
    let (n, from) = recv(&b, &mut buf).await;
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, a.local_addr().unwrap());
    assert_eq!(a.stats().datagrams_sent, 1);
    assert_eq!(b.stats().datagrams_received, 1);
}

#[tokio::test]
async fn datagram_round_trips_over_ipv6_loopback() {
    let a = Socket::bind(addr("[::1]:0")).await.unwrap();
    let b = Socket::bind(addr("[::1]:0")).await.unwrap();
    a.send_to(b"six", b.local_addr().unwrap()).await.unwrap();
    let (data, from) = tokio::time::timeout(WAIT, b.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&data[..], b"six");
    assert_eq!(from, a.local_addr().unwrap());
}

#[tokio::test]
async fn dual_stack_endpoint_receives_ipv4_as_mapped_addresses() {
    let six = Socket::bind_with(
        addr("[::]:0"),
        SocketConfig {
            ip_stack: IpStack::DualStack,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let port = six.local_addr().unwrap().port();
    let four = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    four.send_to(b"v4", SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = recv(&six, &mut buf).await;
    assert_eq!(&buf[..n], b"v4");
    assert_eq!(from.ip().to_string(), "::ffff:127.0.0.1");
    assert_eq!(from.port(), four.local_addr().unwrap().port());
    // A dual-stack socket owns the IPv4 port too.
    assert!(Socket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .is_err());
}

#[tokio::test]
async fn v6_only_endpoint_leaves_the_ipv4_port_free() {
    let six = Socket::bind_with(
        addr("[::]:0"),
        SocketConfig {
            ip_stack: IpStack::V6Only,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let port = six.local_addr().unwrap().port();
    let four = Socket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .expect("the IPv4 port is not taken by a v6-only socket");
    assert_eq!(four.local_addr().unwrap().port(), port);
}

#[tokio::test]
async fn buffer_sizes_are_applied() {
    let ep = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            recv_buffer_size: Some(256 * 1024),
            send_buffer_size: Some(128 * 1024),
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    // Linux doubles the value for bookkeeping and caps it at rmem_max/wmem_max; either
    // way it moved away from the small defaults and is at least what a cap allows.
    assert!(ep.recv_buffer_size().unwrap() >= 128 * 1024);
    assert!(ep.send_buffer_size().unwrap() >= 64 * 1024);
}

#[tokio::test]
async fn largest_ipv4_datagram_of_65507_bytes_arrives_whole() {
    let a = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            send_buffer_size: Some(1 << 20),
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let b = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            recv_buffer_size: Some(1 << 20),
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let big: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        a.send_to(&big, b.local_addr().unwrap()).await.unwrap(),
        65_507
    );
    let (data, _) = tokio::time::timeout(WAIT, b.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data.len(), 65_507);
    assert_eq!(&data[..], &big[..]);
    // One byte more does not fit an IPv4 datagram: the kernel refuses to send it.
    assert!(a
        .send_to(&vec![0u8; 65_508], b.local_addr().unwrap())
        .await
        .is_err());
}

#[tokio::test]
async fn datagram_above_max_datagram_is_dropped_and_counted_not_truncated() {
    let a = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            max_datagram: 100,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let to = b.local_addr().unwrap();
    a.send_to(&[1u8; 101], to).await.unwrap();
    a.send_to(&[2u8; 100], to).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = recv(&b, &mut buf).await;
    assert_eq!(
        n, 100,
        "the oversized datagram is skipped, the next one delivered"
    );
    assert!(buf[..n].iter().all(|&x| x == 2));
    let stats = b.stats();
    assert_eq!(stats.oversized_dropped, 1);
    assert_eq!(stats.datagrams_received, 1);
}

#[tokio::test]
async fn datagram_longer_than_the_callers_buffer_is_dropped_and_counted() {
    let a = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = b.local_addr().unwrap();
    a.send_to(b"0123456789", to).await.unwrap();
    a.send_to(b"01234567", to).await.unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = recv(&b, &mut buf).await;
    assert_eq!(&buf[..n], b"01234567");
    assert_eq!(b.stats().oversized_dropped, 1);
}

#[tokio::test]
async fn datagram_stream_yields_datagrams_in_order_and_skips_oversized_ones() {
    let a = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            max_datagram: 10,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let to = b.local_addr().unwrap();
    for msg in [&b"one"[..], &[0u8; 11][..], b"two", b"three"] {
        a.send_to(msg, to).await.unwrap();
    }
    let got: Vec<_> = tokio::time::timeout(WAIT, b.datagrams().take(3).collect::<Vec<_>>())
        .await
        .unwrap();
    let payloads: Vec<Vec<u8>> = got.into_iter().map(|r| r.unwrap().0.to_vec()).collect();
    assert_eq!(
        payloads,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert_eq!(b.stats().oversized_dropped, 1);
}

#[tokio::test]
async fn invalid_max_datagram_is_a_configuration_error() {
    for max in [0, 65_536] {
        let err = Socket::bind_with(
            addr("127.0.0.1:0"),
            SocketConfig {
                max_datagram: max,
                ..SocketConfig::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BindError::Invalid(_)), "{err}");
    }
}

#[tokio::test]
async fn unicast_ttl_can_be_read_and_set() {
    let four = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    four.set_ttl(7).unwrap();
    assert_eq!(four.ttl().unwrap(), 7);
    let six = Socket::bind(addr("[::1]:0")).await.unwrap();
    six.set_ttl(9).unwrap();
    assert_eq!(six.ttl().unwrap(), 9);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever the sizes, a datagram is either delivered whole or dropped and counted.
    #[test]
    fn any_datagram_is_delivered_whole_or_dropped_and_counted(
        max in 1usize..2048,
        sizes in proptest::collection::vec(1usize..4096, 1..6),
        small_buffer in proptest::bool::ANY,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let a = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
            let b = Socket::bind_with(addr("127.0.0.1:0"), SocketConfig { max_datagram: max, ..SocketConfig::default() }).await.unwrap();
            let to = b.local_addr().unwrap();
            // The caller's buffer is either roomy or smaller than max: both paths count.
            let mut buf = vec![0u8; if small_buffer { max / 2 + 1 } else { 65_536 }];
            let limit = max.min(buf.len());
            for (i, &size) in sizes.iter().enumerate() {
                let payload: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
                a.send_to(&payload, to).await.unwrap();
            }
            // An empty datagram always fits: it marks the end.
            a.send_to(b"", to).await.unwrap();
            let expected: Vec<(usize, usize)> =
                sizes.iter().copied().enumerate().filter(|&(_, s)| s <= limit).collect();
            let mut got = Vec::new();
            loop {
                let (n, _) = recv(&b, &mut buf).await;
                if n == 0 {
                    break;
                }
                got.push(n);
                // Whole, and the right one: the bytes are those of the i-th payload.
                let (i, size) = expected[got.len() - 1];
                assert_eq!(n, size);
                assert!(buf[..n].iter().enumerate().all(|(j, &x)| x == (i * 31 + j) as u8));
            }
            assert_eq!(got.len(), expected.len());
            let dropped = (sizes.len() - expected.len()) as u64;
            assert_eq!(b.stats().oversized_dropped, dropped);
        });
    }
}

#[tokio::test]
async fn sending_to_a_broadcast_address_without_permission_says_to_call_set_broadcast() {
    // The kernel refuses 127.255.255.255 (loopback's subnet broadcast) as it refuses
    // 255.255.255.255 when SO_BROADCAST is off, so this needs no namespace.
    let ep = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let target: SocketAddr = "127.255.255.255:9".parse().unwrap();
    let err = ep.send_to(b"x", target).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let text = err.to_string();
    assert!(text.contains("set_broadcast(true)"), "{text}");
    assert!(text.contains("127.255.255.255:9"), "{text}");
    // With permission the same send goes out.
    ep.set_broadcast(true).unwrap();
    ep.send_to(b"x", target).await.unwrap();
}
