//! ltprotocol's example server, ported: every second it sends each connected client
//! `NumMsg(200)`, `StrMsg("hello world!")`, `NumMsg(7)`, and prints what clients send.
//!
//! Run: `cargo run -p rpcudp-examples --example lt_server -- 127.0.0.1:9999`, then
//! `cargo run -p rpcudp-examples --example lt_client` (or ltprotocol's own client).

mod lt_messages;

use lt_messages::TestProtocol;
use rpcudp::lt::{Server, ServerConfig, ServerEvent};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let mut server = Server::<TestProtocol>::bind(addr.parse()?, ServerConfig::default()).await?;
    println!("listening on {}", server.local_addr());
    let handle = server.handle();
    // ltprotocol's periodic_send, for every live connection at once.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                if handle.live_count() > 0 {
                    println!("sending ...");
                    for msg in [TestProtocol::num(200), TestProtocol::text("hello world!"), TestProtocol::num(7)] {
                        handle.broadcast(&msg)?;
                    }
                }
            }
            event = server.next_event() => match event {
                Some(ServerEvent::Connected { conn, peer }) => println!("connection {conn} from {peer}"),
                Some(ServerEvent::Message { msg, .. }) => println!("server got: {msg}"),
                Some(ServerEvent::Disconnected { conn, reason }) => println!("disconnected! ({conn}: {reason:?})"),
                None => break,
            },
        }
    }
    server.shutdown().await;
    Ok(())
}
