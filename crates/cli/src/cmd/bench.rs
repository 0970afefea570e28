//! `rpcudp bench` (shared/spec/cli.md).

use crate::common;

/// Arguments of `rpcudp bench`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `rpcudp bench`.
pub async fn run(_args: Args) -> u8 {
    eprintln!("error: rpcudp bench is not implemented yet");
    common::EXIT_FAILURE
}
