//! Retention: expiring a partition's oldest segments from the index and from S3 together, by
//! the topic's retention tier, never inside the minimum point-in-time-recovery window.
//!
//! Only a prefix of the partition expires, in offset order, so no hole opens in the middle: a
//! segment expires when its newest record *and* its write are both older than the horizon, and
//! the first segment that does not stops the walk (producer clocks may disagree). The index goes
//! first, in one transaction that also moves the checkpoint's start past what expired; objects
//! are deleted after. A crash between the two leaves objects below the start that the next run
//! deletes; a reader never finds an indexed segment missing.

use serde::Serialize;

use crate::checkpoint::Gap;
use crate::error::Result;
use crate::index::{IndexStore, MAX_SEGMENTS_REPLACED};
use crate::layout::{PartitionId, SEGMENT_SUFFIX, StorageLayout};
use crate::object_store::ObjectStore;

pub const DAY_MS: i64 = 86_400_000;

/// How long a partition's segments are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The topic's tier: segments are kept at least this long.
    pub keep_ms: i64,
    /// The minimum window any restore must be able to reach back into, whatever the tier says.
    pub min_pitr_window_ms: i64,
}

impl RetentionPolicy {
    /// Records and writes older than this may expire.
    pub fn horizon(&self, now_ms: i64) -> i64 {
        now_ms - self.keep_ms.max(self.min_pitr_window_ms)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub segments_expired: usize,
    pub bytes_expired: u64,
    /// Objects deleted, those of expired segments and any an interrupted run left.
    pub objects_deleted: usize,
    /// The checkpoint's start after this run.
    pub start_offset: Option<i64>,
}

/// Expires what `policy` allows of `partition` at `now_ms`.
pub async fn expire_partition(
    objects: &dyn ObjectStore,
    index: &dyn IndexStore,
    layout: &StorageLayout,
    partition: &PartitionId,
    policy: RetentionPolicy,
    now_ms: i64,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let Some(checkpoint) = index.checkpoint(partition).await? else {
        return Ok(report);
    };
    let horizon = policy.horizon(now_ms);
    let mut start = checkpoint.start_offset;
    let entries = index.segments(partition).await?;
    let expired: Vec<_> = entries
        .iter()
        .take_while(|entry| entry.max_timestamp < horizon && entry.written_at_ms < horizon)
        .cloned()
        .collect();
    let expired_end = expired.iter().map(|entry| entry.last_offset + 1).max();
    let gaps: Vec<Gap> = match expired_end {
        Some(end) => index
            .gaps(partition)
            .await?
            .into_iter()
            .filter(|gap| gap.end < end)
            .collect(),
        None => Vec::new(),
    };
    // One transaction per chunk of at most MAX_SEGMENTS_REPLACED segments and gaps together,
    // in offset order, each moving the start past everything it removes: however many gaps
    // there are, every one below the new start goes.
    let mut segments = expired.iter().peekable();
    let mut gaps = gaps.iter().peekable();
    loop {
        let mut chunk_segments = Vec::new();
        let mut chunk_gaps = Vec::new();
        let mut new_start = start;
        while chunk_segments.len() + chunk_gaps.len() < MAX_SEGMENTS_REPLACED {
            let next_gap_first = gaps
                .peek()
                .is_some_and(|gap| segments.peek().is_none_or(|s| gap.start < s.first_offset));
            if next_gap_first {
                let gap = gaps.next().expect("peeked");
                new_start = new_start.max(gap.end + 1);
                chunk_gaps.push(gap.clone());
            } else if let Some(entry) = segments.next() {
                new_start = new_start.max(entry.last_offset + 1);
                chunk_segments.push(entry.clone());
            } else {
                break;
            }
        }
        if chunk_segments.is_empty() && chunk_gaps.is_empty() {
            break;
        }
        if !index
            .expire_segments(partition, &chunk_segments, &chunk_gaps, start, new_start)
            .await?
        {
            break; // another run moved the start first; it does the rest
        }
        start = new_start;
        report.segments_expired += chunk_segments.len();
        report.bytes_expired += chunk_segments
            .iter()
            .map(|entry| entry.stored_bytes)
            .sum::<u64>();
    }
    report.start_offset = Some(start);

    // Objects wholly below the start that nothing indexes: this run's, or an interrupted one's.
    // Segments a compaction retired are its to delete, after their grace.
    let indexed: std::collections::HashSet<String> = index
        .segments(partition)
        .await?
        .into_iter()
        .map(|entry| entry.key)
        .chain(
            index
                .retired_segments(partition)
                .await?
                .into_iter()
                .map(|retired| retired.key),
        )
        .collect();
    for object in objects
        .list_objects(&layout.partition_prefix(partition))
        .await?
    {
        let below_start = object.key.ends_with(SEGMENT_SUFFIX)
            && StorageLayout::parse_segment_file_name(&object.key)
                .is_some_and(|(_, last)| last < start);
        if below_start && !indexed.contains(&object.key) {
            objects.delete(&object.key).await?;
            report.objects_deleted += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{SegmentEntry, record_segment};
    use crate::layout::BackupId;
    use crate::object_store::ObjectMetadata;
    use crate::stores::{MemoryIndexStore, MemoryObjectStore};

    const NOW: i64 = 100 * DAY_MS;

    struct Backup {
        objects: MemoryObjectStore,
        index: MemoryIndexStore,
        layout: StorageLayout,
        partition: PartitionId,
    }

    /// Segments of ten offsets each, one per day: segment n's records are n days old at NOW,
    /// written when they arrived. `late` writes segment 3 today (a backup catching up).
    async fn backup(days: i64) -> Backup {
        let backup = Backup {
            objects: MemoryObjectStore::new(),
            index: MemoryIndexStore::new(),
            layout: StorageLayout::new("t").unwrap(),
            partition: PartitionId::new(BackupId::parse("prod").unwrap(), "payments", 0),
        };
        for n in 0..days {
            let (first, last) = (n * 10, n * 10 + 9);
            // Offsets 30..=39 were never delivered: a recorded gap between segments 2 and 4.
            if n == 3 {
                continue;
            }
            let age_days = days - n;
            let at = NOW - age_days * DAY_MS;
            let key = backup.layout.segment_key(&backup.partition, first, last);
            backup
                .objects
                .put_if_absent(
                    &key,
                    bytes::Bytes::from_static(b"segment"),
                    &ObjectMetadata::new(),
                )
                .await
                .unwrap();
            let entry = SegmentEntry {
                key,
                first_offset: first,
                last_offset: last,
                record_count: 10,
                min_timestamp: at - 1_000,
                max_timestamp: at,
                stored_bytes: 7,
                uncompressed_bytes: 70,
                records_crc32c: 0,
                written_at_ms: at,
                write_marks: Vec::new(),
                max_record_bytes: None,
            };
            let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
            record_segment(&backup.index, &backup.partition, &entry, at, observed, at)
                .await
                .unwrap();
        }
        backup
    }

    impl Backup {
        async fn expire(&self, keep_days: i64, pitr_days: i64, now: i64) -> RetentionReport {
            let policy = RetentionPolicy {
                keep_ms: keep_days * DAY_MS,
                min_pitr_window_ms: pitr_days * DAY_MS,
            };
            expire_partition(
                &self.objects,
                &self.index,
                &self.layout,
                &self.partition,
                policy,
                now,
            )
            .await
            .unwrap()
        }

        async fn indexed_firsts(&self) -> Vec<i64> {
            let entries = self.index.segments(&self.partition).await.unwrap();
            entries.iter().map(|e| e.first_offset).collect()
        }

        async fn stored_firsts(&self) -> Vec<i64> {
            let keys = self.objects.list("").await.unwrap();
            keys.iter()
                .map(|key| StorageLayout::parse_segment_file_name(key).unwrap().0)
                .collect()
        }
    }

    #[tokio::test]
    async fn every_gap_below_the_new_start_goes_however_many_there_are() {
        use crate::checkpoint::Checkpoint;
        use crate::index::SegmentCommit;
        // Two old segments, 0..=4 and 65..=69, with 60 one-offset gaps between them (what
        // gaps split by late segments look like): more items than one transaction takes.
        let backup = backup(0).await;
        let at = NOW - 30 * DAY_MS;
        let entry = |first: i64, last: i64| SegmentEntry {
            key: backup.layout.segment_key(&backup.partition, first, last),
            first_offset: first,
            last_offset: last,
            record_count: 5,
            min_timestamp: at,
            max_timestamp: at,
            stored_bytes: 7,
            uncompressed_bytes: 70,
            records_crc32c: 0,
            written_at_ms: at,
            write_marks: Vec::new(),
            max_record_bytes: None,
        };
        let gaps: Vec<Gap> = (5..65)
            .map(|offset| Gap::missing(offset, offset, at))
            .collect();
        let checkpoint = |next_offset| Checkpoint {
            start_offset: 0,
            next_offset,
            max_timestamp: at,
            updated_at_ms: at,
        };
        for (segment, gaps, expected, new) in [
            (entry(0, 4), &[][..], None, checkpoint(5)),
            (
                entry(65, 69),
                &gaps[..],
                Some(checkpoint(5)),
                checkpoint(70),
            ),
        ] {
            backup
                .index
                .commit_segment(SegmentCommit {
                    partition: &backup.partition,
                    segment: &segment,
                    gap: None,
                    filled_gaps: &[],
                    remaining_gaps: gaps,
                    expected: expected.as_ref(),
                    new: Some(&new),
                })
                .await
                .unwrap();
        }
        assert_eq!(
            backup.index.gaps(&backup.partition).await.unwrap().len(),
            60
        );
        let report = backup.expire(7, 0, NOW).await;
        assert_eq!(report.segments_expired, 2);
        assert_eq!(report.start_offset, Some(70));
        assert_eq!(
            backup.index.gaps(&backup.partition).await.unwrap(),
            vec![],
            "no gap is left below the start"
        );
    }

    #[tokio::test]
    async fn segments_older_than_the_tier_expire_from_the_index_and_s3_together() {
        let backup = backup(10).await;
        // Ages 10, 9, 8, (gap), 6, 5 ... 1 days. Keep 7 days: ages 10, 9, 8 expire, the gap
        // below the new start goes too.
        let report = backup.expire(7, 0, NOW).await;
        assert_eq!((report.segments_expired, report.objects_deleted), (3, 3));
        assert_eq!(report.start_offset, Some(30));
        assert_eq!(backup.indexed_firsts().await, vec![40, 50, 60, 70, 80, 90]);
        assert_eq!(backup.stored_firsts().await, backup.indexed_firsts().await);
        let checkpoint = backup
            .index
            .checkpoint(&backup.partition)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((checkpoint.start_offset, checkpoint.next_offset), (30, 100));
        assert_eq!(
            backup.index.gaps(&backup.partition).await.unwrap().len(),
            1,
            "the gap 30..=39 is above the new start and stays"
        );
        // A day later offsets 40..=49 are exactly 7 days old: kept. A day after that they expire,
        // and the gap below them goes with them.
        let report = backup.expire(7, 0, NOW + DAY_MS).await;
        assert_eq!(report.start_offset, Some(30));
        let report = backup.expire(7, 0, NOW + 2 * DAY_MS).await;
        assert_eq!(report.start_offset, Some(50));
        assert!(
            backup
                .index
                .gaps(&backup.partition)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_minimum_pitr_window_wins_over_a_shorter_tier() {
        let backup = backup(10).await;
        let report = backup.expire(2, 7, NOW).await;
        assert_eq!(
            report.segments_expired, 3,
            "ages 10, 9 and 8 only: the window is 7 days"
        );
        assert_eq!(report.start_offset, Some(30));
    }

    #[tokio::test]
    async fn the_boundary_is_exclusive_and_nothing_young_expires() {
        let backup = backup(10).await;
        // A segment exactly as old as the retention is kept.
        let report = backup.expire(8, 0, NOW).await;
        assert_eq!(report.segments_expired, 2);
        let report = backup.expire(30, 30, NOW).await;
        assert_eq!(
            report,
            RetentionReport {
                start_offset: Some(20),
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn a_young_segment_stops_the_walk_so_no_hole_opens() {
        let backup = backup(10).await;
        // Segment 1 (offsets 10..=19) was written late, today: it and everything after stay,
        // though segment 2 is old.
        let mut late = backup.index.segments(&backup.partition).await.unwrap()[1].clone();
        late.written_at_ms = NOW;
        let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
        record_segment(
            &backup.index,
            &backup.partition,
            &late,
            late.max_timestamp,
            observed,
            NOW,
        )
        .await
        .unwrap();
        let report = backup.expire(7, 0, NOW).await;
        assert_eq!(report.segments_expired, 1);
        assert_eq!(backup.indexed_firsts().await[..2], [10, 20]);
    }

    #[tokio::test]
    async fn objects_an_interrupted_run_left_below_the_start_are_deleted_next_time() {
        let backup = backup(10).await;
        // The index moved, the process died before deleting the objects.
        let entries = backup.index.segments(&backup.partition).await.unwrap();
        assert!(
            backup
                .index
                .expire_segments(&backup.partition, &entries[..2], &[], 0, 20)
                .await
                .unwrap()
        );
        assert_eq!(backup.stored_firsts().await.len(), 9);
        let report = backup.expire(30, 0, NOW).await;
        assert_eq!((report.segments_expired, report.objects_deleted), (0, 2));
        assert_eq!(backup.stored_firsts().await, backup.indexed_firsts().await);
        // A run that lost the race on the start changes nothing.
        assert!(
            !backup
                .index
                .expire_segments(&backup.partition, &entries[2..3], &[], 0, 30)
                .await
                .unwrap()
        );
    }
}
