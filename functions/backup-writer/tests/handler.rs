//! Handler tests with the in-memory stores and ESM-shaped JSON fixtures.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use backup_writer::{BackupWriter, BatchReport, PartitionReport, TopicGenerations, WriterError};
use tidemark_core::checkpoint::{Checkpoint, Gap};
use tidemark_core::config::{BackupWriterConfig, Env};
use tidemark_core::event::KafkaEvent;
use tidemark_core::index::{
    CommitOutcome, IndexStore, RetiredSegment, SegmentCommit, SegmentEntry,
};
use tidemark_core::kafka::{ClusterReader, MemoryCluster};
use tidemark_core::keys::{KeyService, MemoryKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::object_store::ObjectStore;
use tidemark_core::segment::encryption::envelope;
use tidemark_core::segment::{Header, Record, SegmentReader, TimestampType};
use tidemark_core::shredding::{Shredding, ShreddingStore};
use tidemark_core::snapshot::{SnapshotCatalog, TopicGeneration};
use tidemark_core::stores::{MemoryIndexStore, MemoryObjectStore};

/// The tests build events as values; the writer takes them as JSON, as Lambda delivers them.
trait BackUp {
    async fn back_up(&self, event: KafkaEvent) -> Result<BatchReport, WriterError>;
}

impl BackUp for BackupWriter {
    async fn back_up(&self, event: KafkaEvent) -> Result<BatchReport, WriterError> {
        self.handle_json(&serde_json::to_vec(&event).unwrap()).await
    }
}

fn fixture(name: &str) -> KafkaEvent {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn config(extra: &[(&str, &str)]) -> BackupWriterConfig {
    let mut vars: HashMap<String, String> = [
        ("TIDEMARK_BUCKET", "b"),
        ("TIDEMARK_TABLE", "t"),
        ("TIDEMARK_BACKUP_ID", "prod"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.entry("TIDEMARK_PREFIX".into())
        .or_insert_with(|| "backups".into());
    BackupWriterConfig::from_env(&Env::from_lookup(move |name| vars.get(name).cloned())).unwrap()
}

struct Harness {
    objects: Arc<MemoryObjectStore>,
    index: Arc<FlakyIndex>,
    catalog: Arc<MemoryIndexStore>,
    kms: Arc<MemoryKeyService>,
    /// Opens sealed segments, as a restore would.
    reader_keys: SegmentKeys,
    writer: BackupWriter,
}

fn harness(extra: &[(&str, &str)]) -> Harness {
    harness_asking(extra, None)
}

/// A writer that asks `cluster` for the live topic ids.
fn harness_asking(extra: &[(&str, &str)], cluster: Option<Arc<MemoryCluster>>) -> Harness {
    let objects = Arc::new(MemoryObjectStore::new());
    let index = Arc::new(FlakyIndex {
        inner: MemoryIndexStore::new(),
        failures_left: AtomicUsize::new(0),
    });
    let config = config(extra);
    let kms = Arc::new(MemoryKeyService::default());
    // The catalog's store keeps the shredding keys, as the index table does.
    let catalog = Arc::new(MemoryIndexStore::new());
    let keys = |seal_with, shred_with| {
        let kms = Arc::clone(&kms) as Arc<dyn KeyService>;
        let shredding = Shredding::new(catalog.clone(), kms.clone(), shred_with);
        SegmentKeys::new(kms, seal_with).with_shredding(Arc::new(shredding))
    };
    let reader_keys = keys(None, None);
    let writer_keys = Arc::new(keys(
        config.segment_encryption_key.clone(),
        config.shredding_kms_key.clone(),
    ));
    let generations = TopicGenerations::new(
        config.backup_id.clone(),
        catalog.clone(),
        cluster.map(|cluster| cluster as Arc<dyn ClusterReader>),
    );
    // A masked backup's key would come from Secrets Manager.
    let masking = config.masking.as_ref().map(|rules| {
        tidemark_core::masking::Masking::new(rules, Some(b"a masking key of thirty-two bytes"))
            .unwrap()
    });
    let writer = BackupWriter::new(
        config,
        objects.clone(),
        index.clone(),
        writer_keys,
        generations,
    )
    .masking(masking);
    Harness {
        objects,
        index,
        catalog,
        kms,
        reader_keys,
        writer,
    }
}

impl Harness {
    /// The checkpoint of `payments.captured` partition 0, the fixtures' main partition.
    async fn captured_checkpoint(&self) -> Option<Checkpoint> {
        self.index
            .checkpoint(&partition("payments.captured", 0))
            .await
            .unwrap()
    }
}

/// What the writer reported for `id`'s partition.
fn report_of<'a>(report: &'a BatchReport, id: &PartitionId) -> &'a PartitionReport {
    report
        .partitions
        .iter()
        .find(|p| p.topic == id.topic && p.partition == id.partition)
        .expect("the batch held the partition")
}

fn partition(topic: &str, partition: i32) -> PartitionId {
    PartitionId::new(BackupId::parse("prod").unwrap(), topic, partition)
}

async fn stored_records(h: &Harness, prefix: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for key in h.objects.list(prefix).await.unwrap() {
        let stored = h.objects.get(&key).await.unwrap().unwrap();
        let backup = BackupId::parse("prod").unwrap();
        let bytes = h.reader_keys.clear(&backup, stored).await.unwrap();
        for record in SegmentReader::open(bytes.as_ref()).unwrap() {
            records.push(record.unwrap());
        }
    }
    records
}

/// An index store that fails its next N commits, as a throttled DynamoDB would.
struct FlakyIndex {
    inner: MemoryIndexStore,
    failures_left: AtomicUsize,
}

#[async_trait]
impl IndexStore for FlakyIndex {
    async fn checkpoint(
        &self,
        partition: &PartitionId,
    ) -> tidemark_core::Result<Option<Checkpoint>> {
        self.inner.checkpoint(partition).await
    }
    async fn commit_segment(
        &self,
        commit: SegmentCommit<'_>,
    ) -> tidemark_core::Result<CommitOutcome> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(tidemark_core::Error::IndexStore {
                operation: "TransactWriteItems",
                message: "ProvisionedThroughputExceededException: throttled".into(),
                retryable: true,
            });
        }
        self.inner.commit_segment(commit).await
    }
    async fn segments(&self, partition: &PartitionId) -> tidemark_core::Result<Vec<SegmentEntry>> {
        self.inner.segments(partition).await
    }
    async fn segments_covering(
        &self,
        partition: &PartitionId,
        first: i64,
        last: i64,
    ) -> tidemark_core::Result<Vec<SegmentEntry>> {
        self.inner.segments_covering(partition, first, last).await
    }
    async fn gaps(&self, partition: &PartitionId) -> tidemark_core::Result<Vec<Gap>> {
        self.inner.gaps(partition).await
    }

    async fn partitions(&self, backup_id: &BackupId) -> tidemark_core::Result<Vec<PartitionId>> {
        self.inner.partitions(backup_id).await
    }

    async fn replace_segments(
        &self,
        partition: &PartitionId,
        new: &SegmentEntry,
        old: &[SegmentEntry],
        retired_at_ms: i64,
    ) -> tidemark_core::Result<bool> {
        self.inner
            .replace_segments(partition, new, old, retired_at_ms)
            .await
    }

    async fn expire_segments(
        &self,
        partition: &PartitionId,
        expired: &[SegmentEntry],
        gaps: &[Gap],
        observed_start: i64,
        new_start: i64,
    ) -> tidemark_core::Result<bool> {
        self.inner
            .expire_segments(partition, expired, gaps, observed_start, new_start)
            .await
    }

    async fn swap_segment(
        &self,
        partition: &PartitionId,
        old: &SegmentEntry,
        new: Option<&SegmentEntry>,
    ) -> tidemark_core::Result<bool> {
        self.inner.swap_segment(partition, old, new).await
    }
    async fn record_gaps(
        &self,
        partition: &PartitionId,
        gaps: &[Gap],
    ) -> tidemark_core::Result<()> {
        self.inner.record_gaps(partition, gaps).await
    }
    async fn retired_segments(
        &self,
        partition: &PartitionId,
    ) -> tidemark_core::Result<Vec<RetiredSegment>> {
        self.inner.retired_segments(partition).await
    }

    async fn forget_retired(
        &self,
        partition: &PartitionId,
        retired: &RetiredSegment,
    ) -> tidemark_core::Result<()> {
        self.inner.forget_retired(partition, retired).await
    }
}

