//! One function for every state of the offset-reset machine, dispatched on `step`, so the
//! steps share one connection layer and one deployment. The restore machine runs this same
//! machine (and this function's rollback step) to move its groups.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::ClusterConnector;
use tidemark_core::layout::ResetId;

use crate::error::{ResetError, Result};
use crate::plan::{ResetPlan, make_plan};
use tidemark_core::object_store::{get_json, put_json_once};

use tidemark_core::operations::{AuditRecord, Operation, Outcome, record_audit};

use crate::records::{PLAN, ResetRecords};
use crate::request::{ResetRequest, ValidRequest};
use crate::rollback::{Failure, RollbackOutcome};
use crate::{apply, now_ms, rollback};

#[derive(Debug, Clone, Deserialize)]
pub struct StepInput {
    pub step: Step,
    pub reset_id: String,
    pub request: serde_json::Value,
    /// Set on the rollback path: the state that failed, its error, and the rollback's result.
    #[serde(default)]
    pub failed_step: Option<String>,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub rollback: Option<RollbackOutcome>,
    /// The execution's ARN (`$$.Execution.Id`), for the audit trail.
    #[serde(default)]
    pub execution: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Plan,
    CheckGroups,
    Snapshot,
    Apply,
    Verify,
    Rollback,
    VerifyRollback,
}

/// Moves shown in a plan step's output; the whole plan is in S3 at `plan_key`. Keeps the
/// output well under Step Functions' 256 KiB per state.
pub const MOVES_SHOWN: usize = 1000;

/// What the plan step returns: small whatever the plan's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub reset_id: String,
    pub bucket: String,
    pub plan_key: String,
    pub dry_run: bool,
    pub strategy: String,
    pub groups: usize,
    pub partitions: usize,
    /// Per group and partition: current → new (the first [`MOVES_SHOWN`]).
    pub moves: Vec<MoveLine>,
    pub moves_omitted: usize,
    /// The first [`WARNINGS_SHOWN`] warnings; all of them are in the plan.
    pub warnings: Vec<String>,
    #[serde(default)]
    pub warnings_omitted: usize,
}

/// Warnings shown in a plan step's output (one per group at most, so possibly thousands).
pub const WARNINGS_SHOWN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveLine {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub current: Option<i64>,
    pub new: i64,
}

pub struct Handler {
    records: ResetRecords,
    connector: Arc<dyn ClusterConnector>,
}

impl Handler {
    pub fn new(records: ResetRecords, connector: Arc<dyn ClusterConnector>) -> Self {
        Handler { records, connector }
    }

    pub async fn handle(&self, input: StepInput) -> Result<serde_json::Value> {
        let reset_id = ResetId::parse(&input.reset_id)
            .map_err(|error| ResetError::InvalidRequest(error.to_string()))?;
        let request = ResetRequest::from_json(&input.request)?.validate()?;
        tracing::info!(step = ?input.step, %reset_id, "offset reset step");
        if input.step == Step::Plan {
            let summary = self.plan(&reset_id, &request, &input.request).await?;
            if summary.dry_run {
                let detail = format!(
                    "dry run: {} groups, {} partitions would move",
                    summary.groups, summary.partitions
                );
                self.audit(
                    &input,
                    Outcome::Planned,
                    detail,
                    Some(summary.plan_key.clone()),
                )
                .await?;
            }
            return Ok(to_json(summary));
        }
        let plan = self.load_plan(&reset_id).await?;
        let cluster = self.connector.cluster(&request.target).await?;
        let cluster = cluster.as_ref();
        Ok(match input.step {
            Step::Plan => unreachable!("handled above"),
            Step::CheckGroups => to_json(apply::check_groups(&plan, cluster).await?),
            Step::Snapshot => {
                to_json(apply::snapshot(&self.records, &reset_id, &plan, cluster).await?)
            }
            Step::Apply => to_json(apply::apply(&plan, cluster).await?),
            Step::Verify => {
                let verified = apply::verify(&plan, cluster).await?;
                let detail = format!(
                    "moved {} groups on {} partitions ({}), read back",
                    verified.groups, verified.partitions, plan.strategy
                );
                let plan_key = self.records.key(&reset_id, PLAN);
                self.audit(&input, Outcome::Succeeded, detail, Some(plan_key))
                    .await?;
                to_json(verified)
            }
            Step::Rollback => {
                to_json(rollback::rollback(&self.records, &reset_id, &plan, cluster).await?)
            }
            Step::VerifyRollback => {
                let report = rollback::verify_rollback(
                    &self.records,
                    &reset_id,
                    &plan,
                    cluster,
                    input.failed_step.as_deref().unwrap_or("an unknown step"),
                    &input.failure.clone().unwrap_or_default(),
                    &input.rollback.clone().unwrap_or_default(),
                )
                .await?;
                let detail = format!("{}: {}", report.error, report.cause);
                self.audit(&input, Outcome::Failed, detail, None).await?;
                to_json(report)
            }
        })
    }

