//! The snapshotter against in-memory twins of the cluster, S3 and the index.

use std::sync::Arc;

use offset_snapshotter::{SnapshotRequest, Snapshotter, SnapshotterConfig, SnapshotterError};
use tidemark_core::checkpoint::Checkpoint;
use tidemark_core::config::Env;
use tidemark_core::index::{IndexStore, SegmentCommit, SegmentEntry};
use tidemark_core::kafka::{ClusterReader, CommittedOffset, MemoryCluster};
use tidemark_core::layout::PartitionId;
use tidemark_core::object_store::ObjectStore;
use tidemark_core::operations::OperationsBook;
use tidemark_core::snapshot::{ClusterSnapshot, SnapshotCatalog};
use tidemark_core::stores::{MemoryIndexStore, MemoryObjectStore};

struct Fixture {
    cluster: Arc<MemoryCluster>,
    objects: Arc<MemoryObjectStore>,
    index: Arc<MemoryIndexStore>,
    config: SnapshotterConfig,
}

impl Fixture {
    fn new(extra: &[(&str, &str)]) -> Self {
        let mut pairs: Vec<(String, String)> = [
            ("TIDEMARK_BUCKET", "bucket"),
            ("TIDEMARK_TABLE", "table"),
            ("TIDEMARK_BACKUP_ID", "prod"),
            ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("TIDEMARK_KAFKA_AUTH", "plaintext"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        pairs.reverse(); // later entries win
        let config = SnapshotterConfig::from_env(&Env::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }))
        .unwrap();
        Fixture {
            cluster: Arc::new(MemoryCluster::new()),
            objects: Arc::new(MemoryObjectStore::new()),
            index: Arc::new(MemoryIndexStore::new()),
            config,
        }
    }

    fn snapshotter(&self) -> Snapshotter {
        Snapshotter::new(
            self.config.clone(),
            "127.0.0.1:9092".into(),
            self.cluster.clone(),
            self.objects.clone(),
            self.index.clone(),
            self.index.clone(),
            self.index.clone(),
        )
    }

    async fn run(
        &self,
        request: SnapshotRequest,
    ) -> Result<offset_snapshotter::SnapshotResponse, SnapshotterError> {
        let deadline = now_ms() + 60_000;
        self.snapshotter().handle(request, deadline).await
    }

    /// Records one segment of `topic`-`partition` up to `next_offset`, its checkpoint last
    /// moved at `updated_at_ms`.
    async fn back_up_to(&self, topic: &str, partition: i32, next_offset: i64, updated_at_ms: i64) {
        let id = PartitionId::new(self.config.backup_id.clone(), topic, partition);
        self.back_up(id, next_offset, updated_at_ms).await;
    }

    /// [`Self::back_up_to`] in any partition, of any generation.
    async fn back_up(&self, id: PartitionId, next_offset: i64, updated_at_ms: i64) {
        let (topic, partition) = (&id.topic, id.partition);
        let segment = SegmentEntry {
            key: format!("{topic}-{partition}"),
            first_offset: 0,
            last_offset: next_offset - 1,
            record_count: next_offset as u32,
            min_timestamp: 0,
            max_timestamp: 0,
            stored_bytes: 1,
            uncompressed_bytes: 1,
            records_crc32c: 0,
            written_at_ms: updated_at_ms,
            write_marks: Vec::new(),
            max_record_bytes: None,
        };
        let checkpoint = Checkpoint {
            start_offset: 0,
            next_offset,
            max_timestamp: 0,
            updated_at_ms,
        };
        self.index
            .commit_segment(SegmentCommit {
                partition: &id,
                segment: &segment,
                gap: None,
                filled_gaps: &[],
                remaining_gaps: &[],
                expected: None,
                new: Some(&checkpoint),
            })
            .await
            .unwrap();
    }

