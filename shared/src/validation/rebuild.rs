//! Rebuilding a partition's index from S3 alone (invariant 5): every segment's header is read
//! and recorded through the writer's own commit rules, in offset order, so gaps and the
//! checkpoint come out as the writer would have made them. Recording an entry the index already
//! holds changes nothing, so a rebuild also repairs a partly lost index.

use serde::Serialize;

use super::Finding;
use crate::error::Result;
use crate::index::{IndexStore, SegmentEntry, record_segment};
use crate::layout::{PartitionId, SEGMENT_SUFFIX, StorageLayout};
use crate::object_store::ObjectStore;
use crate::segment::verify_stored_segment;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub topic: String,
    pub partition: i32,
    /// Segments recorded in the index.
    pub segments: usize,
    /// Gaps the rebuild recorded between segments.
    pub gaps: Vec<(i64, i64)>,
    pub next_offset: Option<i64>,
    /// Objects left out because they do not read as this partition's segments.
    pub findings: Vec<Finding>,
}

/// Records every segment of `partition` found in S3 into `index`. Only headers are needed, so
/// sealed segments need no key. `now_ms` stamps the checkpoint and any gap.
pub async fn rebuild_partition(
    objects: &dyn ObjectStore,
    index: &dyn IndexStore,
    layout: &StorageLayout,
    partition: &PartitionId,
    now_ms: i64,
) -> Result<RebuildReport> {
    let mut listed: Vec<_> = objects
        .list_objects(&layout.partition_prefix(partition))
        .await?
        .into_iter()
        .filter(|object| object.key.ends_with(SEGMENT_SUFFIX))
        .collect();
    // Offset order, as the writer committed them; overlapping re-batches land where they fit.
    listed.sort_by_key(|object| StorageLayout::parse_segment_file_name(&object.key));

    let mut report = RebuildReport {
        topic: partition.topic.clone(),
        partition: partition.partition,
        segments: 0,
        gaps: Vec::new(),
        next_offset: None,
        findings: Vec::new(),
    };
    for object in listed {
        let Some(stored) = objects.get(&object.key).await? else {
            continue; // deleted since the listing
        };
        let header = match verify_stored_segment(&stored) {
            Ok(header) => header,
            Err(error) => {
                report.findings.push(Finding::CorruptSegment {
                    key: object.key,
                    reason: error.to_string(),
                });
                continue;
            }
        };
        let named = StorageLayout::parse_segment_file_name(&object.key);
        if header.topic != partition.topic
            || header.partition != partition.partition
            || named != Some((header.first_offset, header.last_offset))
        {
            report.findings.push(Finding::CorruptSegment {
                reason: format!(
                    "its header says {}/{} offsets {}..={}, which is not what its key names",
                    header.topic, header.partition, header.first_offset, header.last_offset
                ),
                key: object.key,
            });
            continue;
        }
        let entry = SegmentEntry::new(object.key, &header, object.size, object.last_modified_ms);
        let observed = index.checkpoint(partition).await?;
        if let Some(gap) = record_segment(
            index,
            partition,
            &entry,
            header.max_timestamp,
            observed,
            now_ms,
        )
        .await?
        {
            report.gaps.push((gap.start, gap.end));
        }
        report.segments += 1;
    }
    report.next_offset = index
        .checkpoint(partition)
        .await?
        .map(|checkpoint| checkpoint.next_offset);
    Ok(report)
}
