//! The failure path: put every group back where the pre-restore snapshot found it, verify
//! that, delete the topics this restore created when the request asked, and say in one cause
//! what failed and what was undone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::{CommittedOffset, TopicPartition};

use super::Failure;
use super::offsets::{PreRestoreOffsets, pre_restore_key, target_partitions, verify};
use super::topics::created_topics;
use crate::backup::Backup;
use crate::error::{RestoreError, Result};
use crate::plan::RestorePlan;
use crate::target::Cluster;

/// The Fail state's error and cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    pub error: String,
    pub cause: String,
    pub groups_restored: Vec<String>,
    pub groups_deleted: Vec<String>,
    pub topics_deleted: Vec<String>,
}

/// Whether the restore may have changed the target: the offsets snapshot (taken right
/// before the first change) or a created topic exists.
pub async fn has_changes(backup: &Backup, plan: &RestorePlan) -> Result<bool> {
    let snapshot = backup.objects.get(&pre_restore_key(backup, plan)?).await?;
    let created = created_topics(backup, plan).await?;
    Ok(snapshot.is_some() || !created.is_empty())
}

/// `changed`: the plan and the target cluster, when [`has_changes`] says there is
/// something to undo.
pub async fn rollback(
    backup: &Backup,
    changed: Option<(&RestorePlan, &dyn Cluster)>,
    failed_step: &str,
    failure: &Failure,
) -> Result<RollbackOutcome> {
    let reason = describe_failure(failure);
    let mut outcome = RollbackOutcome {
        error: "Tidemark.RestoreFailed".into(),
        cause: String::new(),
        groups_restored: Vec::new(),
        groups_deleted: Vec::new(),
        topics_deleted: Vec::new(),
    };
    let mut undone = Vec::new();
    if let Some((plan, cluster)) = changed {
        let key = pre_restore_key(backup, plan)?;
        if let Some(pre) = backup.get_json::<PreRestoreOffsets>(&key).await? {
            restore_groups(cluster, plan, &pre, &mut outcome).await?;
            if !outcome.groups_restored.is_empty() {
                undone.push(format!(
                    "groups {:?} are back at their pre-restore offsets (verified)",
                    outcome.groups_restored
                ));
            }
            if !outcome.groups_deleted.is_empty() {
                undone.push(format!(
                    "groups {:?}, which did not exist before, were deleted",
                    outcome.groups_deleted
                ));
            }
        }
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

async fn restore_groups(
    cluster: &dyn Cluster,
    plan: &RestorePlan,
    pre: &PreRestoreOffsets,
    outcome: &mut RollbackOutcome,
) -> Result<()> {
    let partitions = target_partitions(plan);
    let names: Vec<String> = pre.groups.iter().map(|group| group.group.clone()).collect();
    crate::plan::check_groups_inactive(cluster, &names)
        .await
        .map_err(|error| RestoreError::OffsetReset(format!("cannot roll back: {error}")))?;
    for group in &pre.groups {
        if !group.existed {
            // Committing created the group: deleting it removes every offset the restore set.
            cluster.delete_group(&group.group).await?;
            let left = cluster.committed_offsets(&group.group, &partitions).await?;
            if !left.is_empty() {
                return Err(RestoreError::OffsetReset(format!(
                    "group {} still has offsets {left:?} after being deleted",
                    group.group
                )));
            }
            outcome.groups_deleted.push(group.group.clone());
            continue;
        }
        let current: BTreeMap<TopicPartition, i64> = cluster
            .committed_offsets(&group.group, &partitions)
            .await?
            .into_iter()
            .map(|offset| {
                (
                    TopicPartition::new(offset.topic, offset.partition),
                    offset.offset,
                )
            })
            .collect();
        let changed: Vec<CommittedOffset> = group
            .offsets
            .iter()
            .filter(|offset| {
                current.get(&TopicPartition::new(offset.topic.clone(), offset.partition))
                    != Some(&offset.offset)
            })
            .cloned()
            .collect();
        cluster.commit_offsets(&group.group, &changed).await?;
        verify(cluster, &group.group, &group.offsets).await?;
        let had_none: Vec<String> = current
            .keys()
            .filter(|partition| {
                !group.offsets.iter().any(|offset| {
                    offset.topic == partition.topic && offset.partition == partition.partition
                })
            })
            .map(|partition| format!("{}/{}", partition.topic, partition.partition))
            .collect();
        if !had_none.is_empty() {
            tracing::warn!(group = %group.group, partitions = ?had_none,
                "the group had no offset on these partitions before; Kafka cannot un-commit one");
        }
        outcome.groups_restored.push(group.group.clone());
    }
    Ok(())
}

/// The failed state's reason in one line: a function error's message, else the raw cause.
fn describe_failure(failure: &Failure) -> String {
    let message = serde_json::from_str::<serde_json::Value>(&failure.cause)
        .ok()
        .and_then(|cause| {
            cause
                .get("errorMessage")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| failure.cause.clone());
    if failure.error.is_empty() {
        message
    } else {
        format!("{} ({})", message, failure.error)
    }
}
