//! `rpcudp demo`: every capability on loopback, narrated step by step.
//!
//! Each capability owns one step in `demo/<name>.rs`; this file only runs them in order
//! and reports. A step prints what it does (stdout) and returns `Err` with a reason if it
//! failed, or `Ok(StepOutcome::Skipped(reason))` if the host cannot run it.

mod lt;
mod rpc;
mod udp;

use crate::common;

/// Arguments of `rpcudp demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// How a demo step ended.
pub enum StepOutcome {
    /// The step ran and showed what it meant to.
    Done,
    /// The host cannot run this step; the reason is printed.
    Skipped(String),
}

type StepResult = Result<StepOutcome, String>;
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
    ];
    let total = steps.len();
    let mut failed = 0;
    for (i, (name, step)) in steps.into_iter().enumerate() {
        println!("\n[{}/{}] {name}", i + 1, total);
        match step.await {
            Ok(StepOutcome::Done) => println!("    ok"),
            Ok(StepOutcome::Skipped(why)) => println!("    skipped: {why}"),
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
