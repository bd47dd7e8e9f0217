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

use serde::Serialize;

pub use partition::{PartitionCheck, validate_partition};
pub use rebuild::{RebuildReport, rebuild_partition};

use crate::error::Result;
use crate::layout::{BackupId, StorageLayout};
use crate::object_store::ObjectStore;

/// How much a validation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Depth {
    /// The index, the S3 listing and the gaps: no segment is read.
    Listing,
    /// Also every segment, checked byte for byte and decoded record by record.
    Deep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Warning,
    Error,
}

/// One thing validation found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        field: &'static str,
        index: String,
        stored: String,
    },
    /// Offsets below the checkpoint that no segment and no recorded gap covers.
    UnrecordedGap { start: i64, end: i64 },
}

impl Finding {
    pub fn severity(&self) -> Severity {
        match self {
            Finding::UnindexedSegment { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// Every partition a backup holds segments for, from the S3 listing alone: `(topic, partitions)`
/// in name order.
pub async fn backed_up_partitions(
    objects: &dyn ObjectStore,
    layout: &StorageLayout,
    backup_id: &BackupId,
) -> Result<Vec<(String, Vec<i32>)>> {
    let topics_prefix = layout.topics_prefix(backup_id);
    let mut topics = Vec::new();
    for topic_prefix in objects.list_prefixes(&topics_prefix).await? {
        let topic = topic_prefix[topics_prefix.len()..].trim_end_matches('/');
        let mut partitions: Vec<i32> = objects
            .list_prefixes(&topic_prefix)
            .await?
            .iter()
            .filter_map(|prefix| {
                prefix[topic_prefix.len()..]
                    .trim_end_matches('/')
                    .strip_prefix("partition=")?
                    .parse()
                    .ok()
            })
            .collect();
        partitions.sort_unstable();
        if !partitions.is_empty() {
            topics.push((topic.to_owned(), partitions));
        }
    }
    Ok(topics)
}

#[cfg(test)]
mod tests;