    async fn latest(&self) -> ClusterSnapshot {
        let entry = self
            .index
            .snapshot_at_or_before(&self.config.backup_id, i64::MAX)
            .await
            .unwrap()
            .expect("a snapshot is indexed");
        let bytes = self
            .objects
            .get(&entry.key)
            .await
            .unwrap()
            .expect("the object exists");
        ClusterSnapshot::decode(&bytes, &entry.key).unwrap()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn offset(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: topic.into(),
        partition,
        offset,
        metadata: String::new(),
    }
}

#[tokio::test]
async fn groups_topics_and_configs_are_captured_exactly() {
    let fixture = Fixture::new(&[
        ("TIDEMARK_GROUPS_EXCLUDE", "tmp-.*"),
        ("TIDEMARK_TOPICS_EXCLUDE", "audit"),
    ]);
    let cluster = &fixture.cluster;
    cluster.create_topic("payments", 2, &[("retention.ms", "86400000")]);
    cluster.create_topic("audit", 1, &[]);
    cluster.create_topic("__consumer_offsets", 1, &[]);
    cluster.set_watermarks("payments", 0, 5, 120);
    cluster.set_watermarks("payments", 1, 0, 80);
    cluster.add_group("payment-processor", "Stable", &["m-1"]);
    cluster.commit("payment-processor", "payments", 0, 100);
    cluster.commit("payment-processor", "payments", 1, 80);
    cluster.commit("payment-processor", "audit", 0, 3);
    cluster.add_group("idle", "Empty", &[]);
    cluster.commit("idle", "payments", 1, 7);
    cluster.add_group("never-committed", "Stable", &["m-2"]);
    cluster.add_group("tmp-debug", "Empty", &[]);
    cluster.commit("tmp-debug", "payments", 0, 1);

    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert_eq!(response.snapshots.len(), 1);
    let snapshot = fixture.latest().await;
    assert_eq!(
        response.snapshots[0].key,
        fixture
            .config
            .store
            .layout
            .snapshot_key(&fixture.config.backup_id, snapshot.taken_at_ms)
    );

    let group_ids: Vec<_> = snapshot
        .groups
        .iter()
        .map(|g| g.group.group_id.as_str())
        .collect();
    assert_eq!(
        group_ids,
        ["idle", "never-committed", "payment-processor"],
        "excluded groups are left out"
    );
    assert_eq!(
        snapshot.group("payment-processor").unwrap().offsets,
        vec![offset("payments", 0, 100), offset("payments", 1, 80)],
        "offsets on topics outside the backup are left out"
    );
    assert_eq!(
        snapshot.group("idle").unwrap().offsets,
        vec![offset("payments", 1, 7)]
    );
    assert_eq!(snapshot.group("idle").unwrap().group.state, "Empty");
    let never = snapshot.group("never-committed").unwrap();
    assert!(never.offsets.is_empty() && never.error.is_none());
    assert_eq!(never.group.members.len(), 1);

    let topic_names: Vec<_> = snapshot.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        topic_names,
        ["payments"],
        "excluded and internal topics are left out"
    );
    let payments = snapshot.topic("payments").unwrap();
    assert_eq!(payments.partition_count, 2);
    assert_eq!(payments.generation, 0);
    assert_eq!(
        payments.configs.get("retention.ms"),
        Some(&Some("86400000".into()))
    );
    assert_eq!(
        payments
            .partitions
            .iter()
            .map(|p| (p.low_watermark, p.high_watermark))
            .collect::<Vec<_>>(),
        [(5, 120), (0, 80)]
    );
    assert!(snapshot.started_at_ms <= snapshot.taken_at_ms);
    assert!(snapshot.recreations.is_empty());
}

#[tokio::test]
async fn a_recreated_topic_starts_a_new_generation_once() {
    let fixture = Fixture::new(&[]);
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 5_000);
    fixture.run(SnapshotRequest::default()).await.unwrap();

    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 12);
    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert_eq!(response.recreations.len(), 1);
    assert_eq!(response.recreations[0].generation, 1);
    let evidence = &response.recreations[0].evidence;
    assert!(
        evidence[0].starts_with("topic id changed from ")
            && evidence[0].ends_with(": the topic was deleted and created again"),
        "{evidence:?}"
    );
    assert_eq!(evidence[1], "partition 0 log end went back from 5000 to 12");
    assert_eq!(
        response.recreations[0].topic_id,
        fixture.latest().await.topic("payments").unwrap().topic_id
    );
    assert_eq!(
        fixture.latest().await.topic("payments").unwrap().generation,
        1
    );
    let recorded = fixture
        .index
        .topic_generations(&fixture.config.backup_id, "payments")
        .await
        .unwrap();
    assert_eq!(
        recorded[1..],
        response.recreations,
        "the recreation is in the catalog"
    );
    assert_eq!(
        (recorded[0].generation, recorded[0].topic_id.is_some()),
        (0, true),
        "the first snapshot recorded generation 0's id: {recorded:?}"
    );
    assert_ne!(recorded[0].topic_id, recorded[1].topic_id);

    fixture.cluster.set_watermarks("payments", 0, 0, 40);
    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert!(
        response.recreations.is_empty(),
        "growth after recreation is not another one"
    );
    assert_eq!(
        fixture.latest().await.topic("payments").unwrap().generation,
        1
    );
}