#[tokio::test]
async fn msk_event_becomes_one_faithful_segment_per_partition() {
    let h = harness(&[]);
    let report = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert_eq!(report.partitions.len(), 2);
    assert!(report.partitions.iter().all(|p| p.created));
    assert_eq!(
        h.objects.list("").await.unwrap(),
        vec![
            "backups/prod/topics/payments.captured/partition=0/00000000000000000100-00000000000000000105.seg.zst",
            "backups/prod/topics/payments.refunded/partition=3/00000000000000000007-00000000000000000007.seg.zst",
        ]
    );

    let records = stored_records(&h, "backups/prod/topics/payments.captured/").await;
    let header = |key: &str, value: &[u8]| Header {
        key: key.into(),
        value: Some(value.to_vec()),
    };
    assert_eq!(
        records,
        vec![
            Record {
                offset: 100,
                timestamp: 1763732940000,
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"order-1".to_vec()),
                value: Some(br#"{"amount":1250,"currency":"EUR"}"#.to_vec()),
                headers: vec![
                    header("trace-id", b"a1b2"),
                    header("retry", b"1"),
                    header("retry", b"2")
                ],
            },
            Record {
                offset: 101,
                timestamp: 1763732940500,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: None,
                headers: vec![],
            },
            Record {
                offset: 102,
                timestamp: 1763732939000,
                timestamp_type: TimestampType::CreateTime,
                key: Some(vec![]),
                value: Some(vec![]),
                headers: vec![header("empty", b"")],
            },
            Record {
                offset: 105,
                timestamp: 1763732941000,
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"order-2".to_vec()),
                value: Some(b"\x00\xff\xfe binary".to_vec()),
                headers: vec![header("bin", b"\x80\xff\x00")],
            },
        ]
    );

    let checkpoint = h.captured_checkpoint().await.unwrap();
    assert_eq!(
        (checkpoint.start_offset, checkpoint.next_offset),
        (100, 106)
    );
    assert_eq!(checkpoint.max_timestamp, 1763732941000);
    let segments = h
        .index
        .segments(&partition("payments.captured", 0))
        .await
        .unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(
        (
            segments[0].first_offset,
            segments[0].last_offset,
            segments[0].record_count
        ),
        (100, 105, 4)
    );
    let refunded = stored_records(&h, "backups/prod/topics/payments.refunded/").await;
    assert_eq!(refunded[0].timestamp_type, TimestampType::LogAppendTime);
}

#[tokio::test]
async fn self_managed_event_keeps_no_timestamp_records() {
    let h = harness(&[]);
    h.writer
        .back_up(fixture("self-managed-event.json"))
        .await
        .unwrap();
    let records = stored_records(&h, "backups/prod/topics/audit.log/").await;
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[1].timestamp, records[1].timestamp_type),
        (-1, TimestampType::NoTimestampType)
    );
}

