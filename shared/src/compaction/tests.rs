use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::checkpoint::{Checkpoint, Gap};
use crate::index::{CommitOutcome, RetiredSegment, SegmentCommit, record_segment};
use crate::keys::{KeyService, MemoryKeyService};
use crate::layout::BackupId;
use crate::object_store::{
    ObjectInfo, ObjectMetadata, ObjectRetention, PutOutcome, segment_metadata,
};
use crate::segment::encryption::envelope;
use crate::segment::{Record, TimestampType};
use crate::stores::{MemoryIndexStore, MemoryObjectStore};
use crate::validation::{Depth, validate_partition};

/// Where the process dies. Each fires once; the run after it is a fresh process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Before the new segment is written.
    WritingNewSegment,
    /// The new segment is durable, the process dies before hearing so.
    AfterNewSegmentDurable,
    /// Before the index switch.
    SwitchingIndex,
    /// The switch is durable, the process dies before hearing so.
    AfterSwitch,
    /// After the first old object is deleted.
    DeletingOldObjects,
    /// An old object is deleted, the process dies before forgetting it.
    ForgettingRetired,
}

#[derive(Default)]
struct Fuse(Mutex<Option<Crash>>);

impl Fuse {
    /// True (and spent) if the armed crash is `at`.
    fn blows(&self, at: Crash) -> bool {
        let mut armed = self.0.lock().unwrap();
        if *armed == Some(at) {
            *armed = None;
            return true;
        }
        false
    }
}

fn crashed(at: Crash) -> Error {
    Error::Io(std::io::Error::other(format!("crashed: {at:?}")))
}

struct Objects {
    inner: MemoryObjectStore,
    fuse: Arc<Fuse>,
    deletes: Mutex<usize>,
}

#[async_trait]
impl ObjectStore for Objects {
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &ObjectMetadata,
        tags: &ObjectTags,
    ) -> Result<PutOutcome> {
        if self.fuse.blows(Crash::WritingNewSegment) {
            return Err(crashed(Crash::WritingNewSegment));
        }
        let outcome = self
            .inner
            .put_tagged_if_absent(key, body, metadata, tags)
            .await?;
        if self.fuse.blows(Crash::AfterNewSegmentDurable) {
            return Err(crashed(Crash::AfterNewSegmentDurable));
        }
        Ok(outcome)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.get(key).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let earlier = {
            let mut deletes = self.deletes.lock().unwrap();
            *deletes += 1;
            *deletes - 1
        };
        if earlier >= 1 && self.fuse.blows(Crash::DeletingOldObjects) {
            return Err(crashed(Crash::DeletingOldObjects));
        }
        self.inner.delete(key).await
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list_objects(prefix).await
    }

    async fn retention(&self, key: &str) -> Result<Option<ObjectRetention>> {
        self.inner.retention(key).await
    }

    async fn delete_all_versions(&self, key: &str) -> Result<usize> {
        self.inner.delete_all_versions(key).await
    }

    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_prefixes(prefix).await
    }
}

struct Index {
    inner: MemoryIndexStore,
    fuse: Arc<Fuse>,
}

