//! The drill's evidence report: what was restored and how it compared with the backup, the
//! measured recovery time (start to verified) and recovery point (the cut against the newest
//! record restored), each against the tier's target. Written once, then recorded in the
//! backup's health record, the audit trail and the metrics an alarm watches.

use serde::{Deserialize, Serialize};
use tidemark_core::layout::{BackupId, RestoreId};
use tidemark_core::operations::{
    AuditRecord, DrillHealth, HealthAspect, Operation, Outcome, record_audit,
};
use tidemark_core::request::Failure;
use tidemark_core::telemetry::{MetricsLine, Unit};

use super::verify::PartitionEvidence;
use super::{Cleaned, Drill, DrillPlan, Tier};
use crate::error::Result;
use crate::plan::PartitionTask;
use crate::request::CutMode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    pub drill_id: String,
    pub backup_id: String,
    /// Verified, cleaned up, and within the tier's targets.
    pub passed: bool,
    /// `Tidemark.DrillFailed` (not verified or not cleaned up), `Tidemark.DrillMissedTarget`,
    /// or empty.
    pub error: String,
    /// One line: what passed, or the first thing that did not.
    pub cause: String,
    pub report_key: Option<String>,
    pub requested_by: Option<String>,
    pub execution: Option<String>,
    pub tier: Option<Tier>,
    pub cut_mode: Option<CutMode>,
    pub cut_at_ms: Option<i64>,
    pub started_at_ms: i64,
    /// When the last partition was verified.
    pub verified_at_ms: Option<i64>,
    pub finished_at_ms: i64,
    /// Recovery time: the drill's start to the last partition verified.
    pub rto_ms: Option<i64>,
    pub rto_target_ms: Option<i64>,
    /// Recovery point: the cut against the newest record restored.
    pub rpo_ms: Option<i64>,
    pub rpo_target_ms: Option<i64>,
    pub newest_record_ms: Option<i64>,
    /// The restore's outcome: its report, or why it failed.
    pub restore: String,
    pub partitions_planned: usize,
    pub partitions_verified: usize,
    pub partitions_differing: usize,
    pub records: u64,
    pub bytes: u64,
    pub scratch_topics_deleted: Vec<String>,
    pub cleanup_error: Option<String>,
    pub partitions: Vec<PartitionEvidence>,
}

fn failure_in(state: &serde_json::Value, name: &str) -> Option<String> {
    let failure: Failure = serde_json::from_value(state.get(name)?.clone()).ok()?;
    Some(failure.describe())
}

