use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::checkpoint::Checkpoint;
use crate::compaction::{CompactionSettings, Compactor};
use crate::index::{CommitOutcome, RetiredSegment, SegmentCommit, record_segment};
use crate::keys::{KeyService, MemoryKeyService};
use crate::layout::BackupId;
use crate::object_store::{
    ObjectInfo, ObjectMetadata, ObjectRetention, PutOutcome, segment_metadata,
};
use crate::segment::TimestampType;
use crate::stores::{MemoryIndexStore, MemoryObjectStore};

/// Fails the `fail_at`-th change either store is asked to make (0 = the first), as a function
/// that crashes there would: nothing of that change happens.
#[derive(Default)]
pub(super) struct Crash {
    fail_at: Option<usize>,
    changes: AtomicUsize,
}

impl Crash {
    pub(super) fn at(fail_at: usize) -> Arc<Self> {
        Arc::new(Crash {
            fail_at: Some(fail_at),
            changes: AtomicUsize::new(0),
        })
    }

    fn check(&self, what: &str) -> Result<()> {
        let change = self.changes.fetch_add(1, Ordering::SeqCst);
        if self.fail_at == Some(change) {
            return Err(Error::Io(std::io::Error::other(format!(
                "crashed before change {change} ({what})"
            ))));
        }
        Ok(())
    }
}

pub(super) struct Objects {
    pub(super) inner: Arc<MemoryObjectStore>,
    pub(super) crash: Arc<Crash>,
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
        self.crash.check(key)?;
        self.inner
            .put_tagged_if_absent(key, body, metadata, tags)
            .await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.crash.check(key)?;
        self.inner.delete(key).await
    }
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list_objects(prefix).await
    }
    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_prefixes(prefix).await
    }
    async fn retention(&self, key: &str) -> Result<Option<ObjectRetention>> {
        self.inner.retention(key).await
    }
    async fn delete_all_versions(&self, key: &str) -> Result<usize> {
        self.crash.check(key)?;
        self.inner.delete_all_versions(key).await
    }
}

pub(super) struct Index {
    pub(super) inner: Arc<MemoryIndexStore>,
    pub(super) crash: Arc<Crash>,
}

#[async_trait]
impl IndexStore for Index {
    async fn checkpoint(&self, partition: &PartitionId) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(partition).await
    }
    async fn commit_segment(&self, commit: SegmentCommit<'_>) -> Result<CommitOutcome> {
        self.crash.check("commit")?;
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
        self.crash.check("replace")?;
        self.inner
            .replace_segments(partition, new, old, retired_at_ms)
            .await
    }
    async fn swap_segment(
        &self,
        partition: &PartitionId,
        old: &SegmentEntry,
        new: Option<&SegmentEntry>,
    ) -> Result<bool> {
        self.crash.check("swap")?;
        self.inner.swap_segment(partition, old, new).await
    }
    async fn record_gaps(&self, partition: &PartitionId, gaps: &[Gap]) -> Result<()> {
        self.crash.check("gaps")?;
        self.inner.record_gaps(partition, gaps).await
    }
    async fn retired_segments(&self, partition: &PartitionId) -> Result<Vec<RetiredSegment>> {
        self.inner.retired_segments(partition).await
    }
    async fn forget_retired(&self, partition: &PartitionId, key: &RetiredSegment) -> Result<()> {
        self.crash.check("forget")?;
        self.inner.forget_retired(partition, key).await
    }
    async fn expire_segments(
        &self,
        partition: &PartitionId,
        expired: &[SegmentEntry],
        gaps: &[Gap],
        observed_start: i64,
        new_start: i64,
    ) -> Result<bool> {
        self.crash.check("expire")?;
        self.inner
            .expire_segments(partition, expired, gaps, observed_start, new_start)
            .await
    }
    async fn partitions(&self, backup_id: &BackupId) -> Result<Vec<PartitionId>> {
        self.inner.partitions(backup_id).await
    }
}

