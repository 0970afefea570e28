//! Twisted's "Echo" example: every datagram is sent back to its sender.
//!
//! Run: `cargo run -p rpcudp-examples --example echo_server -- 127.0.0.1:9999`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let endpoint = rpcudp::udp::Endpoint::bind(addr.parse()?).await?;
    println!("listening on {}", endpoint.local_addr()?);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = endpoint.recv_from(&mut buf).await?;
        println!(
            "received {:?} from {from}",
            String::from_utf8_lossy(&buf[..n])
        );
        endpoint.send_to(&buf[..n], from).await?;
    }
}
