//! Twisted's "Echo" example: every datagram is sent back to its sender.
//!
//! Run: `cargo run -p rpcudp-examples --example echo_server -- 127.0.0.1:9999`
//! Try: `echo hi | nc -u -w1 127.0.0.1 9999`

use rpcudp::udp::{listen, DatagramHandler, Socket, Transport};
use std::net::SocketAddr;

struct Echo;

impl DatagramHandler for Echo {
    async fn datagram_received(&mut self, data: bytes::Bytes, from: SocketAddr, t: &Transport) {
        println!("received {:?} from {from}", String::from_utf8_lossy(&data));
        if let Err(e) = t.send_to(&data, from).await {
            eprintln!("cannot echo to {from}: {e}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let server = listen(Socket::bind(addr.parse()?).await?, Echo);
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.stop().await?;
    Ok(())
}
