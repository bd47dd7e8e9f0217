//! Consumer group offsets around a restore: the snapshot of where the groups stood on the
//! target before anything changed, and the reset to where they stood at the cut, translated
//! through each partition's offset map (invariant 7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::{CommittedOffset, TopicPartition};

use crate::backup::Backup;
use crate::error::{RestoreError, Result};
use crate::partition::finished_partitions;
use crate::plan::{RestorePlan, check_groups_inactive};
use crate::target::Cluster;

/// Where each group stood on the target topics just before the restore changed anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreRestoreOffsets {
    pub taken_at_ms: i64,
    pub groups: Vec<GroupOffsets>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsets {
    pub group: String,
    /// Whether the target cluster knew the group at all.
    pub existed: bool,
    pub offsets: Vec<CommittedOffset>,
}

/// One group's move: per partition, where it stood at the cut and where it now resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupReset {
    pub group: String,
    pub partitions: Vec<PartitionReset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReset {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    /// The group's committed offset on the source at the cut.
    pub source_offset: i64,
    /// Its translation: the first restored record at or after it, else the target's end.
    pub target_offset: i64,
}

pub(crate) fn target_partitions(plan: &RestorePlan) -> Vec<TopicPartition> {
    plan.topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|&partition| TopicPartition::new(topic.target.clone(), partition))
        })
        .collect()
}

pub(crate) fn pre_restore_key(backup: &Backup, plan: &RestorePlan) -> Result<String> {
    backup.plan_key(plan, "pre-restore-offsets.json")
}

/// Records where the plan's groups stand on the target, once: a retried step keeps the
/// first snapshot, which is the one taken before any change.
pub async fn snapshot(
    backup: &Backup,
    plan: &RestorePlan,
    cluster: &dyn Cluster,
) -> Result<PreRestoreOffsets> {
    let key = pre_restore_key(backup, plan)?;
    if let Some(existing) = backup.get_json(&key).await? {
        return Ok(existing);
    }
    let names: Vec<String> = plan
        .groups
        .iter()
        .map(|group| group.group.clone())
        .collect();
    check_groups_inactive(cluster, &names).await?;
    let known: Vec<String> = cluster
        .groups()
        .await?
        .into_iter()
        .map(|group| group.group_id)
        .collect();
    let partitions = target_partitions(plan);
    let mut groups = Vec::new();
    for group in &names {
        groups.push(GroupOffsets {
            group: group.clone(),
            existed: known.contains(group),
            offsets: cluster.committed_offsets(group, &partitions).await?,
        });
    }
    let snapshot = PreRestoreOffsets {
        taken_at_ms: super::now_ms(),
        groups,
    };
    backup.put_json_once(&key, &snapshot).await
}

/// Moves every planned group to its translated position at the cut, then reads each back.
/// Stops at the first group that fails; the state machine then rolls every group back.
pub async fn reset(
    backup: &Backup,
    plan: &RestorePlan,
    cluster: &dyn Cluster,
) -> Result<Vec<GroupReset>> {
    let names: Vec<String> = plan
        .groups
        .iter()
        .map(|group| group.group.clone())
        .collect();
    check_groups_inactive(cluster, &names).await?;

    // Each partition's offset map and end, loaded once for all groups.
    let mut progress = BTreeMap::new();
    for (task, finished) in finished_partitions(backup, plan).await? {
        let finished = finished.ok_or_else(|| {
            RestoreError::OffsetReset(format!(
                "{}/{} has not finished restoring; offsets cannot be translated",
                task.source_topic, task.partition
            ))
        })?;
        progress.insert((task.source_topic.clone(), task.partition), finished);
    }

    let mut resets = Vec::new();
    for group in &plan.groups {
        let mut partitions = Vec::new();
        for committed in &group.source_offsets {
            let Some(done) = progress.get(&(committed.topic.clone(), committed.partition)) else {
                tracing::warn!(group = %group.group, topic = %committed.topic, partition = committed.partition,
                    "the backup holds no records of this partition; its offset is left as it is");
                continue;
            };
            partitions.push(PartitionReset {
                source_topic: committed.topic.clone(),
                target_topic: done.target_topic.clone(),
                partition: committed.partition,
                source_offset: committed.offset,
                target_offset: done
                    .offset_map
                    .translate(committed.offset, done.target_end()),
            });
        }
        let offsets: Vec<CommittedOffset> = partitions
            .iter()
            .map(|reset| CommittedOffset {
                topic: reset.target_topic.clone(),
                partition: reset.partition,
                offset: reset.target_offset,
                metadata: String::new(),
            })
            .collect();
        cluster
            .commit_offsets(&group.group, &offsets)
            .await
            .map_err(|error| {
                RestoreError::OffsetReset(format!("group {}: {error}", group.group))
            })?;
        verify(cluster, &group.group, &offsets).await?;
        resets.push(GroupReset {
            group: group.group.clone(),
            partitions,
        });
    }
    Ok(resets)
}

/// Reads the group's offsets back and checks each one is `expected`.
pub(crate) async fn verify(
    cluster: &dyn Cluster,
    group: &str,
    expected: &[CommittedOffset],
) -> Result<()> {
    let partitions: Vec<TopicPartition> = expected
        .iter()
        .map(|offset| TopicPartition::new(offset.topic.clone(), offset.partition))
        .collect();
    let found: BTreeMap<TopicPartition, i64> = cluster
        .committed_offsets(group, &partitions)
        .await?
        .into_iter()
        .map(|offset| {
            (
                TopicPartition::new(offset.topic, offset.partition),
                offset.offset,
            )
        })
        .collect();
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|offset| {
            let partition = TopicPartition::new(offset.topic.clone(), offset.partition);
            let read = found.get(&partition).copied();
            (read != Some(offset.offset)).then(|| {
                format!(
                    "{}/{} reads {:?}, expected {}",
                    offset.topic, offset.partition, read, offset.offset
                )
            })
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::OffsetReset(format!(
            "group {group} did not take its offsets: {}",
            wrong.join(", ")
        )))
    }
}