/// The customer whose records are erased: every seventh record is theirs.
pub(super) const ERASED_KEY: &str = "customer-7";
pub(super) const NOW: i64 = 1_800_000_000_000;

pub(super) fn record(offset: i64) -> Record {
    let customer = if offset % 7 == 3 { 7 } else { offset % 5 };
    Record {
        offset,
        timestamp: 5_000 + offset,
        timestamp_type: TimestampType::CreateTime,
        key: Some(format!("customer-{customer}").into_bytes()),
        value: Some(format!("{{\"amount\":{}}}", offset * 7).into_bytes()),
        headers: vec![],
    }
}

struct Backup {
    objects: Arc<MemoryObjectStore>,
    index: Arc<MemoryIndexStore>,
    keys: SegmentKeys,
    layout: StorageLayout,
    partition: PartitionId,
}

/// Offsets 0..=99 in ten segments (one also holding the customer's last record in the middle,
/// one ending on it), written as the writer does; sealed when `seal`.
async fn backup(seal: bool) -> Backup {
    let service: Arc<dyn KeyService> = Arc::new(MemoryKeyService::default());
    let backup = Backup {
        objects: Arc::new(MemoryObjectStore::new()),
        index: Arc::new(MemoryIndexStore::new()),
        keys: SegmentKeys::new(service, seal.then(|| "alias/tidemark".to_owned())),
        layout: StorageLayout::new("t").unwrap(),
        partition: PartitionId::new(BackupId::parse("prod").unwrap(), "payments", 0),
    };
    for first in (0..100).step_by(10) {
        let mut encoder = SegmentEncoder::new("payments", 0, 3).unwrap();
        for offset in first..first + 10 {
            encoder.push(&record(offset)).unwrap();
        }
        let segment = backup
            .keys
            .protect(&backup.partition.backup_id, encoder.finish().unwrap())
            .await
            .unwrap();
        let key = backup
            .layout
            .segment_key(&backup.partition, first, first + 9);
        backup
            .objects
            .put_if_absent(
                &key,
                segment.bytes.clone(),
                &segment_metadata(&segment.header),
            )
            .await
            .unwrap();
        let entry = SegmentEntry::new(key, &segment.header, segment.bytes.len() as u64, first);
        let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
        record_segment(
            backup.index.as_ref(),
            &backup.partition,
            &entry,
            segment.header.max_timestamp,
            observed,
            first,
        )
        .await
        .unwrap();
    }
    backup
}

fn matchers(json: &str) -> Matchers {
    Matchers::new(&serde_json::from_str::<Vec<RecordMatcher>>(json).unwrap()).unwrap()
}

impl Backup {
    fn stores(&self, crash: Arc<Crash>) -> (Objects, Index) {
        (
            Objects {
                inner: self.objects.clone(),
                crash: crash.clone(),
            },
            Index {
                inner: self.index.clone(),
                crash,
            },
        )
    }

    /// Every record a restore would read: indexed segments in order, each offset once.
    async fn readable(&self) -> Vec<Record> {
        let mut records: Vec<Record> = Vec::new();
        for entry in self.index.segments(&self.partition).await.unwrap() {
            let stored = self.objects.get(&entry.key).await.unwrap().unwrap();
            let plain = self
                .keys
                .plain(&self.partition.backup_id, stored)
                .await
                .unwrap();
            let mut reader = SegmentReader::open(plain.as_ref()).unwrap();
            while let Some(record) = reader.next_record().unwrap() {
                if records
                    .last()
                    .is_none_or(|last| record.offset > last.offset)
                {
                    records.push(record);
                }
            }
        }
        records
    }

