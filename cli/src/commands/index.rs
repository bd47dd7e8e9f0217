//! `index rebuild BACKUP`: the index from S3 alone (invariant 5), through the writer's rules.

use serde::Serialize;
use tidemark_core::layout::BackupId;
use tidemark_core::operations::{AuditRecord, Caller, Operation, Outcome, record_audit};
use tidemark_core::validation::{RebuildReport, backed_up_partitions, rebuild_partition};

use crate::error::{CliError, Result};
use crate::output::{Render, count};
use tidemark_core::stores::BackupStores;

#[derive(Debug, Serialize)]
pub struct Rebuilt {
    pub backup_id: String,
    pub partitions: Vec<RebuildReport>,
}

impl Render for Rebuilt {
    fn text(&self) -> String {
        let mut out = format!(
            "backup {}: index rebuilt from S3 for {}\n",
            self.backup_id,
            count(self.partitions.len(), "partition")
        );
        for p in &self.partitions {
            out += &format!(
                "  {}-{}  {} recorded  next offset {}{}{}\n",
                p.topic,
                p.partition,
                count(p.segments, "segment"),
                p.next_offset.map_or("-".into(), |next| next.to_string()),
                if p.gaps.is_empty() {
                    String::new()
                } else {
                    let gaps: Vec<String> =
                        p.gaps.iter().map(|(a, b)| format!("{a}..={b}")).collect();
                    format!("  gaps {}", gaps.join(", "))
                },
                if p.findings.is_empty() {
                    String::new()
                } else {
                    let skipped: Vec<String> = p.findings.iter().map(|f| f.describe()).collect();
                    format!("\n    skipped: {}", skipped.join("; "))
                }
            );
        }
        out
    }
}

/// Rebuilds the index and writes the audit record (`identity`: who ran it, per STS).
pub async fn rebuild(
    deployment: &BackupStores,
    backup_id: &BackupId,
    identity: Option<String>,
) -> Result<Rebuilt> {
    let topics =
        backed_up_partitions(deployment.objects.as_ref(), &deployment.layout, backup_id).await?;
    if topics.is_empty() {
        return Err(CliError::Input(format!(
            "backup {backup_id} has no segments in s3://{}/{}",
            deployment.bucket,
            deployment.layout.topics_prefix(backup_id)
        )));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut partitions = Vec::new();
    for id in topics {
        partitions.push(
            rebuild_partition(
                deployment.objects.as_ref(),
                deployment.index.as_ref(),
                &deployment.layout,
                &id,
                now_ms,
            )
            .await?,
        );
    }
    let segments: usize = partitions.iter().map(|p| p.segments).sum();
    let finished = chrono::Utc::now().timestamp_millis();
    record_audit(
        deployment.objects.as_ref(),
        deployment.operations.as_ref(),
        &deployment.layout,
        &AuditRecord {
            operation: Operation::IndexRebuild,
            id: format!("{backup_id}-{now_ms}"),
            backup_id: Some(backup_id.to_string()),
            caller: Caller {
                identity,
                execution: None,
            },
            started_at_ms: Some(now_ms),
            finished_at_ms: finished,
            outcome: Outcome::Succeeded,
            what: serde_json::json!({"backup_id": backup_id.to_string()}),
            detail: format!(
                "index rebuilt from S3: {} partitions, {segments} segments recorded",
                partitions.len()
            ),
            report_key: None,
        },
    )
    .await?;
    Ok(Rebuilt {
        backup_id: backup_id.to_string(),
        partitions,
    })
}