#[tokio::test]
async fn segments_are_tagged_with_their_topics_retention_tier() {
    let h = harness(&[("TIDEMARK_RETENTION_SHORT_TOPICS", "audit\\..*")]);
    h.writer
        .back_up(fixture("self-managed-event.json"))
        .await
        .unwrap();
    let keys = h.objects.list("backups/prod/topics/").await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let tier = if key.contains("/audit.log/") {
            "short"
        } else {
            "standard"
        };
        assert_eq!(
            h.objects.tags(&key),
            Some([("tidemark-retention".to_owned(), tier.to_owned())].into()),
            "{key}"
        );
    }
}

#[tokio::test]
async fn retried_batch_writes_no_second_copy() {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let keys_before = h.objects.list("").await.unwrap();
    let checkpoint_before = h.captured_checkpoint().await;

    let report = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert!(
        report.partitions.iter().all(|p| !p.created),
        "retry must find the identical segments"
    );
    assert_eq!(h.objects.list("").await.unwrap(), keys_before);
    assert_eq!(
        h.index
            .segments(&partition("payments.captured", 0))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.captured_checkpoint().await, checkpoint_before);
}

#[tokio::test]
async fn retry_after_index_failure_leaves_no_duplicate_and_no_gap() {
    let h = harness(&[]);
    h.index.failures_left.store(1, Ordering::SeqCst);
    let error = h
        .writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.Retryable", "{error}");
    // One partition's commit failed after its segment was written: its checkpoint did not move.
    let mut failed = 0;
    for (topic, number) in [("payments.captured", 0), ("payments.refunded", 3)] {
        if h.index
            .checkpoint(&partition(topic, number))
            .await
            .unwrap()
            .is_none()
        {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 1,
        "exactly the failed partition keeps its old checkpoint"
    );

    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert_eq!(
        h.objects.list("").await.unwrap().len(),
        2,
        "retry must not add objects"
    );
    let records = stored_records(&h, "backups/prod/topics/payments.captured/").await;
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![100, 101, 102, 105]
    );
    assert!(
        h.index
            .gaps(&partition("payments.captured", 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 106);
}

#[tokio::test]
async fn later_batch_with_skipped_offsets_records_a_gap() {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let mut later = fixture("msk-event.json");
    let records = later.records.get_mut("payments.captured-0").unwrap();
    for (record, offset) in records.iter_mut().zip([120, 121, 122, 123]) {
        record.offset = offset;
    }
    later.records.remove("payments.refunded-3");
    let report = h.writer.back_up(later).await.unwrap();
    assert_eq!(report.partitions[0].gap, Some((106, 119)));
    let gaps = h
        .index
        .gaps(&partition("payments.captured", 0))
        .await
        .unwrap();
    assert_eq!((gaps[0].start, gaps[0].end), (106, 119));
    assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 124);
}

#[tokio::test]
async fn excluded_topics_are_skipped_and_reported() {
    let h = harness(&[("TIDEMARK_TOPICS_EXCLUDE", "payments\\.refunded")]);
    let report = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert_eq!(report.skipped_topics, vec!["payments.refunded"]);
    assert!(
        h.objects
            .list("backups/prod/topics/payments.refunded/")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.objects.list("").await.unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_events_are_refused_with_the_place_named_and_nothing_written() {
    let cases = [
        (
            "malformed-bad-base64.json",
            "records[\"payments.captured-0\"][2] (offset 102): value is not valid base64",
        ),
        (
            "malformed-offsets-not-increasing.json",
            "records[\"payments.captured-0\"][3] (offset 101): offsets are not increasing",
        ),
        (
            "malformed-wrong-partition-key.json",
            "records[\"payments.refunded-4\"] holds a record of payments.refunded-3",
        ),
    ];
    for (name, expected) in cases {
        let h = harness(&[]);
        let error = h.writer.back_up(fixture(name)).await.unwrap_err();
        assert_eq!(
            error.error_type(),
            "Tidemark.InvalidEvent",
            "{name}: {error}"
        );
        assert!(error.to_string().contains(expected), "{name}: {error}");
        assert!(
            h.objects.list("").await.unwrap().is_empty(),
            "{name}: wrote objects"
        );
        assert_eq!(h.captured_checkpoint().await, None, "{name}");
    }
    let mut unknown_source = fixture("msk-event.json");
    unknown_source.event_source = Some("aws:sqs".into());
    let h = harness(&[]);
    let error = h.writer.back_up(unknown_source).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("eventSource is Some(\"aws:sqs\")"),
        "{error}"
    );
    assert!(h.objects.list("").await.unwrap().is_empty());
}

fn changed_first_key() -> KafkaEvent {
    let mut changed = fixture("msk-event.json");
    changed.records.remove("payments.refunded-3");
    changed.records.get_mut("payments.captured-0").unwrap()[0].key = Some("b3RoZXI=".into());
    changed
}

#[tokio::test]
async fn different_records_under_an_existing_key_are_a_conflict_not_a_success() {
    let h = harness(&[]);
    // The first attempt's segment is in S3 but its index commit failed: no checkpoint covers
    // it, so only the key's records CRC can tell the batches apart.
    h.index.failures_left.store(1, Ordering::SeqCst);
    h.writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap_err();
    let error = h.writer.back_up(changed_first_key()).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.SegmentConflict", "{error}");
    assert!(
        error
            .to_string()
            .contains("segment conflict at backups/prod/topics/payments.captured/partition=0/"),
        "{error}"
    );
    assert!(
        matches!(
            error,
            WriterError::Partitions {
                failed: 1,
                total: 1,
                ..
            }
        ),
        "{error}"
    );
    let checkpoint = h.captured_checkpoint().await;
    assert_eq!(checkpoint, None, "a conflict must not move the checkpoint");

    // Once a checkpoint covers the offsets, the records themselves are compared first.
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let error = h.writer.back_up(changed_first_key()).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
    assert!(
        error.to_string().contains(
            "offset 100 differs from the backed-up record in backups/prod/topics/payments.captured/partition=0/"
        ),
        "{error}"
    );
    let checkpoint = h.captured_checkpoint().await;
    assert_eq!(
        checkpoint.unwrap().next_offset,
        106,
        "a refused batch must not move the checkpoint"
    );
}

#[tokio::test]
async fn a_rebatched_retry_with_the_same_records_passes_the_overlap_check() {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let checkpoint_before = h.captured_checkpoint().await;
    // The same records, batched from offset 101: a different key, the same history.
    let mut rebatched = fixture("msk-event.json");
    rebatched.records.remove("payments.refunded-3");
    rebatched
        .records
        .get_mut("payments.captured-0")
        .unwrap()
        .remove(0);
    let report = h.writer.back_up(rebatched).await.unwrap();
    assert_eq!(report.partitions[0].first_offset, 101);
    assert_eq!(h.captured_checkpoint().await, checkpoint_before);
}

#[tokio::test]
async fn a_recreated_topic_is_refused_instead_of_mixed_into_the_backup() {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let keys_before = h.objects.list("").await.unwrap();
    let items_before = h
        .index
        .segments(&partition("payments.captured", 0))
        .await
        .unwrap();
    // After delete-and-recreate, offsets 101.. come back holding other records.
    let mut recreated = fixture("msk-event.json");
    recreated.records.remove("payments.refunded-3");
    let records = recreated.records.get_mut("payments.captured-0").unwrap();
    records.remove(0);
    records[1].value = Some("bmV3IHRvcGlj".into()); // offset 102
    let error = h.writer.back_up(recreated).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("prod/payments.captured-0 offset 102 differs from the backed-up record in backups/prod/topics/payments.captured/partition=0/"),
        "{message}"
    );
    assert_eq!(
        h.objects.list("").await.unwrap(),
        keys_before,
        "nothing written"
    );
    assert_eq!(
        h.index
            .segments(&partition("payments.captured", 0))
            .await
            .unwrap(),
        items_before
    );
}

/// The fixture's `payments.captured` partition 0 as a recreated topic would deliver it:
/// offsets 101.. again, holding other records.
fn recreated_captured() -> KafkaEvent {
    let mut recreated = fixture("msk-event.json");
    recreated.records.remove("payments.refunded-3");
    let records = recreated.records.get_mut("payments.captured-0").unwrap();
    records.remove(0);
    records[1].value = Some("bmV3IHRvcGlj".into()); // offset 102
    recreated
}

#[tokio::test]
async fn a_recreated_topic_is_backed_up_as_a_new_generation_when_the_cluster_names_ids() {
    let cluster = Arc::new(MemoryCluster::new());
    cluster.create_topic("payments.captured", 1, &[]);
    cluster.create_topic("payments.refunded", 4, &[]);
    let h = harness_asking(&[], Some(cluster.clone()));
    let first = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert!(
        first.partitions.iter().all(|p| p.generation == 0),
        "{first:?}"
    );
    let old_records =
        stored_records(&h, "backups/prod/topics/payments.captured/partition=0/").await;

    cluster.create_topic("payments.captured", 1, &[]); // deleted and created again: a new id
    let report = h.writer.back_up(recreated_captured()).await.unwrap();
    let captured = &report.partitions[0];
    assert_eq!(captured.generation, 1, "{report:?}");
    assert!(
        captured
            .segment_key
            .starts_with("backups/prod/topics/payments.captured/generation=1/partition=0/"),
        "{report:?}"
    );
    assert_eq!(
        captured.gap, None,
        "a new generation starts with no checkpoint to skip from"
    );

    // Each generation holds its own topic's records; generation 0 is as it was.
    assert_eq!(
        stored_records(&h, "backups/prod/topics/payments.captured/partition=0/").await,
        old_records
    );
    let new_records =
        stored_records(&h, "backups/prod/topics/payments.captured/generation=1/").await;
    assert_eq!(
        new_records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![101, 102, 105]
    );
    assert_eq!(new_records[1].value.as_deref(), Some(&b"new topic"[..]));
    let new_partition = partition("payments.captured", 0).in_generation(1);
    assert_eq!(
        h.index
            .checkpoint(&new_partition)
            .await
            .unwrap()
            .unwrap()
            .next_offset,
        106
    );

    // The catalog names both ids, and the next generation was recorded when first seen.
    let recorded = h
        .catalog
        .topic_generations(&BackupId::parse("prod").unwrap(), "payments.captured")
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_ne!(recorded[0].topic_id, recorded[1].topic_id);
    assert!(
        recorded[1].evidence[0].contains("topic id changed"),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn without_ids_a_recreated_topic_is_refused_until_its_generation_is_recorded() {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let error = h.writer.back_up(recreated_captured()).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");

    // The offset snapshotter records the new generation (from watermarks going back); the
    // event source mapping's retry of the same batch then lands there.
    h.catalog
        .record_topic_generation(
            &BackupId::parse("prod").unwrap(),
            &TopicGeneration {
                topic: "payments.captured".into(),
                generation: 1,
                detected_at_ms: 1,
                evidence: vec!["partition 0 log end went back from 106 to 50".into()],
                topic_id: None,
            },
        )
        .await
        .unwrap();
    let report = h.writer.back_up(recreated_captured()).await.unwrap();
    assert_eq!(report.partitions[0].generation, 1, "{report:?}");
    assert_eq!(
        h.captured_checkpoint().await.unwrap().next_offset,
        106,
        "generation 0 is left as it was"
    );
    let new_records =
        stored_records(&h, "backups/prod/topics/payments.captured/generation=1/").await;
    assert_eq!(new_records[1].value.as_deref(), Some(&b"new topic"[..]));
}

const SEALED: &[(&str, &str)] = &[("TIDEMARK_SEGMENT_ENCRYPTION_KEY", "alias/tidemark")];

#[tokio::test]
async fn with_an_encryption_key_segments_are_sealed_and_read_back_the_same() {
    let plain = harness(&[]);
    plain
        .writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap();
    let h = harness(SEALED);
    let report = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert_eq!(report.partitions.len(), 2);
    assert_eq!(h.kms.generated(), 1, "one data key for the whole batch");

    let keys = h.objects.list("").await.unwrap();
    assert_eq!(keys, plain.objects.list("").await.unwrap());
    let records = stored_records(&h, "").await;
    assert_eq!(records, stored_records(&plain, "").await);
    for key in &keys {
        let stored = h.objects.get(key).await.unwrap().unwrap();
        assert!(envelope(&stored).unwrap().is_some(), "{key} is not sealed");
    }
    // Record bytes that zstd keeps verbatim in the plain segments are nowhere in the sealed ones.
    let mut plain_objects = Vec::new();
    let mut sealed_objects = Vec::new();
    for key in &keys {
        plain_objects.push(plain.objects.get(key).await.unwrap().unwrap());
        sealed_objects.push(h.objects.get(key).await.unwrap().unwrap());
    }
    fn in_any(objects: &[impl AsRef<[u8]>], needle: &[u8]) -> bool {
        objects
            .iter()
            .any(|bytes| bytes.as_ref().windows(needle.len()).any(|w| w == needle))
    }
    let visible: Vec<Vec<u8>> = records
        .iter()
        .flat_map(|record| {
            let headers = record.headers.iter().filter_map(|h| h.value.clone());
            record
                .key
                .clone()
                .into_iter()
                .chain(record.value.clone())
                .chain(headers)
        })
        .filter(|field| field.len() >= 4 && in_any(&plain_objects, field))
        .collect();
    assert!(
        !visible.is_empty(),
        "precondition: plain segments show some record bytes"
    );
    for field in &visible {
        assert!(
            !in_any(&sealed_objects, field),
            "{:?} readable in a sealed segment",
            String::from_utf8_lossy(field)
        );
    }

    // Retries and overlap checks read the sealed segments back.
    let retried = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert!(retried.partitions.iter().all(|p| !p.created));
    let error = h.writer.back_up(changed_first_key()).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
    assert_eq!(h.objects.list("").await.unwrap(), keys, "nothing written");
}

/// The fixture's `payments.captured-0` records only, at `offsets` (four of them).
fn captured_at(offsets: [i64; 4]) -> KafkaEvent {
    let mut event = fixture("msk-event.json");
    event.records.remove("payments.refunded-3");
    let records = event.records.get_mut("payments.captured-0").unwrap();
    for (record, offset) in records.iter_mut().zip(offsets) {
        record.offset = offset;
    }
    event
}

#[tokio::test]
async fn a_retry_thinned_by_the_source_log_cleaner_keeps_the_stored_superset() {
    // Offsets 101 and 102 were compacted away between two deliveries of 100..=105.
    let thinned = || {
        let mut event = captured_at([100, 101, 102, 105]);
        let records = event.records.get_mut("payments.captured-0").unwrap();
        records.remove(1);
        records.remove(1);
        event
    };
    // First attempt durable in S3 but not indexed; then after it was fully committed.
    for index_fails in [true, false] {
        let h = harness(&[]);
        if index_fails {
            h.index.failures_left.store(1, Ordering::SeqCst);
            h.writer
                .back_up(captured_at([100, 101, 102, 105]))
                .await
                .unwrap_err();
        } else {
            h.writer
                .back_up(captured_at([100, 101, 102, 105]))
                .await
                .unwrap();
        }
        let report = h.writer.back_up(thinned()).await.unwrap();
        assert!(!report.partitions[0].created, "the stored segment stays");
        assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 106);
        let offsets: Vec<i64> = stored_records(&h, "backups/prod/topics/payments.captured/")
            .await
            .iter()
            .map(|record| record.offset)
            .collect();
        assert_eq!(offsets, [100, 101, 102, 105], "the superset is the backup");
        let entries = h
            .index
            .segments(&partition("payments.captured", 0))
            .await
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].record_count, 4,
            "the index describes what is stored"
        );
    }
}

