//! ltprotocol's example client, ported: connects (and reconnects, with backoff) to the
//! server and prints every message it receives. On each connection it also says hello,
//! so the server has something to print.
//!
//! Run: `cargo run -p rpcudp-examples --example lt_client -- 127.0.0.1:9999 [COUNT]`
//! (with COUNT it exits after that many messages).

mod lt_messages;

use lt_messages::TestProtocol;
use rpcudp::lt::{Client, ClientConfig, ClientEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9999".into());
    let count: Option<usize> = args.next().map(|c| c.parse()).transpose()?;
    let mut client = Client::<TestProtocol>::connect(addr.parse()?, ClientConfig::default());
    let mut got = 0;
    while count.is_none_or(|c| got < c) {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            e = client.next_event() => e,
        };
        match event {
            Some(ClientEvent::Connected { peer }) => {
                println!("connected to {peer}");
                client.send(&TestProtocol::text("hello from the client"))?;
            }
            Some(ClientEvent::Message(msg)) => {
                println!("client got: {msg}");
                got += 1;
            }
            Some(ClientEvent::Disconnected { reason, retry_in }) => {
                println!("disconnected ({reason:?}); retrying in {retry_in:?}")
            }
            Some(ClientEvent::ConnectFailed { error, retry_in }) => {
                println!("cannot connect ({error}); retrying in {retry_in:?}")
            }
            None => break,
        }
    }
    client.close().await;
    Ok(())
}
