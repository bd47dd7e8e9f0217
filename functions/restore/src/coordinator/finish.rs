//! The end of a restore: check the target holds exactly what each partition restore says it
//! produced, then write the report that an operator (or an auditor) reads.

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::TopicPartition;

use crate::error::{RestoreError, Result};
use crate::partition::{PartitionProgress, finished_partitions};
use crate::plan::PartitionTask;
use crate::plan::RestorePlan;
use crate::target::Cluster;
use tidemark_core::stores::BackupStores;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub partitions: usize,
    pub records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOutcome {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub source_first_offset: i64,
    pub source_end_offset: i64,
    pub records: u64,
    pub target_first_offset: i64,
    pub target_end_offset: i64,
    pub offset_runs: usize,
    pub invocations: u32,
    pub recovered_after_interruption: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub report_key: String,
    pub dry_run: bool,
    pub partitions: usize,
    pub records: u64,
    pub records_to_scan: u64,
}

/// Every planned partition with its finished progress; a partition that has not finished is
/// a count mismatch. Read once per step and shared by what the step derives from it.
pub async fn finished<'a>(
    backup: &BackupStores,
    plan: &'a RestorePlan,
) -> Result<Vec<(&'a PartitionTask, PartitionProgress)>> {
    finished_partitions(backup, plan)
        .await?
        .into_iter()
        .map(|(task, progress)| {
            let progress = progress.ok_or_else(|| {
                RestoreError::CountMismatch(format!(
                    "{}/{} has no finished progress record",
                    task.source_topic, task.partition
                ))
            })?;
            Ok((task, progress))
        })
        .collect()
}

fn outcomes(finished: &[(&PartitionTask, PartitionProgress)]) -> Vec<PartitionOutcome> {
    finished
        .iter()
        .map(|(task, progress)| PartitionOutcome {
            source_topic: task.source_topic.clone(),
            target_topic: task.target_topic.clone(),
            partition: task.partition,
            source_first_offset: task.first_offset,
            source_end_offset: task.end_offset,
            records: progress.produced,
            target_first_offset: progress.target_base,
            target_end_offset: progress.target_end(),
            offset_runs: progress.offset_map.runs().len(),
            invocations: progress.invocations,
            recovered_after_interruption: progress.recovered,
        })
        .collect()
}

/// Every target partition must end exactly where its restore says it stopped producing.
pub async fn validate(
    finished: &[(&PartitionTask, PartitionProgress)],
    cluster: &dyn Cluster,
) -> Result<Validation> {
    let outcomes = outcomes(finished);
    let partitions: Vec<TopicPartition> = outcomes
        .iter()
        .map(|outcome| TopicPartition::new(outcome.target_topic.clone(), outcome.partition))
        .collect();
    let watermarks = cluster.watermarks(&partitions).await?;
    let wrong: Vec<String> = outcomes
        .iter()
        .zip(&watermarks)
        .filter(|(outcome, watermarks)| watermarks.high != outcome.target_end_offset)
        .map(|(outcome, watermarks)| {
            format!(
                "{}/{} ends at {} but the restore produced {} records from {} (to {})",
                outcome.target_topic,
                outcome.partition,
                watermarks.high,
                outcome.records,
                outcome.target_first_offset,
                outcome.target_end_offset
            )
        })
        .collect();
    if !wrong.is_empty() {
        return Err(RestoreError::CountMismatch(wrong.join("; ")));
    }
    Ok(Validation {
        partitions: outcomes.len(),
        records: outcomes.iter().map(|outcome| outcome.records).sum(),
    })
}

/// Writes `report.json` under the restore's prefix: the plan, each partition's outcome and
/// the earlier steps' results. A dry run reports the plan alone.
pub async fn report(
    backup: &BackupStores,
    plan: &RestorePlan,
    results: &serde_json::Value,
) -> Result<ReportSummary> {
    let partitions = if plan.dry_run {
        Vec::new()
    } else {
        outcomes(&finished(backup, plan).await?)
    };
    let records = partitions.iter().map(|outcome| outcome.records).sum();
    let records_to_scan = plan
        .partitions
        .iter()
        .map(|task| task.records_to_scan)
        .sum();
    let report = serde_json::json!({
        "format": "tidemark.restore-report",
        "version": 1,
        "restore_id": plan.restore_id,
        "backup_id": plan.backup_id,
        "dry_run": plan.dry_run,
        "finished_at_ms": super::now_ms(),
        "cut": plan.cut,
        "start_ms": plan.start_ms,
        "snapshot": plan.snapshot,
        "records": records,
        "records_to_scan": records_to_scan,
        "topics": plan.topics,
        "planned_partitions": plan.partitions,
        "partitions": partitions,
        "groups": plan.groups,
        // The offset reset's output lands in results.group_resets.
        "results": results,
        "warnings": plan.warnings,
    });
    let key = plan.object_key(backup, "report.json")?;
    backup.put_json_once(&key, &report).await?;
    Ok(ReportSummary {
        report_key: key,
        dry_run: plan.dry_run,
        partitions: plan.partitions.len(),
        records,
        records_to_scan,
    })
}
