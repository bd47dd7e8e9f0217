//! Planning and the coordinator's steps on the in-memory twins: refusals before any change,
//! the consistent cut's offsets, the S3 fallback, and the whole restore with its groups
//! moved by the offset-reset function's own steps.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::{Fixture, TOPIC, record};
use restore::coordinator::{Coordinator, Failure, Step, StepInput};
use restore::drill::read::RestoredReader;
use restore::partition::target::{MemoryTargetWriter, TargetWriter};
use restore::partition::{Pacing, PartitionRequest};
use restore::plan::RestorePlan;
use restore::target::{Cluster, TargetConnector};
use serde_json::{Value, json};
use tidemark_core::index::IndexStore;
use tidemark_core::kafka::{
    ClusterReader, CommittedOffset, GroupDescription, KafkaSettings, MemoryCluster, TopicPartition,
};
use tidemark_core::snapshot::{
    ClusterSnapshot, GroupSnapshot, PartitionSnapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION,
    SnapshotCatalog, SnapshotEntry, TopicSnapshot,
};

struct Twins {
    cluster: Arc<MemoryCluster>,
    writer: Arc<MemoryTargetWriter>,
}

#[async_trait]
impl tidemark_core::kafka::ClusterConnector for Twins {
    async fn cluster(&self, _: &KafkaSettings) -> tidemark_core::Result<Arc<dyn Cluster>> {
        Ok(self.cluster.clone())
    }
}

#[async_trait]
impl TargetConnector for Twins {
    async fn writer(&self, _: &KafkaSettings, _: u64) -> restore::Result<Arc<dyn TargetWriter>> {
        Ok(self.writer.clone())
    }

    async fn reader(&self, _: &KafkaSettings) -> restore::Result<Arc<dyn RestoredReader>> {
        Ok(self.writer.clone())
    }
}

struct World {
    fixture: Fixture,
    twins: Arc<Twins>,
    coordinator: Coordinator,
}

const CUT: i64 = 1_000_000;

/// Two partitions of 100 records each, indexed, written before the cut; a snapshot at the
/// cut where `reader` had committed 40 and 70.
async fn new_world() -> World {
    let fixture = Fixture::new();
    for partition in 0..2 {
        let records: Vec<_> = (0..100).map(|o| record(o, 1_000 + o)).collect();
        fixture.segment(partition, &records, CUT - 10, true).await;
    }
    let snapshot = ClusterSnapshot {
        format: SNAPSHOT_FORMAT.into(),
        version: SNAPSHOT_VERSION,
        backup_id: "prod".into(),
        bootstrap_servers: "source:9092".into(),
        started_at_ms: CUT - 5,
        taken_at_ms: CUT,
        topics: vec![TopicSnapshot {
            name: TOPIC.into(),
            generation: 0,
            topic_id: None,
            partition_count: 2,
            configs: [("cleanup.policy".to_owned(), Some("delete".to_owned()))].into(),
            partitions: (0..2)
                .map(|partition| PartitionSnapshot {
                    partition,
                    low_watermark: 0,
                    high_watermark: 100,
                })
                .collect(),
        }],
        groups: vec![GroupSnapshot {
            group: GroupDescription {
                group_id: "reader".into(),
                state: "Empty".into(),
                protocol_type: "consumer".into(),
                protocol: String::new(),
                members: Vec::new(),
            },
            offsets: vec![
                CommittedOffset {
                    topic: TOPIC.into(),
                    partition: 0,
                    offset: 40,
                    metadata: String::new(),
                },
                CommittedOffset {
                    topic: TOPIC.into(),
                    partition: 1,
                    offset: 70,
                    metadata: String::new(),
                },
            ],
            error: None,
        }],
        recreations: Vec::new(),
    };
    let key = fixture.backup.layout.snapshot_key(&fixture.backup_id, CUT);
    fixture
        .backup
        .objects
        .put_if_absent(
            &key,
            Bytes::from(snapshot.encode(3).unwrap()),
            &Default::default(),
        )
        .await
        .unwrap();
    fixture
        .index
        .record_snapshot(
            &fixture.backup_id,
            &SnapshotEntry {
                taken_at_ms: CUT,
                key,
                group_count: 1,
                topic_count: 1,
                stored_bytes: 1,
            },
        )
        .await
        .unwrap();
    let twins = Arc::new(Twins {
        cluster: Arc::new(MemoryCluster::new()),
        writer: Arc::new(MemoryTargetWriter::new()),
    });
    let coordinator = Coordinator::new(fixture.backup.clone(), twins.clone());
    World {
        fixture,
        twins,
        coordinator,
    }
}

fn request(overrides: Value) -> Value {
    let mut request = json!({
        "backup_id": "prod",
        "target": {"bootstrap_servers": "target:9092", "auth": "plaintext"},
        "topics": {"mapping": {TOPIC: "payments.restored"}},
        "cut": {"mode": "time", "at": CUT},
        "groups": ["reader"],
        "topic_creation": "create",
    });
    for (key, value) in overrides.as_object().unwrap() {
        request[key] = value.clone();
    }
    request
}

impl World {
    /// Every object the restore wrote under the backup's restores prefix.
    async fn restore_records(&self) -> Vec<String> {
        self.fixture
            .backup
            .objects
            .list("t/prod/restores/")
            .await
            .unwrap()
    }

