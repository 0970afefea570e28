//! The length-type TCP server over loopback: many connections, broadcast, bad frames,
//! slow consumers, limits and shutdown.

mod lt_common;

use bytes::Bytes;
use futures::StreamExt;
use lt_common::*;
use rpcudp::lt::{
    ConnId, Disconnect, Frame, Overflow, SendError, Server, ServerConfig, ServerEvent,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn many_connections_each_get_their_own_frames_back_in_order() {
    let (addr, handle, _task) = spawn_server::<Frame, _>(ServerConfig::default(), echo).await;
    let mut peers = Vec::new();
    for _ in 0..24 {
        peers.push(raw_peer(addr).await);
    }
    eventually("24 live connections", || handle.live_count() == 24).await;
    let clients = peers.into_iter().enumerate().map(|(i, mut peer)| {
        tokio::spawn(async move {
            for j in 0..40u32 {
                let body = format!("peer {i} frame {j}");
                send_raw(
                    &mut peer,
                    Frame::new(u64::from(j % 7), body.clone().into_bytes()),
                )
                .await;
            }
            for j in 0..40u32 {
                let frame = recv_raw(&mut peer).await;
                assert_eq!(frame.msg_type, u64::from(j % 7));
                assert_eq!(frame.body, Bytes::from(format!("peer {i} frame {j}")));
            }
        })
    });
    for c in clients {
        within(20, "a client to finish", c).await.unwrap();
    }
    assert_eq!(handle.stats().accepted, 24);
    assert_eq!(handle.stats().bad_frames, 0);
}

#[tokio::test]
async fn broadcast_reaches_every_live_connection_and_skips_closed_ones() {
    let disconnected = Arc::new(Mutex::new(Vec::new()));
    let d2 = disconnected.clone();
    let (addr, handle, _task) =
        spawn_server::<TestMessage, _>(ServerConfig::default(), move |_, ev| {
            if let ServerEvent::Disconnected { conn, reason } = ev {
                d2.lock().unwrap().push((conn, reason));
            }
        })
        .await;
    let mut peers = Vec::new();
    for _ in 0..5 {
        peers.push(raw_peer(addr).await);
    }
    eventually("5 live connections", || handle.live_count() == 5).await;
    assert_eq!(handle.broadcast(&text("hello all")).unwrap(), 5);
    for peer in &mut peers {
        let frame = recv_raw(peer).await;
        assert_eq!((frame.msg_type, &frame.body[..]), (2, &b"hello all"[..]));
    }
    drop(peers.pop());
    eventually("the closed peer is gone", || handle.live_count() == 4).await;
    eventually("its Disconnected event", || {
        disconnected.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(disconnected.lock().unwrap()[0].1, Disconnect::PeerClosed);
    assert_eq!(handle.broadcast(&num(9)).unwrap(), 4);
    for peer in &mut peers {
        let frame = recv_raw(peer).await;
        assert_eq!((frame.msg_type, &frame.body[..]), (1, &[0u8, 0, 0, 9][..]));
    }
}

#[tokio::test]
async fn a_bad_frame_closes_its_connection_while_another_keeps_working() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let (addr, handle, _task) = spawn_server::<Frame, _>(
        ServerConfig::new(rpcudp::lt::FrameFormat::default().with_max_frame(1000)),
        move |h, ev| {
            if let ServerEvent::Disconnected { conn, reason } = &ev {
                e2.lock().unwrap().push((*conn, reason.clone()));
            }
            echo(h, ev)
        },
    )
    .await;
    let mut good = raw_peer(addr).await;
    let mut too_short = raw_peer(addr).await;
    let mut too_long = raw_peer(addr).await;
    eventually("3 live connections", || handle.live_count() == 3).await;

    // Length 2 is shorter than the 3-byte header.
    too_short
        .get_mut()
        .write_all(&[0x00, 0x02, 0x01])
        .await
        .unwrap();
    // Length 5000 is over the 1000-byte limit: rejected from the header alone.
    too_long
        .get_mut()
        .write_all(&[0x13, 0x88, 0x01])
        .await
        .unwrap();
    expect_closed(&mut too_short).await;
    expect_closed(&mut too_long).await;

    send_raw(&mut good, Frame::new(4, &b"still here"[..])).await;
    assert_eq!(recv_raw(&mut good).await, Frame::new(4, &b"still here"[..]));
    eventually("both bad peers counted", || handle.stats().bad_frames == 2).await;
    eventually("two Disconnected events", || {
        events.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(handle.live_count(), 1);
    for (_, reason) in events.lock().unwrap().iter() {
        assert!(
            matches!(reason, Disconnect::Error(e) if e.contains("frame")),
            "{reason:?}"
        );
    }
}

#[tokio::test]
async fn unknown_types_arrive_as_unknown_and_bad_bodies_close_the_connection() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let (addr, handle, _task) =
        spawn_server::<TestMessage, _>(ServerConfig::default(), move |_, ev| {
            if let ServerEvent::Message { msg, .. } = ev {
                g2.lock().unwrap().push(msg);
            }
        })
        .await;
    let mut peer = raw_peer(addr).await;
    send_raw(&mut peer, Frame::new(1, vec![0, 0, 1, 0])).await;
    send_raw(&mut peer, Frame::new(200, &b"??"[..])).await;
    send_raw(&mut peer, Frame::new(2, &b"text"[..])).await;
    eventually("3 messages", || got.lock().unwrap().len() == 3).await;
    assert_eq!(
        got.lock().unwrap().clone(),
        vec![
            num(256),
            TestMessage::Unknown(rpcudp::lt::Unknown {
                msg_type: 200,
                body: Bytes::from_static(b"??")
            }),
            text("text"),
        ]
    );
    // NumMsg needs exactly 4 body bytes: 3 is a malformed body for a known type.
    send_raw(&mut peer, Frame::new(1, vec![0, 0, 1])).await;
    expect_closed(&mut peer).await;
    eventually("the bad body counted", || handle.stats().bad_frames == 1).await;
}

/// Connects a peer that never reads, and returns it with its id.
async fn silent_peer(
    addr: std::net::SocketAddr,
    ids: &Arc<Mutex<Vec<ConnId>>>,
) -> (tokio::net::TcpStream, ConnId) {
    let before = ids.lock().unwrap().len();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    eventually("the silent peer's Connected", || {
        ids.lock().unwrap().len() > before
    })
    .await;
    let id = *ids.lock().unwrap().last().unwrap();
    (stream, id)
}

#[tokio::test]
async fn a_silent_client_fills_only_its_own_bounded_queue_under_drop_newest() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let i2 = ids.clone();
    let config = ServerConfig {
        queue_frames: 8,
        queue_bytes: 256 * 1024,
        overflow: Overflow::DropNewest,
        ..ServerConfig::default()
    };
    let (addr, handle, _task) = spawn_server::<Frame, _>(config, move |h, ev| {
        if let ServerEvent::Connected { conn, .. } = &ev {
            i2.lock().unwrap().push(*conn);
        }
        echo(h, ev)
    })
    .await;
    let (_silent, silent_id) = silent_peer(addr, &ids).await;
    let big = Frame::new(1, vec![0xAB; 60_000]);
    // The kernel buffers take some; then our queue fills and sends are refused.
    let mut refused = 0;
    let mut accepted = 0;
    for _ in 0..2000 {
        match handle.send(silent_id, &big) {
            Ok(()) => accepted += 1,
            Err(SendError::QueueFull) => {
                refused += 1;
                if refused > 20 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused > 20, "the queue never filled (accepted {accepted})");
    assert!(accepted < 2000);
    assert_eq!(handle.stats().dropped_frames, refused);
    // The silent peer is still connected, and others are served normally.
    assert!(handle.connections().contains(&silent_id));
    let mut other = raw_peer(addr).await;
    for i in 0..50u8 {
        send_raw(&mut other, Frame::new(3, vec![i; 10])).await;
        assert_eq!(recv_raw(&mut other).await, Frame::new(3, vec![i; 10]));
    }
}

#[tokio::test]
async fn a_silent_client_is_disconnected_under_the_disconnect_policy() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let gone = Arc::new(Mutex::new(Vec::new()));
    let (i2, g2) = (ids.clone(), gone.clone());
    let config = ServerConfig {
        queue_frames: 4,
        overflow: Overflow::Disconnect,
        ..ServerConfig::default()
    };
    let (addr, handle, _task) = spawn_server::<Frame, _>(config, move |h, ev| {
        match &ev {
            ServerEvent::Connected { conn, .. } => i2.lock().unwrap().push(*conn),
            ServerEvent::Disconnected { conn, reason } => {
                g2.lock().unwrap().push((*conn, reason.clone()))
            }
            _ => {}
        }
        echo(h, ev)
    })
    .await;
    let (_silent, silent_id) = silent_peer(addr, &ids).await;
    let big = Frame::new(1, vec![0xCD; 60_000]);
    let mut full = false;
    for _ in 0..2000 {
        match handle.send(silent_id, &big) {
            Ok(()) => {}
            Err(SendError::QueueFull) | Err(SendError::NoSuchConnection) => {
                full = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full, "the queue never filled");
    eventually("the slow peer's Disconnected", || {
        !gone.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        gone.lock().unwrap()[0],
        (silent_id, Disconnect::SlowConsumer)
    );
    assert_eq!(handle.stats().slow_disconnects, 1);
    assert_eq!(
        handle.send(silent_id, &big),
        Err(SendError::NoSuchConnection)
    );
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_and_counted() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let (addr, handle, _task) = spawn_server::<Frame, _>(config, echo).await;
    let mut a = raw_peer(addr).await;
    let _b = raw_peer(addr).await;
    eventually("2 live", || handle.live_count() == 2).await;
    let mut c = raw_peer(addr).await;
    expect_closed(&mut c).await;
    assert_eq!(handle.stats().rejected, 1);
    send_raw(&mut a, Frame::new(1, &b"ok"[..])).await;
    assert_eq!(recv_raw(&mut a).await.body, Bytes::from_static(b"ok"));
}

#[tokio::test]
async fn close_drops_one_connection_with_its_reason() {
    let mut server = Server::<Frame>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap();
    let handle = server.handle();
    let mut peer = raw_peer(server.local_addr()).await;
    let conn = match within(5, "Connected", server.next_event()).await {
        Some(ServerEvent::Connected { conn, .. }) => conn,
        other => panic!("{other:?}"),
    };
    assert!(handle.close(conn));
    expect_closed(&mut peer).await;
    match within(5, "Disconnected", server.next_event()).await {
        Some(ServerEvent::Disconnected { conn: c, reason }) => {
            assert_eq!((c, reason), (conn, Disconnect::ClosedHere))
        }
        other => panic!("{other:?}"),
    }
    assert!(!handle.close(conn));
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_flushes_queued_messages_then_closes_every_connection() {
    let mut server =
        Server::<TestMessage>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
            .await
            .unwrap();
    let handle = server.handle();
    let mut peers = vec![
        raw_peer(server.local_addr()).await,
        raw_peer(server.local_addr()).await,
    ];
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        if let Some(ServerEvent::Connected { conn, .. }) =
            within(5, "Connected", server.next_event()).await
        {
            seen.insert(conn);
        }
    }
    for i in 0..100 {
        assert_eq!(handle.broadcast(&num(i)).unwrap(), 2);
    }
    let addr = server.local_addr();
    within(15, "shutdown", server.shutdown()).await;
    for peer in &mut peers {
        for i in 0..100u32 {
            let frame = recv_raw(peer).await;
            assert_eq!(&frame.body[..], &i.to_be_bytes()[..]);
        }
        assert!(
            within(5, "EOF", peer.next()).await.is_none(),
            "clean EOF after the flush"
        );
    }
    assert_eq!(handle.live_count(), 0);
    assert_eq!(handle.send(ConnId(1), &num(1)), Err(SendError::Shutdown));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn live_count_follows_the_connected_and_disconnected_events_taken() {
    let mut server = Server::<Frame>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap();
    let handle = server.handle();
    let peer = raw_peer(server.local_addr()).await;
    // Accepted by the server, but the application has not seen it yet.
    eventually("the connection accepted", || {
        handle.connections().len() == 1
    })
    .await;
    assert_eq!(handle.live_count(), 0);
    let conn = match within(5, "Connected", server.next_event()).await {
        Some(ServerEvent::Connected { conn, .. }) => conn,
        other => panic!("expected Connected, got {other:?}"),
    };
    assert_eq!(handle.live_count(), 1);
    drop(peer);
    // Gone from the server's table, still live until the application takes the news.
    eventually("the connection gone", || handle.connections().is_empty()).await;
    assert_eq!(handle.live_count(), 1);
    match within(5, "Disconnected", server.next_event()).await {
        Some(ServerEvent::Disconnected { conn: c, .. }) => assert_eq!(c, conn),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert_eq!(handle.live_count(), 0);
    server.shutdown().await;
}
