//! The failure path: put every group back where `offsets-before.json` found it, read them all
//! back, and say in one cause what failed, why, and what was undone.

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::{Cluster, CommittedOffset, OffsetRemoval, TopicPartition};
use tidemark_core::layout::ResetId;

use crate::apply::{OffsetsBefore, describe_mismatches};
use crate::error::{ResetError, Result};
use crate::plan::ResetPlan;
use crate::records::{OFFSETS_BEFORE, ResetRecords};
use crate::{committed_by_group, run_bounded};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    /// False when no change had been made (no snapshot was taken).
    pub changes_found: bool,
    /// Groups whose offsets were committed back.
    pub groups_restored: Vec<String>,
    /// Groups the reset created, deleted again.
    pub groups_deleted: Vec<String>,
    /// Partitions a group had no offset on before: their new offsets deleted (OffsetDelete).
    #[serde(default)]
    pub offsets_deleted: Vec<String>,
    /// The same, on a broker without OffsetDelete: offset -1 committed, which reads as "no
    /// offset" everywhere except a listing of all the group's offsets.
    #[serde(default)]
    pub offsets_committed_as_none: Vec<String>,
}

/// What the Fail state shows, and what a restore that called this reset quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    pub error: String,
    pub cause: String,
    /// The rollback in one sentence.
    pub undone: String,
}

pub use tidemark_core::request::Failure;

/// What the rollback did to one group.
enum Undone {
    /// Committed back where it had changed; offsets on partitions it had none on taken away.
    Restored {
        removed: Vec<String>,
        how: Option<OffsetRemoval>,
    },
    /// The reset created it; deleted.
    Deleted,
}

async fn offsets_before(
    records: &ResetRecords,
    reset_id: &ResetId,
) -> Result<Option<OffsetsBefore>> {
    let key = records.key(reset_id, OFFSETS_BEFORE);
    Ok(tidemark_core::object_store::get_json(records.objects.as_ref(), &key).await?)
}

/// Commits each changed group back to its recorded offsets (only partitions that differ) and
/// deletes groups the reset created. Every group is tried; idempotent.
pub async fn rollback(
    records: &ResetRecords,
    reset_id: &ResetId,
    plan: &ResetPlan,
    cluster: &dyn Cluster,
) -> Result<RollbackOutcome> {
    let Some(before) = offsets_before(records, reset_id).await? else {
        return Ok(RollbackOutcome::default());
    };
    let results = run_bounded(
        before.groups.iter().collect(),
        records.concurrency,
        |group| {
            let partitions = plan.partitions_of(&group.group);
            async move {
                let undo = async {
                    if !group.existed {
                        cluster.delete_group(&group.group).await?;
                        return Ok(Undone::Deleted);
                    }
                    let current = cluster.committed_offsets(&group.group, &partitions).await?;
                    let changed: Vec<CommittedOffset> = group
                        .offsets
                        .iter()
                        .filter(|offset| {
                            !current.iter().any(|now| {
                                now.topic == offset.topic
                                    && now.partition == offset.partition
                                    && now.offset == offset.offset
                            })
                        })
                        .cloned()
                        .collect();
                    if !changed.is_empty() {
                        cluster.commit_offsets(&group.group, &changed).await?;
                    }
                    // Invariant 8: a partition the group had no offset on goes back to none.
                    let had_none: Vec<TopicPartition> = current
                        .iter()
                        .filter(|now| {
                            !group.offsets.iter().any(|offset| {
                                offset.topic == now.topic && offset.partition == now.partition
                            })
                        })
                        .map(|now| TopicPartition::new(now.topic.clone(), now.partition))
                        .collect();
                    let how = if had_none.is_empty() {
                        None
                    } else {
                        Some(cluster.delete_offsets(&group.group, &had_none).await?)
                    };
                    let removed = had_none
                        .iter()
                        .map(|tp| format!("{} {}/{}", group.group, tp.topic, tp.partition))
                        .collect();
                    Ok::<_, tidemark_core::Error>(Undone::Restored { removed, how })
                };
                (group.group.as_str(), undo.await)
            }
        },
    )
    .await;
    let mut outcome = RollbackOutcome {
        changes_found: true,
        ..RollbackOutcome::default()
    };
    let mut failures = Vec::new();
    for (group, result) in results {
        match result {
            Ok(Undone::Restored { removed, how }) => {
                outcome.groups_restored.push(group.to_owned());
                match how {
                    Some(OffsetRemoval::Deleted) => outcome.offsets_deleted.extend(removed),
                    Some(OffsetRemoval::CommittedAsNone) => {
                        outcome.offsets_committed_as_none.extend(removed);
                    }
                    None => {}
                }
            }
            Ok(Undone::Deleted) => outcome.groups_deleted.push(group.to_owned()),
            Err(error) => failures.push((group, error)),
        }
    }
    if failures.is_empty() {
        if !outcome.offsets_committed_as_none.is_empty() {
            tracing::warn!(partitions = ?outcome.offsets_committed_as_none,
                "the broker has no OffsetDelete: offset -1 committed where these groups had none");
        }
        return Ok(outcome);
    }
    let retryable = failures.iter().all(|(_, error)| error.is_retryable());
    let named: Vec<String> = failures
        .iter()
        .map(|(group, error)| format!("group {group}: {error}"))
        .collect();
    Err(ResetError::RollbackFailed {
        message: named.join("; "),
        retryable,
    })
}