#[tokio::test]
async fn a_redelivery_below_expired_segments_is_refused_not_passed() {
    let h = harness(&[]);
    h.writer
        .back_up(captured_at([100, 101, 102, 105]))
        .await
        .unwrap();
    h.writer
        .back_up(captured_at([106, 107, 108, 109]))
        .await
        .unwrap();
    // Retention expired the first segment: the backup now starts at 106.
    let id = partition("payments.captured", 0);
    let entries = h.index.segments(&id).await.unwrap();
    assert!(
        h.index
            .expire_segments(&id, &entries[..1], &[], 100, 106)
            .await
            .unwrap()
    );
    h.objects.delete(&entries[0].key).await.unwrap();
    let keys_before = h.objects.list("").await.unwrap();

    // A recreated topic delivers 100..=105 again: they can no longer be compared.
    let error = h
        .writer
        .back_up(captured_at([100, 101, 102, 105]))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
    assert!(
        error.to_string().contains(
            "prod/payments.captured-0 offset 100 is below the checkpoint but the backup's segments there have expired (it now starts at 106)"
        ),
        "{error}"
    );
    assert_eq!(
        h.objects.list("").await.unwrap(),
        keys_before,
        "nothing written"
    );
    assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 110);
}

#[tokio::test]
async fn a_redelivery_whose_indexed_segment_is_missing_is_refused_not_passed() {
    let h = harness(&[]);
    h.writer
        .back_up(captured_at([100, 101, 102, 105]))
        .await
        .unwrap();
    let key = h.objects.list("").await.unwrap().remove(0);
    h.objects.delete(&key).await.unwrap();
    let error = h
        .writer
        .back_up(captured_at([101, 102, 105, 106]))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("its indexed segment {key} is missing from S3")),
        "{error}"
    );
    assert!(
        h.objects.list("").await.unwrap().is_empty(),
        "nothing written"
    );
    assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 106);
}

