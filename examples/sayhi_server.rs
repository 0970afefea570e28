//! The server of rpcudp's README: `rpc_sayhi(sender, name)` answers
//! `"Hello <name> you live at <ip>:<port>"`.
//!
//! Run: `cargo run -p rpcudp-examples --example sayhi_server -- 127.0.0.1:1234`
//! then the client (`--example sayhi_client`), or the Python client of the README.

use rpcudp::rpc::Endpoint;
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".into())
        .parse()?;
    let server = Endpoint::bind(addr).await?;
    // Any method registered here is callable by clients, as `rpc_*` methods in Python.
    server.register_typed("sayhi", |sender: SocketAddr, name: String| async move {
        format!("Hello {name} you live at {}:{}", sender.ip(), sender.port())
    });
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