/// Reads every group back against `offsets-before.json` and writes the cause the Fail state
/// shows: the failed step, its reason (naming the groups) and what the rollback undid.
pub async fn verify_rollback(
    records: &ResetRecords,
    reset_id: &ResetId,
    plan: &ResetPlan,
    cluster: &dyn Cluster,
    failed_step: &str,
    failure: &Failure,
    rolled_back: &RollbackOutcome,
) -> Result<FailureReport> {
    let reason = failure.describe();
    let undone = match offsets_before(records, reset_id).await? {
        None => "nothing needed undoing (no group had been changed)".to_owned(),
        Some(before) => {
            let wanted: Vec<(String, Vec<TopicPartition>)> = before
                .groups
                .iter()
                .map(|group| (group.group.clone(), plan.partitions_of(&group.group)))
                .collect();
            let found = committed_by_group(cluster, &wanted).await?;
            let wrong: Vec<String> = before
                .groups
                .iter()
                .zip(&wanted)
                .filter_map(|(group, (_, partitions))| {
                    // Every planned partition reads as before: its old offset, or none.
                    let expected: Vec<(TopicPartition, Option<i64>)> = if group.existed {
                        partitions
                            .iter()
                            .map(|tp| {
                                let before = group.offsets.iter().find(|offset| {
                                    offset.topic == tp.topic && offset.partition == tp.partition
                                });
                                (tp.clone(), before.map(|offset| offset.offset))
                            })
                            .collect()
                    } else {
                        partitions.iter().map(|tp| (tp.clone(), None)).collect()
                    };
                    describe_mismatches(&group.group, &expected, &found[&group.group])
                })
                .collect();
            if !wrong.is_empty() {
                return Err(ResetError::RollbackFailed {
                    message: format!(
                        "after rolling back, groups are not where they were: {}",
                        wrong.join("; ")
                    ),
                    retryable: false,
                });
            }
            let existed = before.groups.iter().filter(|group| group.existed).count();
            let mut undone = vec![format!(
                "the {existed} groups that existed are back at their offsets from before the reset (verified)"
            )];
            let deleted: Vec<&str> = before
                .groups
                .iter()
                .filter(|group| !group.existed)
                .map(|group| group.group.as_str())
                .collect();
            if !deleted.is_empty() {
                undone.push(format!(
                    "groups {deleted:?}, which did not exist before, were deleted (verified)"
                ));
            }
            if !rolled_back.offsets_deleted.is_empty() {
                undone.push(format!(
                    "offsets committed where groups had none before were deleted (verified): {:?}",
                    rolled_back.offsets_deleted
                ));
            }
            if !rolled_back.offsets_committed_as_none.is_empty() {
                undone.push(format!(
                    "the broker has no OffsetDelete, so offset -1 (read as no offset) was committed where groups had none before (verified): {:?}",
                    rolled_back.offsets_committed_as_none
                ));
            }
            undone.join("; ")
        }
    };
    Ok(FailureReport {
        error: "Tidemark.OffsetResetFailed".into(),
        cause: format!("{failed_step} failed: {reason}. Rollback: {undone}."),
        undone,
    })
}