#[tokio::test]
async fn a_batch_committed_after_a_later_one_fills_the_gap_that_one_recorded() {
    let h = harness(&[]);
    h.writer
        .back_up(captured_at([100, 101, 102, 105]))
        .await
        .unwrap();
    // Two invocations of one partition (a rebalance, a re-batched retry): 120.. commits first.
    let later = h
        .writer
        .back_up(captured_at([120, 121, 122, 123]))
        .await
        .unwrap();
    assert_eq!(later.partitions[0].gap, Some((106, 119)));
    let earlier = h
        .writer
        .back_up(captured_at([106, 107, 110, 119]))
        .await
        .unwrap();
    assert_eq!(earlier.partitions[0].gap, None);
    let id = partition("payments.captured", 0);
    assert_eq!(
        h.index.gaps(&id).await.unwrap(),
        vec![],
        "106..=119 are backed up: no gap may claim them"
    );
    assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 124);

    // Offsets in no segment and no recorded gap are refused (here: past a filled gap).
    let error = h
        .writer
        .back_up(captured_at([108, 109, 110, 111]))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
}

#[tokio::test]
async fn a_redelivered_batch_never_brings_back_a_record_an_erasure_removed() {
    use tidemark_core::erasure::{Eraser, Matchers, RecordMatcher};
    use tidemark_core::layout::{RunId, StorageLayout};

    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let id = partition("payments.captured", 0);
    let layout = StorageLayout::new("backups").unwrap();
    let stored = stored_records(&h, &layout.partition_prefix(&id)).await;
    let erased_key = stored[0]
        .key
        .clone()
        .expect("the fixture's first record has a key");
    let erased_key_text = String::from_utf8(erased_key.clone()).unwrap();
    let matchers = Matchers::new(&[RecordMatcher::Key {
        key: erased_key_text,
    }])
    .unwrap();
    let erasure = RunId::parse("erase-1").unwrap();
    let eraser = Eraser {
        objects: h.objects.as_ref(),
        index: h.index.as_ref(),
        keys: &h.reader_keys,
        layout: &layout,
        erasure: &erasure,
        matchers: &matchers,
        shredded: None,
        compression_level: 3,
    };
    let horizon = h.captured_checkpoint().await.unwrap().next_offset;
    let rewrites = eraser
        .erase(&id, horizon, &Default::default(), 1)
        .await
        .unwrap();
    assert!(!rewrites.is_empty());
    eraser.purge(&id, 1).await.unwrap();
    let checkpoint = h.captured_checkpoint().await;

    // The event source mapping delivers the same batch again.
    let report = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let redelivered = report_of(&report, &id);
    assert_eq!(redelivered.records, 0, "nothing new: nothing written");
    assert!(
        stored_records(&h, &layout.partition_prefix(&id))
            .await
            .iter()
            .all(|record| record.key.as_ref() != Some(&erased_key)),
        "the erased record came back"
    );
    assert_eq!(h.captured_checkpoint().await, checkpoint);
    assert!(
        eraser
            .verify(&id, horizon, 0)
            .await
            .unwrap()
            .remaining
            .is_empty()
    );
}

