//! The forward path: check every group is empty, record where each stands, move them all
//! (one commit request per group carrying all its partitions, all pipelined), then read every
//! one back (many groups per request).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::{Cluster, CommittedOffset, TopicPartition, active_groups};
use tidemark_core::layout::ResetId;
use tidemark_core::object_store::{get_json, put_json_once};

use crate::error::{ResetError, Result};
use crate::plan::ResetPlan;
use crate::records::{OFFSETS_BEFORE, ResetRecords};
use crate::{committed_by_group, now_ms};

/// Where each group stood right before the first change: what a rollback returns to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetsBefore {
    pub taken_at_ms: i64,
    pub groups: Vec<GroupBefore>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBefore {
    pub group: String,
    /// Whether the cluster knew the group. One it did not know is deleted on rollback.
    pub existed: bool,
    /// Committed offsets on the plan's partitions (partitions without one are left out).
    pub offsets: Vec<CommittedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    pub groups: usize,
    pub partitions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub key: String,
    pub taken_at_ms: i64,
    pub groups: usize,
    pub groups_new: usize,
}

fn counts(plan: &ResetPlan) -> StepCounts {
    StepCounts {
        groups: plan.groups.len(),
        partitions: plan.partition_count(),
    }
}

/// Kafka takes commits from outside a group only while it has no members, and running
/// consumers must not be moved under them: name every active group and where its members
/// run. Changes nothing.
pub async fn check_groups(plan: &ResetPlan, cluster: &dyn Cluster) -> Result<StepCounts> {
    let names: Vec<String> = plan
        .groups
        .iter()
        .map(|group| group.group.clone())
        .collect();
    let active = active_groups(cluster, &names).await?;
    if !active.is_empty() {
        return Err(ResetError::Refused(format!(
            "consumer groups are active; stop their consumers first (nothing was changed): {}",
            active.join("; ")
        )));
    }
    Ok(counts(plan))
}

/// Records every group's offsets on the plan's partitions, once: a retried step keeps the
/// first record, the one taken before any change.
pub async fn snapshot(
    records: &ResetRecords,
    reset_id: &ResetId,
    plan: &ResetPlan,
    cluster: &dyn Cluster,
) -> Result<SnapshotSummary> {
    let key = records.key(reset_id, OFFSETS_BEFORE);
    let before = match get_json::<OffsetsBefore>(records.objects.as_ref(), &key).await? {
        Some(existing) => existing,
        None => {
            let known: Vec<String> = cluster.group_ids().await?;
            let wanted: Vec<(String, Vec<TopicPartition>)> = plan
                .groups
                .iter()
                .map(|group| (group.group.clone(), group.topic_partitions()))
                .collect();
            // Offsets with their commit metadata: a rollback puts both back.
            let mut current = BTreeMap::new();
            for ((group, _), read) in wanted
                .iter()
                .zip(cluster.committed_offsets_of_groups(&wanted).await)
            {
                current.insert(group.clone(), read?);
            }
            let groups = plan
                .groups
                .iter()
                .map(|group| GroupBefore {
                    group: group.group.clone(),
                    existed: known.contains(&group.group),
                    offsets: current.remove(&group.group).unwrap_or_default(),
                })
                .collect();
            let before = OffsetsBefore {
                taken_at_ms: now_ms(),
                groups,
            };
            put_json_once(records.objects.as_ref(), &key, &before).await?
        }
    };
    Ok(SnapshotSummary {
        key,
        taken_at_ms: before.taken_at_ms,
        groups: before.groups.len(),
        groups_new: before.groups.iter().filter(|group| !group.existed).count(),
    })
}

/// Commits every group's new offsets, one request per group carrying all its partitions, all
/// in flight at once. Every group is tried; the error names each group that failed and why.
/// Retryable when every failure was.
pub async fn apply(plan: &ResetPlan, cluster: &dyn Cluster) -> Result<StepCounts> {
    let results: Vec<tidemark_core::Result<()>> =
        cluster.commit_offsets_of_groups(&plan.commits()).await;
    let results = plan
        .groups
        .iter()
        .zip(results)
        .map(|(group, result)| result.map_err(|error| (group.group.as_str(), error)));
    let failures: Vec<(&str, tidemark_core::Error)> =
        results.filter_map(|result| result.err()).collect();
    if failures.is_empty() {
        tracing::info!(groups = plan.groups.len(), "offsets applied");
        return Ok(counts(plan));
    }
    let retryable = failures.iter().all(|(_, error)| error.is_retryable());
    let committed = plan.groups.len() - failures.len();
    let named: Vec<String> = failures
        .iter()
        .map(|(group, error)| format!("group {group}: {error}"))
        .collect();
    Err(ResetError::ApplyFailed {
        message: format!(
            "{} of {} groups failed ({committed} committed): {}",
            failures.len(),
            plan.groups.len(),
            named.join("; ")
        ),
        retryable,
    })
}

/// Reads every group back: each planned partition must hold its new offset.
pub async fn verify(plan: &ResetPlan, cluster: &dyn Cluster) -> Result<StepCounts> {
    let wanted: Vec<(String, Vec<TopicPartition>)> = plan
        .groups
        .iter()
        .map(|group| (group.group.clone(), group.topic_partitions()))
        .collect();
    let found = committed_by_group(cluster, &wanted).await?;
    let wrong: Vec<String> = plan
        .groups
        .iter()
        .filter_map(|group| {
            let expected: Vec<(TopicPartition, Option<i64>)> = group
                .partitions
                .iter()
                .map(|moved| {
                    (
                        TopicPartition::new(moved.topic.clone(), moved.partition),
                        Some(moved.new),
                    )
                })
                .collect();
            describe_mismatches(&group.group, &expected, &found[&group.group])
        })
        .collect();
    if wrong.is_empty() {
        Ok(counts(plan))
    } else {
        Err(ResetError::VerifyFailed(wrong.join("; ")))
    }
}

/// `None` when every partition reads as expected (`None` expected: no offset at all).
pub(crate) fn describe_mismatches(
    group: &str,
    expected: &[(TopicPartition, Option<i64>)],
    found: &BTreeMap<TopicPartition, i64>,
) -> Option<String> {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(tp, offset)| found.get(tp).copied() != *offset)
        .map(|(tp, offset)| {
            let show = |offset: Option<i64>| offset.map_or("none".to_owned(), |o| o.to_string());
            format!(
                "{}/{} reads {}, expected {}",
                tp.topic,
                tp.partition,
                show(found.get(tp).copied()),
                show(*offset)
            )
        })
        .collect();
    (!wrong.is_empty()).then(|| format!("group {group}: {}", wrong.join(", ")))
}
