//! The index and checkpoint store: which segments exist per partition, which offsets are
//! recorded gaps, and how far each partition is backed up. DynamoDB in production; it can be
//! rebuilt from S3 because segments describe themselves (invariant 5).

use async_trait::async_trait;

use crate::checkpoint::{Checkpoint, Gap, GapKind, MAX_GAPS_FILLED, plan_commit};
use crate::error::{Error, Result};
use crate::layout::{BackupId, PartitionId};
use crate::segment::{SegmentHeader, WriteMark};

/// One index entry: a durable segment object and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    pub key: String,
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: u32,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Size of the stored object.
    pub stored_bytes: u64,
    /// Size of the framed records before compression.
    pub uncompressed_bytes: u64,
    pub records_crc32c: u32,
    /// When the segment's last record became durable (the writer's clock): the backup had
    /// reached `last_offset` at this moment. For a merged segment, its newest write mark's time.
    pub written_at_ms: i64,
    /// A merged segment's write marks (from its header); empty for a segment the writer wrote,
    /// whose one mark is (`last_offset`, `written_at_ms`).
    pub write_marks: Vec<WriteMark>,
    /// The largest record's framed length, when known (the writer and compaction record it;
    /// an index rebuilt from S3 or an older entry does not know it).
    pub max_record_bytes: Option<u64>,
}

impl SegmentEntry {
    /// The entry of a stored segment. `written_at_ms` is when a writer's segment became durable;
    /// a merged segment's header carries its own times, and its newest one is used instead.
    pub fn new(key: String, header: &SegmentHeader, stored_bytes: u64, written_at_ms: i64) -> Self {
        let written_at_ms = header
            .write_marks
            .last()
            .map_or(written_at_ms, |mark| mark.written_at_ms);
        SegmentEntry {
            key,
            first_offset: header.first_offset,
            last_offset: header.last_offset,
            record_count: header.record_count,
            min_timestamp: header.min_timestamp,
            max_timestamp: header.max_timestamp,
            stored_bytes,
            uncompressed_bytes: header.uncompressed_len,
            records_crc32c: header.records_crc32c,
            written_at_ms,
            write_marks: header.write_marks.clone(),
            max_record_bytes: None,
        }
    }

    /// The entry of a segment just encoded: what [`Self::new`] gives, with the largest record.
    pub fn encoded(
        key: String,
        segment: &crate::segment::EncodedSegment,
        stored_bytes: u64,
        written_at_ms: i64,
    ) -> Self {
        SegmentEntry {
            max_record_bytes: Some(segment.max_record_bytes),
            ..SegmentEntry::new(key, &segment.header, stored_bytes, written_at_ms)
        }
    }

    /// When the backup reached which of this segment's offsets.
    pub fn marks(&self) -> Vec<WriteMark> {
        implicit_marks(&self.write_marks, self.last_offset, self.written_at_ms)
    }

    /// The highest offset of this segment the backup had reached at `at_ms` (a consistent
    /// cut), or `None` when none of it was written yet.
    pub fn reached_at(&self, at_ms: i64) -> Option<i64> {
        reached_at(
            &self.write_marks,
            self.last_offset,
            self.written_at_ms,
            at_ms,
        )
    }
}

/// A segment's write marks: its explicit ones (merged), else the one its write time gives.
pub fn implicit_marks(
    write_marks: &[WriteMark],
    last_offset: i64,
    written_at_ms: i64,
) -> Vec<WriteMark> {
    if write_marks.is_empty() {
        vec![WriteMark {
            last_offset,
            written_at_ms,
        }]
    } else {
        write_marks.to_vec()
    }
}

/// The highest offset of a segment the backup had reached at `at_ms`, from its write marks (or,
/// for a segment the writer wrote, its last offset and write time).
pub fn reached_at(
    write_marks: &[WriteMark],
    last_offset: i64,
    written_at_ms: i64,
    at_ms: i64,
) -> Option<i64> {
    if write_marks.is_empty() {
        (written_at_ms <= at_ms).then_some(last_offset)
    } else {
        WriteMark::reached_at(write_marks, at_ms)
    }
}

