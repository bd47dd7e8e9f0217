//! The failure path: delete the topics this restore created when the request asked, and say
//! in one cause what failed and what was undone. Consumer groups are not touched here: the
//! offset reset rolls its own changes back (its state machine on its own failure, its
//! rollback step when the restore fails after it).

use serde::{Deserialize, Serialize};

use super::Failure;
use super::topics::created_topics;
use crate::backup::Backup;
use crate::error::Result;
use crate::plan::RestorePlan;
use crate::target::Cluster;

/// The Fail state's error and cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    pub error: String,
    pub cause: String,
    pub topics_deleted: Vec<String>,
}

/// Whether the restore created topics that a rollback may delete.
pub async fn has_changes(backup: &Backup, plan: &RestorePlan) -> Result<bool> {
    Ok(!created_topics(backup, plan).await?.is_empty())
}

/// `changed`: the plan and the target cluster, when [`has_changes`] says there is
/// something to undo. `offsets_undone`: what the offset reset's rollback reported, when the
/// restore failed after the groups were moved.
pub async fn rollback(
    backup: &Backup,
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
