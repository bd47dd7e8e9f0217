//! Plan: which groups move, and per partition from where to where. Reads the cluster (and the
//! backup, for the `snapshot` strategy); writes nothing to the cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::{Cluster, ClusterReader, CommittedOffset, TopicPartition};
use tidemark_core::offset_map::RestoreOffsetMapping;
use tidemark_core::snapshot::{ClusterSnapshot, load_at_or_before};

use crate::committed_by_group;
use crate::error::{ResetError, Result};
use crate::records::ResetRecords;
use crate::request::{ExplicitOffset, ValidRequest, ValidStrategy};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPlan {
    pub reset_id: String,
    pub planned_at_ms: i64,
    pub strategy: String,
    pub dry_run: bool,
    /// The request this plan answers: a retried plan step must be the same reset.
    pub request: serde_json::Value,
    pub groups: Vec<GroupMove>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMove {
    pub group: String,
    /// Whether the cluster knew the group when planned.
    pub existed: bool,
    pub partitions: Vec<PartitionMove>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMove {
    pub topic: String,
    pub partition: i32,
    /// The committed offset when planned; `None`: the group had none on this partition.
    pub current: Option<i64>,
    pub new: i64,
}

impl GroupMove {
    pub fn topic_partitions(&self) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .map(|moved| TopicPartition::new(moved.topic.clone(), moved.partition))
            .collect()
    }
}

impl ResetPlan {
    /// Every group's new offsets, as the apply step commits them.
    pub fn commits(&self) -> Vec<(String, Vec<CommittedOffset>)> {
        self.groups
            .iter()
            .map(|group| {
                let offsets = group
                    .partitions
                    .iter()
                    .map(|moved| CommittedOffset {
                        topic: moved.topic.clone(),
                        partition: moved.partition,
                        offset: moved.new,
                        metadata: String::new(),
                    })
                    .collect();
                (group.group.clone(), offsets)
            })
            .collect()
    }

    /// The planned partitions of `group` (none for a group the plan does not move).
    pub fn partitions_of(&self, group: &str) -> Vec<TopicPartition> {
        self.groups
            .iter()
            .find(|planned| planned.group == group)
            .map(GroupMove::topic_partitions)
            .unwrap_or_default()
    }

    pub fn partition_count(&self) -> usize {
        self.groups.iter().map(|group| group.partitions.len()).sum()
    }
}

/// Plans a reset. Refuses (changing nothing) when a group, topic, partition or offset the
/// request names does not exist as asked.
pub async fn make_plan(
    records: &ResetRecords,
    cluster: &dyn Cluster,
    request: &ValidRequest,
    raw_request: &serde_json::Value,
    reset_id: &str,
    now_ms: i64,
) -> Result<ResetPlan> {
    let mut warnings = Vec::new();
    let known: Vec<String> = cluster.group_ids().await?;
    let snapshot = match &request.strategy {
        ValidStrategy::Snapshot {
            backup_id, at_ms, ..
        } => Some(
            load_at_or_before(
                records.catalog.as_ref(),
                records.objects.as_ref(),
                backup_id,
                *at_ms,
            )
            .await?
            .ok_or_else(|| {
                ResetError::Refused(format!(
                    "backup {backup_id:?} has no cluster snapshot at or before {} ({at_ms} ms)",
                    crate::request::show_time(*at_ms)
                ))
            })?,
        ),
        _ => None,
    };
    let groups = select_groups(request, &known, snapshot.as_ref().map(|(s, _)| s))?;

    let targets: BTreeMap<String, Vec<(TopicPartition, i64)>> = match &request.strategy {
        ValidStrategy::Snapshot {
            restore_id,
            backup_id,
            ..
        } => {
            let (snapshot, key) = snapshot.as_ref().expect("loaded above");
            let mapping = match restore_id {
                Some(restore_id) => {
                    let key = records
                        .layout
                        .restore_offset_mapping_key(backup_id, restore_id);
                    Some(
                        tidemark_core::object_store::get_json::<RestoreOffsetMapping>(records.objects.as_ref(), &key)
                            .await?
                            .ok_or_else(|| {
                                ResetError::Refused(format!(
                                    "restore {restore_id} has no offset mapping at {key}: it has not finished"
                                ))
                            })?,
                    )
                }
                None => None,
            };
            let targets = snapshot_targets(
                snapshot,
                key,
                &groups,
                &request.topics,
                mapping.as_ref(),
                &mut warnings,
            )?;
            if mapping.is_none() {
                check_partitions_exist(cluster, targets.values().flatten().map(|(tp, _)| tp))
                    .await?;
            }
            targets
        }
        ValidStrategy::Explicit { offsets } => explicit_targets(cluster, &groups, offsets).await?,
        strategy => {
            let partitions = topic_partitions(cluster, &request.topics).await?;
            let offsets = match strategy {
                ValidStrategy::Timestamp { at_ms } => {
                    cluster.offsets_for_time(&partitions, *at_ms).await?
                }
                ValidStrategy::Earliest => low_or_high(cluster, &partitions, true).await?,
                _ => low_or_high(cluster, &partitions, false).await?,
            };
            let moves: Vec<(TopicPartition, i64)> = partitions.into_iter().zip(offsets).collect();
            groups
                .iter()
                .map(|group| (group.clone(), moves.clone()))
                .collect()
        }
    };

    let wanted: Vec<(String, Vec<TopicPartition>)> = targets
        .iter()
        .map(|(group, moves)| {
            (
                group.clone(),
                moves.iter().map(|(tp, _)| tp.clone()).collect(),
            )
        })
        .collect();
    let current = committed_by_group(cluster, &wanted).await?;
    let mut planned = Vec::new();
    for (group, moves) in targets {
        if moves.is_empty() {
            warnings.push(format!(
                "group {group}: nothing to move on the selected topics"
            ));
            continue;
        }
        let now = &current[&group];
        planned.push(GroupMove {
            existed: known.contains(&group),
            partitions: moves
                .into_iter()
                .map(|(tp, new)| PartitionMove {
                    current: now.get(&tp).copied(),
                    topic: tp.topic,
                    partition: tp.partition,
                    new,
                })
                .collect(),
            group,
        });
    }
    if planned.is_empty() {
        return Err(ResetError::Refused(format!(
            "no group has offsets to move: {}",
            warnings.join("; ")
        )));
    }
    Ok(ResetPlan {
        reset_id: reset_id.to_owned(),
        planned_at_ms: now_ms,
        strategy: request.strategy.describe(),
        dry_run: request.dry_run,
        request: raw_request.clone(),
        groups: planned,
        warnings,
    })
}

/// Names as given, plus every group the cluster (or the snapshot) knows that a pattern
/// matches. Explicit offsets select their own groups among those.
fn select_groups(
    request: &ValidRequest,
    known: &[String],
    snapshot: Option<&ClusterSnapshot>,
) -> Result<Vec<String>> {
    let mut selected: BTreeSet<String> = request.names.iter().cloned().collect();
    let in_snapshot = snapshot
        .into_iter()
        .flat_map(|snapshot| snapshot.groups.iter().map(|group| &group.group.group_id));
    for group in known.iter().chain(in_snapshot) {
        if request
            .patterns
            .iter()
            .any(|pattern| pattern.is_match(group))
        {
            selected.insert(group.clone());
        }
    }
    if selected.is_empty() {
        return Err(ResetError::Refused(
            "no consumer group matches groups.patterns on the cluster".into(),
        ));
    }
    Ok(selected.into_iter().collect())
}

fn snapshot_targets(
    snapshot: &ClusterSnapshot,
    key: &str,
    groups: &[String],
    topics: &[String],
    mapping: Option<&RestoreOffsetMapping>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, Vec<(TopicPartition, i64)>>> {
    let mut targets = BTreeMap::new();
    for group in groups {
        let found = snapshot.group(group).ok_or_else(|| {
            ResetError::Refused(format!("group {group:?} is not in snapshot {key}"))
        })?;
        if let Some(error) = &found.error {
            return Err(ResetError::Refused(format!(
                "group {group:?}'s offsets were unreadable when snapshot {key} was taken ({error}); \
                 where it stood is unknown"
            )));
        }
        let mut moves = Vec::new();
        for committed in &found.offsets {
            if !topics.is_empty() && !topics.contains(&committed.topic) {
                continue;
            }
            match mapping {
                None => moves.push((
                    TopicPartition::new(committed.topic.clone(), committed.partition),
                    committed.offset,
                )),
                Some(mapping) => {
                    match mapping.translate(&committed.topic, committed.partition, committed.offset)
                    {
                        Some((target_topic, offset)) => moves.push((
                            TopicPartition::new(target_topic, committed.partition),
                            offset,
                        )),
                        None => warnings.push(format!(
                            "group {group}: {}/{} was not restored; its offset is left as it is",
                            committed.topic, committed.partition
                        )),
                    }
                }
            }
        }
        targets.insert(group.clone(), moves);
    }
    Ok(targets)
}

async fn explicit_targets(
    cluster: &dyn Cluster,
    groups: &[String],
    offsets: &[ExplicitOffset],
) -> Result<BTreeMap<String, Vec<(TopicPartition, i64)>>> {
    let unselected: BTreeSet<&str> = offsets
        .iter()
        .map(|offset| offset.group.as_str())
        .filter(|group| !groups.iter().any(|selected| selected == group))
        .collect();
    if !unselected.is_empty() {
        return Err(ResetError::Refused(format!(
            "strategy.offsets name groups that groups does not select: {unselected:?}"
        )));
    }
    let partitions: Vec<TopicPartition> = offsets
        .iter()
        .map(|offset| TopicPartition::new(offset.topic.clone(), offset.partition))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    check_partitions_exist(cluster, partitions.iter()).await?;
    let watermarks: BTreeMap<&TopicPartition, _> = partitions
        .iter()
        .zip(cluster.watermarks(&partitions).await?)
        .collect();
    let mut outside = Vec::new();
    let mut targets: BTreeMap<String, Vec<(TopicPartition, i64)>> = groups
        .iter()
        .map(|group| (group.clone(), Vec::new()))
        .collect();
    for offset in offsets {
        let tp = TopicPartition::new(offset.topic.clone(), offset.partition);
        let range = watermarks[&tp];
        if offset.offset < range.low || offset.offset > range.high {
            outside.push(format!(
                "{}/{} offset {} for group {} (the log holds {}..{})",
                offset.topic, offset.partition, offset.offset, offset.group, range.low, range.high
            ));
        }
        targets
            .get_mut(&offset.group)
            .expect("checked above")
            .push((tp, offset.offset));
    }
    if !outside.is_empty() {
        return Err(ResetError::Refused(format!(
            "offsets outside the log: {}",
            outside.join("; ")
        )));
    }
    Ok(targets)
}

/// Every partition of `topics`, which must exist.
async fn topic_partitions(
    cluster: &dyn ClusterReader,
    topics: &[String],
) -> Result<Vec<TopicPartition>> {
    let existing = partition_counts(cluster).await?;
    let missing: Vec<&String> = topics
        .iter()
        .filter(|topic| !existing.contains_key(*topic))
        .collect();
    if !missing.is_empty() {
        return Err(ResetError::Refused(format!(
            "topics {missing:?} do not exist on the cluster"
        )));
    }
    Ok(topics
        .iter()
        .flat_map(|topic| {
            (0..existing[topic]).map(move |partition| TopicPartition::new(topic.clone(), partition))
        })
        .collect())
}

async fn check_partitions_exist<'a>(
    cluster: &dyn ClusterReader,
    partitions: impl Iterator<Item = &'a TopicPartition>,
) -> Result<()> {
    let existing = partition_counts(cluster).await?;
    let missing: BTreeSet<String> = partitions
        .filter(|tp| {
            existing
                .get(&tp.topic)
                .is_none_or(|&count| tp.partition >= count)
        })
        .map(|tp| format!("{}/{}", tp.topic, tp.partition))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ResetError::Refused(format!(
            "partitions {missing:?} do not exist on the cluster"
        )))
    }
}

/// Every topic of the cluster and its partition count.
async fn partition_counts(cluster: &dyn ClusterReader) -> Result<BTreeMap<String, i32>> {
    Ok(cluster
        .topics()
        .await?
        .into_iter()
        .map(|topic| (topic.name, topic.partition_count))
        .collect())
}

async fn low_or_high(
    cluster: &dyn ClusterReader,
    partitions: &[TopicPartition],
    low: bool,
) -> Result<Vec<i64>> {
    Ok(cluster
        .watermarks(partitions)
        .await?
        .into_iter()
        .map(|watermarks| if low { watermarks.low } else { watermarks.high })
        .collect())
}
