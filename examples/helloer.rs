//! Twisted's connected-UDP "Helloer": connects to one peer, says hello, and is told
//! "connection refused" when nobody listens there.
//!
//! Run: `cargo run -p rpcudp-examples --example helloer -- 127.0.0.1:1234`
//! With nothing on that port it prints "No one listening"; start
//! `--example echo_server -- 127.0.0.1:1234` first to get an answer instead.

use rpcudp::udp::{listen, DatagramHandler, Socket, Transport};
use std::net::SocketAddr;
use std::time::Duration;

struct Helloer {
    peer: SocketAddr,
}

impl DatagramHandler for Helloer {
    async fn start(&mut self, t: &Transport) {
        if let Err(e) = t.connect(self.peer).await {
            eprintln!("cannot connect to {}: {e}", self.peer);
            return t.stop_listening();
        }
        println!("now we can only send to {}", self.peer);
        let _ = t.send(b"hello").await; // no need for an address
    }

    async fn datagram_received(&mut self, data: bytes::Bytes, from: SocketAddr, _: &Transport) {
        println!("received {:?} from {from}", String::from_utf8_lossy(&data));
    }

    // Possibly invoked if there is no server listening on the address we send to.
    async fn connection_refused(&mut self, _: &Transport) {
        println!("No one listening");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let peer = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into())
        .parse()?;
    // Port 0: any port, we don't care in this case.
    let helloer = listen(
        Socket::bind("127.0.0.1:0".parse()?).await?,
        Helloer { peer },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    helloer.stop().await?;
    Ok(())
}
