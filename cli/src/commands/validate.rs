//! `validate BACKUP [--deep] [--topic T]...`: the validation library run from here, read-only.

use serde::Serialize;
use tidemark_core::layout::BackupId;
use tidemark_core::validation::{
    Depth, Finding, Severity, partitions_to_validate, validate_partition,
};

use super::Deployment;
use crate::error::{CliError, Result};
use crate::output::{Render, count};

#[derive(Debug, Serialize)]
pub struct Validation {
    pub backup_id: String,
    pub depth: Depth,
    pub partitions: usize,
    pub segments: usize,
    pub records_read: u64,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Located>,
}

#[derive(Debug, Serialize)]
pub struct Located {
    pub topic: String,
    pub partition: i32,
    pub severity: Severity,
    #[serde(flatten)]
    pub finding: Finding,
}

impl Render for Validation {
    fn text(&self) -> String {
        let mut out = format!(
            "backup {} ({} check): {}, {}{}: {}, {}\n",
            self.backup_id,
            match self.depth {
                Depth::Deep => "deep",
                Depth::Listing => "listing",
            },
            count(self.partitions, "partition"),
            count(self.segments, "segment"),
            if self.depth == Depth::Deep {
                format!(", {} records read", self.records_read)
            } else {
                String::new()
            },
            count(self.errors, "error"),
            count(self.warnings, "warning")
        );
        for located in &self.findings {
            out += &format!(
                "  {} {}-{}: {}\n",
                match located.severity {
                    Severity::Error => "error  ",
                    Severity::Warning => "warning",
                },
                located.topic,
                located.partition,
                located.finding.describe()
            );
        }
        out
    }
}

pub async fn validate(
    deployment: &Deployment,
    backup_id: &BackupId,
    deep: bool,
    topics: &[String],
) -> Result<Validation> {
    let all = partitions_to_validate(
        &deployment.objects,
        &deployment.index,
        &deployment.layout,
        backup_id,
    )
    .await?;
    let unknown: Vec<&String> = topics
        .iter()
        .filter(|topic| !all.iter().any(|p| &p.topic == *topic))
        .collect();
    if all.is_empty() || !unknown.is_empty() {
        return Err(CliError::Input(if all.is_empty() {
            format!("backup {backup_id} holds nothing")
        } else {
            format!("topics {unknown:?} are not in backup {backup_id}")
        }));
    }
    let depth = if deep { Depth::Deep } else { Depth::Listing };
    let mut validation = Validation {
        backup_id: backup_id.to_string(),
        depth,
        partitions: 0,
        segments: 0,
        records_read: 0,
        errors: 0,
        warnings: 0,
        findings: Vec::new(),
    };
    for partition in all
        .iter()
        .filter(|p| topics.is_empty() || topics.contains(&p.topic))
    {
        let check = validate_partition(
            &deployment.objects,
            &deployment.index,
            &deployment.keys,
            &deployment.layout,
            partition,
            depth,
        )
        .await?;
        validation.partitions += 1;
        validation.segments += check.segments;
        validation.records_read += check.records_read;
        for finding in check.findings {
            let severity = finding.severity();
            match severity {
                Severity::Error => validation.errors += 1,
                Severity::Warning => validation.warnings += 1,
            }
            validation.findings.push(Located {
                topic: check.topic.clone(),
                partition: check.partition,
                severity,
                finding,
            });
        }
    }
    Ok(validation)
}