pub async fn report(
    drill: &Drill,
    drill_id: &str,
    execution: Option<String>,
    started_at_ms: i64,
    state: &serde_json::Value,
) -> Result<DrillReport> {
    let now = crate::coordinator::now_ms();
    let request = state.get("request").cloned().unwrap_or_default();
    let backup_id = request
        .get("backup_id")
        .and_then(|id| id.as_str())
        .unwrap_or_default()
        .to_owned();
    let ids = BackupId::parse(&backup_id)
        .ok()
        .zip(RestoreId::parse(drill_id).ok());
    let plan: Option<DrillPlan> = match &ids {
        Some((backup, drill_id)) => drill.load_plan(backup, drill_id).await?,
        None => None,
    };
    let mut report = DrillReport {
        drill_id: drill_id.to_owned(),
        backup_id: backup_id.clone(),
        passed: false,
        error: String::new(),
        cause: String::new(),
        report_key: None,
        requested_by: request
            .get("requested_by")
            .and_then(|who| who.as_str())
            .map(str::to_owned),
        execution: execution.clone(),
        tier: plan.as_ref().and_then(|plan| plan.tier.clone()),
        cut_mode: plan.as_ref().map(|plan| plan.cut_mode),
        cut_at_ms: plan.as_ref().map(|plan| plan.cut_at_ms),
        started_at_ms: plan
            .as_ref()
            .map_or(started_at_ms, |plan| plan.started_at_ms),
        verified_at_ms: None,
        finished_at_ms: now,
        rto_ms: None,
        rto_target_ms: None,
        rpo_ms: None,
        rpo_target_ms: None,
        newest_record_ms: None,
        restore: String::new(),
        partitions_planned: 0,
        partitions_verified: 0,
        partitions_differing: 0,
        records: 0,
        bytes: 0,
        scratch_topics_deleted: Vec::new(),
        cleanup_error: None,
        partitions: Vec::new(),
    };
    report.rto_target_ms = report
        .tier
        .as_ref()
        .and_then(|tier| tier.rto_target_seconds)
        .map(|seconds| seconds as i64 * 1000);
    report.rpo_target_ms = report
        .tier
        .as_ref()
        .and_then(|tier| tier.rpo_target_seconds)
        .map(|seconds| seconds as i64 * 1000);

    let mut problems: Vec<String> = Vec::new();
    if let Some(prepare) = failure_in(state, "failure") {
        problems.push(format!("the drill could not start: {prepare}"));
    }
    match (failure_in(state, "restore_failure"), state.get("restore")) {
        (Some(failure), _) => {
            report.restore = format!("failed: {failure}");
            problems.push(format!("the restore failed: {failure}"));
        }
        (None, Some(output)) => {
            report.restore = format!(
                "restored {} records into {} partitions (report {})",
                output["output"]["records"],
                output["output"]["partitions"],
                output["output"]["report_key"]
            );
        }
        (None, None) => report.restore = "not started".into(),
    }
    if let Some((backup, drill_key)) = &ids {
        let tasks: Vec<PartitionTask> = drill
            .backup
            .get_json(
                &drill
                    .backup
                    .layout
                    .restore_partitions_key(backup, drill_key),
            )
            .await?
            .unwrap_or_default();
        report.partitions_planned = tasks.len();
        let prefix = drill.key(backup, drill_key, "partitions/");
        for key in drill.backup.objects.list(&prefix).await? {
            if let Some(evidence) = drill.backup.get_json::<PartitionEvidence>(&key).await? {
                report.partitions.push(evidence);
            }
        }
        report.report_key = Some(drill.key(backup, drill_key, "report.json"));
    }
    if let Some(failure) = failure_in(state, "verify_failure") {
        problems.push(format!("verification stopped: {failure}"));
    }
    report.partitions_verified = report.partitions.len();
    for evidence in &report.partitions {
        report.records += evidence.records;
        report.bytes += evidence.bytes;
        report.newest_record_ms = report.newest_record_ms.max(evidence.newest_timestamp);
        report.verified_at_ms = report.verified_at_ms.max(Some(evidence.verified_at_ms));
    }
    let differing: Vec<&PartitionEvidence> = report
        .partitions
        .iter()
        .filter(|evidence| !evidence.passed())
        .collect();
    report.partitions_differing = differing.len();
    for evidence in differing.iter().take(3) {
        let place = tidemark_core::layout::PartitionId::place(
            &evidence.source_topic,
            evidence.partition,
            evidence.generation,
        );
        match &evidence.difference {
            Some(difference) => problems.push(match &evidence.unreadable_from {
                Some(unreadable) => format!(
                    "{place}: {} ({})",
                    difference.describe(),
                    unreadable.describe()
                ),
                None => format!("{place}: {}", difference.describe()),
            }),
            None => {
                for group in evidence.groups.iter().filter(|group| !group.ok) {
                    problems.push(format!(
                        "{place}: group {} committed at source offset {} would resume at target \
                         offset {:?}, but its first unread record is at {:?}",
                        group.group,
                        group.committed_source_offset,
                        group.translated,
                        group.expected
                    ));
                }
            }
        }
    }
    if report.partitions_verified < report.partitions_planned && problems.is_empty() {
        problems.push(format!(
            "{} of {} partitions were verified",
            report.partitions_verified, report.partitions_planned
        ));
    }
    if plan.is_some() && report.partitions_planned == 0 && problems.is_empty() {
        problems.push("the restore planned no partition: nothing was proven".into());
    }
    match (
        failure_in(state, "cleanup_failure"),
        state
            .get("cleanup")
            .cloned()
            .map(serde_json::from_value::<Cleaned>),
    ) {
        (Some(failure), _) => {
            report.cleanup_error = Some(failure.clone());
            problems.push(format!("cleanup failed: {failure}"));
        }
        (None, Some(Ok(cleaned))) => report.scratch_topics_deleted = cleaned.deleted,
        _ => {}
    }

    report.rto_ms = report
        .verified_at_ms
        .map(|verified| verified - report.started_at_ms);
    report.rpo_ms = report
        .cut_at_ms
        .zip(report.newest_record_ms)
        .map(|(cut, newest)| (cut - newest).max(0));
    let mut missed = Vec::new();
    if let (Some(rto), Some(target)) = (report.rto_ms, report.rto_target_ms)
        && rto > target
    {
        missed.push(format!(
            "RTO {} s is over the target of {} s",
            rto / 1000,
            target / 1000
        ));
    }
    if let (Some(rpo), Some(target)) = (report.rpo_ms, report.rpo_target_ms)
        && rpo > target
    {
        missed.push(format!(
            "RPO {} s is over the target of {} s",
            rpo / 1000,
            target / 1000
        ));
    }
    (report.error, report.cause) = if !problems.is_empty() {
        (
            "Tidemark.DrillFailed".into(),
            format!("drill {drill_id} failed: {}", problems.join("; ")),
        )
    } else if !missed.is_empty() {
        (
            "Tidemark.DrillMissedTarget".into(),
            format!(
                "drill {drill_id} verified every record but missed its targets: {}",
                missed.join("; ")
            ),
        )
    } else {
        (
            String::new(),
            format!(
                "drill {drill_id} verified {} records in {} partitions; RTO {} s, RPO {} s",
                report.records,
                report.partitions_verified,
                report.rto_ms.unwrap_or(0) / 1000,
                report.rpo_ms.unwrap_or(0) / 1000
            ),
        )
    };
    report.passed = report.error.is_empty();

    let Some((backup, _)) = &ids else {
        // No valid backup id: nowhere to keep the report but the audit trail.
        record(drill, &report, &request, None).await?;
        return Ok(report);
    };
    let key = report.report_key.clone().expect("set with the ids");
    let report = drill.backup.put_json_once(&key, &report).await?;
    record(drill, &report, &request, Some(backup)).await?;
    Ok(report)
}

