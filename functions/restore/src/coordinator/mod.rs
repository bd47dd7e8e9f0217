//! The restore-coordinator function: every step of the restore state machine except copying
//! records. One binary, dispatched on `step`, so the steps share one connection layer and
//! one deployment; each step is idempotent, because Step Functions may run it again.

pub mod finish;
pub mod offsets;
pub mod rollback;
pub mod topics;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidemark_core::layout::{BackupId, RestoreId};
use tidemark_core::operations::{AuditRecord, Operation, Outcome, record_audit};

use crate::error::{RestoreError, Result};
use crate::plan::{RestorePlan, make_plan};
use crate::request::{RestoreRequest, ValidRequest};
use crate::target::TargetConnector;
use tidemark_core::stores::BackupStores;

/// One step's input. Every step gets the original request and the execution's restore id.
#[derive(Debug, Clone, Deserialize)]
pub struct StepInput {
    pub step: Step,
    pub restore_id: String,
    pub request: serde_json::Value,
    /// What earlier steps returned (for the report).
    #[serde(default)]
    pub results: serde_json::Value,
    /// Set on the rollback path: the state that failed and its error.
    #[serde(default)]
    pub failed_step: Option<String>,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// Set on the rollback path after the groups were moved: the offset reset's verified
    /// rollback (`{"undone": ...}`), whose account of the groups goes into this cause.
    #[serde(default)]
    pub offsets_rollback: Option<serde_json::Value>,
    /// The execution's ARN (`$$.Execution.Id`), for the audit trail.
    #[serde(default)]
    pub execution: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Plan,
    CreateTopics,
    Validate,
    Report,
    Rollback,
}

pub use tidemark_core::request::Failure;

/// The most entries of a list a step's output carries.
pub const SUMMARY_LIST_LIMIT: usize = 20;

/// The first [`SUMMARY_LIST_LIMIT`] of `items`.
fn first_few<T: Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    items.into_iter().take(SUMMARY_LIST_LIMIT).collect()
}

/// What the plan step hands the state machine: small, whatever the plan's size (a state's data
/// is limited to 256 KiB). Lists are cut to [`SUMMARY_LIST_LIMIT`] entries beside their full
/// counts; the plan in S3 has everything, and the Map reads the partition list from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub bucket: String,
    pub plan_key: String,
    pub partitions_key: String,
    pub dry_run: bool,
    pub partitions: usize,
    pub topic_count: usize,
    pub topics: Vec<String>,
    pub topics_to_create: Vec<String>,
    pub group_count: usize,
    pub groups: Vec<String>,
    pub records_to_scan: u64,
    pub warning_count: usize,
    pub warnings: Vec<String>,
    /// The offset-reset state machine's input that moves the groups, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<serde_json::Value>,
}

/// What the validate step returns: the counts, and where the offset mapping went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateOutcome {
    #[serde(flatten)]
    pub validation: finish::Validation,
    pub offset_mapping_partitions: usize,
}

pub struct Coordinator {
    backup: BackupStores,
    connector: Arc<dyn TargetConnector>,
}

impl Coordinator {
    pub fn new(backup: BackupStores, connector: Arc<dyn TargetConnector>) -> Self {
        Coordinator { backup, connector }
    }

    pub async fn handle(&self, input: StepInput) -> Result<serde_json::Value> {
        let restore_id = RestoreId::parse(&input.restore_id)
            .map_err(|error| RestoreError::InvalidRequest(error.to_string()))?;
        let request =
            RestoreRequest::from_json(&input.request).and_then(|request| request.validate());
        if input.step == Step::Rollback {
            // An invalid request failed the plan step: there is nothing to undo.
            let outcome = self.rollback(&input, &restore_id, request.ok()).await?;
            self.audit(
                &input,
                Outcome::Failed,
                format!("{}: {}", outcome.error, outcome.cause),
                None,
            )
            .await?;
            return Ok(to_json(outcome));
        }
        let request = request?;
        tracing::info!(step = ?input.step, %restore_id, backup_id = %request.backup_id, "restore step");
        let output = match input.step {
            Step::Plan => to_json(self.plan(&restore_id, &request, &input.request).await?),
            Step::CreateTopics => {
                let plan = self.load_plan(&request.backup_id, &restore_id).await?;
                let cluster = self.connector.cluster(&request.target).await?;
                to_json(topics::create(&self.backup, &plan, cluster.as_ref()).await?)
            }
            Step::Validate => {
                let plan = self.load_plan(&request.backup_id, &restore_id).await?;
                let cluster = self.connector.cluster(&request.target).await?;
                // Progress is read once for both the check and the mapping.
                let finished = finish::finished(&self.backup, &plan).await?;
                let validation = finish::validate(&finished, cluster.as_ref()).await?;
                let mapping = offsets::write_offset_mapping(&self.backup, &plan, &finished).await?;
                to_json(ValidateOutcome {
                    validation,
                    offset_mapping_partitions: mapping.partitions.len(),
                })
            }
            Step::Report => {
                let plan = self.load_plan(&request.backup_id, &restore_id).await?;
                let summary = finish::report(&self.backup, &plan, &input.results).await?;
                let (outcome, detail) = if summary.dry_run {
                    (
                        Outcome::Planned,
                        format!(
                            "dry run: {} partitions planned, {} records to scan",
                            summary.partitions, summary.records_to_scan
                        ),
                    )
                } else {
                    (
                        Outcome::Succeeded,
                        format!(
                            "restored {} records into {} partitions",
                            summary.records, summary.partitions
                        ),
                    )
                };
                self.audit(&input, outcome, detail, Some(summary.report_key.clone()))
                    .await?;
                to_json(summary)
            }
            Step::Rollback => unreachable!("handled above"),
        };
        Ok(output)
    }