/// Watermarks alone cannot see a topic recreated and refilled past its old log end between two
/// samples; its new id shows it.
#[tokio::test]
async fn a_recreated_topic_that_outgrew_the_old_one_is_found_by_its_new_id() {
    let fixture = Fixture::new(&[]);
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 100);
    fixture.run(SnapshotRequest::default()).await.unwrap();
    let first_id = fixture
        .latest()
        .await
        .topic("payments")
        .unwrap()
        .topic_id
        .clone();
    assert!(first_id.is_some());

    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 5_000);
    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert_eq!(response.recreations.len(), 1, "{:?}", response.recreations);
    assert_eq!(response.recreations[0].evidence.len(), 1);
    assert!(
        response.recreations[0].evidence[0]
            .starts_with(&format!("topic id changed from {}", first_id.unwrap())),
        "{:?}",
        response.recreations[0].evidence
    );
    assert_eq!(
        fixture.latest().await.topic("payments").unwrap().generation,
        1
    );
}

#[tokio::test]
async fn a_topic_shorter_than_its_backup_is_a_recreation_on_first_sight() {
    let fixture = Fixture::new(&[]);
    fixture.back_up_to("payments", 0, 500, 0).await;
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 5);

    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert_eq!(
        response.recreations[0].evidence,
        ["partition 0 ends at 5 but the backup already holds offsets up to 499"]
    );
    assert_eq!(
        fixture.latest().await.topic("payments").unwrap().generation,
        1
    );
}

#[tokio::test]
async fn an_unreadable_group_is_marked_and_fails_the_invocation_after_the_write() {
    let fixture = Fixture::new(&[]);
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.add_group("ok", "Empty", &[]);
    fixture.cluster.commit("ok", "payments", 0, 3);
    fixture.cluster.add_group("secret-team", "Empty", &[]);
    fixture
        .cluster
        .fail_group("secret-team", "not authorized to read committed offsets");

    let error = fixture.run(SnapshotRequest::default()).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.GroupsUnreadable");
    assert!(
        error
            .to_string()
            .contains("secret-team: kafka: not authorized"),
        "{error}"
    );
    let snapshot = fixture.latest().await;
    assert_eq!(
        snapshot.group("ok").unwrap().offsets,
        vec![offset("payments", 0, 3)]
    );
    let failed = snapshot.group("secret-team").unwrap();
    assert!(failed.error.as_deref().unwrap().contains("not authorized"));
    assert!(failed.offsets.is_empty());
}

#[tokio::test]
async fn several_samples_per_invocation_give_sub_minute_snapshots() {
    let fixture = Fixture::new(&[
        ("TIDEMARK_SNAPSHOT_SAMPLES", "2"),
        ("TIDEMARK_SNAPSHOT_INTERVAL_SECONDS", "1"),
    ]);
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.add_group("g", "Empty", &[]);
    fixture.cluster.commit("g", "payments", 0, 1);
    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert_eq!(response.snapshots.len(), 2);
    assert_eq!(response.skipped_samples, 0);
    let (first, second) = (&response.snapshots[0], &response.snapshots[1]);
    assert!(
        second.started_at_ms - first.started_at_ms >= 1_000,
        "samples start an interval apart: {} then {}",
        first.started_at_ms,
        second.started_at_ms
    );
    let found = fixture
        .index
        .snapshot_at_or_before(&fixture.config.backup_id, second.taken_at_ms - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.taken_at_ms, first.taken_at_ms,
        "both samples are indexed"
    );
}

