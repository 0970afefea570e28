//! The reconnecting length-type client over loopback TCP.

mod lt_common;

use lt_common::*;
use rpcudp::lt::{
    Client, ClientConfig, ClientEvent, ReconnectPolicy, SendError, Server, ServerConfig,
    ServerEvent,
};
use std::net::SocketAddr;
use std::time::Duration;

fn fast_config() -> ClientConfig {
    ClientConfig {
        reconnect: ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..ReconnectPolicy::default()
        },
        seed: Some(7),
        ..ClientConfig::default()
    }
}

/// A loopback port where nothing listens (bound, then released).
async fn dead_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn next_message(client: &mut Client<TestMessage>) -> TestMessage {
    loop {
        match within(10, "a client event", client.next_event()).await {
            Some(ClientEvent::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("client stopped"),
        }
    }
}

/// Runs a server that answers NumMsg(n) with NumMsg(n + 1) until it is shut down.
async fn plus_one_server(server: &mut Server<TestMessage>) {
    let handle = server.handle();
    while let Some(ev) = server.next_event().await {
        if let ServerEvent::Message {
            conn,
            msg: TestMessage::Num(n),
        } = ev
        {
            let _ = handle.send(conn, &num(n.num + 1));
        }
    }
}

#[tokio::test]
async fn a_client_reconnects_after_the_server_restarts_on_the_same_port() {
    let mut server =
        Server::<TestMessage>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
            .await
            .unwrap();
    let addr = server.local_addr();
    let mut client = Client::<TestMessage>::connect(addr, fast_config());
    client.send(&num(1)).unwrap();
    // Serve until the client got its answer, then stop the server.
    let serve = async {
        let handle = server.handle();
        loop {
            if let Some(ServerEvent::Message {
                conn,
                msg: TestMessage::Num(n),
            }) = server.next_event().await
            {
                handle.send(conn, &num(n.num + 1)).unwrap();
                break;
            }
        }
    };
    within(10, "the first server to answer", serve).await;
    assert_eq!(next_message(&mut client).await, num(2));
    assert!(client.is_connected());
    server.shutdown().await;

    // The client notices, and keeps retrying while nothing listens.
    let mut saw_disconnect = false;
    let mut saw_failure = false;
    while !(saw_disconnect && saw_failure) {
        match within(10, "disconnect and a failed retry", client.next_event()).await {
            Some(ClientEvent::Disconnected { retry_in, .. }) => {
                assert!(retry_in.is_some());
                saw_disconnect = true;
            }
            Some(ClientEvent::ConnectFailed { retry_in, .. }) => {
                assert!(retry_in.unwrap() <= Duration::from_millis(200));
                saw_failure = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!client.is_connected());
    // Sent while disconnected: kept and delivered after the reconnection.
    client.send(&num(10)).unwrap();

    // Restart on the same port (the listener sets SO_REUSEADDR, so TIME_WAIT is no bar).
    let mut restarted = None;
    for _ in 0..100 {
        match Server::<TestMessage>::bind(addr, ServerConfig::default()).await {
            Ok(s) => {
                restarted = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let mut server = restarted.expect("rebind the same port");
    let serving = tokio::spawn(async move {
        plus_one_server(&mut server).await;
    });
    loop {
        match within(10, "reconnection", client.next_event()).await {
            Some(ClientEvent::Connected { peer }) => {
                assert_eq!(peer, addr);
                break;
            }
            Some(ClientEvent::ConnectFailed { .. }) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(next_message(&mut client).await, num(11));
    client.send(&num(20)).unwrap();
    assert_eq!(next_message(&mut client).await, num(21));
    client.close().await;
    serving.abort();
}

#[tokio::test]
async fn messages_sent_while_disconnected_are_bounded_by_the_queue() {
    let addr = dead_port().await;
    let config = ClientConfig {
        queue_frames: 4,
        ..fast_config()
    };
    let mut client = Client::<TestMessage>::connect(addr, config);
    for i in 0..4 {
        client.send(&num(i)).unwrap();
    }
    assert_eq!(client.send(&num(99)), Err(SendError::QueueFull));
    match within(5, "a failed attempt", client.next_event()).await {
        Some(ClientEvent::ConnectFailed { retry_in, .. }) => assert!(retry_in.is_some()),
        other => panic!("unexpected {other:?}"),
    }
    // Now a server appears on that port: the 4 queued messages arrive, in order.
    let mut server = Server::<TestMessage>::bind(addr, ServerConfig::default())
        .await
        .expect("rebind");
    let mut got = Vec::new();
    while got.len() < 4 {
        if let Some(ServerEvent::Message { msg, .. }) =
            within(10, "queued messages", server.next_event()).await
        {
            got.push(msg);
        }
    }
    assert_eq!(got, vec![num(0), num(1), num(2), num(3)]);
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_gives_up_after_max_retries() {
    let addr = dead_port().await;
    let mut config = fast_config();
    config.reconnect.max_retries = Some(3);
    let mut client = Client::<TestMessage>::connect(addr, config);
    let mut failures = Vec::new();
    while let Some(ev) = within(10, "the client to give up", client.next_event()).await {
        match ev {
            ClientEvent::ConnectFailed { retry_in, .. } => failures.push(retry_in),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(failures[..3].iter().all(|d| d.is_some()));
    assert_eq!(failures[3], None);
    assert_eq!(client.send(&num(1)), Err(SendError::Shutdown));
}

#[tokio::test]
async fn a_bad_frame_from_the_server_drops_the_connection_and_the_client_reconnects() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = Client::<TestMessage>::connect(addr, fast_config());
    use tokio::io::AsyncWriteExt;
    // First connection: a frame whose length (1) is shorter than the header.
    let (mut first, _) = within(5, "accept", listener.accept()).await.unwrap();
    first.write_all(&[0, 1, 1]).await.unwrap();
    loop {
        match within(5, "the disconnect", client.next_event()).await {
            Some(ClientEvent::Connected { .. }) => continue,
            Some(ClientEvent::Disconnected { reason, retry_in }) => {
                assert!(
                    matches!(reason, rpcudp::lt::Disconnect::Error(_)),
                    "{reason:?}"
                );
                assert!(retry_in.is_some());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Second connection: good frames get through.
    let (mut second, _) = within(5, "the reconnection", listener.accept())
        .await
        .unwrap();
    second.write_all(&[0, 7, 1, 0, 0, 0, 42]).await.unwrap();
    assert_eq!(next_message(&mut client).await, num(42));
    client.close().await;
}