    /// The restore's audit record: who asked (the request's `requested_by`), what, and how
    /// it ended.
    async fn audit(
        &self,
        input: &StepInput,
        outcome: Outcome,
        detail: String,
        report_key: Option<String>,
    ) -> Result<()> {
        let record = AuditRecord::ended(
            Operation::Restore,
            &input.restore_id,
            &input.request,
            input.execution.clone(),
            outcome,
            detail,
        )
        .with_report_key(report_key);
        record_audit(
            self.backup.objects.as_ref(),
            self.backup.operations.as_ref(),
            &self.backup.layout,
            &record,
        )
        .await?;
        Ok(())
    }

    async fn rollback(
        &self,
        input: &StepInput,
        restore_id: &RestoreId,
        request: Option<ValidRequest>,
    ) -> Result<rollback::RollbackOutcome> {
        // No plan means the failure came before anything was planned. A plan that cannot be
        // read is an error (retried), never taken for "nothing to undo".
        let plan = match &request {
            Some(request) => {
                let key = self
                    .backup
                    .layout
                    .restore_plan_key(&request.backup_id, restore_id);
                self.backup.get_json::<RestorePlan>(&key).await?
            }
            None => None,
        };
        let cluster = match (&plan, &request) {
            (Some(plan), Some(request)) if rollback::has_changes(&self.backup, plan).await? => {
                Some(self.connector.cluster(&request.target).await?)
            }
            _ => None,
        };
        let failed_step = input.failed_step.as_deref().unwrap_or("an unknown step");
        let failure = input.failure.clone().unwrap_or_default();
        let offsets_undone = input
            .offsets_rollback
            .as_ref()
            .and_then(|outcome| outcome.get("undone"))
            .and_then(|undone| undone.as_str());
        rollback::rollback(
            &self.backup,
            plan.as_ref().zip(cluster.as_deref()),
            failed_step,
            &failure,
            offsets_undone,
        )
        .await
    }

    async fn plan(
        &self,
        restore_id: &RestoreId,
        request: &ValidRequest,
        raw_request: &serde_json::Value,
    ) -> Result<PlanSummary> {
        let plan_key = self
            .backup
            .layout
            .restore_plan_key(&request.backup_id, restore_id);
        let partitions_key = self
            .backup
            .layout
            .restore_partitions_key(&request.backup_id, restore_id);
        let plan = match self.backup.get_json::<RestorePlan>(&plan_key).await? {
            // A retried plan step returns the plan made the first time.
            Some(plan) => plan,
            None => {
                let cluster = self.connector.cluster(&request.target).await?;
                let plan = make_plan(
                    &self.backup,
                    cluster.as_ref(),
                    restore_id,
                    request,
                    now_ms(),
                )
                .await?;
                // The partition list first: a plan on record always has its Map items.
                self.backup
                    .put_json_once(&partitions_key, &plan.partitions)
                    .await?;
                self.backup.put_json_once(&plan_key, &plan).await?
            }
        };
        Ok(PlanSummary {
            bucket: self.backup.bucket.clone(),
            plan_key,
            partitions_key,
            dry_run: plan.dry_run,
            partitions: plan.partitions.len(),
            topic_count: plan.topics.len(),
            topics: first_few(plan.topics.iter().map(|topic| topic.target.clone())),
            topics_to_create: first_few(
                plan.topics
                    .iter()
                    .filter(|topic| topic.create)
                    .map(|topic| topic.target.clone()),
            ),
            group_count: plan.groups.len(),
            groups: first_few(plan.groups.iter().map(|group| group.group.clone())),
            records_to_scan: plan
                .partitions
                .iter()
                .map(|task| task.records_to_scan)
                .sum(),
            warning_count: plan.warnings.len(),
            warnings: first_few(plan.warnings.iter().cloned()),
            offset_reset: offsets::offset_reset_request(&plan, &raw_request["target"]),
        })
    }

    async fn load_plan(&self, backup_id: &BackupId, restore_id: &RestoreId) -> Result<RestorePlan> {
        let key = self.backup.layout.restore_plan_key(backup_id, restore_id);
        self.backup.get_json(&key).await?.ok_or_else(|| {
            RestoreError::Refused(format!("restore {restore_id} has no plan at {key}"))
        })
    }
}

fn to_json<T: Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).expect("restore results serialise")
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