    /// The reset's audit record: who asked (the request's `requested_by`), what, and how it
    /// ended.
    async fn audit(
        &self,
        input: &StepInput,
        outcome: Outcome,
        detail: String,
        report_key: Option<String>,
    ) -> Result<()> {
        let request = &input.request;
        let record = AuditRecord::ended(
            Operation::OffsetReset,
            &input.reset_id,
            request,
            input.execution.clone(),
            outcome,
            detail,
        )
        .with_backup_id(request["strategy"]["backup_id"].as_str().map(str::to_owned))
        .with_report_key(report_key);
        record_audit(
            self.records.objects.as_ref(),
            self.records.operations.as_ref(),
            &self.records.layout,
            &record,
        )
        .await?;
        Ok(())
    }

    async fn plan(
        &self,
        reset_id: &ResetId,
        request: &ValidRequest,
        raw_request: &serde_json::Value,
    ) -> Result<PlanSummary> {
        let key = self.records.key(reset_id, PLAN);
        let plan = match get_json::<ResetPlan>(self.records.objects.as_ref(), &key).await? {
            Some(plan) if &plan.request == raw_request => plan,
            Some(_) => {
                return Err(ResetError::Refused(format!(
                    "offset reset id {reset_id} was already used by a different request ({key})"
                )));
            }
            None => {
                let cluster = self.connector.cluster(&request.target).await?;
                let plan = make_plan(
                    &self.records,
                    cluster.as_ref(),
                    request,
                    raw_request,
                    reset_id.as_str(),
                    now_ms(),
                )
                .await?;
                put_json_once(self.records.objects.as_ref(), &key, &plan).await?
            }
        };
        let mut moves: Vec<MoveLine> = plan
            .groups
            .iter()
            .flat_map(|group| {
                group.partitions.iter().map(|moved| MoveLine {
                    group: group.group.clone(),
                    topic: moved.topic.clone(),
                    partition: moved.partition,
                    current: moved.current,
                    new: moved.new,
                })
            })
            .collect();
        let moves_omitted = moves.len().saturating_sub(MOVES_SHOWN);
        moves.truncate(MOVES_SHOWN);
        Ok(PlanSummary {
            reset_id: plan.reset_id.clone(),
            bucket: self.records.bucket.clone(),
            plan_key: key,
            dry_run: plan.dry_run,
            strategy: plan.strategy.clone(),
            groups: plan.groups.len(),
            partitions: plan.partition_count(),
            moves,
            moves_omitted,
            warnings: plan.warnings.iter().take(WARNINGS_SHOWN).cloned().collect(),
            warnings_omitted: plan.warnings.len().saturating_sub(WARNINGS_SHOWN),
        })
    }

    async fn load_plan(&self, reset_id: &ResetId) -> Result<ResetPlan> {
        let key = self.records.key(reset_id, PLAN);
        get_json(self.records.objects.as_ref(), &key)
            .await?
            .ok_or_else(|| {
                ResetError::Refused(format!("offset reset {reset_id} has no plan at {key}"))
            })
    }
}

fn to_json<T: Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).expect("offset reset results serialise")
}
