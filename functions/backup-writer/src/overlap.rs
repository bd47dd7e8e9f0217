//! Before a batch that overlaps what the backup holds is written, its records at the
//! overlapping offsets must equal the backed-up ones. A retried batch passes (the event source
//! mapping re-delivers identical records); a recreated topic, or one that lost data in an
//! unclean leader election, does not, and writing it would mix two histories under one offset.

use std::collections::BTreeMap;

use tidemark_core::index::IndexStore;
use tidemark_core::keys::SegmentKeys;
use tidemark_core::layout::PartitionId;
use tidemark_core::object_store::ObjectStore;
use tidemark_core::segment::{EncodedSegment, Record, SegmentReader};
use tidemark_core::{Error, Result};

/// Checks `batch` (an encoded segment) against the backup below `next_offset`, the
/// partition's checkpoint. Reads only the segments that hold the overlapping offsets; costs
/// nothing when the batch starts at or after the checkpoint, the usual case.
pub async fn verify_overlap(
    index: &dyn IndexStore,
    objects: &dyn ObjectStore,
    keys: &SegmentKeys,
    partition: &PartitionId,
    batch: &EncodedSegment,
    next_offset: i64,
) -> Result<()> {
    let first = batch.header.first_offset;
    let overlap_end = batch.header.last_offset.min(next_offset - 1);
    if first > overlap_end {
        return Ok(());
    }
    let mut reader = SegmentReader::open(batch.bytes.as_ref())?;
    let mut ours: BTreeMap<i64, Record> = BTreeMap::new();
    while let Some(record) = reader.next_record()? {
        if record.offset > overlap_end {
            break;
        }
        ours.insert(record.offset, record);
    }
    for segment in index
        .segments_covering(partition, first, overlap_end)
        .await?
    {
        let Some(bytes) = objects.get(&segment.key).await? else {
            tracing::warn!(key = %segment.key, "indexed segment is missing; cannot compare with it");
            continue;
        };
        let plain = keys.plain(&partition.backup_id, bytes).await?;
        let mut stored = SegmentReader::open(plain.as_ref())?;
        while let Some(record) = stored.next_record()? {
            if let Some(mine) = ours.remove(&record.offset)
                && mine != record
            {
                return Err(Error::Diverged {
                    partition: partition.to_string(),
                    offset: record.offset,
                    key: segment.key,
                });
            }
        }
        if ours.is_empty() {
            break;
        }
    }
    Ok(())
}
