//! The steps of the maintenance state machine (`statemachines/maintenance.asl.json`): per
//! partition, retention by the topic's tier (never inside the minimum PITR window), then
//! compaction of what is left. Each partition's result is written once, so a retried step skips
//! what is done; retention and compaction are themselves safe to repeat.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidemark_core::compaction::{CompactionReport, CompactionSettings, Compactor};
use tidemark_core::config::RetentionTier;
use tidemark_core::index::IndexStore;
use tidemark_core::keys::SegmentKeys;
use tidemark_core::layout::{PartitionId, RunId};
use tidemark_core::object_store::{self, ObjectStore, ObjectTags};
use tidemark_core::operations::{AuditRecord, Operation, OperationsBook, Outcome, record_audit};
use tidemark_core::retention::{DAY_MS, RetentionPolicy, RetentionReport, expire_partition};
use tidemark_core::telemetry::{MetricsLine, Unit};
use tidemark_core::validation::partitions_to_validate;
use tracing::info;

use crate::config::{BackupConfig, MaintenanceSettings};
use crate::error::Result;
use crate::steps::{Progress, now_ms, parse_run_id, step_through};

#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MaintenanceStep {
    Maintain {
        run_id: String,
        #[serde(default)]
        position: usize,
    },
    Summarize {
        run_id: String,
        /// The execution's ARN and input, for the audit record.
        #[serde(default)]
        execution: Option<String>,
        #[serde(default)]
        request: serde_json::Value,
    },
}

/// What one partition's maintenance did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMaintenance {
    pub topic: String,
    pub partition: i32,
    pub keep_days: i64,
    pub segments_expired: usize,
    pub bytes_expired: u64,
    pub start_offset: Option<i64>,
    pub segments_compacted: usize,
    pub segments_written: usize,
    pub bytes_before_compaction: u64,
    pub bytes_after_compaction: u64,
    /// Objects deleted: expired segments, and replaced ones past their grace.
    pub objects_deleted: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    pub run_id: String,
    pub partitions: usize,
    pub segments_expired: usize,
    pub bytes_expired: u64,
    pub segments_compacted: usize,
    pub segments_written: usize,
    pub objects_deleted: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MaintenanceResponse {
    Progress(Progress),
    Report(MaintenanceReport),
}

pub struct Maintainer {
    config: BackupConfig,
    settings: MaintenanceSettings,
    objects: Arc<dyn ObjectStore>,
    index: Arc<dyn IndexStore>,
    keys: Arc<SegmentKeys>,
    operations: Arc<dyn OperationsBook>,
}

impl Maintainer {
    pub fn new(
        config: BackupConfig,
        settings: MaintenanceSettings,
        objects: Arc<dyn ObjectStore>,
        index: Arc<dyn IndexStore>,
        keys: Arc<SegmentKeys>,
        operations: Arc<dyn OperationsBook>,
    ) -> Self {
        Maintainer {
            config,
            settings,
            objects,
            index,
            keys,
            operations,
        }
    }

    pub async fn handle(
        &self,
        step: MaintenanceStep,
        deadline_ms: i64,
    ) -> Result<MaintenanceResponse> {
        match step {
            MaintenanceStep::Maintain { run_id, position } => {
                let run = parse_run_id(&run_id)?;
                let partitions = partitions_to_validate(
                    self.objects.as_ref(),
                    self.index.as_ref(),
                    &self.config.store.layout,
                    &self.config.backup_id,
                )
                .await?;
                let progress = step_through(&partitions, position, deadline_ms, |partition| {
                    let run = &run;
                    async move { self.maintain_once(run, &partition).await }
                })
                .await?;
                Ok(MaintenanceResponse::Progress(progress))
            }
            MaintenanceStep::Summarize {
                run_id,
                execution,
                request,
            } => {
                let run = parse_run_id(&run_id)?;
                let report = self.summarize(&run).await?;
                let detail = format!(
                    "{} partitions: {} segments expired, {} compacted into {}, {} objects deleted",
                    report.partitions,
                    report.segments_expired,
                    report.segments_compacted,
                    report.segments_written,
                    report.objects_deleted
                );
                // Who started it: `requested_by` in the execution's input (the CLI's identity
                // or a schedule's name).
                let record = AuditRecord::ended(
                    Operation::Maintenance,
                    run.to_string(),
                    &request,
                    execution,
                    Outcome::Succeeded,
                    detail,
                )
                .with_backup_id(Some(self.config.backup_id.to_string()));
                record_audit(
                    self.objects.as_ref(),
                    self.operations.as_ref(),
                    &self.config.store.layout,
                    &record,
                )
                .await?;
                Ok(MaintenanceResponse::Report(report))
            }
        }
    }

