//! Shared by the lt_* integration tests: ltprotocol's test messages, bounded waits, raw
//! framed peers.
#![allow(dead_code)] // each test file uses part of it

use binrw::binrw;
use futures::{SinkExt, StreamExt};
use rpcudp::lt::{BinrwMessage, Frame, LtCodec, Server, ServerConfig, ServerEvent};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// ltprotocol's NumMsg: type 1, `struct.pack("> I", num)`.
#[binrw]
#[derive(Debug, Clone, PartialEq)]
pub struct NumMsg {
    pub num: u32,
}
impl BinrwMessage for NumMsg {
    const TYPE: u64 = 1;
}

/// ltprotocol's StrMsg: type 2, the raw bytes.
#[binrw]
#[derive(Debug, Clone, PartialEq)]
pub struct StrMsg {
    #[br(parse_with = binrw::helpers::until_eof)]
    pub text: Vec<u8>,
}
impl BinrwMessage for StrMsg {
    const TYPE: u64 = 2;
}

rpcudp::lt_messages! {
    /// ltprotocol's TEST_PROTOCOL: `LTProtocol([NumMsg, StrMsg], 'H', 'B')`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum TestMessage {
        Num(NumMsg),
        Str(StrMsg),
    }
}

pub fn num(n: u32) -> TestMessage {
    TestMessage::Num(NumMsg { num: n })
}

pub fn text(s: &str) -> TestMessage {
    TestMessage::Str(StrMsg {
        text: s.as_bytes().to_vec(),
    })
}

/// Awaits `fut`, failing the test after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s waiting for {what}"))
}

/// A raw peer speaking frames over TCP.
pub type RawPeer = Framed<TcpStream, LtCodec<Frame>>;

pub async fn raw_peer(addr: SocketAddr) -> RawPeer {
    let stream = within(5, "connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    Framed::new(stream, LtCodec::<Frame>::default())
}

pub async fn send_raw(peer: &mut RawPeer, frame: Frame) {
    within(5, "send", peer.send(frame)).await.expect("send");
}

/// The next frame a raw peer receives (fails on EOF, error or timeout).
pub async fn recv_raw(peer: &mut RawPeer) -> Frame {
    within(5, "a frame", peer.next())
        .await
        .expect("stream ended")
        .expect("frame error")
}

/// Asserts the peer's stream ends (EOF or reset) within 5 s, with no frame before.
pub async fn expect_closed(peer: &mut RawPeer) {
    match within(5, "the connection to close", peer.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(frame)) => panic!("expected the connection to close, got {frame:?}"),
    }
}

/// A server whose events are handled by `on_event` in a spawned task (which gets a handle
/// to reply with). Returns the server's address and handle.
pub async fn spawn_server<P, F>(
    config: ServerConfig,
    mut on_event: F,
) -> (
    SocketAddr,
    rpcudp::lt::ServerHandle<P>,
    tokio::task::JoinHandle<()>,
)
where
    P: rpcudp::lt::MessageSet,
    F: FnMut(&rpcudp::lt::ServerHandle<P>, ServerEvent<P>) + Send + 'static,
{
    let mut server = Server::<P>::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let h2 = handle.clone();
    let task = tokio::spawn(async move {
        while let Some(ev) = server.next_event().await {
            on_event(&h2, ev);
        }
    });
    (addr, handle, task)
}

/// An echo handler: every message goes back to its connection.
pub fn echo<P: rpcudp::lt::MessageSet>(h: &rpcudp::lt::ServerHandle<P>, ev: ServerEvent<P>) {
    if let ServerEvent::Message { conn, msg } = ev {
        let _ = h.send(conn, &msg);
    }
}

/// Polls `cond` every 10 ms for up to 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened within 5 s: {what}");
}
