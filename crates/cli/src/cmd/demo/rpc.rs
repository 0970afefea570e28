//! The rpc step of `rpcudp demo`.

use super::{StepOutcome, StepResult};

/// Runs the rpc step.
pub async fn step() -> StepResult {
    Ok(StepOutcome::Skipped("not built yet".into()))
}
