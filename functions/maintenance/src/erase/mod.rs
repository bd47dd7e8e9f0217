//! The steps of the erasure state machine (`statemachines/erasure.asl.json`), over the
//! partitions of the requested topics: find (read only) → decide (refuse under compliance
//! retention; a dry run stops here) → erase → purge → verify → report. Each partition's result
//! is written once, so a retried step skips what is done; the engine's own changes are safe to
//! repeat (`tidemark_core::erasure`).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tidemark_core::config::RetentionTier;
use tidemark_core::erasure::{
    Eraser, Matchers, PartitionFindings, PurgeReport, RecordMatcher, Rewrite, ShreddedErasure,
    Verification, format_ms,
};
use tidemark_core::index::IndexStore;
use tidemark_core::keys::SegmentKeys;
use tidemark_core::layout::{PartitionId, RunId};
use tidemark_core::object_store::{self, ObjectStore, ObjectTags};
use tidemark_core::operations::{AuditRecord, Operation, OperationsBook, Outcome, record_audit};
use tidemark_core::telemetry::{MetricsLine, Unit};
use tracing::info;

use crate::config::{BackupConfig, MaintenanceSettings};
use crate::error::{MaintenanceError, Result};
use crate::steps::{Progress, now_ms, parse_run_id, step_through};

/// What to erase: the execution's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Exact topic names.
    pub topics: Vec<String>,
    pub matchers: Vec<RecordMatcher>,
    /// Find and report only (the default): nothing changes.
    #[serde(default = "default_true")]
    pub dry_run: bool,
    /// Seconds between the index switch and deleting the old objects, for restores that
    /// listed them just before (the state machine's Wait).
    #[serde(default)]
    pub grace_seconds: u64,
    #[serde(default)]
    pub requested_by: Option<String>,
}

fn default_true() -> bool {
    true
}