    /// Every record any stored object holds, indexed or not.
    async fn stored_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        for key in self
            .objects
            .list(&self.layout.partition_prefix(&self.partition))
            .await
            .unwrap()
        {
            let stored = self.objects.get(&key).await.unwrap().unwrap();
            let plain = self
                .keys
                .plain(&self.partition.backup_id, stored)
                .await
                .unwrap();
            let mut reader = SegmentReader::open(plain.as_ref()).unwrap();
            while let Some(record) = reader.next_record().unwrap() {
                keys.extend(record.key);
            }
        }
        keys
    }

    /// Runs erase then purge through stores that crash at `crash`.
    async fn erase(
        &self,
        crash: Arc<Crash>,
        matchers: &Matchers,
    ) -> Result<(Vec<Rewrite>, PurgeReport)> {
        let (objects, index) = self.stores(crash);
        let erasure = RunId::parse("erase-1").unwrap();
        let eraser = Eraser {
            objects: &objects,
            index: &index,
            keys: &self.keys,
            layout: &self.layout,
            erasure: &erasure,
            matchers,
            shredded: None,
            compression_level: 3,
        };
        let rewrites = eraser
            .erase(&self.partition, 100, &ObjectTags::new(), NOW)
            .await?;
        let purged = eraser.purge(&self.partition, NOW).await?;
        Ok((rewrites, purged))
    }

    async fn verify(&self, matchers: &Matchers) -> Verification {
        let erasure = RunId::parse("erase-1").unwrap();
        Eraser {
            objects: self.objects.as_ref(),
            index: self.index.as_ref(),
            keys: &self.keys,
            layout: &self.layout,
            erasure: &erasure,
            matchers,
            shredded: None,
            compression_level: 3,
        }
        .verify(&self.partition, 100, 0)
        .await
        .unwrap()
    }

    async fn compact(&self, crash: Arc<Crash>) -> Result<()> {
        let (objects, index) = self.stores(crash);
        Compactor {
            objects: &objects,
            index: &index,
            keys: &self.keys,
            layout: &self.layout,
            settings: CompactionSettings {
                target_bytes: 1 << 20,
                grace_ms: 0,
                compression_level: 3,
            },
        }
        .compact_partition(&self.partition, &ObjectTags::new(), NOW)
        .await
        .map(|_| ())
    }
}

fn expected_after_erasure() -> Vec<Record> {
    (0..100)
        .map(record)
        .filter(|record| record.key.as_deref() != Some(ERASED_KEY.as_bytes()))
        .collect()
}

