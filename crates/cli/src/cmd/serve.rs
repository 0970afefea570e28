//! `rpcudp serve` (shared/spec/cli.md).

use crate::common;

/// Arguments of `rpcudp serve`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `rpcudp serve`.
pub async fn run(_args: Args) -> u8 {
    eprintln!("error: rpcudp serve is not implemented yet");
    common::EXIT_FAILURE
}