impl ErasureRequest {
    fn matchers(&self) -> Result<Matchers> {
        if self.topics.is_empty() {
            return Err(MaintenanceError::InvalidRequest(
                "topics: name at least one topic to erase from".into(),
            ));
        }
        Matchers::new(&self.matchers)
            .map_err(|error| MaintenanceError::InvalidRequest(error.to_string()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ErasureStep {
    /// Checks the request against the backup; in a shredded backup, retires the current
    /// versions of the keys' data keys and says how long to wait before finding their records.
    Prepare {
        run_id: String,
        request: ErasureRequest,
    },
    Find {
        run_id: String,
        request: ErasureRequest,
        #[serde(default)]
        position: usize,
    },
    Decide {
        run_id: String,
        request: ErasureRequest,
    },
    Erase {
        run_id: String,
        request: ErasureRequest,
        #[serde(default)]
        position: usize,
    },
    Purge {
        run_id: String,
        request: ErasureRequest,
        #[serde(default)]
        position: usize,
    },
    /// In a shredded backup, destroys the versions the prepare step retired.
    Destroy {
        run_id: String,
        request: ErasureRequest,
    },
    Verify {
        run_id: String,
        request: ErasureRequest,
        #[serde(default)]
        position: usize,
    },
    Report {
        run_id: String,
        request: ErasureRequest,
        #[serde(default)]
        execution: Option<String>,
    },
}

/// What the prepare step found, for the state machine's wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prepared {
    /// The backup is shredded: its keyed records are sealed under per-key data keys.
    pub shredded: bool,
    /// Seconds to wait before the find step: every record sealed under a retired version is
    /// indexed by then (0 when nothing was retired).
    pub wait_seconds: u64,
}

/// What the destroy step destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destroyed {
    pub key_ids: usize,
    pub versions: usize,
}

/// What the findings add up to, for the state machine's choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub partitions: usize,
    pub segments: usize,
    pub records: usize,
    pub dry_run: bool,
    /// The request's, for the state machine's Wait.
    pub grace_seconds: u64,
}

/// The erasure's report (`erasures/{id}/report.json`): the proof.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReport {
    pub erasure_id: String,
    pub dry_run: bool,
    pub topics: Vec<String>,
    pub partitions: Vec<PartitionOutcome>,
    pub segments_read: usize,
    pub segments_rewritten: usize,
    pub records_erased: usize,
    pub objects_deleted: usize,
    pub versions_deleted: usize,
    /// A shredded backup's: data key versions destroyed, and objects Object Lock keeps (what
    /// they hold of the erased keys is sealed under those versions).
    #[serde(default)]
    pub data_keys_destroyed: usize,
    #[serde(default)]
    pub objects_kept_locked: Vec<String>,
    /// Empty when verification found no match left anywhere.
    pub remaining: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOutcome {
    pub topic: String,
    pub partition: i32,
    pub segments_indexed: usize,
    pub segments_read: usize,
    /// Dry run: what would be erased. Otherwise: what was.
    pub segments: Vec<String>,
    pub offsets: Vec<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ErasureResponse {
    Prepared(Prepared),
    Destroyed(Destroyed),
    Progress(Progress),
    Decision(Decision),
    Report(ErasureReport),
}

pub struct ErasureSteps {
    config: BackupConfig,
    settings: MaintenanceSettings,
    objects: Arc<dyn ObjectStore>,
    index: Arc<dyn IndexStore>,
    keys: Arc<SegmentKeys>,
    operations: Arc<dyn OperationsBook>,
}

impl ErasureSteps {
    pub fn new(
        config: BackupConfig,
        settings: MaintenanceSettings,
        objects: Arc<dyn ObjectStore>,
        index: Arc<dyn IndexStore>,
        keys: Arc<SegmentKeys>,
        operations: Arc<dyn OperationsBook>,
    ) -> Self {
        ErasureSteps {
            config,
            settings,
            objects,
            index,
            keys,
            operations,
        }
    }

    pub async fn handle(&self, step: ErasureStep, deadline_ms: i64) -> Result<ErasureResponse> {
        match step {
            ErasureStep::Prepare { run_id, request } => self.prepare(&run_id, &request).await,
            ErasureStep::Destroy { run_id, request: _ } => self.destroy(&run_id).await,
            ErasureStep::Find {
                run_id,
                request,
                position,
            } => {
                let run = parse_run_id(&run_id)?;
                let (matchers, shredded) = self.matching(&run, &request).await?;
                let partitions = self.partitions(&request.topics).await?;
                let progress = step_through(&partitions, position, deadline_ms, |partition| {
                    let (run, matchers, shredded) = (&run, &matchers, shredded.as_ref());
                    async move {
                        let key = self.result_key(run, "findings", &partition);
                        if self.objects.get(&key).await?.is_some() {
                            return Ok(());
                        }
                        let horizon = self
                            .index
                            .checkpoint(&partition)
                            .await?
                            .map_or(0, |checkpoint| checkpoint.next_offset);
                        let findings = self
                            .eraser(run, matchers, shredded)
                            .find(&partition, horizon, now_ms())
                            .await?;
                        info!(%partition, records = findings.records(), read = findings.segments_read, "partition searched");
                        object_store::put_json_once(self.objects.as_ref(), &key, &findings)
                            .await?;
                        Ok(())
                    }
                })
                .await?;
                Ok(ErasureResponse::Progress(progress))
            }
            ErasureStep::Decide { run_id, request } => {
                let run = parse_run_id(&run_id)?;
                let findings = self.findings(&run).await?;
                // A shredded segment under Object Lock stays, and destroying the erased keys'
                // data keys erases its records; a plain one would keep them readable.
                let locked: Vec<String> = findings
                    .iter()
                    .flat_map(|found| &found.locked)
                    .filter(|locked| !locked.shredded)
                    .map(|locked| {
                        format!("{} until {}", locked.key, format_ms(locked.retain_until_ms))
                    })
                    .collect();
                if !locked.is_empty() {
                    return Err(tidemark_core::Error::ErasureRefused(format!(
                        "{} segment(s) holding matching records are under Object Lock compliance \
                         retention, which nobody can shorten: {}. Erase after the last of these \
                         dates (docs/privacy.md#object-lock-the-trade-off)",
                        locked.len(),
                        locked.join(", ")
                    ))
                    .into());
                }
                Ok(ErasureResponse::Decision(Decision {
                    partitions: findings.iter().filter(|f| !f.matches.is_empty()).count(),
                    segments: findings.iter().map(|f| f.matches.len()).sum(),
                    records: findings.iter().map(PartitionFindings::records).sum(),
                    dry_run: request.dry_run,
                    grace_seconds: request.grace_seconds,
                }))
            }
            ErasureStep::Erase {
                run_id,
                request,
                position,
            } => {
                let run = parse_run_id(&run_id)?;
                let (matchers, shredded) = self.matching(&run, &request).await?;
                let found = self.found(&run).await?;
                let partitions: Vec<PartitionId> = found.iter().map(|(p, _)| p.clone()).collect();
                let progress = step_through(&partitions, position, deadline_ms, |partition| {
                    let (run, matchers, found, shredded) =
                        (&run, &matchers, &found, shredded.as_ref());
                    async move {
                        let key = self.result_key(run, "erased", &partition);
                        if self.objects.get(&key).await?.is_some() {
                            return Ok(());
                        }
                        let horizon = found
                            .iter()
                            .find(|(p, _)| *p == partition)
                            .map_or(0, |(_, findings)| findings.horizon);
                        let tier = self.settings.tiers.tier(&partition.topic);
                        let tags = ObjectTags::from([(
                            RetentionTier::TAG.to_owned(),
                            tier.as_str().to_owned(),
                        )]);
                        let rewrites = self
                            .eraser(run, matchers, shredded)
                            .erase(&partition, horizon, &tags, now_ms())
                            .await?;
                        info!(%partition, segments = rewrites.len(), "partition erased");
                        object_store::put_json_once(self.objects.as_ref(), &key, &rewrites).await?;
                        Ok(())
                    }
                })
                .await?;
                Ok(ErasureResponse::Progress(progress))
            }
            ErasureStep::Purge {
                run_id,
                request,
                position,
            } => {
                let run = parse_run_id(&run_id)?;
                let (matchers, shredded) = self.matching(&run, &request).await?;
                let partitions: Vec<PartitionId> = self
                    .found(&run)
                    .await?
                    .into_iter()
                    .map(|(p, _)| p)
                    .collect();
                let progress = step_through(&partitions, position, deadline_ms, |partition| {
                    let (run, matchers, shredded) = (&run, &matchers, shredded.as_ref());
                    async move {
                        let key = self.result_key(run, "purged", &partition);
                        if self.objects.get(&key).await?.is_some() {
                            return Ok(());
                        }
                        let purged = self
                            .eraser(run, matchers, shredded)
                            .purge(&partition, now_ms())
                            .await?;
                        object_store::put_json_once(self.objects.as_ref(), &key, &purged).await?;
                        Ok(())
                    }
                })
                .await?;
                Ok(ErasureResponse::Progress(progress))
            }
            ErasureStep::Verify {
                run_id,
                request,
                position,
            } => {
                let run = parse_run_id(&run_id)?;
                let (matchers, shredded) = self.matching(&run, &request).await?;
                let found = self.found(&run).await?;
                let partitions: Vec<PartitionId> = found.iter().map(|(p, _)| p.clone()).collect();
                let progress = step_through(&partitions, position, deadline_ms, |partition| {
                    let (run, matchers, found, shredded) =
                        (&run, &matchers, &found, shredded.as_ref());
                    async move {
                        let horizon = found
                            .iter()
                            .find(|(p, _)| *p == partition)
                            .map_or(0, |(_, findings)| findings.horizon);
                        // Always checked afresh: a verification must look at what is there now.
                        let verified = self
                            .eraser(run, matchers, shredded)
                            .verify(&partition, horizon, now_ms())
                            .await?;
                        let key = self.result_key(run, "verified", &partition);
                        self.objects.delete(&key).await?;
                        object_store::put_json_once(self.objects.as_ref(), &key, &verified).await?;
                        Ok(())
                    }
                })
                .await?;
                Ok(ErasureResponse::Progress(progress))
            }
            ErasureStep::Report {
                run_id,
                request,
                execution,
            } => {
                let run = parse_run_id(&run_id)?;
                let report = self.report(&run, &request).await?;
                self.finish(&run, &request, execution, &report).await?;
                if !report.remaining.is_empty() {
                    return Err(MaintenanceError::ErasureIncomplete(format!(
                        "verification found matches still stored: {}",
                        report.remaining.join("; ")
                    )));
                }
                Ok(ErasureResponse::Report(report))
            }
        }
    }

    fn eraser<'a>(
        &'a self,
        run: &'a RunId,
        matchers: &'a Matchers,
        shredded: Option<&'a ShreddedErasure>,
    ) -> Eraser<'a> {
        Eraser {
            objects: self.objects.as_ref(),
            index: self.index.as_ref(),
            keys: &self.keys,
            layout: &self.config.store.layout,
            erasure: run,
            matchers,
            shredded,
            compression_level: self.settings.compression_level,
        }
    }