#[tokio::test]
async fn an_erased_key_is_gone_from_every_segment_and_every_other_record_stays_exactly() {
    for seal in [false, true] {
        let backup = backup(seal).await;
        let by_key = matchers(&format!(r#"[{{"key": "{ERASED_KEY}"}}]"#));
        let (rewrites, purged) = backup
            .erase(Arc::new(Crash::default()), &by_key)
            .await
            .unwrap();

        let erased: Vec<i64> = (0..100).filter(|offset| offset % 7 == 3).collect();
        assert_eq!(
            rewrites
                .iter()
                .flat_map(|r| r.erased_offsets.clone())
                .collect::<Vec<_>>(),
            erased
        );
        assert_eq!(
            rewrites.len(),
            10,
            "every segment held one of the customer's records"
        );
        assert_eq!(purged.objects_deleted, 10);
        assert_eq!(backup.readable().await, expected_after_erasure());
        assert!(
            !backup
                .stored_keys()
                .await
                .contains(&ERASED_KEY.as_bytes().to_vec())
        );
        // The offsets are facts of their own kind.
        let gaps = backup.index.gaps(&backup.partition).await.unwrap();
        assert!(gaps.iter().all(|gap| gap.kind == GapKind::Erased));
        assert_eq!(
            gaps.iter()
                .flat_map(|gap| gap.start..=gap.end)
                .collect::<Vec<_>>(),
            erased
        );
        assert_eq!(
            backup.verify(&by_key).await,
            Verification {
                segments_read: if seal { 10 } else { 0 },
                remaining: vec![],
                kept_locked: vec![],
            }
        );
        // Erasing again finds nothing and changes nothing.
        let again = backup
            .erase(Arc::new(Crash::default()), &by_key)
            .await
            .unwrap();
        assert_eq!(again.0, rewrites);
        assert_eq!(again.1, PurgeReport::default());
    }
}

#[tokio::test]
async fn key_filters_spare_reading_segments_that_cannot_hold_the_key() {
    let backup = backup(false).await;
    let erasure = RunId::parse("erase-1").unwrap();
    let absent = matchers(r#"[{"key": "customer-999"}]"#);
    let eraser = Eraser {
        objects: backup.objects.as_ref(),
        index: backup.index.as_ref(),
        keys: &backup.keys,
        layout: &backup.layout,
        erasure: &erasure,
        matchers: &absent,
        shredded: None,
        compression_level: 3,
    };
    let findings = eraser.find(&backup.partition, 100, NOW).await.unwrap();
    assert_eq!(findings.segments_indexed, 10);
    assert!(findings.segments_read <= 1, "{findings:?}");
    assert!(findings.matches.is_empty());
}

#[tokio::test]
async fn header_and_json_field_matchers_erase_what_they_name() {
    let backup = backup(false).await;
    let by_field = matchers(r#"[{"json_pointer": "/amount", "value": "21"}]"#);
    let (rewrites, _) = backup
        .erase(Arc::new(Crash::default()), &by_field)
        .await
        .unwrap();
    assert_eq!(rewrites.len(), 1);
    assert_eq!(rewrites[0].erased_offsets, vec![3]);
    let readable = backup.readable().await;
    assert_eq!(readable.len(), 99);
    assert!(readable.iter().all(|record| record.offset != 3));
}

#[tokio::test]
async fn a_crash_at_any_change_then_compaction_then_a_retry_loses_nothing_and_keeps_nothing_erased()
{
    let by_key = matchers(&format!(r#"[{{"key": "{ERASED_KEY}"}}]"#));
    let mut crash_at = 0;
    loop {
        let backup = backup(false).await;
        let crashed = backup.erase(Crash::at(crash_at), &by_key).await.is_err();
        // Whatever the crash left, nothing backed up is lost meanwhile, and compaction (which
        // may run before the retry) keeps it so.
        let readable = backup.readable().await;
        assert!(
            expected_after_erasure()
                .iter()
                .all(|record| readable.contains(record)),
            "crash at change {crash_at}: a record was lost"
        );
        backup.compact(Arc::new(Crash::default())).await.unwrap();
        backup
            .erase(Arc::new(Crash::default()), &by_key)
            .await
            .unwrap();

        assert_eq!(
            backup.readable().await,
            expected_after_erasure(),
            "crash at change {crash_at}"
        );
        assert!(
            !backup
                .stored_keys()
                .await
                .contains(&ERASED_KEY.as_bytes().to_vec()),
            "crash at change {crash_at}: an erased record is still stored"
        );
        assert!(backup.verify(&by_key).await.remaining.is_empty());
        if !crashed {
            break;
        }
        crash_at += 1;
    }
    assert!(crash_at > 30, "only {crash_at} changes were crashed at");
}

#[tokio::test]
async fn compaction_that_merged_before_the_erasure_switched_is_rewritten_too() {
    let backup = backup(false).await;
    let by_key = matchers(&format!(r#"[{{"key": "{ERASED_KEY}"}}]"#));
    // The erasure marks its first segment's offsets, then stops; compaction merges everything.
    let crash = Crash::at(1);
    assert!(backup.erase(crash, &by_key).await.is_err());
    backup.compact(Arc::new(Crash::default())).await.unwrap();
    assert_eq!(
        backup
            .index
            .segments(&backup.partition)
            .await
            .unwrap()
            .len(),
        1
    );
    backup
        .erase(Arc::new(Crash::default()), &by_key)
        .await
        .unwrap();
    assert_eq!(backup.readable().await, expected_after_erasure());
    assert!(
        !backup
            .stored_keys()
            .await
            .contains(&ERASED_KEY.as_bytes().to_vec())
    );
}

/// A writer that checked its re-delivered batch before the erasure marked the offsets commits
/// after the swap: the commit must not index the old segment, erased records and all, again.
#[tokio::test]
async fn a_commit_of_a_batch_over_erased_offsets_is_refused() {
    let backup = backup(false).await;
    let original = backup.index.segments(&backup.partition).await.unwrap()[0].clone();
    let by_key = matchers(&format!(r#"[{{"key": "{ERASED_KEY}"}}]"#));
    let erasure = RunId::parse("erase-1").unwrap();
    Eraser {
        objects: backup.objects.as_ref(),
        index: backup.index.as_ref(),
        keys: &backup.keys,
        layout: &backup.layout,
        erasure: &erasure,
        matchers: &by_key,
        shredded: None,
        compression_level: 3,
    }
    .erase(&backup.partition, 100, &ObjectTags::new(), NOW)
    .await
    .unwrap();

    let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
    let refused = record_segment(
        backup.index.as_ref(),
        &backup.partition,
        &original,
        original.max_timestamp,
        observed,
        NOW,
    )
    .await
    .unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    assert!(refused.to_string().contains("erasure"), "{refused}");
    assert!(
        !backup
            .index
            .segments(&backup.partition)
            .await
            .unwrap()
            .iter()
            .any(|entry| entry.key == original.key)
    );
    assert_eq!(backup.readable().await, expected_after_erasure());
}

/// A store that holds its caller after the first segment it writes (compaction's merge),
/// until told to resume.
struct PausedAfterWrite {
    inner: Arc<MemoryObjectStore>,
    paused: std::sync::atomic::AtomicBool,
    written: tokio::sync::Notify,
    resume: tokio::sync::Notify,
}

#[async_trait]
impl ObjectStore for PausedAfterWrite {
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &ObjectMetadata,
        tags: &ObjectTags,
    ) -> Result<PutOutcome> {
        let outcome = self
            .inner
            .put_tagged_if_absent(key, body, metadata, tags)
            .await;
        if key.ends_with(SEGMENT_SUFFIX) && !self.paused.swap(true, Ordering::SeqCst) {
            self.written.notify_one();
            self.resume.notified().await;
        }
        outcome
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list_objects(prefix).await
    }
    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_prefixes(prefix).await
    }
    async fn retention(&self, key: &str) -> Result<Option<ObjectRetention>> {
        self.inner.retention(key).await
    }
    async fn delete_all_versions(&self, key: &str) -> Result<usize> {
        self.inner.delete_all_versions(key).await
    }
}

/// Compaction may merge the erasure's rewrites during its grace period; its merged segment
/// spans the erased offsets but holds none of them, and is not indexed until its switch. A
/// purge that runs in between must leave it, or the index would name a deleted object.
#[tokio::test]
async fn a_compaction_between_the_erasure_and_its_purge_keeps_its_merged_segment() {
    let backup = backup(false).await;
    let by_key = matchers(&format!(r#"[{{"key": "{ERASED_KEY}"}}]"#));
    let erasure = RunId::parse("erase-1").unwrap();
    let eraser = Eraser {
        objects: backup.objects.as_ref(),
        index: backup.index.as_ref(),
        keys: &backup.keys,
        layout: &backup.layout,
        erasure: &erasure,
        matchers: &by_key,
        shredded: None,
        compression_level: 3,
    };
    eraser
        .erase(&backup.partition, 100, &ObjectTags::new(), NOW)
        .await
        .unwrap();

    let paused = PausedAfterWrite {
        inner: backup.objects.clone(),
        paused: std::sync::atomic::AtomicBool::new(false),
        written: tokio::sync::Notify::new(),
        resume: tokio::sync::Notify::new(),
    };
    let compactor = Compactor {
        objects: &paused,
        index: backup.index.as_ref(),
        keys: &backup.keys,
        layout: &backup.layout,
        settings: CompactionSettings {
            target_bytes: 1 << 20,
            grace_ms: 0,
            compression_level: 3,
        },
    };
    let purge = async {
        paused.written.notified().await;
        let purged = eraser.purge(&backup.partition, NOW).await;
        paused.resume.notify_one();
        purged
    };
    let tags = ObjectTags::new();
    let (compacted, purged) = tokio::join!(
        compactor.compact_partition(&backup.partition, &tags, NOW),
        purge
    );
    compacted.unwrap();
    assert_eq!(
        purged.unwrap().objects_deleted,
        10,
        "the ten segments the erasure replaced, and nothing else"
    );
    let indexed = backup.index.segments(&backup.partition).await.unwrap();
    assert!(
        indexed.len() < 10,
        "compaction merged the rewrites: {indexed:?}"
    );
    for entry in &indexed {
        assert!(
            backup.objects.get(&entry.key).await.unwrap().is_some(),
            "the index names {}, which the purge deleted",
            entry.key
        );
    }
    assert_eq!(backup.readable().await, expected_after_erasure());
    assert!(backup.verify(&by_key).await.remaining.is_empty());
}

#[tokio::test]
async fn segments_under_compliance_retention_are_found_locked_and_never_purged() {
    let backup = backup(false).await;
    let by_key = matchers(&format!(r#"[{{"key": "{ERASED_KEY}"}}]"#));
    let locked = backup.layout.segment_key(&backup.partition, 0, 9);
    backup.objects.lock(
        &locked,
        ObjectRetention {
            mode: RetentionMode::Compliance,
            retain_until_ms: NOW + 86_400_000,
        },
    );
    let erasure = RunId::parse("erase-1").unwrap();
    let eraser = Eraser {
        objects: backup.objects.as_ref(),
        index: backup.index.as_ref(),
        keys: &backup.keys,
        layout: &backup.layout,
        erasure: &erasure,
        matchers: &by_key,
        shredded: None,
        compression_level: 3,
    };
    let findings = eraser.find(&backup.partition, 100, NOW).await.unwrap();
    assert_eq!(findings.locked.len(), 1);
    assert_eq!(findings.locked[0].key, locked);
    // Past its date, nothing holds it.
    let later = eraser
        .find(&backup.partition, 100, NOW + 86_400_001)
        .await
        .unwrap();
    assert!(later.locked.is_empty());
    // The purge refuses it even if a caller skipped the check.
    eraser
        .erase(&backup.partition, 100, &ObjectTags::new(), NOW)
        .await
        .unwrap();
    let refused = eraser.purge(&backup.partition, NOW).await.unwrap_err();
    assert!(
        matches!(&refused, Error::ErasureRefused(message) if message.contains("00000000000000000000-00000000000000000009")),
        "{refused}"
    );
    assert!(backup.objects.get(&locked).await.unwrap().is_some());
}

#[test]
fn marks_follow_the_records_that_remain() {
    let marks = [
        WriteMark {
            last_offset: 4,
            written_at_ms: 10,
        },
        WriteMark {
            last_offset: 9,
            written_at_ms: 20,
        },
    ];
    assert_eq!(
        remap_marks(&marks, &[0, 1, 2, 3, 5, 6, 7, 8]),
        vec![
            WriteMark {
                last_offset: 3,
                written_at_ms: 10
            },
            WriteMark {
                last_offset: 8,
                written_at_ms: 20
            },
        ]
    );
    assert_eq!(
        remap_marks(&marks, &[7]),
        vec![WriteMark {
            last_offset: 7,
            written_at_ms: 20
        }]
    );
    assert_eq!(
        erased_runs(&[3, 4, 5, 9, 11, 12], 1),
        vec![
            Gap::erased(3, 5, 1),
            Gap::erased(9, 9, 1),
            Gap::erased(11, 12, 1)
        ]
    );
}
