//! The lt step of `rpcudp demo`.

use super::{StepOutcome, StepResult};

/// Runs the lt step.
pub async fn step() -> StepResult {
    Ok(StepOutcome::Skipped("not built yet".into()))
}