    fn prefix(&self, run: &RunId) -> String {
        self.config
            .store
            .layout
            .erasure_prefix(&self.config.backup_id, run)
    }

    fn result_key(&self, run: &RunId, kind: &str, partition: &PartitionId) -> String {
        partition.run_result_key(&format!("{}{kind}/", self.prefix(run)))
    }

    /// The backup's partitions of `topics`, in order; a topic it does not hold is an error.
    async fn partitions(&self, topics: &[String]) -> Result<Vec<PartitionId>> {
        let all = self.index.partitions(&self.config.backup_id).await?;
        for topic in topics {
            if !all.iter().any(|partition| partition.topic == *topic) {
                return Err(MaintenanceError::InvalidRequest(format!(
                    "topics: backup {} holds no topic {topic:?}",
                    self.config.backup_id
                )));
            }
        }
        Ok(all
            .into_iter()
            .filter(|partition| topics.contains(&partition.topic))
            .collect())
    }

    async fn read_all<T: DeserializeOwned>(&self, run: &RunId, kind: &str) -> Result<Vec<T>> {
        let mut all = Vec::new();
        for key in self
            .objects
            .list(&format!("{}{kind}/", self.prefix(run)))
            .await?
        {
            if let Some(value) = object_store::get_json(self.objects.as_ref(), &key).await? {
                all.push(value);
            }
        }
        Ok(all)
    }

