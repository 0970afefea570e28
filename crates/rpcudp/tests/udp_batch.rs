//! Batched receive and send (`recvmmsg` / `sendmmsg` on Linux) over real loopback
//! sockets: the oversize rule inside a batch, senders and destinations per datagram,
//! batch bounds, and sends the kernel takes only in part.

use rpcudp::udp::{RecvBatch, Socket, SocketConfig, SEND_BATCH_MAX};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Receives batches until `want` datagrams were kept (bounded by [`WAIT`]); returns
/// them with their senders, and the size of every batch that kept some.
async fn recv_batches(
    ep: &Socket,
    batch: &mut RecvBatch,
    want: usize,
) -> (Vec<(Vec<u8>, SocketAddr)>, Vec<usize>) {
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let work = async {
        while got.len() < want {
            ep.socket().readable().await.unwrap();
            match ep.try_recv_batch(batch) {
                Ok(n) => {
                    assert_eq!(n, batch.len());
                    sizes.push(n);
                    got.extend(batch.iter().map(|(d, from)| (d.to_vec(), from)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("try_recv_batch: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("the datagrams within 5 s");
    (got, sizes)
}

/// `try_send_batch` once the runtime has seen the socket writable (a fresh socket's
/// readiness is unknown until then, and `try_*` calls report `WouldBlock`).
async fn send_batch<'a>(
    ep: &Socket,
    datagrams: impl IntoIterator<Item = (&'a [u8], SocketAddr)>,
) -> io::Result<usize> {
    tokio::time::timeout(WAIT, ep.socket().writable())
        .await
        .expect("writable within 5 s")?;
    ep.try_send_batch(datagrams)
}

#[tokio::test]
async fn batch_receive_on_an_empty_queue_would_block() {
    let ep = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let mut batch = RecvBatch::new(8, 1500);
    let err = ep.try_recv_batch(&mut batch).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(batch.is_empty());
    assert_eq!(ep.stats().datagrams_received, 0);
}

#[tokio::test]
async fn batch_receive_drops_and_counts_oversized_datagrams_and_keeps_the_others() {
    let rx = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            max_datagram: 100,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    // Slots larger than max_datagram: the limit is max_datagram, not the slot.
    let mut batch = RecvBatch::new(16, 1000);
    let sizes = [50usize, 101, 100, 200, 10, 1000];
    for (i, &len) in sizes.iter().enumerate() {
        tx.send_to(&vec![i as u8; len], to).await.unwrap();
    }
    // The last one is small and marks the end: everything before it was handled.
    tx.send_to(b"end", to).await.unwrap();
    let (got, _) = recv_batches(&rx, &mut batch, 4).await;
    let lens: Vec<usize> = got.iter().map(|(d, _)| d.len()).collect();
    assert_eq!(lens, vec![50, 100, 10, 3], "kept whole, in order");
    assert_eq!(got[1].0, vec![2u8; 100], "the 100-byte one is not cut");
    let stats = rx.stats();
    assert_eq!(stats.oversized_dropped, 3, "101, 200 and 1000 bytes");
    assert_eq!(stats.datagrams_received, 4);
}

#[tokio::test]
async fn batch_receive_drops_datagrams_longer_than_its_slots_below_max_datagram() {
    let rx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    let mut batch = RecvBatch::new(4, 64);
    assert_eq!((batch.slots(), batch.slot_len()), (4, 64));
    tx.send_to(&[7u8; 65], to).await.unwrap();
    tx.send_to(&[8u8; 64], to).await.unwrap();
    let (got, _) = recv_batches(&rx, &mut batch, 1).await;
    assert_eq!(got, vec![(vec![8u8; 64], tx.local_addr().unwrap())]);
    assert_eq!(rx.stats().oversized_dropped, 1);
}

#[tokio::test]
async fn batch_of_only_oversized_datagrams_would_block_after_counting_them() {
    let rx = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            max_datagram: 10,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    for _ in 0..3 {
        tx.send_to(&[1u8; 11], to).await.unwrap();
    }
    let mut batch = RecvBatch::new(8, 100);
    let counted = async {
        while rx.stats().oversized_dropped < 3 {
            rx.socket().readable().await.unwrap();
            let err = rx.try_recv_batch(&mut batch).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        }
    };
    tokio::time::timeout(WAIT, counted).await.expect("3 drops");
    assert!(batch.is_empty());
    assert_eq!(rx.stats().datagrams_received, 0);
}

#[tokio::test]
async fn batch_receive_reports_each_datagrams_own_sender() {
    let rx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    let mut senders = Vec::new();
    for _ in 0..3 {
        senders.push(Socket::bind(addr("127.0.0.1:0")).await.unwrap());
    }
    // Interleaved: a, b, c, a, b, c, ...
    let mut sent = Vec::new();
    for round in 0..4u8 {
        for (i, s) in senders.iter().enumerate() {
            let payload = vec![round, i as u8];
            s.send_to(&payload, to).await.unwrap();
            sent.push((payload, s.local_addr().unwrap()));
        }
    }
    let mut batch = RecvBatch::new(32, 64);
    let (got, _) = recv_batches(&rx, &mut batch, sent.len()).await;
    assert_eq!(got, sent);
}

#[tokio::test]
async fn batch_receive_takes_at_most_its_slots_and_leaves_the_rest_queued() {
    let rx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    for i in 0..10u8 {
        tx.send_to(&[i], to).await.unwrap();
    }
    let mut batch = RecvBatch::new(4, 16);
    let (got, sizes) = recv_batches(&rx, &mut batch, 10).await;
    let order: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
    assert_eq!(order, (0..10).collect::<Vec<u8>>());
    assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
    assert!(
        sizes.len() >= 3,
        "10 datagrams need 3 batches of 4: {sizes:?}"
    );
    assert_eq!(rx.stats().datagrams_received, 10);
}

#[tokio::test]
async fn batch_round_trips_over_ipv6_loopback_with_the_senders_address() {
    let Ok(rx) = Socket::bind(addr("[::1]:0")).await else {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    };
    let tx = Socket::bind(addr("[::1]:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    let sent = send_batch(&tx, [(&b"six"[..], to), (&b"seven"[..], to)])
        .await
        .unwrap();
    assert_eq!(sent, 2);
    let mut batch = RecvBatch::new(4, 64);
    let (got, _) = recv_batches(&rx, &mut batch, 2).await;
    let from = tx.local_addr().unwrap();
    assert_eq!(
        got,
        vec![(b"six".to_vec(), from), (b"seven".to_vec(), from)]
    );
}

#[tokio::test]
async fn batch_send_delivers_each_datagram_to_its_own_destination() {
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let mut rxs = Vec::new();
    for _ in 0..3 {
        rxs.push(Socket::bind(addr("127.0.0.1:0")).await.unwrap());
    }
    let payloads: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 1 + i as usize]).collect();
    let out: Vec<(&[u8], SocketAddr)> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (&p[..], rxs[i % 3].local_addr().unwrap()))
        .collect();
    assert_eq!(send_batch(&tx, out.iter().copied()).await.unwrap(), 6);
    assert_eq!(tx.stats().datagrams_sent, 6);
    for (r, rx) in rxs.iter().enumerate() {
        let mut batch = RecvBatch::new(8, 64);
        let (got, _) = recv_batches(rx, &mut batch, 2).await;
        let from = tx.local_addr().unwrap();
        assert_eq!(
            got,
            vec![(payloads[r].clone(), from), (payloads[r + 3].clone(), from)]
        );
    }
}

#[tokio::test]
async fn batch_send_stops_before_a_datagram_the_kernel_refuses_and_the_retry_reports_it() {
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let rx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    // 65,508 bytes: one more than an IPv4 UDP payload can carry (EMSGSIZE).
    let too_big = vec![0u8; 65_508];
    let out: Vec<(&[u8], SocketAddr)> = vec![(b"a", to), (b"b", to), (&too_big, to), (b"c", to)];
    let first = send_batch(&tx, out.iter().copied()).await.unwrap();
    assert_eq!(
        first, 2,
        "a partial send: the prefix before the refused one"
    );
    let err = send_batch(&tx, out[2..].iter().copied()).await.unwrap_err();
    assert_ne!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    assert_eq!(send_batch(&tx, out[3..].iter().copied()).await.unwrap(), 1);
    assert_eq!(tx.stats().datagrams_sent, 3);
    let mut batch = RecvBatch::new(8, 64);
    let (got, _) = recv_batches(&rx, &mut batch, 3).await;
    let payloads: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
    assert_eq!(payloads, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

#[tokio::test]
async fn batch_send_takes_at_most_send_batch_max_datagrams_per_call() {
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let rx = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            recv_buffer_size: Some(1 << 20),
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let to = rx.local_addr().unwrap();
    let payloads: Vec<[u8; 2]> = (0..100u16).map(|i| i.to_be_bytes()).collect();
    let out: Vec<(&[u8], SocketAddr)> = payloads.iter().map(|p| (&p[..], to)).collect();
    let first = send_batch(&tx, out.iter().copied()).await.unwrap();
    assert_eq!(first, SEND_BATCH_MAX);
    let second = send_batch(&tx, out[first..].iter().copied()).await.unwrap();
    assert_eq!(first + second, 100);
    assert_eq!(send_batch(&tx, std::iter::empty()).await.unwrap(), 0);
    let mut batch = RecvBatch::new(32, 16);
    let (got, _) = recv_batches(&rx, &mut batch, 100).await;
    let order: Vec<u16> = got
        .iter()
        .map(|(d, _)| u16::from_be_bytes([d[0], d[1]]))
        .collect();
    assert_eq!(order, (0..100).collect::<Vec<u16>>());
}

#[tokio::test]
async fn batch_send_on_a_connected_socket_reaches_its_peer() {
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let rx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let to = rx.local_addr().unwrap();
    tx.connect(to).await.unwrap();
    assert_eq!(send_batch(&tx, [(&b"x"[..], to)]).await.unwrap(), 1);
    let mut batch = RecvBatch::new(2, 8);
    let (got, _) = recv_batches(&rx, &mut batch, 1).await;
    assert_eq!(got, vec![(b"x".to_vec(), tx.local_addr().unwrap())]);
}

#[tokio::test]
async fn a_run_of_equal_datagrams_to_one_peer_arrives_as_the_same_separate_datagrams() {
    // On Linux such a run goes as one GSO send; the receiver must see exactly the
    // datagrams a send each would have produced, the shorter last one included, and
    // those around the run (another size, another destination) in order too.
    let tx = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let rx = Socket::bind_with(
        addr("127.0.0.1:0"),
        SocketConfig {
            recv_buffer_size: Some(1 << 20),
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    let other = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    let (to, elsewhere) = (rx.local_addr().unwrap(), other.local_addr().unwrap());
    let mut payloads: Vec<Vec<u8>> = vec![vec![0xAA; 5]];
    payloads.extend((0..20u8).map(|i| vec![i; 100]));
    payloads.push(vec![0xEE; 30]); // shorter: the end of the run
    payloads.push(vec![0xBB; 2000]); // above the GSO segment limit
    payloads.push(vec![0xCC; 100]); // to another endpoint
    payloads.push(vec![0xDD; 100]);
    let dests: Vec<SocketAddr> = (0..payloads.len())
        .map(|i| {
            if i == payloads.len() - 2 {
                elsewhere
            } else {
                to
            }
        })
        .collect();
    let out: Vec<(&[u8], SocketAddr)> = payloads
        .iter()
        .zip(&dests)
        .map(|(p, &d)| (&p[..], d))
        .collect();
    let mut next = 0;
    let mut calls = 0;
    while next < out.len() {
        next += send_batch(&tx, out[next..].iter().copied()).await.unwrap();
        calls += 1;
        assert!(calls <= out.len(), "each call sends at least one");
    }
    if cfg!(target_os = "linux") {
        // The 5-byte one alone, the run of 21 as one GSO send, the 3 others together.
        assert_eq!(calls, 3, "GSO used for the run");
    }
    assert_eq!(tx.stats().datagrams_sent, out.len() as u64);
    let mut batch = RecvBatch::new(32, 4096);
    let (got, _) = recv_batches(&rx, &mut batch, out.len() - 1).await;
    let want: Vec<(Vec<u8>, SocketAddr)> = payloads
        .iter()
        .zip(&dests)
        .filter(|&(_, &d)| d == to)
        .map(|(p, _)| (p.clone(), tx.local_addr().unwrap()))
        .collect();
    assert_eq!(got, want);
    let (got, _) = recv_batches(&other, &mut batch, 1).await;
    assert_eq!(got, vec![(vec![0xCC; 100], tx.local_addr().unwrap())]);
}

/// Sends all of `items` with `try_send_batch_from`, waiting for room (bounded).
async fn send_all_from(ep: &Socket, items: &[(&[u8], SocketAddr, Option<std::net::IpAddr>)]) {
    let mut next = 0;
    let work = async {
        while next < items.len() {
            ep.socket().writable().await.unwrap();
            match ep.try_send_batch_from(items[next..].iter().copied()) {
                Ok(n) => next += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("try_send_batch_from: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("sent in time");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_wildcard_bound_endpoint_learns_each_datagrams_local_address_and_sends_from_it() {
    let server = Socket::bind(addr("0.0.0.0:0")).await.unwrap();
    assert!(server.enable_local_addr().unwrap());
    let port = server.local_addr().unwrap().port();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    for (i, ip) in ["127.0.0.2", "127.0.0.1", "127.0.0.3"].iter().enumerate() {
        client
            .send_to(&[i as u8], SocketAddr::new(ip.parse().unwrap(), port))
            .unwrap();
    }
    let mut batch = RecvBatch::new(8, 64);
    let mut locals = Vec::new();
    let work = async {
        while locals.len() < 3 {
            server.socket().readable().await.unwrap();
            if server.try_recv_batch(&mut batch).is_ok() {
                locals.extend(batch.iter_with_local().map(|(d, _, local)| (d[0], local)));
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("three datagrams");
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(
        locals,
        vec![
            (0, ip("127.0.0.2")),
            (1, ip("127.0.0.1")),
            (2, ip("127.0.0.3"))
        ]
    );
    // Back from the address each came to: a GSO run of equal sizes from one source,
    // then a lone one from another (one system call per source).
    let to = client.local_addr().unwrap();
    let (a, b, c) = ([1u8; 40], [2u8; 40], [3u8; 40]);
    send_all_from(
        &server,
        &[
            (&a[..], to, ip("127.0.0.2")),
            (&b[..], to, ip("127.0.0.2")),
            (&c[..], to, ip("127.0.0.3")),
        ],
    )
    .await;
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..3 {
        let (n, from) = client.recv_from(&mut buf).unwrap();
        got.push((buf[0], n, from.ip().to_string()));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, 40, "127.0.0.2".to_string()),
            (2, 40, "127.0.0.2".to_string()),
            (3, 40, "127.0.0.3".to_string())
        ]
    );
    // Growing sizes are no GSO run: one sendmmsg, its one source shared by all.
    let (d, e, f) = ([4u8; 10], [5u8; 20], [6u8; 30]);
    send_all_from(
        &server,
        &[
            (&d[..], to, ip("127.0.0.3")),
            (&e[..], to, ip("127.0.0.3")),
            (&f[..], to, ip("127.0.0.3")),
        ],
    )
    .await;
    for want in [(4u8, 10usize), (5, 20), (6, 30)] {
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(
            (buf[0], n, from.ip().to_string()),
            (want.0, want.1, "127.0.0.3".into())
        );
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_dual_stack_endpoint_sends_ipv4_from_an_ipv4_source() {
    let Ok(server) = Socket::bind(addr("[::]:0")).await else {
        eprintln!("SKIP: no IPv6 on this host");
        return;
    };
    assert!(server.enable_local_addr().unwrap());
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let to: SocketAddr = match client.local_addr().unwrap() {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    let source = Some("127.0.0.2".parse().unwrap());
    let payload = [7u8; 10];
    if socket2::SockRef::from(server.socket())
        .only_v6()
        .unwrap_or(true)
    {
        eprintln!("SKIP: the socket is IPv6-only");
        return;
    }
    send_all_from(&server, &[(&payload[..], to, source)]).await;
    let mut buf = [0u8; 16];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((n, from.ip().to_string()), (10, "127.0.0.2".to_string()));
}

#[tokio::test]
async fn an_endpoint_bound_to_one_address_needs_no_local_addresses() {
    let ep = Socket::bind(addr("127.0.0.1:0")).await.unwrap();
    assert!(!ep.enable_local_addr().unwrap());
}