/// A compacted topic may re-deliver a batch without a record an erasure removed, still
/// spanning its offset. The commit refuses a segment over erased offsets, so the writer must
/// not write one: it writes what lies past the checkpoint (here nothing), never retrying for
/// ever.
#[tokio::test]
async fn a_redelivered_batch_spanning_an_erased_offset_it_no_longer_holds_is_not_written() {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let id = partition("payments.captured", 0);
    let checkpoint = h.captured_checkpoint().await;
    h.index
        .record_gaps(&id, &[Gap::erased(102, 102, 1)])
        .await
        .unwrap();

    let mut compacted = fixture("msk-event.json");
    for records in compacted.records.values_mut() {
        records.retain(|record| {
            !(record.topic == id.topic && record.partition == id.partition && record.offset == 102)
        });
    }
    let report = h.writer.back_up(compacted).await.unwrap();
    let redelivered = report_of(&report, &id);
    assert_eq!(redelivered.records, 0, "nothing new: nothing written");
    assert_eq!(h.captured_checkpoint().await, checkpoint);
}

#[tokio::test]
async fn a_masked_backup_holds_no_clear_field_and_keeps_the_rest() {
    let h = harness(&[(
        "TIDEMARK_MASKING_RULES",
        r#"{"rules": [{"json_pointer": "/amount", "action": "redact"},
                      {"header": "trace-id", "action": "hash"}],
            "unparsable": "redact_value"}"#,
    )]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let stored = stored_records(&h, "").await;
    let clear = stored_records(&harness_with_clear_backup().await, "").await;
    assert_eq!(stored.len(), clear.len());
    for (masked, clear) in stored.iter().zip(&clear) {
        assert_eq!((masked.offset, &masked.key), (clear.offset, &clear.key));
        match &clear.value {
            None => assert_eq!(masked.value, None, "a tombstone stays one"),
            Some(value) => match serde_json::from_slice::<serde_json::Value>(value) {
                Ok(value) => {
                    let masked: serde_json::Value =
                        serde_json::from_slice(masked.value.as_ref().unwrap()).unwrap();
                    assert_eq!(masked["amount"], tidemark_core::masking::REDACTED);
                    assert_eq!(masked.get("currency"), value.get("currency"));
                }
                // The empty and the binary value: not JSON, so redacted whole (the policy).
                Err(_) => assert_eq!(
                    masked.value.as_deref(),
                    Some(tidemark_core::masking::REDACTED.as_bytes()),
                    "offset {}",
                    masked.offset
                ),
            },
        }
        for (masked, clear) in masked.headers.iter().zip(&clear.headers) {
            assert_eq!(masked.key, clear.key);
            if clear.key == "trace-id" {
                assert_ne!(masked.value, clear.value);
                let hashed = String::from_utf8(masked.value.clone().unwrap()).unwrap();
                assert!(hashed.starts_with(tidemark_core::masking::HASHED_PREFIX));
            } else {
                assert_eq!(masked.value, clear.value);
            }
        }
    }
}

