//! What the validator's and the maintainer's steps share: working through a backup's partitions
//! in name order until the function's deadline draws near, and naming a run.

use std::future::Future;

use serde::Serialize;
use tidemark_core::layout::{PartitionId, RunId};

use crate::error::{MaintenanceError, Result};

/// A step stops starting partitions this long before its deadline (or a quarter of its time,
/// when it has less than four minutes).
const DEADLINE_MARGIN_MS: i64 = 60_000;

/// Where a run stands after a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Where the next step starts.
    pub position: usize,
    pub partitions: usize,
    pub done: bool,
}

/// Calls `work` for each of `partitions` from `start` until the deadline draws near; always for
/// at least one, so every step makes progress.
pub(crate) async fn step_through<F, Fut>(
    partitions: &[PartitionId],
    start: usize,
    deadline_ms: i64,
    mut work: F,
) -> Result<Progress>
where
    F: FnMut(PartitionId) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let margin = DEADLINE_MARGIN_MS.min((deadline_ms - now_ms()) / 4).max(0);
    let mut position = start;
    while position < partitions.len() {
        if position > start && now_ms() + margin > deadline_ms {
            break;
        }
        work(partitions[position].clone()).await?;
        position += 1;
    }
    Ok(Progress {
        position,
        partitions: partitions.len(),
        done: position >= partitions.len(),
    })
}

/// A run id from the state machine (its execution name), refused with a clear error if it is
/// not one.
pub(crate) fn parse_run_id(run_id: &str) -> Result<RunId> {
    RunId::parse(run_id).map_err(|error| MaintenanceError::InvalidRequest(error.to_string()))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
