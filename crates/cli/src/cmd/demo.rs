//! `rpcudp demo`: every capability on loopback, narrated step by step.
//!
//! Each capability owns one step in `demo/<name>.rs`; this file only runs them in order
//! and reports. A step prints what it does (stdout) and returns `Err` with a reason if it
//! failed; a part the host cannot run (multicast without a route, say) is narrated as
//! skipped inside the step, which still succeeds.

mod dht;
mod lt;
mod rpc;
mod udp;

use crate::common;

/// Arguments of `rpcudp demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

type StepResult = Result<(), String>;
type Step = std::pin::Pin<Box<dyn std::future::Future<Output = StepResult>>>;

/// Prints a narration line for the current step.
pub fn say(text: impl std::fmt::Display) {
    println!("    {text}");
}

/// Runs `rpcudp demo`.
pub async fn run(_args: Args) -> u8 {
    println!("rpcudp demo: every capability on loopback, step by step.");
    let steps: Vec<(&str, Step)> = vec![
        ("UDP datagram endpoints", Box::pin(udp::step())),
        ("RPC over UDP", Box::pin(rpc::step())),
        ("Length-type framed messages", Box::pin(lt::step())),
        ("A small local Kademlia DHT", Box::pin(dht::step())),
    ];
    let total = steps.len();
    let mut failed = 0;
    for (i, (name, step)) in steps.into_iter().enumerate() {
        println!("\n[{}/{}] {name}", i + 1, total);
        match step.await {
            Ok(()) => println!("    ok"),
            Err(why) => {
                println!("    FAILED: {why}");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        println!("\ndemo finished: every step ran.");
        common::EXIT_OK
    } else {
        println!("\ndemo finished: {failed} step(s) failed.");
        common::EXIT_FAILURE
    }
}
