//! Receives broadcast datagrams on a port (any socket bound to the wildcard address
//! does; only sending needs permission) and prints them with their sender.
//!
//! Run: `cargo run -p rpcudp-examples --example broadcast_receiver -- 8555`

use futures::StreamExt;
use rpcudp::udp::{Socket, SocketConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "8555".into())
        .parse()?;
    // Address reuse so several receivers on one host can all listen.
    let endpoint =
        Socket::bind_with(([0, 0, 0, 0], port).into(), SocketConfig::listen_multiple()).await?;
    println!("listening on {}", endpoint.local_addr()?);
    let mut datagrams = endpoint.datagrams();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            Some(got) = datagrams.next() => {
                let (data, from) = got?;
                println!("received {:?} from {from}", String::from_utf8_lossy(&data));
            }
        }
    }
}