    async fn findings(&self, run: &RunId) -> Result<Vec<PartitionFindings>> {
        self.read_all(run, "findings").await
    }

    /// The partitions where the find step found matches, with what it found.
    async fn found(&self, run: &RunId) -> Result<Vec<(PartitionId, PartitionFindings)>> {
        let mut found: Vec<_> = self
            .findings(run)
            .await?
            .into_iter()
            .filter(|findings| !findings.matches.is_empty())
            .map(|findings| {
                let partition = PartitionId {
                    generation: findings.generation,
                    ..PartitionId::new(
                        self.config.backup_id.clone(),
                        &findings.topic,
                        findings.partition,
                    )
                };
                (partition, findings)
            })
            .collect();
        found.sort_by_key(|(partition, _)| partition.to_string());
        Ok(found)
    }

    async fn report(&self, run: &RunId, request: &ErasureRequest) -> Result<ErasureReport> {
        let findings = self.findings(run).await?;
        let mut report = ErasureReport {
            erasure_id: run.to_string(),
            dry_run: request.dry_run,
            topics: request.topics.clone(),
            ..ErasureReport::default()
        };
        let rewrites: Vec<Vec<Rewrite>> = self.read_all(run, "erased").await?;
        let rewrites: Vec<Rewrite> = rewrites.into_iter().flatten().collect();
        for found in &findings {
            report.segments_read += found.segments_read;
            let mut outcome = PartitionOutcome {
                topic: found.topic.clone(),
                partition: found.partition,
                segments_indexed: found.segments_indexed,
                segments_read: found.segments_read,
                ..PartitionOutcome::default()
            };
            if request.dry_run {
                outcome.segments = found.matches.iter().map(|m| m.key.clone()).collect();
                outcome.offsets = found
                    .matches
                    .iter()
                    .flat_map(|m| m.offsets.clone())
                    .collect();
            } else {
                let prefix = self.config.store.layout.partition_prefix(&PartitionId {
                    generation: found.generation,
                    ..PartitionId::new(self.config.backup_id.clone(), &found.topic, found.partition)
                });
                for rewrite in rewrites.iter().filter(|r| r.old_key.starts_with(&prefix)) {
                    outcome.segments.push(rewrite.old_key.clone());
                    outcome.offsets.extend(&rewrite.erased_offsets);
                }
            }
            outcome.offsets.sort_unstable();
            outcome.offsets.dedup();
            report.segments_rewritten += outcome.segments.len();
            report.records_erased += outcome.offsets.len();
            if !outcome.segments.is_empty() {
                report.partitions.push(outcome);
            }
        }
        if !request.dry_run {
            let purged: Vec<PurgeReport> = self.read_all(run, "purged").await?;
            report.objects_deleted = purged.iter().map(|p| p.objects_deleted).sum();
            report.versions_deleted = purged.iter().map(|p| p.versions_deleted).sum();
            let verified: Vec<Verification> = self.read_all(run, "verified").await?;
            for verification in verified {
                report.remaining.extend(verification.remaining);
                report.objects_kept_locked.extend(verification.kept_locked);
            }
            let (destroyed, left) = self.retired_versions(run).await?;
            report.data_keys_destroyed = destroyed;
            report.remaining.extend(left);
        }
        report
            .partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(report)
    }

