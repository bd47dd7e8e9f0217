//! The steps of the validation state machine (`statemachines/validation.asl.json`).
//!
//! `validate` checks partitions in name order from `position` and stops when its deadline draws
//! near, returning where the next step starts; each partition's result is written to S3 once,
//! so a retried step skips what is done. `summarize` reads the results back, writes the report,
//! and emits the metrics an alarm watches.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidemark_core::index::IndexStore;
use tidemark_core::keys::SegmentKeys;
use tidemark_core::layout::{PartitionId, RunId};
use tidemark_core::object_store::{self, ObjectStore};
use tidemark_core::operations::{
    AuditRecord, HealthAspect, Operation, OperationsBook, Outcome, ValidationHealth, record_audit,
};
use tidemark_core::telemetry::{MetricsLine, Unit};
use tidemark_core::validation::{
    Depth, LocatedFinding, PartitionCheck, Severity, Tally, partitions_to_validate, select_topics,
    validate_partition,
};
use tracing::info;

use crate::config::BackupConfig;
use crate::error::{MaintenanceError, Result};
use crate::steps::{Progress, now_ms, parse_run_id, step_through};

/// Partitions whose validated point the health record keeps (an item holds 400 KB).
const VALIDATED_POINTS_KEPT: usize = 2_000;

/// Findings quoted in the report's one-line cause.
const CAUSE_EXAMPLES: usize = 3;

/// What an execution is started with (the schedule's input, or an operator's).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    /// `deep` (default) re-reads every segment; `listing` compares the index with S3 only.
    #[serde(default = "deep")]
    pub depth: Depth,
    /// Topics to validate; all of the backup's when absent.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Who asked, for the audit trail (the tidemark CLI fills in its STS identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

fn deep() -> Depth {
    Depth::Deep
}

#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum ValidationStep {
    Validate {
        run_id: String,
        request: ValidationRequest,
        #[serde(default)]
        position: usize,
    },
    Summarize {
        run_id: String,
        request: ValidationRequest,
        /// The execution's ARN, for the audit record.
        #[serde(default)]
        execution: Option<String>,
    },
}

/// The run's report, written to `{prefix}/{backup}/validations/{run}/report.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub run_id: String,
    pub backup_id: String,
    pub depth: Depth,
    #[serde(flatten)]
    pub tally: Tally,
    /// One line: what is wrong (for the state machine's Fail), or "no errors".
    pub cause: String,
    pub report_key: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ValidationResponse {
    Progress(Progress),
    Report(Box<ValidationReport>),
}

pub struct Validator {
    config: BackupConfig,
    objects: Arc<dyn ObjectStore>,
    index: Arc<dyn IndexStore>,
    keys: Arc<SegmentKeys>,
    operations: Arc<dyn OperationsBook>,
}

impl Validator {
    pub fn new(
        config: BackupConfig,
        objects: Arc<dyn ObjectStore>,
        index: Arc<dyn IndexStore>,
        keys: Arc<SegmentKeys>,
        operations: Arc<dyn OperationsBook>,
    ) -> Self {
        Validator {
            config,
            objects,
            index,
            keys,
            operations,
        }
    }

