//! `rpcudp bench` in RPC mode (not wired to the RPC core yet).

use super::report::Recorder;
use super::Plan;
use std::io;
use std::time::Instant;

/// The call every slot makes.
pub struct Calls {
    method: String,
}

impl Calls {
    /// From the command line's `--method`, `--args` and `--dialect`.
    pub fn from_cli(method: &str, _args: &str, _dialect: &str) -> Result<Calls, String> {
        Ok(Calls {
            method: method.to_string(),
        })
    }

    /// What the report calls this load.
    pub fn label(&self) -> String {
        self.method.clone()
    }
}

/// Runs the RPC load.
pub async fn run(_plan: &Plan, _calls: Calls, _rec: &mut Recorder) -> io::Result<Instant> {
    Err(io::Error::other(
        "the RPC mode needs the RPC core (not merged yet); use --raw",
    ))
}