/// A segment compaction replaced: its records are in a larger segment now, and its object is
/// deleted once the grace period has passed (readers that listed it before may still read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredSegment {
    pub key: String,
    pub first_offset: i64,
    pub last_offset: i64,
    pub retired_at_ms: i64,
}

/// One atomic change to a partition's index: record the segment and, when the plan says so,
/// a gap, the checkpoint's move from `expected` to `new`, and the recorded gaps the segment
/// fills replaced by what remains of them.
#[derive(Debug, Clone)]
pub struct SegmentCommit<'a> {
    pub partition: &'a PartitionId,
    pub segment: &'a SegmentEntry,
    pub gap: Option<&'a Gap>,
    /// Recorded gaps to remove; each must still be recorded exactly so, else nothing is written
    /// and the outcome is [`CommitOutcome::CheckpointMoved`].
    pub filled_gaps: &'a [Gap],
    /// Gaps to record in their place (the parts outside the segment).
    pub remaining_gaps: &'a [Gap],
    /// The checkpoint the plan was made against; `None` means "no checkpoint yet".
    pub expected: Option<&'a Checkpoint>,
    /// `None` leaves the checkpoint as it is (the segment was already covered).
    pub new: Option<&'a Checkpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// The checkpoint is no longer `expected`, or a gap to fill is no longer recorded as it
    /// was: nothing was written; re-read and plan again.
    CheckpointMoved,
}

/// Contract shared by every index store; `conformance` tests hold each implementation to it.
#[async_trait]
pub trait IndexStore: Send + Sync {
    /// The partition's checkpoint, read consistently (after every earlier commit).
    async fn checkpoint(&self, partition: &PartitionId) -> Result<Option<Checkpoint>>;

