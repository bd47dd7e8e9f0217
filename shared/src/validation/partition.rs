//! Validating one partition: the index against the S3 listing, the offsets against the gaps,
//! and (deep) every segment read back.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Depth, Finding};
use crate::error::{Error, Result};
use crate::index::{IndexStore, SegmentEntry};
use crate::keys::SegmentKeys;
use crate::layout::{PartitionId, SEGMENT_SUFFIX, StorageLayout};
use crate::object_store::{ObjectInfo, ObjectStore};
use crate::segment::{SegmentHeader, SegmentReader, verify_stored_segment};

/// Segments read and decoded at once in a deep validation: S3 latency overlaps decoding, and
/// decoding uses every core.
const CONCURRENT_READS: usize = 4;

/// What validation found for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCheck {
    pub topic: String,
    pub partition: i32,
    /// The topic's generation (0, the first topic the backup saw, is left out).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub generation: u32,
    /// The checkpoint's range: every offset in `start..next` must be in a segment or a gap.
    pub start_offset: Option<i64>,
    pub next_offset: Option<i64>,
    pub segments: usize,
    /// Records the index says the segments hold.
    pub records: u64,
    pub stored_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Recorded gaps `(start, end)`, inclusive: facts, not findings.
    pub gaps: Vec<(i64, i64)>,
    /// Records decoded and bytes read (deep only).
    pub records_read: u64,
    pub bytes_read: u64,
    pub findings: Vec<Finding>,
}

/// Validates `partition` of a backup. Store and key-service failures are errors (the check
/// could not be made); what is wrong with the backup itself comes back as findings.
pub async fn validate_partition(
    objects: &dyn ObjectStore,
    index: &dyn IndexStore,
    keys: &SegmentKeys,
    layout: &StorageLayout,
    partition: &PartitionId,
    depth: Depth,
) -> Result<PartitionCheck> {
    let entries = index.segments(partition).await?;
    let gaps = index.gaps(partition).await?;
    let checkpoint = index.checkpoint(partition).await?;
    let listed: BTreeMap<String, ObjectInfo> = objects
        .list_objects(&layout.partition_prefix(partition))
        .await?
        .into_iter()
        .filter(|object| object.key.ends_with(SEGMENT_SUFFIX))
        .map(|object| (object.key.clone(), object))
        .collect();

    let mut findings = Vec::new();
    let mut present = Vec::new();
    for entry in &entries {
        match listed.get(&entry.key) {
            None => findings.push(Finding::MissingSegment {
                key: entry.key.clone(),
            }),
            Some(object) => {
                if object.size != entry.stored_bytes {
                    findings.push(mismatch(
                        entry,
                        "stored_bytes",
                        entry.stored_bytes,
                        object.size,
                    ));
                }
                present.push(entry);
            }
        }
    }
    // Segments a compaction replaced stay in S3 for their grace period: expected, not orphans.
    let retired = index.retired_segments(partition).await?;
    let indexed: std::collections::HashSet<&str> = entries
        .iter()
        .map(|entry| entry.key.as_str())
        .chain(retired.iter().map(|retired| retired.key.as_str()))
        .collect();
    let unindexed: Vec<String> = listed
        .keys()
        .filter(|key| !indexed.contains(key.as_str()))
        .cloned()
        .collect();
    // An erasure of a shredded backup leaves what Object Lock holds: expected, and unreadable.
    let kept = crate::erasure::kept_by_object_lock(
        objects,
        layout,
        partition,
        &unindexed,
        chrono::Utc::now().timestamp_millis(),
    )
    .await?;
    for key in unindexed.iter().filter(|key| !kept.contains(*key)) {
        let (first_offset, last_offset) =
            StorageLayout::parse_segment_file_name(key).unwrap_or((-1, -1));
        findings.push(Finding::UnindexedSegment {
            key: key.clone(),
            first_offset,
            last_offset,
        });
    }
    if let Some(checkpoint) = &checkpoint {
        // A missing segment is already an error of its own; its range is not reported twice.
        let covered = entries
            .iter()
            .map(|entry| (entry.first_offset, entry.last_offset))
            .chain(gaps.iter().map(|gap| (gap.start, gap.end)));
        for (start, end) in
            uncovered_ranges(checkpoint.start_offset, checkpoint.next_offset, covered)
        {
            findings.push(Finding::UnrecordedGap { start, end });
        }
    }

    let mut records_read = 0;
    let mut bytes_read = 0;
    if depth == Depth::Deep {
        // Fetching and decoding overlap across segments (decoding runs on blocking threads);
        // results come back in index order.
        let mut checks = futures::stream::iter(present)
            .map(|entry| async move {
                let Some(stored) = objects.get(&entry.key).await? else {
                    // Deleted between the listing and the read.
                    return Ok((
                        0,
                        Err(Finding::MissingSegment {
                            key: entry.key.clone(),
                        }),
                    ));
                };
                let read = stored.len() as u64;
                Ok::<_, Error>((read, check_segment(keys, partition, entry, stored).await?))
            })
            .buffered(CONCURRENT_READS);
        while let Some(checked) = checks.next().await {
            let (read, outcome) = checked?;
            bytes_read += read;
            match outcome {
                Ok(decoded) => records_read += decoded,
                Err(finding) => findings.push(finding),
            }
        }
    }

    Ok(PartitionCheck {
        topic: partition.topic.clone(),
        partition: partition.partition,
        generation: partition.generation,
        start_offset: checkpoint.as_ref().map(|c| c.start_offset),
        next_offset: checkpoint.as_ref().map(|c| c.next_offset),
        segments: entries.len(),
        records: entries.iter().map(|e| u64::from(e.record_count)).sum(),
        stored_bytes: entries.iter().map(|e| e.stored_bytes).sum(),
        uncompressed_bytes: entries.iter().map(|e| e.uncompressed_bytes).sum(),
        gaps: gaps.iter().map(|gap| (gap.start, gap.end)).collect(),
        records_read,
        bytes_read,
        findings,
    })
}

