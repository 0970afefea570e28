//! Twisted's multicast ping client: sends `Client: Ping` to 228.0.0.5:8005 and prints
//! every answer for two seconds.
//!
//! It sends from an ephemeral port rather than from 8005 as the original does: with
//! several sockets sharing 8005, the kernel would hand each unicast reply to just one of
//! them, maybe a server rather than this client.
//!
//! Run: `cargo run -p rpcudp-examples --example multicast_client`

use rpcudp::udp::Socket;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = Socket::bind("0.0.0.0:0".parse()?).await?;
    endpoint
        .send_to(b"Client: Ping", "228.0.0.5:8005".parse()?)
        .await?;
    let collect = async {
        loop {
            let (data, from) = endpoint.recv_datagram().await?;
            println!(
                "datagram {:?} received from {from}",
                String::from_utf8_lossy(&data)
            );
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(2), collect).await {
        Ok(result) => result,
        Err(_) => Ok(()), // the two seconds are up
    }
}
