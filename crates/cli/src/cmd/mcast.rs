//! `rpcudp mcast ...` (shared/spec/cli.md).

use crate::common;

/// Subcommands of `rpcudp mcast`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {}

/// Runs an `rpcudp mcast` subcommand.
pub async fn run(command: Command) -> u8 {
    let _ = common::EXIT_FAILURE;
    match command {}
}