/// The report in the health record, the audit trail and the metrics.
async fn record(
    drill: &Drill,
    report: &DrillReport,
    request: &serde_json::Value,
    backup: Option<&BackupId>,
) -> Result<()> {
    if let Some(backup) = backup {
        drill
            .backup
            .operations
            .record_health(
                backup,
                &HealthAspect::Drill(DrillHealth {
                    drill_id: report.drill_id.clone(),
                    finished_at_ms: report.finished_at_ms,
                    passed: report.passed,
                    tier: report.tier.as_ref().map(|tier| tier.name.clone()),
                    rto_ms: report.rto_ms,
                    rto_target_ms: report.rto_target_ms,
                    rpo_ms: report.rpo_ms,
                    rpo_target_ms: report.rpo_target_ms,
                    cause: report.cause.clone(),
                    report_key: report.report_key.clone().unwrap_or_default(),
                }),
            )
            .await?;
    }
    let outcome = if report.passed {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    };
    let record = AuditRecord {
        started_at_ms: Some(report.started_at_ms),
        finished_at_ms: report.finished_at_ms,
        ..AuditRecord::ended(
            Operation::Drill,
            &report.drill_id,
            request,
            report.execution.clone(),
            outcome,
            report.cause.clone(),
        )
        .with_report_key(report.report_key.clone())
    };
    record_audit(
        drill.backup.objects.as_ref(),
        drill.backup.operations.as_ref(),
        &drill.backup.layout,
        &record,
    )
    .await?;
    let mut metrics = MetricsLine::new(&drill.metrics_namespace)
        .dimension("BackupId", &report.backup_id)
        .metric(
            "DrillsFailed",
            Unit::Count,
            f64::from(u8::from(report.error == "Tidemark.DrillFailed")),
        )
        .metric(
            "DrillTargetsMissed",
            Unit::Count,
            f64::from(u8::from(report.error == "Tidemark.DrillMissedTarget")),
        )
        .metric("DrillRecordsVerified", Unit::Count, report.records as f64)
        .property("DrillId", report.drill_id.clone());
    if let Some(rto) = report.rto_ms {
        metrics = metrics.metric("DrillRto", Unit::Milliseconds, rto as f64);
    }
    if let Some(rpo) = report.rpo_ms {
        metrics = metrics.metric("DrillRpo", Unit::Milliseconds, rpo as f64);
    }
    metrics.emit(report.finished_at_ms);
    Ok(())
}