    pub async fn handle(
        &self,
        step: ValidationStep,
        deadline_ms: i64,
    ) -> Result<ValidationResponse> {
        match step {
            ValidationStep::Validate {
                run_id,
                request,
                position,
            } => Ok(ValidationResponse::Progress(
                self.validate(&parse_run_id(&run_id)?, &request, position, deadline_ms)
                    .await?,
            )),
            ValidationStep::Summarize {
                run_id,
                request,
                execution,
            } => {
                let run = parse_run_id(&run_id)?;
                let report = self.summarize(&run, &request).await?;
                let outcome = if report.tally.errors == 0 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                };
                let record = AuditRecord::ended(
                    Operation::Validation,
                    run.to_string(),
                    &serde_json::to_value(&request).expect("requests serialise"),
                    execution,
                    outcome,
                    report.cause.clone(),
                )
                .with_backup_id(Some(self.config.backup_id.to_string()))
                .with_report_key(Some(report.report_key.clone()));
                record_audit(
                    self.objects.as_ref(),
                    self.operations.as_ref(),
                    &self.config.store.layout,
                    &record,
                )
                .await?;
                Ok(ValidationResponse::Report(Box::new(report)))
            }
        }
    }

    /// The partitions a request covers, in name order; unknown topics are refused by name.
    async fn partitions(&self, request: &ValidationRequest) -> Result<Vec<PartitionId>> {
        let all = partitions_to_validate(
            self.objects.as_ref(),
            self.index.as_ref(),
            &self.config.store.layout,
            &self.config.backup_id,
        )
        .await?;
        select_topics(all, request.topics.as_deref()).map_err(|unknown| {
            MaintenanceError::InvalidRequest(format!(
                "topics {unknown:?} are not in backup {}",
                self.config.backup_id
            ))
        })
    }

    fn result_key(&self, run: &RunId, partition: &PartitionId) -> String {
        partition.run_result_key(
            &self
                .config
                .store
                .layout
                .validation_prefix(&self.config.backup_id, run),
        )
    }

    async fn validate(
        &self,
        run: &RunId,
        request: &ValidationRequest,
        start: usize,
        deadline_ms: i64,
    ) -> Result<Progress> {
        let partitions = self.partitions(request).await?;
        step_through(&partitions, start, deadline_ms, |partition| async move {
            let key = self.result_key(run, &partition);
            if self.objects.get(&key).await?.is_none() {
                let check = validate_partition(
                    self.objects.as_ref(),
                    self.index.as_ref(),
                    &self.keys,
                    &self.config.store.layout,
                    &partition,
                    request.depth,
                )
                .await?;
                info!(%partition, segments = check.segments, findings = check.findings.len(), "partition validated");
                object_store::put_json_once(self.objects.as_ref(), &key, &check).await?;
            }
            Ok(())
        })
        .await
    }

    async fn summarize(
        &self,
        run: &RunId,
        request: &ValidationRequest,
    ) -> Result<ValidationReport> {
        let prefix = self
            .config
            .store
            .layout
            .validation_prefix(&self.config.backup_id, run);
        let mut report = ValidationReport {
            run_id: run.to_string(),
            backup_id: self.config.backup_id.to_string(),
            depth: request.depth,
            tally: Tally::default(),
            cause: String::new(),
            report_key: format!("{prefix}report.json"),
        };
        // The results the validate steps wrote: partitions backed up since are not in this run.
        let mut validated_through = std::collections::BTreeMap::new();
        for key in self.objects.list(&format!("{prefix}partitions/")).await? {
            let check: PartitionCheck = object_store::get_json(self.objects.as_ref(), &key)
                .await?
                .ok_or_else(|| tidemark_core::Error::ObjectStore {
                    operation: "GetObject",
                    key: key.clone(),
                    message: "a listed validation result is gone".into(),
                    retryable: true,
                })?;
            let sound = !check
                .findings
                .iter()
                .any(|finding| finding.severity() == Severity::Error);
            if let (true, Some(next)) = (sound, check.next_offset)
                && validated_through.len() < VALIDATED_POINTS_KEPT
            {
                validated_through.insert(
                    PartitionId::place(&check.topic, check.partition, check.generation),
                    next,
                );
            }
            report.tally.add(check);
        }
        report.cause = cause(&report);
        let report_key = report.report_key.clone();
        let report =
            object_store::put_json_once(self.objects.as_ref(), &report_key, &report).await?;
        MetricsLine::new(&self.config.metrics_namespace)
            .dimension("BackupId", &self.config.backup_id)
            .metric("ValidationErrors", Unit::Count, report.tally.errors as f64)
            .metric(
                "ValidationWarnings",
                Unit::Count,
                report.tally.warnings as f64,
            )
            .metric(
                "SegmentsValidated",
                Unit::Count,
                report.tally.segments as f64,
            )
            .metric(
                "BytesValidated",
                Unit::Bytes,
                report.tally.bytes_read as f64,
            )
            .property("RunId", report.run_id.clone())
            .property("Depth", format!("{:?}", report.depth).to_lowercase())
            .emit(now_ms());
        self.operations
            .record_health(
                &self.config.backup_id,
                &HealthAspect::Validation(ValidationHealth {
                    run_id: report.run_id.clone(),
                    finished_at_ms: now_ms(),
                    depth: format!("{:?}", report.depth).to_lowercase(),
                    partitions: report.tally.partitions,
                    errors: report.tally.errors,
                    warnings: report.tally.warnings,
                    cause: report.cause.clone(),
                    report_key: report.report_key.clone(),
                    validated_through,
                }),
            )
            .await?;
        info!(errors = report.tally.errors, warnings = report.tally.warnings, key = %report.report_key, "validation report written");
        Ok(report)
    }
}

fn cause(report: &ValidationReport) -> String {
    let errors: Vec<&LocatedFinding> = report
        .tally
        .findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        return format!(
            "no errors in {} partitions ({} warnings)",
            report.tally.partitions, report.tally.warnings
        );
    }
    let examples: Vec<String> = errors
        .iter()
        .take(CAUSE_EXAMPLES)
        .map(|f| {
            format!(
                "{}: {}",
                PartitionId::place(&f.topic, f.partition, f.generation),
                f.finding.describe()
            )
        })
        .collect();
    format!(
        "{} error{} in backup {} (report {}): {}{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        report.backup_id,
        report.report_key,
        examples.join("; "),
        if errors.len() > CAUSE_EXAMPLES {
            "; ..."
        } else {
            ""
        }
    )
}
