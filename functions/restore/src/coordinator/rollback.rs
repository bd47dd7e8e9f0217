//! The failure path: delete the topics this restore created when the request asked, and say
//! in one cause what failed and what was undone. Consumer groups are not touched here: the
//! offset reset rolls its own changes back (its state machine on its own failure, its
//! rollback step when the restore fails after it).

use serde::{Deserialize, Serialize};

use super::Failure;
use super::topics::created_topics;
use crate::error::Result;
use crate::plan::RestorePlan;
use crate::target::Cluster;
use tidemark_core::stores::BackupStores;

/// The Fail state's error and cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    pub error: String,
    pub cause: String,
    pub topics_deleted: Vec<String>,
}

/// The restore's state that runs the offset-reset machine.
const RESET_OFFSETS_STEP: &str = "ResetOffsets";

/// What the failed offset-reset execution did to the groups, from its error, and whether it
/// may have left groups moved.
fn offset_reset_outcome(failure: &Failure) -> (String, bool) {
    let child_error = serde_json::from_str::<serde_json::Value>(&failure.cause)
        .ok()
        .and_then(|cause| {
            ["Error", "error"]
                .iter()
                .find_map(|name| cause.get(*name)?.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| failure.error.clone());
    match child_error.as_str() {
        "Tidemark.RollbackFailed" => (
            "the offset reset's own rollback FAILED, so groups may be left at the restored \
             offsets: read the offset reset's cause and its snapshot, then fix them by hand \
             (docs/offset-reset.md)"
                .to_owned(),
            true,
        ),
        "Tidemark.OffsetResetFailed" => (
            "the offset reset rolled every group back to where it stood and verified it".to_owned(),
            false,
        ),
        _ => (
            "the offset reset failed before it moved any group".to_owned(),
            false,
        ),
    }
}

/// Whether the restore created topics that a rollback may delete.
pub async fn has_changes(backup: &BackupStores, plan: &RestorePlan) -> Result<bool> {
    Ok(!created_topics(backup, plan).await?.is_empty())
}

/// `changed`: the plan and the target cluster, when [`has_changes`] says there is
/// something to undo. `offsets_undone`: what the offset reset's rollback reported, when the
/// restore failed after the groups were moved.
pub async fn rollback(
    backup: &BackupStores,
    changed: Option<(&RestorePlan, &dyn Cluster)>,
    failed_step: &str,
    failure: &Failure,
    offsets_undone: Option<&str>,
) -> Result<RollbackOutcome> {
    let reason = failure.describe();
    let mut outcome = RollbackOutcome {
        error: "Tidemark.RestoreFailed".into(),
        cause: String::new(),
        topics_deleted: Vec::new(),
    };
    let mut undone: Vec<String> = offsets_undone.map(str::to_owned).into_iter().collect();
    if failed_step == RESET_OFFSETS_STEP && offsets_undone.is_none() {
        // The offset-reset machine failed and ran its own rollback: say what it did.
        let (child_outcome, groups_left_moved) = offset_reset_outcome(failure);
        if groups_left_moved {
            outcome.error = "Tidemark.RollbackFailed".into();
        }
        undone.push(child_outcome);
    }
    if let Some((plan, cluster)) = changed {
        let created = created_topics(backup, plan).await?;
        if plan.rollback_deletes_created_topics {
            for topic in &created {
                cluster.delete_topic(topic).await?;
                outcome.topics_deleted.push(topic.clone());
            }
            if !created.is_empty() {
                undone.push(format!("created topics {created:?} were deleted"));
            }
        } else if !created.is_empty() {
            undone.push(format!(
                "created topics {created:?} were kept (set rollback_deletes_created_topics to delete them)"
            ));
        }
    }
    let undone = if undone.is_empty() {
        "nothing needed undoing".to_owned()
    } else {
        undone.join("; ")
    };
    outcome.cause = format!("{failed_step} failed: {reason}. Rollback: {undone}.");
    Ok(outcome)
}