    fn result_key(&self, run: &RunId, partition: &PartitionId) -> String {
        partition.run_result_key(
            &self
                .config
                .store
                .layout
                .maintenance_prefix(&self.config.backup_id, run),
        )
    }

    async fn maintain_once(&self, run: &RunId, partition: &PartitionId) -> Result<()> {
        let key = self.result_key(run, partition);
        if self.objects.get(&key).await?.is_some() {
            return Ok(());
        }
        let done = self.maintain(partition, now_ms()).await?;
        info!(%partition, expired = done.segments_expired, compacted = done.segments_compacted, "partition maintained");
        object_store::put_json_once(self.objects.as_ref(), &key, &done).await?;
        Ok(())
    }

    /// Retention, then compaction of what is left, for one partition at `now_ms`.
    pub async fn maintain(
        &self,
        partition: &PartitionId,
        now_ms: i64,
    ) -> Result<PartitionMaintenance> {
        let keep_days = self.settings.keep_days(&partition.topic);
        let policy = RetentionPolicy {
            keep_ms: keep_days * DAY_MS,
            min_pitr_window_ms: self.settings.min_pitr_window_days * DAY_MS,
        };
        let retention: RetentionReport = expire_partition(
            self.objects.as_ref(),
            self.index.as_ref(),
            &self.config.store.layout,
            partition,
            policy,
            now_ms,
        )
        .await?;
        let compaction = if self.settings.compaction_target_mb == 0 {
            CompactionReport::default()
        } else {
            let tier: RetentionTier = self.settings.tiers.tier(&partition.topic);
            let tags =
                ObjectTags::from([(RetentionTier::TAG.to_owned(), tier.as_str().to_owned())]);
            Compactor {
                objects: self.objects.as_ref(),
                index: self.index.as_ref(),
                keys: &self.keys,
                layout: &self.config.store.layout,
                settings: CompactionSettings {
                    target_bytes: self.settings.compaction_target_mb << 20,
                    grace_ms: self.settings.compaction_grace_hours * 3_600_000,
                    compression_level: self.settings.compression_level,
                },
            }
            .compact_partition(partition, &tags, now_ms)
            .await?
        };
        Ok(PartitionMaintenance {
            topic: partition.topic.clone(),
            partition: partition.partition,
            keep_days,
            segments_expired: retention.segments_expired,
            bytes_expired: retention.bytes_expired,
            start_offset: retention.start_offset,
            segments_compacted: compaction.segments_replaced,
            segments_written: compaction.segments_written,
            bytes_before_compaction: compaction.bytes_replaced,
            bytes_after_compaction: compaction.bytes_written,
            objects_deleted: retention.objects_deleted + compaction.objects_deleted,
        })
    }

    async fn summarize(&self, run: &RunId) -> Result<MaintenanceReport> {
        let prefix = self
            .config
            .store
            .layout
            .maintenance_prefix(&self.config.backup_id, run);
        let mut report = MaintenanceReport {
            run_id: run.to_string(),
            ..MaintenanceReport::default()
        };
        for key in self.objects.list(&format!("{prefix}partitions/")).await? {
            let Some(done): Option<PartitionMaintenance> =
                object_store::get_json(self.objects.as_ref(), &key).await?
            else {
                continue;
            };
            report.partitions += 1;
            report.segments_expired += done.segments_expired;
            report.bytes_expired += done.bytes_expired;
            report.segments_compacted += done.segments_compacted;
            report.segments_written += done.segments_written;
            report.objects_deleted += done.objects_deleted;
        }
        MetricsLine::new(&self.config.metrics_namespace)
            .dimension("BackupId", &self.config.backup_id)
            .metric(
                "SegmentsExpired",
                Unit::Count,
                report.segments_expired as f64,
            )
            .metric("BytesExpired", Unit::Bytes, report.bytes_expired as f64)
            .metric(
                "SegmentsCompacted",
                Unit::Count,
                report.segments_compacted as f64,
            )
            .metric("ObjectsDeleted", Unit::Count, report.objects_deleted as f64)
            .property("RunId", report.run_id.clone())
            .emit(now_ms());
        Ok(report)
    }
}
