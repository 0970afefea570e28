//! Twisted's multicast ping-pong server: joins 228.0.0.5 on port 8005, sharing the port
//! (`listenMultiple=True`), and answers `Client: Ping` with `Server: Pong` by unicast.
//!
//! Run: `cargo run -p rpcudp-examples --example multicast_server`
//! then `cargo run -p rpcudp-examples --example multicast_client` (needs a multicast
//! route, which most hosts with a network have).

use rpcudp::udp::{listen, DatagramHandler, Interface, Socket, SocketConfig, Transport};
use std::net::SocketAddr;

struct MulticastPingPong;

impl DatagramHandler for MulticastPingPong {
    async fn start(&mut self, t: &Transport) {
        // A TTL above 1 lets multicast cross router hops.
        let joined = t
            .set_multicast_ttl(5)
            .and_then(|_| t.join_multicast("228.0.0.5".parse().unwrap(), Interface::Any));
        if let Err(e) = joined {
            eprintln!("cannot join 228.0.0.5: {e}");
            t.stop_listening();
        }
    }

    async fn datagram_received(&mut self, data: bytes::Bytes, from: SocketAddr, t: &Transport) {
        println!(
            "datagram {:?} received from {from}",
            String::from_utf8_lossy(&data)
        );
        if &data[..] == b"Client: Ping" {
            // Reply to the sender's own port, not to the group.
            let _ = t.send_to(b"Server: Pong", from).await;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // listen_multiple, so several servers can run on one machine.
    let endpoint =
        Socket::bind_with("0.0.0.0:8005".parse()?, SocketConfig::listen_multiple()).await?;
    let server = listen(endpoint, MulticastPingPong);
    println!("listening on {}", server.local_addr());
    // Ends on Ctrl-C, or by itself if joining the group failed.
    let stop = server.stop_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.stop();
    });
    server.stopped().await?;
    Ok(())
}