#[async_trait]
impl IndexStore for Index {
    async fn checkpoint(&self, partition: &PartitionId) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(partition).await
    }
    async fn commit_segment(&self, commit: SegmentCommit<'_>) -> Result<CommitOutcome> {
        self.inner.commit_segment(commit).await
    }
    async fn segments(&self, partition: &PartitionId) -> Result<Vec<SegmentEntry>> {
        self.inner.segments(partition).await
    }
    async fn segments_covering(
        &self,
        partition: &PartitionId,
        first: i64,
        last: i64,
    ) -> Result<Vec<SegmentEntry>> {
        self.inner.segments_covering(partition, first, last).await
    }
    async fn gaps(&self, partition: &PartitionId) -> Result<Vec<Gap>> {
        self.inner.gaps(partition).await
    }
    async fn replace_segments(
        &self,
        partition: &PartitionId,
        new: &SegmentEntry,
        old: &[SegmentEntry],
        retired_at_ms: i64,
    ) -> Result<bool> {
        if self.fuse.blows(Crash::SwitchingIndex) {
            return Err(crashed(Crash::SwitchingIndex));
        }
        let switched = self
            .inner
            .replace_segments(partition, new, old, retired_at_ms)
            .await?;
        if self.fuse.blows(Crash::AfterSwitch) {
            return Err(crashed(Crash::AfterSwitch));
        }
        Ok(switched)
    }
    async fn swap_segment(
        &self,
        partition: &PartitionId,
        old: &SegmentEntry,
        new: Option<&SegmentEntry>,
    ) -> Result<bool> {
        self.inner.swap_segment(partition, old, new).await
    }
    async fn record_gaps(&self, partition: &PartitionId, gaps: &[Gap]) -> Result<()> {
        self.inner.record_gaps(partition, gaps).await
    }
    async fn retired_segments(&self, partition: &PartitionId) -> Result<Vec<RetiredSegment>> {
        self.inner.retired_segments(partition).await
    }
    async fn expire_segments(
        &self,
        partition: &PartitionId,
        expired: &[SegmentEntry],
        gaps: &[Gap],
        observed_start: i64,
        new_start: i64,
    ) -> Result<bool> {
        self.inner
            .expire_segments(partition, expired, gaps, observed_start, new_start)
            .await
    }
    async fn forget_retired(
        &self,
        partition: &PartitionId,
        retired: &RetiredSegment,
    ) -> Result<()> {
        if self.fuse.blows(Crash::ForgettingRetired) {
            return Err(crashed(Crash::ForgettingRetired));
        }
        self.inner.forget_retired(partition, retired).await
    }
    async fn partitions(&self, backup_id: &BackupId) -> Result<Vec<PartitionId>> {
        self.inner.partitions(backup_id).await
    }
}

const GRACE_MS: i64 = 3_600_000;
const T0: i64 = 1_000_000;

struct Backup {
    objects: Objects,
    index: Index,
    keys: SegmentKeys,
    layout: StorageLayout,
    partition: PartitionId,
    fuse: Arc<Fuse>,
    /// Every record backed up, each offset once.
    records: Vec<Record>,
}

fn record(offset: i64) -> Record {
    Record {
        offset,
        timestamp: 5_000 + offset,
        timestamp_type: TimestampType::CreateTime,
        key: Some(format!("order-{offset}").into_bytes()),
        value: Some(format!("{{\"amount\":{}}}", offset * 7).into_bytes()),
        headers: vec![],
    }
}

/// Six small segments of offsets 0..=49, one of them a re-batched retry overlapping another,
/// written and indexed as the writer does.
async fn backup(seal: bool) -> Backup {
    let fuse = Arc::new(Fuse::default());
    let service: Arc<dyn KeyService> = Arc::new(MemoryKeyService::default());
    let backup = Backup {
        objects: Objects {
            inner: MemoryObjectStore::new(),
            fuse: fuse.clone(),
            deletes: Mutex::new(0),
        },
        index: Index {
            inner: MemoryIndexStore::new(),
            fuse: fuse.clone(),
        },
        keys: SegmentKeys::new(service, seal.then(|| "alias/tidemark".to_owned())),
        layout: StorageLayout::new("t").unwrap(),
        partition: PartitionId::new(BackupId::parse("prod").unwrap(), "payments", 0),
        fuse,
        records: (0..50).map(record).collect(),
    };
    for (first, last) in [(0, 9), (10, 19), (15, 24), (25, 29), (30, 39), (40, 49)] {
        let mut encoder = SegmentEncoder::new("payments", 0, 3).unwrap();
        for offset in first..=last {
            encoder.push(&record(offset)).unwrap();
        }
        let segment = backup
            .keys
            .protect(&backup.partition.backup_id, encoder.finish().unwrap())
            .await
            .unwrap();
        let key = backup.layout.segment_key(&backup.partition, first, last);
        let metadata = segment_metadata(&segment.header);
        backup
            .objects
            .put_tagged_if_absent(&key, segment.bytes.clone(), &metadata, &ObjectTags::new())
            .await
            .unwrap();
        let entry = SegmentEntry::new(key, &segment.header, segment.bytes.len() as u64, 1);
        let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
        record_segment(
            &backup.index,
            &backup.partition,
            &entry,
            segment.header.max_timestamp,
            observed,
            1,
        )
        .await
        .unwrap();
    }
    backup
}

