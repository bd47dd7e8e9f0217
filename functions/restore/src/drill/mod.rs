//! The recovery drill (`statemachines/drill.asl.json`): restore chosen topics of a backup into
//! scratch topics, compare them with the backup record by record, check where chosen groups
//! would land, delete the scratch topics, and write the evidence with the measured RTO and RPO.
//!
//! The restore itself is the restore state machine, run as a child execution under the
//! drill's name: a drill proves the path a real recovery takes.

pub mod read;
pub mod report;
mod request;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::TopicPartition;
use tidemark_core::layout::{BackupId, PartitionId, RestoreId};
use tidemark_core::offset_map::RestoreOffsetMapping;

use crate::error::{RestoreError, Result};
use crate::plan::{PartitionTask, RestorePlan};
use crate::request::{CutMode, RestoreRequest};
use crate::target::TargetConnector;
pub use request::{DrillPlan, DrillRequest, DrillTopics, Prepared, TargetSpec, Tier};
use tidemark_core::stores::BackupStores;
use verify::PartitionEvidence;

/// One step's input; the state machine passes the execution's name as `drill_id`.
#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum DrillStep {
    Prepare {
        drill_id: String,
        #[serde(default)]
        execution: Option<String>,
        /// `$$.Execution.StartTime`.
        #[serde(default)]
        started_at: Option<String>,
        request: serde_json::Value,
    },
    VerifyPartition {
        drill_id: String,
        backup_id: String,
        task: PartitionTask,
    },
    Cleanup {
        drill_id: String,
        backup_id: String,
    },
    Report {
        drill_id: String,
        #[serde(default)]
        execution: Option<String>,
        #[serde(default)]
        started_at: Option<String>,
        /// The whole state: the request, and what each state left or why it failed.
        state: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaned {
    pub deleted: Vec<String>,
}

pub struct Drill {
    pub backup: BackupStores,
    pub connector: Arc<dyn TargetConnector>,
    /// The function's own cluster, the target when a request names none.
    pub default_target: Option<TargetSpec>,
    pub metrics_namespace: String,
}

fn invalid(message: impl Into<String>) -> RestoreError {
    RestoreError::InvalidRequest(format!("drill: {}", message.into()))
}

fn ids(backup_id: &str, drill_id: &str) -> Result<(BackupId, RestoreId)> {
    Ok((
        BackupId::parse(backup_id).map_err(|error| invalid(format!("backup_id: {error}")))?,
        RestoreId::parse(drill_id).map_err(|error| invalid(error.to_string()))?,
    ))
}

/// `$$.Execution.StartTime` in milliseconds; now when absent or unreadable.
pub fn start_time_ms(started_at: Option<&str>) -> i64 {
    started_at
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map_or_else(crate::coordinator::now_ms, |time| time.timestamp_millis())
}

impl Drill {
    pub async fn handle(&self, step: DrillStep) -> Result<serde_json::Value> {
        match step {
            DrillStep::Prepare {
                drill_id,
                execution,
                started_at,
                request,
            } => Ok(to_json(
                self.prepare(
                    &drill_id,
                    execution,
                    start_time_ms(started_at.as_deref()),
                    &request,
                )
                .await?,
            )),
            DrillStep::VerifyPartition {
                drill_id,
                backup_id,
                task,
            } => {
                let evidence = self.verify(&drill_id, &backup_id, &task).await?;
                Ok(serde_json::json!({
                    "partition": PartitionId::place(&task.source_topic, task.partition, task.generation),
                    "passed": evidence.passed(),
                }))
            }
            DrillStep::Cleanup {
                drill_id,
                backup_id,
            } => Ok(to_json(self.cleanup(&drill_id, &backup_id).await?)),
            DrillStep::Report {
                drill_id,
                execution,
                started_at,
                state,
            } => Ok(to_json(
                report::report(
                    self,
                    &drill_id,
                    execution,
                    start_time_ms(started_at.as_deref()),
                    &state,
                )
                .await?,
            )),
        }
    }

    fn key(&self, backup_id: &BackupId, drill_id: &RestoreId, name: &str) -> String {
        format!(
            "{}{name}",
            self.backup.layout.drill_prefix(backup_id, drill_id)
        )
    }

    pub async fn load_plan(
        &self,
        backup_id: &BackupId,
        drill_id: &RestoreId,
    ) -> Result<Option<DrillPlan>> {
        Ok(self
            .backup
            .get_json(&self.key(backup_id, drill_id, "drill.json"))
            .await?)
    }

    async fn prepare(
        &self,
        drill_id: &str,
        execution: Option<String>,
        started_at_ms: i64,
        raw: &serde_json::Value,
    ) -> Result<Prepared> {
        let request: DrillRequest =
            serde_json::from_value(raw.clone()).map_err(|error| invalid(error.to_string()))?;
        let (backup_id, restore_id) = ids(&request.backup_id, drill_id)?;
        let target = request
            .target
            .clone()
            .or_else(|| self.default_target.clone())
            .ok_or_else(|| {
                invalid("target: required, because the drill function has no cluster of its own")
            })?;
        if request.topics.include.is_empty() {
            return Err(invalid("topics.include: name at least one topic pattern"));
        }
        let scratch_prefix = format!("{}{drill_id}.", request.scratch_prefix);
        let (cut_mode, cut_at_ms) = match &request.cut {
            Some(cut) => (cut.mode, cut.at.to_millis("cut.at").map_err(invalid)?),
            // Everything the backup had reached when the drill started.
            None => (CutMode::Consistent, started_at_ms),
        };
        let requested_by = request.requested_by.clone();
        let restore_input = serde_json::json!({
            "backup_id": request.backup_id,
            "target": target,
            "topics": {
                "include": request.topics.include,
                "exclude": request.topics.exclude,
                "target_prefix": scratch_prefix,
            },
            "cut": {"mode": cut_mode, "at": cut_at_ms},
            "groups": request.groups,
            "move_groups": false,
            "topic_creation": "create",
            // The drill deletes the scratch topics itself, after reading what was restored.
            "rollback_deletes_created_topics": false,
            "requested_by": format!(
                "drill {drill_id}, requested by {}",
                requested_by.as_deref().unwrap_or("an unrecorded caller")
            ),
        });
        // The restore's own checks, before anything starts.
        RestoreRequest::from_json(&restore_input)?.validate()?;
        let settings = target.settings().map_err(invalid)?;
        let cluster = self.connector.cluster(&settings).await?;
        let leftovers: Vec<String> = cluster
            .topics()
            .await?
            .into_iter()
            .map(|topic| topic.name)
            .filter(|name| name.starts_with(&scratch_prefix))
            .collect();
        if !leftovers.is_empty() {
            return Err(RestoreError::Refused(format!(
                "scratch topics {leftovers:?} exist already; the drill only deletes what it creates"
            )));
        }
        let plan = DrillPlan {
            drill_id: drill_id.to_owned(),
            backup_id: request.backup_id.clone(),
            started_at_ms,
            cut_mode,
            cut_at_ms,
            scratch_prefix,
            target,
            topics: request.topics,
            groups: request.groups,
            tier: request.tier,
            requested_by,
            execution,
            restore_input,
        };
        let plan = self
            .backup
            .put_json_once(&self.key(&backup_id, &restore_id, "drill.json"), &plan)
            .await?;
        Ok(Prepared {
            restore_input: plan.restore_input,
            bucket: self.backup.bucket.clone(),
            partitions_key: self
                .backup
                .layout
                .restore_partitions_key(&backup_id, &restore_id),
        })
    }

    /// The drill's restore's plan, once it planned.
    async fn restore_plan(
        &self,
        backup_id: &BackupId,
        drill_id: &RestoreId,
    ) -> Result<Option<RestorePlan>> {
        Ok(self
            .backup
            .get_json(&self.backup.layout.restore_plan_key(backup_id, drill_id))
            .await?)
    }

    async fn verify(
        &self,
        drill_id: &str,
        backup_id: &str,
        task: &PartitionTask,
    ) -> Result<PartitionEvidence> {
        let (backup_id, drill_id) = ids(backup_id, drill_id)?;
        let key = self.key(
            &backup_id,
            &drill_id,
            &format!(
                "partitions/{}.json",
                PartitionId::place(&task.source_topic, task.partition, task.generation)
            ),
        );
        if let Some(evidence) = self.backup.get_json(&key).await? {
            return Ok(evidence);
        }
        let plan = self
            .load_plan(&backup_id, &drill_id)
            .await?
            .ok_or_else(|| RestoreError::Refused(format!("drill {drill_id} was not prepared")))?;
        // Groups are checked from the restore's plan and offset mapping: read only when the
        // drill checks groups (every partition's step would read both whole).
        let restore_plan = if plan.groups.is_empty() {
            None
        } else {
            self.restore_plan(&backup_id, &drill_id).await?
        };
        let committed: BTreeMap<String, i64> = restore_plan
            .iter()
            .flat_map(|plan| &plan.groups)
            .filter_map(|group| {
                group
                    .source_offsets
                    .iter()
                    .find(|offset| {
                        offset.topic == task.source_topic && offset.partition == task.partition
                    })
                    .map(|offset| (group.group.clone(), offset.offset))
            })
            .collect();
        let mapping: Option<RestoreOffsetMapping> = match restore_plan {
            Some(_) => {
                self.backup
                    .get_json(
                        &self
                            .backup
                            .layout
                            .restore_offset_mapping_key(&backup_id, &drill_id),
                    )
                    .await?
            }
            None => None,
        };
        let settings = plan.target.settings().map_err(invalid)?;
        let cluster = self.connector.cluster(&settings).await?;
        let exists = cluster
            .describe_topics(std::slice::from_ref(&task.target_topic))
            .await?
            .iter()
            .any(|topic| topic.name == task.target_topic);
        let target_end = if exists {
            cluster
                .watermarks(&[TopicPartition::new(&task.target_topic, task.partition)])
                .await?
                .first()
                .map_or(task.target_base, |watermarks| watermarks.high)
        } else {
            task.target_base
        };
        let reader = self.connector.reader(&settings).await?;
        let evidence = verify::verify_partition(
            &self.backup,
            &backup_id,
            reader.as_ref(),
            task,
            target_end,
            &committed,
            mapping.as_ref(),
            crate::coordinator::now_ms,
        )
        .await?;
        tracing::info!(topic = %task.source_topic, partition = task.partition, records = evidence.records, passed = evidence.passed(), "partition verified");
        Ok(self.backup.put_json_once(&key, &evidence).await?)
    }

    /// Deletes the scratch topics the drill's restore created (its intent marks say which),
    /// then checks that none is left.
    async fn cleanup(&self, drill_id: &str, backup_id: &str) -> Result<Cleaned> {
        let (backup_id, drill_id) = ids(backup_id, drill_id)?;
        let Some(plan) = self.load_plan(&backup_id, &drill_id).await? else {
            return Ok(Cleaned {
                deleted: Vec::new(),
            });
        };
        let settings = plan.target.settings().map_err(invalid)?;
        let cluster = self.connector.cluster(&settings).await?;
        // Without a restore plan the restore created nothing.
        let created: Vec<String> = match self.restore_plan(&backup_id, &drill_id).await? {
            Some(restore) => crate::coordinator::topics::created_topics(&self.backup, &restore)
                .await?
                .into_iter()
                .filter(|topic| topic.starts_with(&plan.scratch_prefix))
                .collect(),
            None => Vec::new(),
        };
        let scratch = |cluster_topics: Vec<tidemark_core::kafka::TopicDescription>| -> Vec<String> {
            cluster_topics
                .into_iter()
                .map(|topic| topic.name)
                .filter(|name| name.starts_with(&plan.scratch_prefix))
                .collect()
        };
        let existing = scratch(cluster.topics().await?);
        let mut deleted = Vec::new();
        for topic in created.iter().filter(|topic| existing.contains(topic)) {
            cluster.delete_topic(topic).await?;
            deleted.push(topic.clone());
        }
        let left = scratch(cluster.topics().await?);
        if !left.is_empty() {
            return Err(RestoreError::TargetChanged(format!(
                "scratch topics {left:?} remain after the drill's cleanup; topics not created by \
                 the drill's restore are never deleted"
            )));
        }
        tracing::info!(?deleted, "scratch topics deleted");
        Ok(Cleaned { deleted })
    }
}

fn to_json<T: Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).expect("drill results serialise")
}
