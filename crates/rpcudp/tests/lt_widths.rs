//! A protocol that declares its own header widths (`widths = (W4, W2)`) talks to a peer
//! using those widths with nothing but default configs: the server, the client and the
//! codec all take `Protocol::FORMAT` unless told otherwise.

mod lt_common;

use lt_common::{within, NumMsg};
use rpcudp::lt::{Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

rpcudp::lt_messages! {
    /// `LTProtocol([NumMsg], 'I', 'H')`: a 4-byte length and a 2-byte type.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Wide {
        Num(NumMsg),
    }
    widths = (W4, W2);
}

/// NumMsg 7 framed as `>IH`: length 10 (header included), type 1, then `>I` 7.
const WIDE_SEVEN: [u8; 10] = [0, 0, 0, 10, 0, 1, 0, 0, 0, 7];

fn seven() -> Wide {
    Wide::Num(NumMsg { num: 7 })
}

#[tokio::test]
async fn a_server_with_the_default_config_reads_and_writes_the_declared_widths() {
    let mut server = Server::<Wide>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap();
    let mut peer = TcpStream::connect(server.local_addr()).await.unwrap();
    peer.write_all(&WIDE_SEVEN).await.unwrap();
    let handle = server.handle();
    let conn = loop {
        match within(5, "the message", server.next_event()).await {
            Some(ServerEvent::Connected { .. }) => continue,
            Some(ServerEvent::Message { conn, msg }) => {
                assert_eq!(msg, seven());
                break conn;
            }
            other => panic!("expected the message, got {other:?}"),
        }
    };
    handle.send(conn, &seven()).unwrap();
    let mut back = [0u8; 10];
    within(5, "the answer", peer.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(back, WIDE_SEVEN);
    assert_eq!(handle.stats().bad_frames, 0);
}

#[tokio::test]
async fn a_client_with_the_default_config_reads_and_writes_the_declared_widths() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client =
        Client::<Wide>::connect(listener.local_addr().unwrap(), ClientConfig::default());
    let (mut peer, _) = within(5, "the client to connect", listener.accept())
        .await
        .unwrap();
    client.send(&seven()).unwrap();
    let mut got = [0u8; 10];
    within(5, "the client's frame", peer.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, WIDE_SEVEN);
    peer.write_all(&WIDE_SEVEN).await.unwrap();
    loop {
        match within(5, "the message", client.next_event()).await {
            Some(ClientEvent::Connected { .. }) => continue,
            Some(ClientEvent::Message(msg)) => {
                assert_eq!(msg, seven());
                break;
            }
            other => panic!("expected the message, got {other:?}"),
        }
    }
    client.close().await;
}