    /// Applies `commit` all or nothing. Writing the same segment entry twice is harmless.
    async fn commit_segment(&self, commit: SegmentCommit<'_>) -> Result<CommitOutcome>;

    /// Every indexed segment of the partition, ordered by first then last offset.
    async fn segments(&self, partition: &PartitionId) -> Result<Vec<SegmentEntry>>;

    /// The segments that hold offsets `first..=last`, ordered like [`Self::segments`]: every
    /// segment starting in the range, and the last one starting before it. Reads only those,
    /// however long the partition's history.
    async fn segments_covering(
        &self,
        partition: &PartitionId,
        first: i64,
        last: i64,
    ) -> Result<Vec<SegmentEntry>>;

    /// Every recorded gap of the partition, ordered by start offset.
    async fn gaps(&self, partition: &PartitionId) -> Result<Vec<Gap>>;

    /// In one atomic step: records `new`, removes the `old` entries and records each of them as
    /// retired at `retired_at_ms`. Returns false, changing nothing, when an old entry is already
    /// gone (another compaction got there first). At most [`MAX_SEGMENTS_REPLACED`] old entries.
    async fn replace_segments(
        &self,
        partition: &PartitionId,
        new: &SegmentEntry,
        old: &[SegmentEntry],
        retired_at_ms: i64,
    ) -> Result<bool>;

    /// In one atomic step: removes the entry `old` and records `new` in its place (or nothing:
    /// every record of `old` was erased). Returns false, changing nothing, when `old` is no
    /// longer indexed as it was (compaction or retention replaced it first), or another entry
    /// already holds `new`'s range. Erasure's switch: it keeps no retired record, because the
    /// erasure deletes `old`'s object itself.
    async fn swap_segment(
        &self,
        partition: &PartitionId,
        old: &SegmentEntry,
        new: Option<&SegmentEntry>,
    ) -> Result<bool>;

    /// Records `gaps` (erasure's); recording one again is harmless.
    async fn record_gaps(&self, partition: &PartitionId, gaps: &[Gap]) -> Result<()>;

    /// The partition's retired segments, ordered by first offset.
    async fn retired_segments(&self, partition: &PartitionId) -> Result<Vec<RetiredSegment>>;

    /// Forgets a retired segment once its object is deleted; forgetting twice is harmless.
    async fn forget_retired(&self, partition: &PartitionId, key: &RetiredSegment) -> Result<()>;

    /// In one atomic step: removes the `expired` entries and the `gaps` below `new_start`, and
    /// moves the checkpoint's start from `observed_start` to `new_start` (retention). Returns
    /// false, changing nothing, when the start is no longer `observed_start`. At most
    /// [`MAX_SEGMENTS_REPLACED`] entries and gaps together.
    async fn expire_segments(
        &self,
        partition: &PartitionId,
        expired: &[SegmentEntry],
        gaps: &[Gap],
        observed_start: i64,
        new_start: i64,
    ) -> Result<bool>;

    /// Every partition of `backup_id` that has a checkpoint, ordered by topic then partition.
    /// Reads the whole index (on DynamoDB, a scan): for validation, not for hot paths.
    async fn partitions(&self, backup_id: &BackupId) -> Result<Vec<PartitionId>>;
}

/// The most segment entries one [`IndexStore::replace_segments`] may remove: DynamoDB takes at
/// most 100 items in a transaction, and each old segment costs two (its deletion, its retirement).
pub const MAX_SEGMENTS_REPLACED: usize = 48;

/// How often a commit re-plans after losing a race on the checkpoint before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 8;

/// Records a durable segment in the index and moves the partition's checkpoint, planning against
/// `observed` first and re-reading the checkpoint whenever another commit moved it meanwhile.
/// Returns the gap this commit recorded, if any. Used by the writer and by the index rebuild, so
/// a rebuilt index follows the very rules the writer followed.
pub async fn record_segment(
    index: &dyn IndexStore,
    partition: &PartitionId,
    entry: &SegmentEntry,
    max_timestamp: i64,
    mut observed: Option<Checkpoint>,
    now_ms: i64,
) -> Result<Option<Gap>> {
    let mut recorded_gap = None;
    let mut lost_races = 0;
    loop {
        // Below the checkpoint the segment may hold offsets a later segment recorded as a
        // gap (committed first): rare, so only then are the gaps read.
        let gaps = match &observed {
            Some(checkpoint) if entry.first_offset < checkpoint.next_offset => {
                let gaps = index.gaps(partition).await?;
                // A batch re-delivered across an erasure (its overlap checked before the
                // offsets were marked) must not bring erased records back into the index. Its
                // retry sees the marks and writes only what lies past the checkpoint.
                if let Some(erased) = gaps.iter().find(|gap| {
                    gap.kind == GapKind::Erased
                        && gap.start <= entry.last_offset
                        && gap.end >= entry.first_offset
                }) {
                    return Err(Error::IndexStore {
                        operation: "commit",
                        message: format!(
                            "{} spans offsets {}..={} of {partition} that an erasure removed: \
                             not indexed; retry",
                            entry.key, erased.start, erased.end
                        ),
                        retryable: true,
                    });
                }
                // Erased offsets lie inside segments' ranges: a segment never fills them.
                gaps.into_iter()
                    .filter(|gap| gap.kind == GapKind::Missing)
                    .collect()
            }
            _ => Vec::new(),
        };
        let plan = plan_commit(
            observed.as_ref(),
            &gaps,
            entry.first_offset,
            entry.last_offset,
            max_timestamp,
            now_ms,
        );
        let commit = SegmentCommit {
            partition,
            segment: entry,
            gap: plan.gap.as_ref(),
            expected: observed.as_ref(),
            new: plan.new_checkpoint.as_ref(),
            filled_gaps: &plan.filled_gaps,
            remaining_gaps: &plan.remaining_gaps,
        };
        match index.commit_segment(commit).await? {
            CommitOutcome::Committed => {
                recorded_gap = recorded_gap.or(plan.gap);
                // A full batch of filled gaps may leave more: commit again for the rest.
                if plan.filled_gaps.len() < MAX_GAPS_FILLED {
                    return Ok(recorded_gap);
                }
            }
            CommitOutcome::CheckpointMoved => {
                lost_races += 1;
                if lost_races == MAX_COMMIT_ATTEMPTS {
                    return Err(Error::IndexStore {
                        operation: "commit",
                        message: format!(
                            "checkpoint of {partition} kept moving during {MAX_COMMIT_ATTEMPTS} attempts"
                        ),
                        retryable: true,
                    });
                }
            }
        }
        observed = index.checkpoint(partition).await?;
    }
}