/// The same event backed up without masking, to compare with.
async fn harness_with_clear_backup() -> Harness {
    let h = harness(&[]);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    h
}

fn with_a_value_that_is_not_json() -> KafkaEvent {
    let mut event = serde_json::to_value(fixture("msk-event.json")).unwrap();
    // base64 of `card=4111111111111111`
    event["records"]["payments.captured-0"][0]["value"] =
        serde_json::json!("Y2FyZD00MTExMTExMTExMTExMTEx");
    serde_json::from_value(event).unwrap()
}

#[tokio::test]
async fn a_value_a_field_rule_cannot_parse_fails_the_batch_or_is_redacted_as_configured() {
    let rules = |policy: &str| {
        format!(
            r#"{{"rules": [{{"json_pointer": "/card", "action": "redact"}}], "unparsable": "{policy}"}}"#
        )
    };
    let failing = harness(&[("TIDEMARK_MASKING_RULES", &rules("fail"))]);
    let error = failing
        .writer
        .back_up(with_a_value_that_is_not_json())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("payments.captured-0 offset 100"), "{error}");
    assert!(error.contains("not JSON"), "{error}");
    assert!(!error.contains("4111"), "{error}");
    assert!(
        failing.objects.list("").await.unwrap().is_empty(),
        "nothing written"
    );
    assert_eq!(failing.captured_checkpoint().await, None);

    let redacting = harness(&[("TIDEMARK_MASKING_RULES", &rules("redact_value"))]);
    redacting
        .writer
        .back_up(with_a_value_that_is_not_json())
        .await
        .unwrap();
    let stored = stored_records(&redacting, "").await;
    assert_eq!(
        stored[0].value.as_deref(),
        Some(tidemark_core::masking::REDACTED.as_bytes())
    );
    assert!(stored.iter().all(|record| {
        !record
            .value
            .as_deref()
            .is_some_and(|value| value.windows(4).any(|w| w == b"4111"))
    }));
}

const SHREDDED: &[(&str, &str)] = &[("TIDEMARK_SHREDDING_KMS_KEY_ID", "alias/shredding")];

/// Every record of the objects under `prefix` as stored (shredded records sealed).
async fn stored_forms(h: &Harness, prefix: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for key in h.objects.list(prefix).await.unwrap() {
        let stored = h.objects.get(&key).await.unwrap().unwrap();
        for record in SegmentReader::open(stored.as_ref()).unwrap() {
            records.push(record.unwrap());
        }
    }
    records
}

#[tokio::test]
async fn a_shredded_backup_stores_key_ids_and_ciphertext_and_reads_back_the_same_records() {
    let plain = harness(&[]);
    plain
        .writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap();
    let h = harness(SHREDDED);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();

    assert_eq!(
        h.objects.list("").await.unwrap(),
        plain.objects.list("").await.unwrap()
    );
    assert_eq!(
        stored_records(&h, "").await,
        stored_records(&plain, "").await
    );
    let clear = stored_records(&plain, "").await;
    let stored = stored_forms(&h, "").await;
    assert_eq!(stored.len(), clear.len());
    for (stored, clear) in stored.iter().zip(&clear) {
        assert_eq!(
            (stored.offset, stored.timestamp),
            (clear.offset, clear.timestamp)
        );
        if clear.key.is_none() {
            assert_eq!(stored, clear, "a record without a key is stored as it is");
            continue;
        }
        assert_eq!(stored.key.as_ref().map(Vec::len), Some(16), "a key id");
        assert!(stored.headers.is_empty());
        let sealed = stored.value.clone().unwrap();
        for field in clear
            .key
            .iter()
            .chain(&clear.value)
            .filter(|field| field.len() >= 4)
        {
            assert!(
                !sealed
                    .windows(field.len())
                    .any(|window| window == field.as_slice()),
                "{:?} is readable in a shredded record",
                String::from_utf8_lossy(field)
            );
        }
    }
    assert_eq!(
        h.kms.generated(),
        1,
        "one root for the backup, no KMS call per key"
    );
}