    async fn step(&self, step: Step, request: &Value) -> restore::Result<Value> {
        self.coordinator
            .handle(StepInput {
                step,
                restore_id: "run-1".into(),
                request: request.clone(),
                results: json!({}),
                failed_step: None,
                failure: None,
                offsets_rollback: None,
                execution: None,
            })
            .await
    }

    /// Runs the offset-reset steps the restore's ResetOffsets state runs (its child state
    /// machine), with the request the plan step handed over.
    async fn reset_offsets(&self, offset_reset: &Value) -> Value {
        let records = offset_reset::records::ResetRecords {
            objects: self.fixture.backup.objects.clone(),
            catalog: self.fixture.backup.catalog.clone(),
            operations: self.fixture.backup.operations.clone(),
            layout: self.fixture.backup.layout.clone(),
            bucket: "bucket".into(),
            concurrency: 4,
        };
        let handler = offset_reset::handler::Handler::new(records, self.twins.clone());
        let mut last = Value::Null;
        for step in ["plan", "check-groups", "snapshot", "apply", "verify"] {
            let input = serde_json::from_value(json!({
                "step": step, "reset_id": "run-1", "request": offset_reset,
            }))
            .unwrap();
            last = handler.handle(input).await.unwrap();
        }
        last
    }

    async fn rollback(&self, request: &Value, failed_step: &str, failure: Failure) -> Value {
        self.coordinator
            .handle(StepInput {
                step: Step::Rollback,
                restore_id: "run-1".into(),
                request: request.clone(),
                results: json!({}),
                failed_step: Some(failed_step.into()),
                failure: Some(failure),
                offsets_rollback: None,
                execution: None,
            })
            .await
            .unwrap()
    }

    /// Records that the topic was found recreated: generation 1 from `detected_at_ms` on.
    async fn record_generation_one(&self, detected_at_ms: i64, evidence: &str, id: Option<&str>) {
        self.fixture
            .index
            .record_topic_generation(
                &self.fixture.backup_id,
                &tidemark_core::snapshot::TopicGeneration {
                    topic: TOPIC.into(),
                    generation: 1,
                    detected_at_ms,
                    evidence: vec![evidence.into()],
                    topic_id: id.map(str::to_owned),
                },
            )
            .await
            .unwrap();
    }

    /// Plans `request` as run-1 and returns the plan, then forgets it for the next one.
    async fn plan_of(&self, request: &Value) -> restore::Result<RestorePlan> {
        self.step(Step::Plan, request).await?;
        let plan = self.plan().await;
        self.reset_plan().await;
        Ok(plan)
    }

    /// Forgets run-1's plan, so the next plan step plans afresh (a plan is written once).
    async fn reset_plan(&self) {
        let prefix = self.fixture.backup.restore_key(
            &self.fixture.backup_id,
            &tidemark_core::layout::RestoreId::parse("run-1").unwrap(),
            "",
        );
        let objects = &self.fixture.backup.objects;
        for key in objects.list(&prefix).await.unwrap() {
            objects.delete(&key).await.unwrap();
        }
    }

    async fn plan(&self) -> RestorePlan {
        let key = self.fixture.backup.layout.restore_plan_key(
            &self.fixture.backup_id,
            &tidemark_core::layout::RestoreId::parse("run-1").unwrap(),
        );
        self.fixture.backup.get_json(&key).await.unwrap().unwrap()
    }

    /// Runs every partition task to completion, then tells the cluster twin where the
    /// target partitions end (the writer twin and the cluster twin are separate).
    async fn restore_partitions(&self, request: &Value) {
        for task in self.plan().await.partitions {
            let request = PartitionRequest {
                restore_id: "run-1".into(),
                backup_id: "prod".into(),
                target: serde_json::from_value(request["target"].clone()).unwrap(),
                task: task.clone(),
            };
            let pacing = Pacing {
                batch_records: 16,
                deadline_reserve: std::time::Duration::ZERO,
                prefetch_segments: 2,
            };
            let report = restore::partition::handle(
                &self.fixture.backup,
                self.twins.as_ref(),
                request,
                i64::MAX,
                pacing,
            )
            .await
            .unwrap();
            assert!(report.done);
            let end = self
                .twins
                .writer
                .end_offset(&task.target_topic, task.partition)
                .await
                .unwrap();
            self.twins
                .cluster
                .set_watermarks(&task.target_topic, task.partition, 0, end);
        }
    }

