//! The client of rpcudp's README: calls `sayhi` on the server and reports the result, or
//! that no response was received (the Python peer's `(False, None)`).
//!
//! Run: `cargo run -p rpcudp-examples --example sayhi_client -- 127.0.0.1:1234 "Snake Plissken"`

use rpcudp::rpc::{CallError, Endpoint};
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:1234".into())
        .parse()?;
    let name = args.next().unwrap_or_else(|| "Snake Plissken".into());
    // The client needs a port too, to receive the answer on; 0 lets the OS pick one.
    let client = Endpoint::bind("127.0.0.1:0".parse()?).await?;
    let result: Result<String, CallError> = client.call_typed(server, "sayhi", (name,)).await;
    match result {
        Ok(greeting) => println!("Success! {greeting}"),
        Err(CallError::Timeout(_)) => println!("Response not received."),
        Err(e) => println!("Call failed: {e}"),
    }
    client.shutdown().await;
    Ok(())
}