#[tokio::test]
async fn samples_that_cannot_finish_before_the_deadline_are_skipped() {
    let fixture = Fixture::new(&[
        ("TIDEMARK_SNAPSHOT_SAMPLES", "4"),
        ("TIDEMARK_SNAPSHOT_INTERVAL_SECONDS", "15"),
    ]);
    fixture.cluster.create_topic("payments", 1, &[]);
    let response = fixture
        .snapshotter()
        .handle(SnapshotRequest::default(), now_ms() + 10_000)
        .await
        .unwrap();
    assert_eq!(response.snapshots.len(), 1, "the first sample always runs");
    assert_eq!(response.skipped_samples, 3);
}

#[tokio::test]
async fn a_bad_request_changes_nothing() {
    let fixture = Fixture::new(&[]);
    fixture.cluster.create_topic("payments", 1, &[]);
    for request in [
        SnapshotRequest {
            samples: Some(0),
            interval_seconds: None,
        },
        SnapshotRequest {
            samples: Some(1),
            interval_seconds: Some(0),
        },
    ] {
        let error = fixture.run(request).await.unwrap_err();
        assert_eq!(error.error_type(), "Tidemark.InvalidRequest", "{error}");
    }
    assert!(
        fixture
            .index
            .snapshot_at_or_before(&fixture.config.backup_id, i64::MAX)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_scheduled_event_is_a_default_request() {
    let scheduled = r#"{"version":"0","id":"53dc4d37","detail-type":"Scheduled Event","source":"aws.events",
        "account":"123456789012","time":"2026-11-22T14:29:00Z","region":"eu-west-1",
        "resources":["arn:aws:events:eu-west-1:123456789012:rule/tidemark"],"detail":{}}"#;
    let request: SnapshotRequest = serde_json::from_str(scheduled).unwrap();
    assert_eq!((request.samples, request.interval_seconds), (None, None));
    let error = serde_json::from_str::<SnapshotRequest>(r#"{"samples": "many"}"#).unwrap_err();
    assert!(error.to_string().contains("invalid type"), "{error}");
}

#[tokio::test]
async fn snapshots_finishing_in_the_same_millisecond_are_all_kept() {
    let fixture = Fixture::new(&[]);
    fixture.cluster.create_topic("payments", 1, &[]);
    let mut times = Vec::new();
    for _ in 0..5 {
        let response = fixture.run(SnapshotRequest::default()).await.unwrap();
        times.push(response.snapshots[0].taken_at_ms);
    }
    let mut distinct = times.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, times, "each snapshot has its own, later time");
    for time in &times {
        let entry = fixture
            .index
            .snapshot_at_or_before(&fixture.config.backup_id, *time)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.taken_at_ms, *time, "every snapshot is indexed");
        let bytes = fixture.objects.get(&entry.key).await.unwrap().unwrap();
        assert_eq!(
            ClusterSnapshot::decode(&bytes, &entry.key)
                .unwrap()
                .taken_at_ms,
            *time
        );
    }
}