    async fn committed(&self, group: &str) -> Vec<(i32, i64)> {
        let partitions = [
            TopicPartition::new("payments.restored", 0),
            TopicPartition::new("payments.restored", 1),
        ];
        self.twins
            .cluster
            .committed_offsets(group, &partitions)
            .await
            .unwrap()
            .into_iter()
            .map(|offset| (offset.partition, offset.offset))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_what_is_wrong_and_write_nothing() {
    let world = new_world().await;
    world.twins.cluster.create_topic("payments.present", 2, &[]);
    world
        .twins
        .cluster
        .add_group("reader", "Stable", &["member-1"]);
    let cases = [
        (json!({"backup_id": "other"}), "unknown backup id \"other\""),
        (
            json!({"topics": {"mapping": {"refunds": "x"}}}),
            "does not hold: [\"refunds\"]",
        ),
        (
            json!({"topic_creation": "require"}),
            "[\"payments.restored\"] do not exist",
        ),
        (
            json!({"topics": {"mapping": {TOPIC: "payments.present"}}}),
            "reader (1 members: client-member-1 on /127.0.0.1)",
        ),
        (
            json!({"groups": ["writer"], "topics": {"mapping": {TOPIC: "payments.present"}}}),
            "group \"writer\" is not in the snapshot",
        ),
        (
            json!({"cut": {"mode": "time", "at": CUT - 1}}),
            "no cluster snapshot at or before the cut",
        ),
    ];
    for (overrides, expected) in cases {
        let error = world
            .step(Step::Plan, &request(overrides.clone()))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{overrides}: {error}");
        assert!(
            world.restore_records().await.is_empty(),
            "{overrides}: a refused plan writes nothing"
        );
    }
    assert_eq!(
        world.twins.cluster.topics().await.unwrap().len(),
        1,
        "no topic created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consistent_cut_ends_where_the_backup_had_reached_and_a_time_cut_bounds_by_timestamps() {
    let world = new_world().await;
    // Written after the cut: outside a consistent cut, whatever its timestamps.
    let late: Vec<_> = (100..150).map(|o| record(o, 1_000)).collect();
    world.fixture.segment(0, &late, CUT + 1, true).await;
    world
        .step(
            Step::Plan,
            &request(json!({"cut": {"mode": "consistent", "at": CUT}})),
        )
        .await
        .unwrap();
    let plan = world.plan().await;
    let ends: Vec<(i32, i64)> = plan
        .partitions
        .iter()
        .map(|task| (task.partition, task.end_offset))
        .collect();
    assert_eq!(ends, [(0, 100), (1, 100)]);
    assert_eq!(plan.topics[0].partition_count, 2);
    assert_eq!(
        plan.topics[0].configs.get("cleanup.policy"),
        Some(&Some("delete".to_owned()))
    );
    assert_eq!(plan.groups[0].source_offsets.len(), 2);

    let other = new_world().await;
    other.fixture.segment(0, &late, CUT + 1, true).await;
    other.step(Step::Plan, &request(json!({}))).await.unwrap();
    assert_eq!(
        other.plan().await.partitions[0].end_offset,
        150,
        "late-written records with old timestamps are in a time cut"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_index_entries_the_plan_comes_from_the_s3_listing() {
    let world = new_world().await;
    let extra: Vec<_> = (0..10).map(|o| record(o, 1_000 + o)).collect();
    world.fixture.segment(2, &extra, CUT - 10, false).await;
    world.step(Step::Plan, &request(json!({}))).await.unwrap();
    let plan = world.plan().await;
    let third = plan
        .partitions
        .iter()
        .find(|task| task.partition == 2)
        .unwrap();
    assert_eq!(
        third.segment_source,
        tidemark_core::stores::SegmentSource::S3Listing
    );
    assert_eq!((third.first_offset, third.end_offset), (0, 10));
    assert!(
        plan.warnings
            .iter()
            .any(|warning| warning.contains("S3 listing")),
        "{:?}",
        plan.warnings
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_restore_moves_the_group_through_the_offset_reset_and_reports() {
    let world = new_world().await;
    let request = request(json!({}));
    let summary = world.step(Step::Plan, &request).await.unwrap();
    assert_eq!(summary["topics_to_create"], json!(["payments.restored"]));
    let offset_reset = summary["offset_reset"].clone();
    assert_eq!(offset_reset["strategy"]["type"], "snapshot");
    assert_eq!(offset_reset["strategy"]["restore_id"], "run-1");
    assert_eq!(offset_reset["groups"]["names"], json!(["reader"]));
    world.step(Step::CreateTopics, &request).await.unwrap();
    // A retried create finds its own topic and does not fail.
    world.step(Step::CreateTopics, &request).await.unwrap();
    world.restore_partitions(&request).await;
    let validation = world.step(Step::Validate, &request).await.unwrap();
    assert_eq!(validation["records"], 200);
    assert_eq!(validation["offset_mapping_partitions"], 2);
    assert_eq!(
        world.committed("reader").await,
        [],
        "validation moves no group"
    );
    let verified = world.reset_offsets(&offset_reset).await;
    assert_eq!(verified, json!({"groups": 1, "partitions": 2}));
    assert_eq!(world.committed("reader").await, [(0, 40), (1, 70)]);
    let report = world.step(Step::Report, &request).await.unwrap();
    assert_eq!(report["records"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_without_groups_hands_over_no_offset_reset() {
    let world = new_world().await;
    let summary = world
        .step(Step::Plan, &request(json!({"groups": []})))
        .await
        .unwrap();
    assert!(summary.get("offset_reset").is_none(), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_after_the_groups_moved_quotes_the_offset_resets_own_rollback() {
    let world = new_world().await;
    let request = request(json!({}));
    world.step(Step::Plan, &request).await.unwrap();
    let outcome = world
        .coordinator
        .handle(StepInput {
            step: Step::Rollback,
            restore_id: "run-1".into(),
            request: request.clone(),
            results: json!({}),
            failed_step: Some("Report".into()),
            failure: Some(Failure {
                error: "Tidemark.Failed".into(),
                cause: json!({"errorType": "Tidemark.Failed", "errorMessage": "S3 said no"})
                    .to_string(),
            }),
            offsets_rollback: Some(json!({"undone": "the 1 groups that existed are back"})),
            execution: None,
        })
        .await
        .unwrap();
    assert_eq!(
        outcome["cause"],
        "Report failed: S3 said no (Tidemark.Failed). Rollback: the 1 groups that existed are back."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_deletes_only_the_topics_this_restore_created_when_asked() {
    let world = new_world().await;
    world.twins.cluster.create_topic("payments.kept", 2, &[]);
    let request = request(json!({
        "topics": {"include": ["payments"], "target_prefix": "restored."},
        "rollback_deletes_created_topics": true,
        "groups": [],
    }));
    world.step(Step::Plan, &request).await.unwrap();
    world.step(Step::CreateTopics, &request).await.unwrap();
    let names = |topics: Vec<tidemark_core::kafka::TopicDescription>| -> Vec<String> {
        topics.into_iter().map(|topic| topic.name).collect()
    };
    assert_eq!(
        names(world.twins.cluster.topics().await.unwrap()),
        ["payments.kept", "restored.payments"]
    );
    let outcome = world
        .rollback(
            &request,
            "RestorePartitions",
            Failure {
                error: "States.ExceededToleratedFailureThreshold".into(),
                cause: "a partition failed".into(),
            },
        )
        .await;
    assert_eq!(outcome["topics_deleted"], json!(["restored.payments"]));
    assert_eq!(
        names(world.twins.cluster.topics().await.unwrap()),
        ["payments.kept"]
    );
    assert_eq!(
        outcome["cause"],
        "RestorePartitions failed: a partition failed (States.ExceededToleratedFailureThreshold). \
         Rollback: created topics [\"restored.payments\"] were deleted."
    );
}

/// Stores a segment of offsets `range` written at `written_at_ms` and records it through the
/// writer's own commit rule (index entry, gap and checkpoint).
async fn write_like_the_writer(
    world: &World,
    partition: i32,
    range: std::ops::Range<i64>,
    at: i64,
) {
    let records: Vec<_> = range.map(|o| record(o, 1_000 + o)).collect();
    let key = world
        .fixture
        .segment_damaged(partition, &records, at, false, |_| {})
        .await;
    let stored = world
        .fixture
        .backup
        .objects
        .get(&key)
        .await
        .unwrap()
        .unwrap();
    let header = tidemark_core::segment::verify_stored_segment(&stored).unwrap();
    let entry = tidemark_core::index::SegmentEntry::new(key, &header, stored.len() as u64, at);
    let id = world.fixture.partition(partition);
    let observed = world.fixture.index.checkpoint(&id).await.unwrap();
    tidemark_core::index::record_segment(
        world.fixture.index.as_ref(),
        &id,
        &entry,
        header.max_timestamp,
        observed,
        at,
    )
    .await
    .unwrap();
}

/// Plans a consistent cut at `at` under its own restore id with `backup`'s stores and returns
/// partition 2's task range (first, end) and where its segments were listed from.
async fn consistent_range(
    world: &World,
    backup: &tidemark_core::stores::BackupStores,
    restore_id: &str,
    at: i64,
) -> (i64, i64, tidemark_core::stores::SegmentSource) {
    let coordinator = Coordinator::new(backup.clone(), world.twins.clone());
    coordinator
        .handle(StepInput {
            step: Step::Plan,
            restore_id: restore_id.into(),
            request: request(json!({"cut": {"mode": "consistent", "at": at}, "groups": []})),
            results: json!({}),
            failed_step: None,
            failure: None,
            offsets_rollback: None,
            execution: None,
        })
        .await
        .unwrap();
    let key = backup.layout.restore_plan_key(
        &world.fixture.backup_id,
        &tidemark_core::layout::RestoreId::parse(restore_id).unwrap(),
    );
    let plan: RestorePlan = backup.get_json(&key).await.unwrap().unwrap();
    let task = plan
        .partitions
        .iter()
        .find(|task| task.partition == 2)
        .unwrap();
    (task.first_offset, task.end_offset, task.segment_source)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consistent_cut_stays_exact_through_compaction_retention_and_an_index_rebuild() {
    use tidemark_core::compaction::{CompactionSettings, Compactor};
    use tidemark_core::stores::MemoryIndexStore;

    let world = new_world().await;
    // Partition 2: four batches, two written before the cut and two after it.
    for (range, at) in [
        (0..50, CUT - 40_000),
        (50..100, CUT - 20_000),
        (100..150, CUT + 5_000),
        (150..200, CUT + 20_000),
    ] {
        write_like_the_writer(&world, 2, range, at).await;
    }
    let backup = world.fixture.backup.clone();
    let source = tidemark_core::stores::SegmentSource::Index;
    assert_eq!(
        consistent_range(&world, &backup, "before-compaction", CUT).await,
        (0, 100, source)
    );

    // Compaction merges all four into one segment written long after the cut.
    let compacted_at = CUT + 86_400_000;
    let compactor = Compactor {
        objects: backup.objects.as_ref(),
        index: backup.index.as_ref(),
        keys: &backup.keys,
        layout: &backup.layout,
        settings: CompactionSettings {
            target_bytes: 1 << 30,
            grace_ms: 0,
            compression_level: 3,
        },
    };
    let id = world.fixture.partition(2);
    let report = compactor
        .compact_partition(&id, &Default::default(), compacted_at)
        .await
        .unwrap();
    assert_eq!((report.segments_written, report.segments_replaced), (1, 4));
    assert_eq!(backup.index.segments(&id).await.unwrap().len(), 1);
    for (restore_id, at, end) in [
        ("after-compaction", CUT, 100),
        ("between-marks", CUT + 5_000, 150),
        ("before-every-mark", CUT - 50_000, 0),
        ("after-every-mark", CUT + 30_000, 200),
    ] {
        assert_eq!(
            consistent_range(&world, &backup, restore_id, at).await,
            (0, end, source),
            "{restore_id}: the merged segment keeps when each part was written"
        );
    }
    // A second compaction of the merged segment with a later batch keeps the marks.
    write_like_the_writer(&world, 2, 200..210, compacted_at + 1).await;
    compactor
        .compact_partition(&id, &Default::default(), compacted_at + 2)
        .await
        .unwrap();
    assert_eq!(backup.index.segments(&id).await.unwrap().len(), 1);
    assert_eq!(
        consistent_range(&world, &backup, "after-recompaction", CUT).await,
        (0, 100, source)
    );

    // The index is lost: the S3 listing (LastModified is the merge's time) and a rebuilt index
    // both read the marks from the segment's header.
    compactor
        .delete_retired(&id, compacted_at + 3)
        .await
        .unwrap();
    let mut without_index = backup.clone();
    without_index.index = Arc::new(MemoryIndexStore::new());
    assert_eq!(
        consistent_range(&world, &without_index, "from-listing", CUT).await,
        (0, 100, tidemark_core::stores::SegmentSource::S3Listing)
    );
    let rebuilt = Arc::new(MemoryIndexStore::new());
    for partition in 0..3 {
        tidemark_core::validation::rebuild_partition(
            backup.objects.as_ref(),
            rebuilt.as_ref(),
            &backup.layout,
            &world.fixture.partition(partition),
            compacted_at + 4,
        )
        .await
        .unwrap();
    }
    let mut with_rebuilt = backup.clone();
    with_rebuilt.index = rebuilt;
    assert_eq!(
        consistent_range(&world, &with_rebuilt, "from-rebuilt-index", CUT).await,
        (0, 100, source)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consistent_cut_after_retention_starts_at_the_new_start_and_ends_where_it_did() {
    let world = new_world().await;
    for (range, at) in [
        (0..50, CUT - 40_000),
        (50..100, CUT - 20_000),
        (100..150, CUT + 5_000),
    ] {
        write_like_the_writer(&world, 2, range, at).await;
    }
    let backup = world.fixture.backup.clone();
    let report = tidemark_core::retention::expire_partition(
        backup.objects.as_ref(),
        backup.index.as_ref(),
        &backup.layout,
        &world.fixture.partition(2),
        tidemark_core::retention::RetentionPolicy {
            keep_ms: 30_000,
            min_pitr_window_ms: 0,
        },
        CUT,
    )
    .await
    .unwrap();
    assert_eq!(report.segments_expired, 1, "{report:?}");
    assert_eq!(
        consistent_range(&world, &backup, "after-retention", CUT).await,
        (50, 100, tidemark_core::stores::SegmentSource::Index)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_offset_reset_is_described_by_what_its_own_rollback_did() {
    let world = new_world().await;
    let request = request(json!({}));
    world.step(Step::Plan, &request).await.unwrap();
    let child_failed = |error: &str| Failure {
        error: "States.TaskFailed".into(),
        cause: json!({"Error": error, "Cause": "group reader: commit refused"}).to_string(),
    };
    let outcome = world
        .rollback(
            &request,
            "ResetOffsets",
            child_failed("Tidemark.RollbackFailed"),
        )
        .await;
    assert_eq!(outcome["error"], "Tidemark.RollbackFailed");
    let cause = outcome["cause"].as_str().unwrap();
    assert!(
        cause.contains("the offset reset's own rollback FAILED, so groups may be left"),
        "{cause}"
    );
    assert!(!cause.contains("nothing needed undoing"), "{cause}");

    let outcome = world
        .rollback(
            &request,
            "ResetOffsets",
            child_failed("Tidemark.OffsetResetFailed"),
        )
        .await;
    assert_eq!(outcome["error"], "Tidemark.RestoreFailed");
    assert!(
        outcome["cause"]
            .as_str()
            .unwrap()
            .contains("rolled every group back to where it stood and verified it"),
        "{outcome}"
    );
}

/// An object store whose first write of a created-topic mark fails, as a Lambda that crashes
/// (or times out) at that moment would.
struct MarkWriteFails {
    inner: Arc<dyn tidemark_core::object_store::ObjectStore>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl tidemark_core::object_store::ObjectStore for MarkWriteFails {
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &tidemark_core::object_store::ObjectMetadata,
        tags: &tidemark_core::object_store::ObjectTags,
    ) -> tidemark_core::Result<tidemark_core::object_store::PutOutcome> {
        if key.contains("/created-topics/")
            && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(tidemark_core::Error::ObjectStore {
                operation: "PutObject",
                key: key.to_owned(),
                message: "the function crashed".into(),
                retryable: true,
            });
        }
        self.inner
            .put_tagged_if_absent(key, body, metadata, tags)
            .await
    }
    async fn get(&self, key: &str) -> tidemark_core::Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> tidemark_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn list_objects(
        &self,
        prefix: &str,
    ) -> tidemark_core::Result<Vec<tidemark_core::object_store::ObjectInfo>> {
        self.inner.list_objects(prefix).await
    }
    async fn list_prefixes(&self, prefix: &str) -> tidemark_core::Result<Vec<String>> {
        self.inner.list_prefixes(prefix).await
    }
    async fn retention(
        &self,
        key: &str,
    ) -> tidemark_core::Result<Option<tidemark_core::object_store::ObjectRetention>> {
        self.inner.retention(key).await
    }
    async fn delete_all_versions(&self, key: &str) -> tidemark_core::Result<usize> {
        self.inner.delete_all_versions(key).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_creating_topics_leaves_a_topic_the_retry_and_the_rollback_own() {
    let world = new_world().await;
    let mut backup = world.fixture.backup.clone();
    backup.objects = Arc::new(MarkWriteFails {
        inner: backup.objects.clone(),
        failed: std::sync::atomic::AtomicBool::new(false),
    });
    let coordinator = Coordinator::new(backup, world.twins.clone());
    let request = request(json!({"rollback_deletes_created_topics": true}));
    let run = |step: Step| {
        coordinator.handle(StepInput {
            step,
            restore_id: "run-1".into(),
            request: request.clone(),
            results: json!({}),
            failed_step: None,
            failure: None,
            offsets_rollback: None,
            execution: None,
        })
    };
    run(Step::Plan).await.unwrap();
    run(Step::CreateTopics).await.unwrap_err();
    let created = run(Step::CreateTopics).await.unwrap();
    assert_eq!(
        created["created"],
        json!(["payments.restored"]),
        "the retry finishes what the crashed attempt began"
    );
    let outcome = world
        .rollback(
            &request,
            "RestorePartitions",
            Failure {
                error: "States.TaskFailed".into(),
                cause: "a partition failed".into(),
            },
        )
        .await;
    assert_eq!(outcome["topics_deleted"], json!(["payments.restored"]));
    assert!(
        world
            .twins
            .cluster
            .topics()
            .await
            .unwrap()
            .iter()
            .all(|topic| topic.name != "payments.restored"),
        "the rollback deletes the topic this restore created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_would_rewrite_delete_or_refuse_restored_records_is_refused_in_plan() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("message.timestamp.type", "LogAppendTime"),
                ("retention.ms", "-1"),
            ],
            "target topic payments.restored has message.timestamp.type=LogAppendTime",
        ),
        (
            &[("retention.ms", "86400000")],
            "target topic payments.restored has retention.ms=86400000: the broker would delete \
             restored records",
        ),
        (
            &[("retention.ms", "-1"), ("max.message.bytes", "1048588")],
            "target topic payments.restored takes records up to max.message.bytes=1048588, but \
             partition 0 holds a record of 2097",
        ),
    ];
    for (configs, expected) in cases {
        let world = new_world().await;
        let mut big = record(100, 1_000);
        big.value = Some(vec![7; 2 << 20]);
        world.fixture.segment(0, &[big], CUT - 5, true).await;
        world
            .twins
            .cluster
            .create_topic("payments.restored", 2, configs);
        let error = world
            .step(Step::Plan, &request(json!({})))
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "Tidemark.Refused", "{error}");
        assert!(error.to_string().contains(expected), "{error}");
        assert!(
            world.restore_records().await.is_empty(),
            "a refused plan writes nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_target_keeps_old_large_records_and_their_timestamps() {
    let world = new_world().await;
    let mut big = record(100, 1_000);
    big.value = Some(vec![7; 5 << 20]);
    world.fixture.segment(0, &[big], CUT - 5, true).await;
    world.step(Step::Plan, &request(json!({}))).await.unwrap();
    let plan = world.plan().await;
    let configs = &plan.topics[0].configs;
    let value = |name: &str| configs.get(name).cloned().flatten();
    assert_eq!(
        value("message.timestamp.type").as_deref(),
        Some("CreateTime")
    );
    assert_eq!(
        value("retention.ms").as_deref(),
        Some("-1"),
        "records from 1970 would go at the broker's next retention pass"
    );
    let max_message_bytes: u64 = value("max.message.bytes").unwrap().parse().unwrap();
    assert!(max_message_bytes > 5 << 20, "{max_message_bytes}");
    assert!(
        plan.partitions
            .iter()
            .all(|task| task.max_record_bytes > 5 << 20),
        "the producer is sized for the largest record"
    );
    for expected in ["retention.ms=-1", "max.message.bytes="] {
        assert!(
            plan.warnings
                .iter()
                .any(|warning| warning.contains(expected)),
            "{expected}: {:?}",
            plan.warnings
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_steps_output_stays_small_for_5000_partitions_planned_from_the_s3_listing() {
    let world = new_world().await;
    // The index is lost: 5,000 partitions, each known only from its segment in S3.
    let records = [record(0, 1_000)];
    for partition in 2..5_002 {
        world
            .fixture
            .segment(partition, &records, CUT - 10, false)
            .await;
    }
    let summary = world.step(Step::Plan, &request(json!({}))).await.unwrap();
    let bytes = serde_json::to_vec(&summary).unwrap().len();
    assert!(bytes < 16 * 1024, "the plan step returned {bytes} bytes");
    assert_eq!(summary["partitions"], 5_002);
    // One warning for the listing (not one per partition), one for the partitions the
    // snapshot does not describe (20 of them named), one for the created topic.
    assert_eq!(summary["warning_count"], 3, "{}", summary["warnings"]);
    let warnings: Vec<&str> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings[1].starts_with("5000 partitions planned from the S3 listing"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("and 4980 more hold records at the cut"),
        "{warnings:?}"
    );
    let plan = world.plan().await;
    assert_eq!(
        plan.partitions.len(),
        5_002,
        "the plan in S3 has every partition"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_added_after_the_cut_are_left_out_and_the_target_gets_the_count_then() {
    let world = new_world().await;
    // The snapshot at CUT describes 2 partitions; a third was added later and backed up from
    // its first offset.
    let later: Vec<_> = (0..5).map(|o| record(o, CUT + 70_000 + o)).collect();
    world
        .fixture
        .store_segment(
            world.fixture.partition(2),
            &later,
            CUT + 80_000,
            true,
            |_| {},
        )
        .await;
    let plan_at = |request: Value| {
        let world = &world;
        async move { world.plan_of(&request).await.unwrap() }
    };
    let shape = |plan: &RestorePlan| {
        (
            plan.topics[0].partitions.clone(),
            plan.topics[0].partition_count,
            plan.partitions
                .iter()
                .map(|task| task.partition)
                .collect::<Vec<_>>(),
        )
    };

    // A cut before the growth: the two partitions alive then, and a target of two.
    let plan = plan_at(request(json!({}))).await;
    assert_eq!(shape(&plan), (vec![0, 1], 2, vec![0, 1]));
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("partitions [2] were added after the cut")),
        "{:?}",
        plan.warnings
    );

    // A cut after it, with no newer snapshot: the records of partition 2 are at the cut, so the
    // topic had grown; all three are restored into a target of three.
    let plan = plan_at(request(
        json!({"cut": {"mode": "time", "at": CUT + 120_000}, "groups": []}),
    ))
    .await;
    assert_eq!(shape(&plan), (vec![0, 1, 2], 3, vec![0, 1, 2]));
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("partitions [2] hold records at the cut")),
        "{:?}",
        plan.warnings
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generation_found_without_ids_refuses_cuts_where_the_old_one_may_hold_the_new_topic() {
    let world = new_world().await;
    // The snapshot at CUT saw the old topic; the next, a minute later, found its watermarks
    // gone back (a cluster without topic ids).
    world
        .record_generation_one(
            CUT + 60_000,
            "partition 0 log end went back from 100 to 3",
            None,
        )
        .await;
    let error = world
        .step(
            Step::Plan,
            &request(json!({"cut": {"mode": "time", "at": CUT + 30_000}})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.Refused", "{error}");
    assert!(
        error.to_string().contains(&format!(
            "topic {TOPIC} was deleted and recreated (generation 1, found at {} ms from \
             watermarks, without topic ids: partition 0 log end went back from 100 to 3); \
             generation 0's backup after the snapshot at {CUT} ms may hold records of the new topic",
            CUT + 60_000
        )),
        "{error}"
    );
    world
        .step(
            Step::Plan,
            &request(json!({"cut": {"mode": "time", "at": CUT}})),
        )
        .await
        .unwrap();
    assert_eq!(world.plan().await.topics[0].generation, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_cut_restores_the_topic_generation_alive_then_and_never_mixes_two() {
    let world = new_world().await;
    // The snapshot at CUT saw the old topic; a minute later the topic was found recreated
    // (generation 1), and its one partition got ten records of its own.
    world
        .record_generation_one(CUT + 60_000, "topic id changed from a to b", Some("b"))
        .await;
    let newer: Vec<_> = (0..10).map(|o| record(o, CUT + 70_000 + o)).collect();
    world
        .fixture
        .store_segment(
            world.fixture.partition(0).in_generation(1),
            &newer,
            CUT + 80_000,
            true,
            |_| {},
        )
        .await;

    let plan_at = |request: Value| {
        let world = &world;
        async move { world.plan_of(&request).await }
    };
    let generations = |plan: &RestorePlan| {
        (
            plan.topics[0].generation,
            plan.topics[0].partitions.clone(),
            plan.partitions
                .iter()
                .map(|task| (task.generation, task.partition, task.end_offset))
                .collect::<Vec<_>>(),
        )
    };

    // Before the recreation: the old topic, with its group.
    let plan = plan_at(request(
        json!({"cut": {"mode": "time", "at": CUT + 30_000}}),
    ))
    .await
    .unwrap();
    assert_eq!(
        generations(&plan),
        (0, vec![0, 1], vec![(0, 0, 100), (0, 1, 100)])
    );
    assert!(
        plan.warnings.iter().any(|w| w.contains(&format!(
            "restoring generation 0, until it was found recreated at {} ms",
            CUT + 60_000
        ))),
        "{:?}",
        plan.warnings
    );

    // After it: the new topic alone, its partition count from the backup (the snapshot
    // describes the old topic).
    let after = json!({"cut": {"mode": "time", "at": CUT + 120_000}, "groups": []});
    let plan = plan_at(request(after.clone())).await.unwrap();
    assert_eq!(generations(&plan), (1, vec![0], vec![(1, 0, 10)]));
    assert_eq!(plan.topics[0].partition_count, 1);

    // The group's offsets at that cut were committed on the old topic: refused, not mixed.
    let error = plan_at(request(
        json!({"cut": {"mode": "time", "at": CUT + 120_000}}),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.Refused", "{error}");
    assert!(
        error
            .to_string()
            .contains("were committed on another generation"),
        "{error}"
    );

    // A named generation wins over the cut.
    let mut named = request(after.clone());
    named["topics"]["generations"] = json!({TOPIC: 0});
    let plan = plan_at(named).await.unwrap();
    assert_eq!(generations(&plan).0, 0);

    let mut missing = request(after);
    missing["topics"]["generations"] = json!({TOPIC: 5});
    let error = plan_at(missing).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the backup holds no records of generation 5 (named in topics.generations); it holds generations [0, 1]"),
        "{error}"
    );
}

/// The drill's steps around the restore's own (as the drill state machine runs them), on a
/// backup whose partition 1 has a second segment (offsets 100..=149).
#[tokio::test(flavor = "multi_thread")]
async fn a_drill_proves_a_sound_backup_and_names_the_first_offset_a_tampered_segment_loses() {
    use restore::drill::{Drill, DrillStep};
    let world = new_world().await;
    let more: Vec<_> = (100..150).map(|o| record(o, 1_000 + o)).collect();
    let tampered_key = world
        .fixture
        .segment_damaged(1, &more, CUT - 10, true, |_| {})
        .await;
    let drill = Drill {
        backup: world.fixture.backup.clone(),
        connector: world.twins.clone(),
        default_target: None,
        metrics_namespace: "Tidemark".into(),
    };
    let step = |value: Value| -> DrillStep { serde_json::from_value(value).unwrap() };
    let drill_request = json!({
        "backup_id": "prod",
        "target": {"bootstrap_servers": "target:9092", "auth": "plaintext"},
        "topics": {"include": [TOPIC]},
        "cut": {"mode": "time", "at": CUT},
        "groups": ["reader"],
        "tier": {"name": "gold", "rto_target_seconds": 3600},
        "requested_by": "arn:aws:sts::123456789012:assumed-role/sre/alice",
    });
    let prepared = drill
        .handle(step(json!({
            "step": "prepare", "drill_id": "run-1", "request": drill_request,
            "started_at": "2026-12-04T00:00:00Z",
        })))
        .await
        .unwrap();
    let restore_input = prepared["restore_input"].clone();
    assert_eq!(
        restore_input["topics"]["target_prefix"],
        "tidemark-drill.run-1."
    );
    assert_eq!(restore_input["move_groups"], false);

    // The restore state machine's steps, as its child execution runs them.
    let summary = world.step(Step::Plan, &restore_input).await.unwrap();
    assert_eq!(
        summary["offset_reset"],
        Value::Null,
        "a drill never moves a group"
    );
    world
        .step(Step::CreateTopics, &restore_input)
        .await
        .unwrap();
    world.restore_partitions(&restore_input).await;
    world.step(Step::Validate, &restore_input).await.unwrap();

    let verify = |partition: i32| {
        let plan = world.plan();
        let drill = &drill;
        async move {
            let task = plan
                .await
                .partitions
                .into_iter()
                .find(|task| task.partition == partition)
                .unwrap();
            drill
                .handle(step(json!({
                    "step": "verify-partition", "drill_id": "run-1", "backup_id": "prod",
                    "task": task,
                })))
                .await
                .unwrap()
        }
    };
    assert_eq!(verify(0).await["passed"], true);
    // The stored segment changes after the restore read it: the drill reads the backup again.
    world
        .fixture
        .backup
        .objects
        .delete(&tampered_key)
        .await
        .unwrap();
    world
        .fixture
        .segment_damaged(1, &more, CUT - 10, false, |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
        })
        .await;
    assert_eq!(verify(1).await["passed"], false);

    let cleaned = drill
        .handle(step(
            json!({"step": "cleanup", "drill_id": "run-1", "backup_id": "prod"}),
        ))
        .await
        .unwrap();
    assert_eq!(cleaned["deleted"], json!(["tidemark-drill.run-1.payments"]));
    assert!(
        world.twins.cluster.topics().await.unwrap().is_empty(),
        "no scratch topic is left"
    );
    let report = drill
        .handle(step(json!({
            "step": "report", "drill_id": "run-1", "started_at": "2026-12-04T00:00:00Z",
            "state": {"request": drill_request, "restore": {"output": {}}, "cleanup": cleaned},
        })))
        .await
        .unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["error"], "Tidemark.DrillFailed");
    let cause = report["cause"].as_str().unwrap();
    assert!(
        cause.contains("payments-1: the backup is unreadable from source offset 100"),
        "{cause}"
    );
    let partitions = report["partitions"].as_array().unwrap();
    let sound = &partitions[0];
    assert_eq!(sound["records"], 100);
    assert_eq!(sound["first_source_offset"], 0);
    assert_eq!(sound["last_source_offset"], 99);
    assert_eq!(sound["digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        sound["groups"],
        json!([{"group": "reader", "committed_source_offset": 40, "translated": 40, "expected": 40, "ok": true}])
    );
    assert_eq!(
        partitions[1]["records"], 100,
        "records before the damage matched"
    );
    assert_eq!(
        report["rpo_ms"],
        CUT - 1_099,
        "the cut against the newest record verified"
    );
    assert!(report["rto_ms"].as_i64().unwrap() > 0);

    let backup_id = tidemark_core::layout::BackupId::parse("prod").unwrap();
    let health = world
        .fixture
        .backup
        .operations
        .health(&backup_id)
        .await
        .unwrap();
    let recorded = health.drill.unwrap();
    assert!(!recorded.passed);
    assert_eq!(recorded.tier.as_deref(), Some("gold"));
    let audit = world
        .fixture
        .backup
        .operations
        .audit_records(0, i64::MAX / 2)
        .await
        .unwrap();
    let drill_audit = audit
        .iter()
        .find(|record| record.id == "run-1" && record.operation.name() == "drill")
        .unwrap();
    assert_eq!(
        drill_audit.caller.identity.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/sre/alice")
    );
}
