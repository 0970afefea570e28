//! Broadcast, as in Twisted's `udpbroadcast.py`: allows broadcast on the socket and
//! sends a datagram to 255.255.255.255 (Twisted's `"<broadcast>"`) on a port, three times.
//!
//! Run: `cargo run -p rpcudp-examples --example broadcast_receiver -- 8555` in one
//! terminal and `cargo run -p rpcudp-examples --example broadcast_sender -- 8555` in
//! another. Broadcast reaches every host of the local network (routers stop it).

use rpcudp::udp::Socket;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "8555".into())
        .parse()?;
    let endpoint = Socket::bind("0.0.0.0:0".parse()?).await?;
    endpoint.set_broadcast(true)?;
    println!("broadcast allowed: {}", endpoint.broadcast()?);
    for i in 1..=3 {
        endpoint
            .send_broadcast(format!("broadcast {i}").as_bytes(), port)
            .await?;
        println!("sent broadcast {i} to {}:{port}", rpcudp::udp::BROADCAST);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
