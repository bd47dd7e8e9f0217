//! Validation of a backup: the index against S3 (orphans either way), offset continuity against
//! the recorded gaps, and — deep — every segment re-read: checksums, decoding, record counts
//! against the index. Also rebuilding the index from S3 alone (invariant 5).
//!
//! Findings are facts with a severity: an error means a restore could lose or invent records
//! (a missing or damaged segment, an unrecorded hole, an index that lies); a warning is harmless
//! to restores but worth knowing (a segment the index does not list, left by a crash between the
//! segment write and its commit). Recorded gaps are not findings (invariant 4); they are listed.

mod partition;
mod rebuild;

use serde::{Deserialize, Serialize};

pub use partition::{PartitionCheck, validate_partition};
pub use rebuild::{RebuildReport, rebuild_partition};

use crate::error::Result;
use crate::index::IndexStore;
use crate::layout::{BackupId, PartitionId, StorageLayout};
use crate::object_store::ObjectStore;

/// How much a validation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Depth {
    /// The index, the S3 listing and the gaps: no segment is read.
    Listing,
    /// Also every segment, checked byte for byte and decoded record by record.
    Deep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Warning,
    Error,
}

/// One thing validation found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// The index lists a segment S3 does not hold: its records are lost to a restore.
    MissingSegment { key: String },
    /// S3 holds a segment the index does not list (a crash after the write, before the commit).
    UnindexedSegment {
        key: String,
        first_offset: i64,
        last_offset: i64,
    },
    /// A segment that does not read back: damaged bytes, a bad header, a body that does not
    /// decompress or open.
    CorruptSegment { key: String, reason: String },
    /// A segment whose stored header or size disagrees with its index entry.
    IndexMismatch {
        key: String,
        field: String,
        index: String,
        stored: String,
    },
    /// Offsets below the checkpoint that no segment and no recorded gap covers.
    UnrecordedGap { start: i64, end: i64 },
}

impl Finding {
    /// One line for an operator: what is wrong, and where.
    pub fn describe(&self) -> String {
        match self {
            Finding::MissingSegment { key } => format!("{key} is indexed but not in S3"),
            Finding::UnindexedSegment { key, .. } => format!("{key} is in S3 but not indexed"),
            Finding::CorruptSegment { key, reason } => {
                format!("{key} does not read back: {reason}")
            }
            Finding::IndexMismatch {
                key,
                field,
                index,
                stored,
            } => format!("{key}: the index says {field} {index}, the segment {stored}"),
            Finding::UnrecordedGap { start, end } => {
                format!("offsets {start}..={end} are in no segment and no recorded gap")
            }
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Finding::UnindexedSegment { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// Every partition of every topic generation a backup holds segments for, from the S3 listing
/// alone, in (topic, generation, partition) order.
pub async fn backed_up_partitions(
    objects: &dyn ObjectStore,
    layout: &StorageLayout,
    backup_id: &BackupId,
) -> Result<Vec<PartitionId>> {
    let partition_of = |folder: &str| -> Option<i32> {
        folder
            .trim_end_matches('/')
            .strip_prefix("partition=")?
            .parse()
            .ok()
    };
    let topics_prefix = layout.topics_prefix(backup_id);
    let mut found = Vec::new();
    for topic_prefix in objects.list_prefixes(&topics_prefix).await? {
        let topic = topic_prefix[topics_prefix.len()..].trim_end_matches('/');
        for folder in objects.list_prefixes(&topic_prefix).await? {
            let name = &folder[topic_prefix.len()..];
            if let Some(partition) = partition_of(name) {
                found.push(PartitionId::new(backup_id.clone(), topic, partition));
            } else if let Some(generation) = StorageLayout::parse_generation_folder(name) {
                for inner in objects.list_prefixes(&folder).await? {
                    if let Some(partition) = partition_of(&inner[folder.len()..]) {
                        found.push(
                            PartitionId::new(backup_id.clone(), topic, partition)
                                .in_generation(generation),
                        );
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| {
        (&a.topic, a.generation, a.partition).cmp(&(&b.topic, b.generation, b.partition))
    });
    Ok(found)
}

/// Totals and located findings over a run's partition checks: what a validation reports, in the
/// validator's report and in the CLI alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub partitions: usize,
    pub segments: usize,
    pub records: u64,
    pub stored_bytes: u64,
    pub records_read: u64,
    pub bytes_read: u64,
    pub recorded_gaps: usize,
    pub errors: usize,
    pub warnings: usize,
    /// Every finding, with its partition.
    pub findings: Vec<LocatedFinding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedFinding {
    pub topic: String,
    pub partition: i32,
    /// The topic's generation (0, the first topic the backup saw, is left out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    pub severity: Severity,
    #[serde(flatten)]
    pub finding: Finding,
}

impl Tally {
    pub fn add(&mut self, check: PartitionCheck) {
        self.partitions += 1;
        self.segments += check.segments;
        self.records += check.records;
        self.stored_bytes += check.stored_bytes;
        self.records_read += check.records_read;
        self.bytes_read += check.bytes_read;
        self.recorded_gaps += check.gaps.len();
        for finding in check.findings {
            let severity = finding.severity();
            match severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
            }
            self.findings.push(LocatedFinding {
                topic: check.topic.clone(),
                partition: check.partition,
                generation: check.generation,
                severity,
                finding,
            });
        }
    }
}

/// The partitions of `topics` among `all` (all of them when `topics` is `None`), or the topics
/// that are not there.
pub fn select_topics(
    all: Vec<PartitionId>,
    topics: Option<&[String]>,
) -> std::result::Result<Vec<PartitionId>, Vec<String>> {
    let Some(topics) = topics else {
        return Ok(all);
    };
    let unknown: Vec<String> = topics
        .iter()
        .filter(|topic| !all.iter().any(|partition| &partition.topic == *topic))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok(all
        .into_iter()
        .filter(|partition| topics.contains(&partition.topic))
        .collect())
}

/// Every partition a validation of `backup_id` must look at: those S3 holds segments for, and
/// those the index has a checkpoint for (a partition whose every segment is gone is found only
/// there). Ordered by topic, then partition.
pub async fn partitions_to_validate(
    objects: &dyn ObjectStore,
    index: &dyn IndexStore,
    layout: &StorageLayout,
    backup_id: &BackupId,
) -> Result<Vec<PartitionId>> {
    let all: std::collections::BTreeSet<(String, u32, i32)> = index
        .partitions(backup_id)
        .await?
        .into_iter()
        .chain(backed_up_partitions(objects, layout, backup_id).await?)
        .map(|partition| (partition.topic, partition.generation, partition.partition))
        .collect();
    Ok(all
        .into_iter()
        .map(|(topic, generation, partition)| {
            PartitionId::new(backup_id.clone(), topic, partition).in_generation(generation)
        })
        .collect())
}

#[cfg(test)]
mod tests;

fn is_zero(generation: &u32) -> bool {
    *generation == 0
}
