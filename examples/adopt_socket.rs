//! Twisted's `adoptDatagramPort`: a socket created and bound elsewhere (here by std; in
//! real life often passed in by a parent process or systemd) is handed over as a raw file
//! descriptor and served with the Echo handler.
//!
//! Run: `cargo run -p rpcudp-examples --example adopt_socket -- 127.0.0.1:9999`

use rpcudp::udp::{listen, DatagramHandler, Socket, Transport};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

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
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    // Someone else creates and binds the socket...
    let port_socket = std::net::UdpSocket::bind(&addr)?;
    // ...and passes its file descriptor on; the endpoint owns it from here.
    let fd: OwnedFd = port_socket.into();
    let server = listen(Socket::from_fd(fd)?, Echo);
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.stop().await?;
    Ok(())
}
