//! `validate BACKUP [--deep] [--topic T]...`: the validation library run from here, read-only.

use serde::Serialize;
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::validation::{
    Depth, Severity, Tally, partitions_to_validate, select_topics, validate_partition,
};

use crate::error::{CliError, Result};
use crate::output::{Render, count};
use tidemark_core::stores::BackupStores;

#[derive(Debug, Serialize)]
pub struct Validation {
    pub backup_id: String,
    pub depth: Depth,
    #[serde(flatten)]
    pub tally: Tally,
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
            count(self.tally.partitions, "partition"),
            count(self.tally.segments, "segment"),
            if self.depth == Depth::Deep {
                format!(", {} records read", self.tally.records_read)
            } else {
                String::new()
            },
            count(self.tally.errors, "error"),
            count(self.tally.warnings, "warning")
        );
        for located in &self.tally.findings {
            out += &format!(
                "  {} {}: {}\n",
                match located.severity {
                    Severity::Error => "error  ",
                    Severity::Warning => "warning",
                },
                PartitionId::place(&located.topic, located.partition, located.generation),
                located.finding.describe()
            );
        }
        out
    }
}

pub async fn validate(
    deployment: &BackupStores,
    backup_id: &BackupId,
    deep: bool,
    topics: &[String],
) -> Result<Validation> {
    let all = partitions_to_validate(
        deployment.objects.as_ref(),
        deployment.index.as_ref(),
        &deployment.layout,
        backup_id,
    )
    .await?;
    if all.is_empty() {
        return Err(CliError::Input(format!("backup {backup_id} holds nothing")));
    }
    let selected =
        select_topics(all, (!topics.is_empty()).then_some(topics)).map_err(|unknown| {
            CliError::Input(format!("topics {unknown:?} are not in backup {backup_id}"))
        })?;
    let depth = if deep { Depth::Deep } else { Depth::Listing };
    let mut validation = Validation {
        backup_id: backup_id.to_string(),
        depth,
        tally: Tally::default(),
    };
    for partition in &selected {
        let check = validate_partition(
            deployment.objects.as_ref(),
            deployment.index.as_ref(),
            &deployment.keys,
            &deployment.layout,
            partition,
            depth,
        )
        .await?;
        validation.tally.add(check);
    }
    Ok(validation)
}
