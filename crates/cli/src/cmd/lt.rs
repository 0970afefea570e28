//! `rpcudp lt ...` (shared/spec/cli.md).

use crate::common;

/// Subcommands of `rpcudp lt`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {}

/// Runs an `rpcudp lt` subcommand.
pub async fn run(command: Command) -> u8 {
    let _ = common::EXIT_FAILURE;
    match command {}
}