    /// Writes the report, the audit record and the metrics.
    async fn finish(
        &self,
        run: &RunId,
        request: &ErasureRequest,
        execution: Option<String>,
        report: &ErasureReport,
    ) -> Result<()> {
        let report_key = format!("{}report.json", self.prefix(run));
        self.objects.delete(&report_key).await?;
        object_store::put_json_once(self.objects.as_ref(), &report_key, report).await?;
        let outcome = match (request.dry_run, report.remaining.is_empty()) {
            (true, _) => Outcome::Planned,
            (false, true) => Outcome::Succeeded,
            (false, false) => Outcome::Failed,
        };
        // The audit record names what was erased by count only: the matchers are the very
        // data the erasure removes.
        let audited_request = serde_json::json!({
            "topics": request.topics,
            "matchers": request.matchers.len(),
            "dry_run": request.dry_run,
            "requested_by": request.requested_by,
        });
        let record = AuditRecord::ended(
            Operation::Erasure,
            run.to_string(),
            &audited_request,
            execution,
            outcome,
            format!(
                "{} records in {} segments of {} partitions {}; {} objects ({} versions) deleted",
                report.records_erased,
                report.segments_rewritten,
                report.partitions.len(),
                if request.dry_run {
                    "would be erased"
                } else {
                    "erased"
                },
                report.objects_deleted,
                report.versions_deleted
            ),
        )
        .with_report_key(Some(report_key))
        .with_backup_id(Some(self.config.backup_id.to_string()));
        record_audit(
            self.objects.as_ref(),
            self.operations.as_ref(),
            &self.config.store.layout,
            &record,
        )
        .await?;
        if !request.dry_run {
            MetricsLine::new(&self.config.metrics_namespace)
                .dimension("BackupId", &self.config.backup_id)
                .metric("RecordsErased", Unit::Count, report.records_erased as f64)
                .metric(
                    "ErasuresFailed",
                    Unit::Count,
                    f64::from(u8::from(!report.remaining.is_empty())),
                )
                .emit(now_ms());
        }
        Ok(())
    }
}

mod shredded;
