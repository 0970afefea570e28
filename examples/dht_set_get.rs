//! Python `kademlia`'s README, ported: one node listens, a second bootstraps through it,
//! stores "my-key" and reads it back. With an address it joins that network instead
//! (a Python `kademlia` node works too): the value is stored on the nodes nearest the key.
//!
//! Run: `cargo run -p rpcudp-examples --example dht_set_get [-- BOOTSTRAP_IP:PORT]`

use rpcudp::kad::{Dht, DhtConfig};
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bootstrap: Option<SocketAddr> = std::env::args().nth(1).map(|a| a.parse()).transpose()?;
    // Without an address to join, start the first node of a network of our own.
    let first = match bootstrap {
        Some(_) => None,
        None => Some(Dht::start("127.0.0.1:0".parse()?, DhtConfig::default()).await?),
    };
    let through = bootstrap.unwrap_or_else(|| first.as_ref().map(Dht::local_addr).unwrap());

    let node = Dht::start("127.0.0.1:0".parse()?, DhtConfig::default()).await?;
    let answered = node.bootstrap(&[through]).await;
    anyhow::ensure!(answered > 0, "no DHT node answered at {through}");
    let stored_on = node.set("my-key", "my awesome value".into()).await?;
    println!("stored on {stored_on} nodes");
    let result = node.get("my-key").await?;
    println!(
        "Get result: {}",
        result.map_or("none".into(), |v| rpcudp::display(&v).to_string())
    );

    node.shutdown().await;
    if let Some(first) = first {
        first.shutdown().await;
    }
    Ok(())
}
