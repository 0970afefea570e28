//! One module per subcommand; each exposes its clap `Args` (or `Command`) and `run`,
//! which returns the process exit code (see `common::EXIT_*`).

pub mod bench;
pub mod call;
pub mod demo;
pub mod dht;
pub mod lt;
pub mod mcast;
pub mod raw_echo;
pub mod serve;
pub mod sim;