impl Backup {
    fn compactor(&self) -> Compactor<'_> {
        Compactor {
            objects: &self.objects,
            index: &self.index,
            keys: &self.keys,
            layout: &self.layout,
            settings: CompactionSettings {
                target_bytes: 1 << 20,
                grace_ms: GRACE_MS,
                compression_level: 3,
            },
        }
    }

    async fn compact(&self, now_ms: i64) -> Result<CompactionReport> {
        self.compactor()
            .compact_partition(&self.partition, &ObjectTags::new(), now_ms)
            .await
    }

    /// The records a reader gets from `ranges` (key, first, last), de-duplicated by offset as
    /// restores read.
    async fn read(&self, mut ranges: Vec<(String, i64, i64)>) -> Vec<Record> {
        ranges.sort_by_key(|(_, first, last)| (*first, *last));
        let mut records = Vec::new();
        let mut next = i64::MIN;
        for (key, _, _) in ranges {
            let stored = self
                .objects
                .get(&key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key} is listed but unreadable"));
            let plain = self
                .keys
                .plain(&self.partition.backup_id, stored)
                .await
                .unwrap();
            for record in SegmentReader::open(plain.as_ref()).unwrap() {
                let record = record.unwrap();
                if record.offset >= next {
                    next = record.offset + 1;
                    records.push(record);
                }
            }
        }
        records
    }

    /// What a restore reading the index gets.
    async fn read_via_index(&self) -> Vec<Record> {
        let entries = self.index.segments(&self.partition).await.unwrap();
        self.read(
            entries
                .into_iter()
                .map(|e| (e.key, e.first_offset, e.last_offset))
                .collect(),
        )
        .await
    }

    /// What a restore reading the S3 listing (index lost) gets.
    async fn read_via_listing(&self) -> Vec<Record> {
        let listed = self
            .objects
            .list(&self.layout.partition_prefix(&self.partition))
            .await
            .unwrap();
        self.read(
            listed
                .into_iter()
                .map(|key| {
                    let (first, last) = StorageLayout::parse_segment_file_name(&key).unwrap();
                    (key, first, last)
                })
                .collect(),
        )
        .await
    }

    async fn assert_every_record_readable_once(&self, when: &str) {
        assert_eq!(
            self.read_via_index().await,
            self.records,
            "{when}: via the index"
        );
        assert_eq!(
            self.read_via_listing().await,
            self.records,
            "{when}: via S3"
        );
    }

    /// Compacted and cleaned up: one segment for 0..=49, nothing retired, a clean validation.
    async fn assert_settled(&self) {
        let entries = self.index.segments(&self.partition).await.unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.first_offset, e.last_offset, e.record_count))
                .collect::<Vec<_>>(),
            vec![(0, 49, 50)]
        );
        let listed = self
            .objects
            .list(&self.layout.partition_prefix(&self.partition))
            .await
            .unwrap();
        assert_eq!(listed, vec![entries[0].key.clone()]);
        assert!(
            self.index
                .retired_segments(&self.partition)
                .await
                .unwrap()
                .is_empty()
        );
        let check = validate_partition(
            &self.objects,
            &self.index,
            &self.keys,
            &self.layout,
            &self.partition,
            Depth::Deep,
        )
        .await
        .unwrap();
        assert_eq!(check.findings, vec![]);
        self.assert_every_record_readable_once("settled").await;
    }
}