/// A mapping that cannot deliver a record (one too large for any invocation, a batch that
/// fails for good) stops its partition without calling the writer, so no writer metric moves:
/// the snapshotter names the partition and the offset it stopped at.
#[tokio::test]
async fn a_checkpoint_left_behind_the_topic_is_reported_as_a_stalled_partition() {
    let fixture = Fixture::new(&[("TIDEMARK_STALL_AFTER_SECONDS", "600")]);
    let twenty_minutes_ago = now_ms() - 20 * 60_000;
    // 0: stopped at 500 twenty minutes ago while the topic went on to 800.
    fixture
        .back_up_to("payments", 0, 500, twenty_minutes_ago)
        .await;
    // 1: as old, but nothing was written since: a quiet partition, not a stalled one.
    fixture
        .back_up_to("payments", 1, 300, twenty_minutes_ago)
        .await;
    // 2: behind, but it moved a minute ago: a backup catching up.
    fixture
        .back_up_to("payments", 2, 100, now_ms() - 60_000)
        .await;
    // 3: as old, and one offset short of the end, but that offset is the marker that ended
    // the last transaction: nothing a consumer would get waits.
    fixture
        .back_up_to("payments", 3, 299, twenty_minutes_ago)
        .await;
    fixture.cluster.create_topic("payments", 4, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 800);
    fixture.cluster.set_watermarks("payments", 1, 0, 300);
    fixture.cluster.set_watermarks("payments", 2, 0, 900);
    fixture.cluster.set_watermarks("payments", 3, 0, 300);
    fixture.cluster.set_markers("payments", 3, &[299]);
    // A marker right after 0's checkpoint changes nothing: records follow it.
    fixture.cluster.set_markers("payments", 0, &[500]);

    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    let stalled: Vec<(String, i32, i64, i64)> = response
        .stalled_partitions
        .iter()
        .map(|s| {
            (
                s.topic.clone(),
                s.partition,
                s.next_offset,
                s.high_watermark,
            )
        })
        .collect();
    assert_eq!(stalled, vec![("payments".to_owned(), 0, 500, 800)]);
    assert_eq!(
        response.stalled_partitions[0].checkpoint_updated_at_ms,
        twenty_minutes_ago
    );
    // The same comparison is the backup's freshness in its health record.
    let freshness = fixture
        .index
        .health(&fixture.config.backup_id)
        .await
        .unwrap()
        .freshness
        .expect("recorded");
    assert_eq!(freshness.partitions, 4);
    assert_eq!(
        freshness.records_behind,
        300 + 800,
        "partition 3's trailing marker is no record behind"
    );
    assert_eq!(freshness.behind_since_ms, Some(twenty_minutes_ago));
    assert_eq!(freshness.stalled, vec!["payments:0"]);

    let off = Fixture::new(&[("TIDEMARK_STALL_AFTER_SECONDS", "0")]);
    off.back_up_to("payments", 0, 500, twenty_minutes_ago).await;
    off.cluster.create_topic("payments", 1, &[]);
    off.cluster.set_watermarks("payments", 0, 0, 800);
    let response = off.run(SnapshotRequest::default()).await.unwrap();
    assert!(
        response.stalled_partitions.is_empty(),
        "0 turns the check off"
    );
}

#[tokio::test]
async fn a_generation_the_writer_recorded_first_is_the_snapshots_and_its_checkpoints_are_checked() {
    let fixture = Fixture::new(&[("TIDEMARK_STALL_AFTER_SECONDS", "600")]);
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 50);
    fixture.run(SnapshotRequest::default()).await.unwrap();

    // The topic is recreated, and the writer sees the new id first: it records generation 1
    // and backs the new topic up there, then stops at offset 5 while the topic goes on to 9.
    fixture.cluster.create_topic("payments", 1, &[]);
    fixture.cluster.set_watermarks("payments", 0, 0, 9);
    let new_id = fixture
        .cluster
        .topics()
        .await
        .unwrap()
        .pop()
        .unwrap()
        .topic_id
        .unwrap();
    let backup_id = fixture.config.backup_id.clone();
    let recorded_by_writer = tidemark_core::snapshot::generations::generation_of_topic_id(
        fixture.index.as_ref(),
        &backup_id,
        "payments",
        &new_id,
        12_345,
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(recorded_by_writer.generation, 1);
    let twenty_minutes_ago = now_ms() - 20 * 60_000;
    let generation_one = PartitionId::new(backup_id.clone(), "payments", 0).in_generation(1);
    fixture.back_up(generation_one, 5, twenty_minutes_ago).await;

    let response = fixture.run(SnapshotRequest::default()).await.unwrap();
    assert_eq!(
        response
            .recreations
            .iter()
            .map(|g| (g.generation, g.detected_at_ms))
            .collect::<Vec<_>>(),
        vec![(1, 12_345)],
        "the snapshot reports the writer's record, not one of its own"
    );
    assert_eq!(
        fixture
            .index
            .topic_generations(&backup_id, "payments")
            .await
            .unwrap()
            .len(),
        2,
        "no third generation"
    );
    assert_eq!(
        fixture.latest().await.topic("payments").unwrap().generation,
        1
    );
    // The stall check reads the live generation's checkpoint (generation 0 has none here).
    let stalled: Vec<(i32, i64, i64)> = response
        .stalled_partitions
        .iter()
        .map(|s| (s.partition, s.next_offset, s.high_watermark))
        .collect();
    assert_eq!(stalled, vec![(0, 5, 9)]);
}
