//! Twisted's IPv6 Echo: the same handler as `echo_server`, listening on `::`.
//!
//! Run: `cargo run -p rpcudp-examples --example ipv6_echo -- [::1]:8006`
//! Try: `echo hi | nc -6 -u -w1 ::1 8006`

use rpcudp::udp::{listen, DatagramHandler, IpStack, Socket, SocketConfig, Transport};
use std::net::SocketAddr;

struct Echo;

impl DatagramHandler for Echo {
    async fn datagram_received(&mut self, data: bytes::Bytes, from: SocketAddr, t: &Transport) {
        println!("received {:?} from {from}", String::from_utf8_lossy(&data));
        let _ = t.send_to(&data, from).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "[::]:8006".into());
    // IPv6 only: IPv4 clients are not mixed in as ::ffff:a.b.c.d addresses.
    let endpoint = Socket::bind_with(
        addr.parse()?,
        SocketConfig {
            ip_stack: IpStack::V6Only,
            ..SocketConfig::default()
        },
    )
    .await?;
    let server = listen(endpoint, Echo);
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.stop().await?;
    Ok(())
}