#[tokio::test]
async fn compaction_merges_the_run_and_deletes_the_old_objects_only_after_the_grace() {
    for seal in [false, true] {
        let backup = backup(seal).await;
        let report = backup.compact(T0).await.unwrap();
        assert_eq!(
            (
                report.segments_written,
                report.segments_replaced,
                report.objects_deleted
            ),
            (1, 6, 0)
        );
        assert!(report.bytes_written < report.bytes_replaced, "{report:?}");
        // Within the grace: the index has the new segment, S3 still has the old ones too.
        backup
            .assert_every_record_readable_once("within the grace")
            .await;
        assert_eq!(
            backup
                .objects
                .list(&backup.layout.partition_prefix(&backup.partition))
                .await
                .unwrap()
                .len(),
            7
        );
        let merged = &backup.index.segments(&backup.partition).await.unwrap()[0];
        let stored = backup.objects.get(&merged.key).await.unwrap().unwrap();
        assert_eq!(
            envelope(&stored).unwrap().is_some(),
            seal,
            "sealed like the writer seals"
        );

        let report = backup.compact(T0 + GRACE_MS - 1).await.unwrap();
        assert_eq!(report, CompactionReport::default(), "nothing due yet");
        let report = backup.compact(T0 + GRACE_MS).await.unwrap();
        assert_eq!(report.objects_deleted, 6);
        backup.assert_settled().await;
    }
}

#[tokio::test]
async fn a_crash_at_any_step_leaves_every_record_readable_once_and_the_next_run_finishes() {
    for crash in [
        Crash::WritingNewSegment,
        Crash::AfterNewSegmentDurable,
        Crash::SwitchingIndex,
        Crash::AfterSwitch,
    ] {
        let backup = backup(false).await;
        *backup.fuse.0.lock().unwrap() = Some(crash);
        let error = backup.compact(T0).await.unwrap_err();
        assert!(error.to_string().contains("crashed"), "{crash:?}: {error}");
        backup
            .assert_every_record_readable_once(&format!("after {crash:?}"))
            .await;
        backup.compact(T0 + 1).await.unwrap();
        backup
            .assert_every_record_readable_once(&format!("rerun after {crash:?}"))
            .await;
        backup.compact(T0 + 1 + GRACE_MS).await.unwrap();
        backup.assert_settled().await;
    }
    for crash in [Crash::DeletingOldObjects, Crash::ForgettingRetired] {
        let backup = backup(false).await;
        backup.compact(T0).await.unwrap();
        *backup.fuse.0.lock().unwrap() = Some(crash);
        let error = backup.compact(T0 + GRACE_MS).await.unwrap_err();
        assert!(error.to_string().contains("crashed"), "{crash:?}: {error}");
        backup
            .assert_every_record_readable_once(&format!("after {crash:?}"))
            .await;
        backup.compact(T0 + GRACE_MS + 1).await.unwrap();
        backup.assert_settled().await;
    }
}

#[tokio::test]
async fn a_writer_re_indexing_a_retired_range_keeps_its_object() {
    let backup = backup(false).await;
    backup.compact(T0).await.unwrap();
    // The mapping re-delivers offsets 40..=49 (a rewound consumer); the writer finds the old
    // object under the same key and indexes it again.
    let retired = backup
        .index
        .retired_segments(&backup.partition)
        .await
        .unwrap();
    let again = retired.iter().find(|r| r.first_offset == 40).unwrap();
    let stored = backup.objects.get(&again.key).await.unwrap().unwrap();
    let header = crate::segment::verify_stored_segment(&stored).unwrap();
    let entry = SegmentEntry::new(again.key.clone(), &header, stored.len() as u64, T0 + 5);
    let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
    record_segment(
        &backup.index,
        &backup.partition,
        &entry,
        49,
        observed,
        T0 + 5,
    )
    .await
    .unwrap();

    let report = backup.compact(T0 + GRACE_MS).await.unwrap();
    assert_eq!(report.objects_deleted, 5, "the re-indexed object stays");
    assert!(backup.objects.get(&again.key).await.unwrap().is_some());
    backup
        .assert_every_record_readable_once("after cleanup")
        .await;
}

