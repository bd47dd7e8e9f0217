//! Before a batch that overlaps what the backup holds is written, its records at the
//! overlapping offsets must equal the backed-up ones. A retried batch passes (the event source
//! mapping re-delivers identical records); a recreated topic, or one that lost data in an
//! unclean leader election, does not, and writing it would mix two histories under one offset.
//! An overlap that cannot be compared (its segments expired or are gone) is refused too: only
//! offsets the backup recorded as a gap may be new below the checkpoint.
//!
//! A batch that reaches offsets an erasure removed is told so: its overlapping part must not be
//! written again, or the erased records would come back.

use std::collections::BTreeMap;

use tidemark_core::checkpoint::{Checkpoint, GapKind};
use tidemark_core::index::IndexStore;
use tidemark_core::keys::SegmentKeys;
use tidemark_core::layout::PartitionId;
use tidemark_core::object_store::ObjectStore;
use tidemark_core::segment::{EncodedSegment, Record, SegmentReader};
use tidemark_core::{Error, Result};

/// What a batch's overlap with the backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Nothing the backup does not already hold, or no overlap at all.
    Verified,
    /// Verified, and some of its overlapping offsets were erased from the backup.
    ReachesErased,
}

/// Checks `batch` (an encoded segment) against the backup below `checkpoint`. Reads only the
/// segments that hold the overlapping offsets; costs nothing when the batch starts at or after
/// the checkpoint, the usual case.
pub async fn verify_overlap(
    index: &dyn IndexStore,
    objects: &dyn ObjectStore,
    keys: &SegmentKeys,
    partition: &PartitionId,
    batch: &EncodedSegment,
    checkpoint: &Checkpoint,
) -> Result<Overlap> {
    let first = batch.header.first_offset;
    let overlap_end = batch.header.last_offset.min(checkpoint.next_offset - 1);
    if first > overlap_end {
        return Ok(Overlap::Verified);
    }
    let mut reader = SegmentReader::open(batch.bytes.as_ref())?;
    let mut ours: BTreeMap<i64, Record> = BTreeMap::new();
    while let Some(record) = reader.next_record()? {
        if record.offset > overlap_end {
            break;
        }
        ours.insert(record.offset, record);
    }
    let unverifiable = |offset: i64, reason: String| Error::OverlapUnverifiable {
        partition: partition.to_string(),
        offset,
        reason,
    };
    let mut covering: std::collections::VecDeque<_> = index
        .segments_covering(partition, first, overlap_end)
        .await?
        .into();
    let mut widened = false;
    let mut read = std::collections::HashSet::new();
    while let Some(segment) = covering.pop_front() {
        read.insert(segment.key.clone());
        let Some(bytes) = objects.get(&segment.key).await? else {
            // Compaction or retention may have just replaced it: the index tells.
            let still_indexed = index
                .segments_covering(partition, first, overlap_end)
                .await?
                .iter()
                .any(|entry| entry.key == segment.key);
            if still_indexed {
                return Err(unverifiable(
                    segment.first_offset.max(first),
                    format!("its indexed segment {} is missing from S3", segment.key),
                ));
            }
            return Err(Error::ObjectStore {
                operation: "GetObject",
                key: segment.key.clone(),
                message: "the segment was replaced while the batch was checked; retry".into(),
                retryable: true,
            });
        };
        let plain = keys.clear(&partition.backup_id, bytes).await?;
        let mut stored = SegmentReader::open(plain.as_ref())?;
        while let Some(record) = stored.next_record()? {
            if let Some(mine) = ours.remove(&record.offset)
                && mine != record
            {
                return Err(Error::Diverged {
                    partition: partition.to_string(),
                    offset: record.offset,
                    key: segment.key.clone(),
                });
            }
        }
        if ours.is_empty() {
            break;
        }
        if covering.is_empty() && !widened {
            // `segments_covering` names the last segment starting before the range, not an
            // older, longer one that overlapping re-deliveries left: look at every one.
            widened = true;
            covering = index
                .segments(partition)
                .await?
                .into_iter()
                .filter(|entry| entry.first_offset <= overlap_end && entry.last_offset >= first)
                .filter(|entry| !read.contains(&entry.key))
                .collect();
        }
    }
    // Records no stored segment held. Below the start the segments have expired; elsewhere
    // only a recorded gap (a batch committed after a later one, or an erasure) may hold them.
    let gaps = index.gaps(partition).await?;
    // Spanning an erased offset is enough, held or not (a compacted topic may no longer
    // hold it): the commit refuses a segment over erased offsets.
    let reaches_erased = gaps
        .iter()
        .filter(|gap| gap.kind == GapKind::Erased)
        .any(|gap| gap.start <= overlap_end && gap.end >= first);
    for &offset in ours.keys() {
        if offset < checkpoint.start_offset {
            return Err(unverifiable(
                offset,
                format!(
                    "the backup's segments there have expired (it now starts at {})",
                    checkpoint.start_offset
                ),
            ));
        }
        if !gaps.iter().any(|gap| gap.contains(offset)) {
            return Err(unverifiable(
                offset,
                "no backed-up segment holds that offset and no gap is recorded there".into(),
            ));
        }
    }
    Ok(if reaches_erased {
        Overlap::ReachesErased
    } else {
        Overlap::Verified
    })
}
