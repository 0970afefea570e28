//! `rpcudp`: the command line of rpcudp-rs. The contract is `docs/cli.md`.
//!
//! This file only parses arguments and dispatches to `cmd/<name>.rs`.

mod cmd;
mod common;
mod json_value;
mod metrics_http;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Structured messages over UDP: RPC, length-type framing, multicast.
#[derive(Parser, Debug)]
#[command(name = "rpcudp", version, about)]
struct Cli {
    /// Raise the log level (-v info, -vv debug, -vvv trace). RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// How log lines on stderr look: `text` for people, `json` (one object a line) for
    /// log collectors.
    #[arg(long, value_enum, default_value_t = common::LogFormat::Text, global = true)]
    log_format: common::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the reference RPC service over UDP.
    Serve(cmd::serve::Args),
    /// Call a method on an RPC server and print the result as JSON.
    Call(cmd::call::Args),
    /// Load an RPC server and report throughput and latency.
    Bench(cmd::bench::Args),
    /// Length-type framed messages.
    #[command(subcommand)]
    Lt(cmd::lt::Command),
    /// Multicast listener and pinger (Twisted's ping-pong example).
    #[command(subcommand)]
    Mcast(cmd::mcast::Command),
    /// A Kademlia DHT node, and one-shot set/get (interoperates with Python kademlia).
    #[command(subcommand)]
    Dht(cmd::dht::Command),
    /// Run every capability on loopback and narrate each step.
    Demo(cmd::demo::Args),
    /// Echo every UDP datagram back to its sender, without RPC: `bench --raw`'s server.
    RawEcho(cmd::raw_echo::Args),
    /// Run a protocol on the simulated network, in virtual time (no sockets).
    #[command(subcommand)]
    Sim(cmd::sim::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(cmd::call::protect_negative_numbers(std::env::args_os()));
    common::init_logging(cli.verbose, cli.log_format);
    let mut builder = match &cli.command {
        Command::Serve(_) => cmd::serve::runtime(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(common::EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Call(args) => cmd::call::run(args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
            Command::Lt(command) => cmd::lt::run(command).await,
            Command::Mcast(command) => cmd::mcast::run(command).await,
            Command::Dht(command) => cmd::dht::run(command).await,
            Command::Demo(args) => cmd::demo::run(args).await,
            Command::RawEcho(args) => cmd::raw_echo::run(args).await,
            Command::Sim(command) => cmd::sim::run(command).await,
        }
    });
    ExitCode::from(code)
}