fn entry(first: i64, last: i64, stored_bytes: u64) -> SegmentEntry {
    SegmentEntry {
        key: format!("{first}-{last}"),
        first_offset: first,
        last_offset: last,
        record_count: 1,
        min_timestamp: 0,
        max_timestamp: 0,
        stored_bytes,
        uncompressed_bytes: 0,
        records_crc32c: 0,
        written_at_ms: 0,
        write_marks: Vec::new(),
        max_record_bytes: None,
    }
}

#[test]
fn runs_are_adjacent_small_segments_closed_at_the_target() {
    let ranges = |runs: Vec<Vec<SegmentEntry>>| {
        runs.iter()
            .map(|run| {
                run.iter()
                    .map(|e| (e.first_offset, e.last_offset))
                    .collect()
            })
            .collect::<Vec<Vec<_>>>()
    };
    // 40 + 40 + 40 reaches 100: the run closes; the rest forms another.
    let entries = [
        entry(0, 9, 40),
        entry(10, 19, 40),
        entry(20, 29, 40),
        entry(30, 39, 40),
        entry(40, 49, 40),
    ];
    assert_eq!(
        ranges(plan_runs(&entries, 100)),
        vec![vec![(0, 9), (10, 19), (20, 29)], vec![(30, 39), (40, 49)]]
    );
    // A gap (50..=59 missing) and a segment at the target break runs; lone segments stay.
    let entries = [
        entry(0, 9, 10),
        entry(10, 19, 10),
        entry(30, 39, 10),
        entry(40, 49, 500),
        entry(50, 59, 10),
    ];
    assert_eq!(
        ranges(plan_runs(&entries, 100)),
        vec![vec![(0, 9), (10, 19)]]
    );
    // Overlapping re-batches join a run; a run one segment already spans is no gain.
    let entries = [entry(0, 9, 10), entry(5, 14, 10), entry(10, 19, 10)];
    assert_eq!(
        ranges(plan_runs(&entries, 100)),
        vec![vec![(0, 9), (5, 14), (10, 19)]]
    );
    let entries = [entry(0, 19, 10), entry(0, 9, 10)];
    assert!(plan_runs(&entries, 100).is_empty());
    // A run holds at most what one index transaction can replace.
    let many: Vec<_> = (0..100).map(|n| entry(n, n, 1)).collect();
    let runs = plan_runs(&many, 1 << 20);
    assert!(runs.iter().all(|run| run.len() <= MAX_SEGMENTS_REPLACED));
    assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 100);
}

#[tokio::test]
async fn a_compaction_retried_across_an_upgrade_keeps_the_merge_its_older_version_wrote() {
    for seal in [false, true] {
        let backup = backup(seal).await;
        *backup.fuse.0.lock().unwrap() = Some(Crash::AfterNewSegmentDurable);
        backup.compact(T0).await.unwrap_err();
        // The run that crashed was the previous release's: its merge is framed as version 1.
        let merged_key = backup.layout.segment_key(&backup.partition, 0, 49);
        let mut encoder = SegmentEncoder::version_1("payments", 0, 3).unwrap();
        for record in &backup.records {
            encoder.push(record).unwrap();
        }
        let version_1 = backup
            .keys
            .protect(&backup.partition.backup_id, encoder.finish().unwrap())
            .await
            .unwrap();
        assert_eq!(version_1.header.format_version, 1);
        backup.objects.inner.delete(&merged_key).await.unwrap();
        backup
            .objects
            .inner
            .put_tagged_if_absent(
                &merged_key,
                version_1.bytes.clone(),
                &segment_metadata(&version_1.header),
                &ObjectTags::new(),
            )
            .await
            .unwrap();

        backup.compact(T0 + 1).await.unwrap();
        backup.compact(T0 + 1 + GRACE_MS).await.unwrap();
        backup.assert_settled().await;
        let indexed = backup.index.segments(&backup.partition).await.unwrap();
        assert_eq!(
            indexed[0].stored_bytes,
            version_1.bytes.len() as u64,
            "sealed: {seal}"
        );
    }
}
