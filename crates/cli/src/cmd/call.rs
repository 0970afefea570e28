//! `rpcudp call` (shared/spec/cli.md).

use crate::common;

/// Arguments of `rpcudp call`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `rpcudp call`.
pub async fn run(_args: Args) -> u8 {
    eprintln!("error: rpcudp call is not implemented yet");
    common::EXIT_FAILURE
}