fn mismatch(
    entry: &SegmentEntry,
    field: &'static str,
    index: impl ToString,
    stored: impl ToString,
) -> Finding {
    Finding::IndexMismatch {
        key: entry.key.clone(),
        field: field.to_owned(),
        index: index.to_string(),
        stored: stored.to_string(),
    }
}

/// Reads one segment back: the stored bytes (header, length, body CRC32C), the header against
/// the index entry, then every record (a sealed body opened first). The outer error is a
/// failure to check (KMS unreachable, say); the inner one is what is wrong with the segment.
async fn check_segment(
    keys: &SegmentKeys,
    partition: &PartitionId,
    entry: &SegmentEntry,
    stored: Bytes,
) -> Result<std::result::Result<u64, Finding>> {
    let corrupt = |error: Error| Finding::CorruptSegment {
        key: entry.key.clone(),
        reason: error.to_string(),
    };
    let header = match verify_stored_segment(&stored) {
        Ok(header) => header,
        Err(error) => return Ok(Err(corrupt(error))),
    };
    if let Some(finding) = header_disagreement(partition, entry, &header) {
        return Ok(Err(finding));
    }
    let plain = match keys.plain(&partition.backup_id, stored).await {
        Ok(plain) => plain,
        Err(error @ (Error::Aws { .. } | Error::ObjectStore { .. })) => return Err(error),
        Err(error) => return Ok(Err(corrupt(error))),
    };
    let decoded = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut reader = SegmentReader::open(plain.as_ref())?;
        let mut records = 0;
        while reader.next_record()?.is_some() {
            records += 1;
        }
        Ok(records)
    })
    .await
    .map_err(|error| Error::CorruptSegment(format!("decoding task failed: {error}")))?;
    Ok(decoded.map_err(corrupt))
}

/// The first field in which a segment's header contradicts its key or its index entry.
fn header_disagreement(
    partition: &PartitionId,
    entry: &SegmentEntry,
    header: &SegmentHeader,
) -> Option<Finding> {
    let checks: [(&'static str, String, String); 9] = [
        ("topic", partition.topic.clone(), header.topic.clone()),
        (
            "partition",
            partition.partition.to_string(),
            header.partition.to_string(),
        ),
        (
            "first_offset",
            entry.first_offset.to_string(),
            header.first_offset.to_string(),
        ),
        (
            "last_offset",
            entry.last_offset.to_string(),
            header.last_offset.to_string(),
        ),
        (
            "record_count",
            entry.record_count.to_string(),
            header.record_count.to_string(),
        ),
        (
            "records_crc32c",
            entry.records_crc32c.to_string(),
            header.records_crc32c.to_string(),
        ),
        (
            "min_timestamp",
            entry.min_timestamp.to_string(),
            header.min_timestamp.to_string(),
        ),
        (
            "max_timestamp",
            entry.max_timestamp.to_string(),
            header.max_timestamp.to_string(),
        ),
        (
            "uncompressed_bytes",
            entry.uncompressed_bytes.to_string(),
            header.uncompressed_len.to_string(),
        ),
    ];
    checks
        .into_iter()
        .find(|(_, index, stored)| index != stored)
        .map(|(field, index, stored)| mismatch(entry, field, index, stored))
}

/// The ranges of `start..next` that none of `covered` (inclusive ranges) covers.
pub(super) fn uncovered_ranges(
    start: i64,
    next: i64,
    covered: impl Iterator<Item = (i64, i64)>,
) -> Vec<(i64, i64)> {
    let mut ranges: Vec<(i64, i64)> = covered.collect();
    ranges.sort_unstable();
    let mut holes = Vec::new();
    let mut cursor = start;
    for (first, last) in ranges {
        if cursor >= next {
            break;
        }
        if first > cursor {
            holes.push((cursor, (first - 1).min(next - 1)));
        }
        cursor = cursor.max(last.saturating_add(1));
    }
    if cursor < next {
        holes.push((cursor, next - 1));
    }
    holes
}