#[tokio::test]
async fn a_shredded_batch_retried_after_its_write_keeps_the_first_write() {
    let h = harness(SHREDDED);
    h.index.failures_left.store(2, Ordering::SeqCst);
    h.writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap_err();
    let written = h.objects.list("").await.unwrap();
    let first = stored_forms(&h, "").await;

    // The retry seals with other nonces; the records and their keys are the same.
    let report = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert!(report.partitions.iter().all(|p| !p.created), "{report:?}");
    assert_eq!(h.objects.list("").await.unwrap(), written);
    assert_eq!(stored_forms(&h, "").await, first, "the first write stands");
    assert_eq!(h.captured_checkpoint().await.unwrap().next_offset, 106);
}

#[tokio::test]
async fn a_shredded_batch_retried_after_an_erasure_retired_its_keys_is_written_anew_and_indexed() {
    let h = harness(SHREDDED);
    h.index.failures_left.store(2, Ordering::SeqCst);
    h.writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap_err();
    let first_write = h.objects.list("").await.unwrap();

    // An erasure retires the keys of every record of the batch before the retry; a new writer
    // process (or the same after its cache time) seals the retry under new versions.
    let shredding = Shredding::new(h.catalog.clone(), h.kms.clone(), None);
    let backup = BackupId::parse("prod").unwrap();
    let clear = stored_records(&h, "").await;
    let keys: Vec<Vec<u8>> = clear
        .iter()
        .filter_map(|record| record.key.clone())
        .collect();
    for key_id in shredding.key_ids(&backup, &keys).await.unwrap() {
        h.catalog.retire_data_keys(&backup, &key_id).await.unwrap();
    }
    let writer = harness_sharing(&h, SHREDDED);
    let report = writer.back_up(fixture("msk-event.json")).await.unwrap();

    let captured = report_of(&report, &partition("payments.captured", 0));
    assert!(captured.created);
    assert!(
        captured.segment_key.contains(".resealed-"),
        "{}",
        captured.segment_key
    );
    let indexed = h
        .index
        .segments(&partition("payments.captured", 0))
        .await
        .unwrap();
    assert_eq!(indexed.len(), 1);
    assert_eq!(indexed[0].key, captured.segment_key);
    assert!(
        !first_write.contains(&indexed[0].key),
        "the earlier write is not indexed"
    );
    let stored = h.objects.get(&indexed[0].key).await.unwrap().unwrap();
    let opened = h.reader_keys.clear(&backup, stored).await.unwrap();
    let records: Vec<Record> = SegmentReader::open(opened.as_ref())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![100, 101, 102, 105]
    );
}

/// A second writer process over `h`'s stores: caches of its own.
fn harness_sharing(h: &Harness, extra: &[(&str, &str)]) -> BackupWriter {
    let config = config(extra);
    let kms = h.kms.clone() as Arc<dyn KeyService>;
    let shredding = Shredding::new(
        h.catalog.clone(),
        kms.clone(),
        config.shredding_kms_key.clone(),
    );
    let keys = SegmentKeys::new(kms, None).with_shredding(Arc::new(shredding));
    let generations = TopicGenerations::new(config.backup_id.clone(), h.catalog.clone(), None);
    BackupWriter::new(
        config,
        h.objects.clone(),
        h.index.clone(),
        Arc::new(keys),
        generations,
    )
}

#[tokio::test]
async fn a_redelivery_to_a_shredded_backup_is_checked_against_the_opened_records() {
    let h = harness(SHREDDED);
    h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    let written = h.objects.list("").await.unwrap();
    // Below the checkpoint: the overlap check opens the stored records to compare them.
    let retried = h.writer.back_up(fixture("msk-event.json")).await.unwrap();
    assert!(retried.partitions.iter().all(|p| !p.created), "{retried:?}");
    let error = h.writer.back_up(changed_first_key()).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.TopicRecreated", "{error}");
    assert_eq!(
        h.objects.list("").await.unwrap(),
        written,
        "nothing written"
    );
}

#[tokio::test]
async fn a_retry_across_turning_shredding_on_or_off_keeps_or_replaces_the_earlier_write() {
    // Off, then on: the plain write is kept (its records are the batch's).
    let h = harness(&[]);
    h.index.failures_left.store(2, Ordering::SeqCst);
    h.writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap_err();
    let written = h.objects.list("").await.unwrap();
    let report = harness_sharing(&h, SHREDDED)
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap();
    assert!(report.partitions.iter().all(|p| !p.created), "{report:?}");
    assert_eq!(h.objects.list("").await.unwrap(), written);

    // On, then off: shredded records cannot be kept without knowing their keys are current,
    // so the batch is written under a name of its own and indexed there.
    let h = harness(SHREDDED);
    h.index.failures_left.store(2, Ordering::SeqCst);
    h.writer
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap_err();
    let report = harness_sharing(&h, &[])
        .back_up(fixture("msk-event.json"))
        .await
        .unwrap();
    let captured = report_of(&report, &partition("payments.captured", 0));
    assert!(captured.segment_key.contains(".resealed-"), "{report:?}");
    assert_eq!(
        stored_records(&h, "backups/prod/topics/payments.captured/")
            .await
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        vec![100, 101, 102, 105, 100, 101, 102, 105],
        "both objects hold the records; the index names the new one"
    );
    let indexed = h
        .index
        .segments(&partition("payments.captured", 0))
        .await
        .unwrap();
    assert_eq!(indexed.len(), 1);
    assert_eq!(indexed[0].key, captured.segment_key);
}
