//! Validation, index rebuild and compaction on real parts: a backup made by the real backup-writer binary
//! (fed by the bridge, segments sealed with a KMS data key) in the emulated S3 and DynamoDB,
//! then damaged through the S3 API as bit rot or an operator would; checked by the library and
//! by the validation state machine running the real validator binary.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tidemark_core::compaction::{CompactionSettings, Compactor};
use tidemark_core::index::{IndexStore, SegmentEntry};
use tidemark_core::keys::{KmsKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::object_store::{ObjectStore, ObjectTags};
use tidemark_core::operations::{Operation, OperationsBook};
use tidemark_core::segment::SegmentReader;
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore};
use tidemark_core::validation::{
    Depth, Finding, backed_up_partitions, rebuild_partition, validate_partition,
};
use tidemark_tests::{Stack, Storage, unique};

const WRITER: &str = "arn:aws:lambda:us-east-1:000000000000:function:backup-writer";
const PREFIX: &str = "it";

/// Backs up 300 records over 3 partitions in segments of at most 40 records.
async fn backed_up(stack: &Stack) -> (Storage, PartitionId, StorageLayout) {
    let storage = stack.create_storage().await;
    let kms_key = stack.create_kms_key().await;
    let topic = unique("payments.validated");
    stack.create_topic(&topic, 3, &[]);
    let backup_id = unique("backup");
    let writer = stack.start_backup_writer(
        &[
            ("TIDEMARK_BUCKET", storage.bucket.as_str()),
            ("TIDEMARK_TABLE", storage.table.as_str()),
            ("TIDEMARK_BACKUP_ID", backup_id.as_str()),
            ("TIDEMARK_PREFIX", PREFIX),
            ("TIDEMARK_SEGMENT_ENCRYPTION_KEY", kms_key.as_str()),
        ],
        30,
    );
    let _bridge = stack.start_bridge(&writer.endpoint, &topic, WRITER, &["--batch-size", "40"]);
    let records: Vec<Value> = (0..300)
        .map(|n| {
            json!({"partition": n % 3, "key": BASE64.encode(format!("k{n}")), "value": BASE64.encode(format!("v{n}"))})
        })
        .collect();
    stack.produce(&topic, &Value::Array(records));
    stack.wait_for_checkpoints(
        &storage.table,
        &backup_id,
        (0..3).map(|partition| (topic.clone(), partition, 100)),
        90,
    );
    let partition = PartitionId::new(BackupId::parse(&backup_id).unwrap(), topic, 1);
    (storage, partition, StorageLayout::new(PREFIX).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_finds_a_flipped_byte_and_a_missing_segment_and_the_index_rebuilds_from_s3() {
    let stack = Stack::from_env();
    let (storage, partition, layout) = backed_up(&stack).await;
    let aws = stack.sdk_config().await;
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let keys = SegmentKeys::new(Arc::new(KmsKeyService::new(&aws)), None);
    let validate = |depth| validate_partition(&objects, &index, &keys, &layout, &partition, depth);

    let topics = backed_up_partitions(&objects, &layout, &partition.backup_id)
        .await
        .unwrap();
    assert_eq!(
        topics,
        (0..3)
            .map(|p| PartitionId::new(partition.backup_id.clone(), &partition.topic, p))
            .collect::<Vec<_>>()
    );
    let sound = validate(Depth::Deep).await.unwrap();
    assert_eq!(sound.findings, vec![]);
    assert_eq!((sound.records, sound.records_read), (100, 100));
    assert!(sound.segments >= 3, "batch size 40 gives several segments");

    // The index rebuilt from S3 alone, into an empty table, says what the writer's index says.
    let fresh = stack.create_storage().await;
    let rebuilt = DynamoIndexStore::new(fresh.dynamodb.clone(), &fresh.table);
    let report = rebuild_partition(&objects, &rebuilt, &layout, &partition, 1)
        .await
        .unwrap();
    assert_eq!(
        (report.segments, report.next_offset),
        (sound.segments, Some(100))
    );
    let comparable = |entries: Vec<SegmentEntry>| -> Vec<SegmentEntry> {
        entries
            .into_iter()
            .map(|entry| SegmentEntry {
                written_at_ms: 0,
                write_marks: Vec::new(),
                max_record_bytes: None,
                ..entry
            })
            .collect()
    };
    assert_eq!(
        comparable(rebuilt.segments(&partition).await.unwrap()),
        comparable(index.segments(&partition).await.unwrap())
    );
    let original = index.checkpoint(&partition).await.unwrap().unwrap();
    let copy = rebuilt.checkpoint(&partition).await.unwrap().unwrap();
    assert_eq!(
        (copy.start_offset, copy.next_offset, copy.max_timestamp),
        (
            original.start_offset,
            original.next_offset,
            original.max_timestamp
        )
    );

    // Damage: one byte of one segment flipped, another segment deleted.
    let entries = index.segments(&partition).await.unwrap();
    let (flipped, deleted) = (&entries[0].key, &entries[1].key);
    damage(&storage, flipped, deleted).await;

    let listing = validate(Depth::Listing).await.unwrap();
    assert_eq!(
        listing.findings,
        vec![Finding::MissingSegment {
            key: deleted.clone()
        }],
        "a listing sees the deletion, not the flip"
    );
    let deep = validate(Depth::Deep).await.unwrap();
    assert_eq!(deep.findings.len(), 2, "{:?}", deep.findings);
    assert!(deep.findings.contains(&Finding::MissingSegment {
        key: deleted.clone()
    }));
    assert!(
        deep.findings.iter().any(|finding| matches!(finding,
            Finding::CorruptSegment { key, .. } if key == flipped)),
        "{:?}",
        deep.findings
    );
}

/// Flips one byte in the middle of `flipped` and deletes `deleted`, through the S3 API.
async fn damage(storage: &Storage, flipped: &str, deleted: &str) {
    storage
        .rewrite_object(flipped, |bytes| {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
        })
        .await;
    storage
        .s3
        .delete_object()
        .bucket(&storage.bucket)
        .key(deleted)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_validation_machine_reports_a_sound_backup_then_fails_naming_the_damage() {
    let stack = Stack::from_env();
    let (storage, partition, _) = backed_up(&stack).await;
    let (host, machine) = stack
        .start_validation(&storage, PREFIX, partition.backup_id.as_str(), 60)
        .await;
    let limit = Duration::from_secs(120);

    let sound = machine
        .run(
            &json!({"requested_by": "arn:aws:iam::000000000000:user/alice"}),
            limit,
        )
        .await;
    assert_eq!(
        sound.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        sound.describe(),
        host.process.log()
    );
    let output = sound.output.clone().unwrap();
    assert_eq!(output["partitions"], 3);
    assert_eq!(output["warnings"], 0);
    let report_key = output["report_key"].as_str().unwrap().to_owned();
    assert!(report_key.starts_with(&format!("{PREFIX}/{}/validations/", partition.backup_id)));
    let report = storage.read_json(&report_key).await;
    assert_eq!(
        (report["errors"].clone(), report["depth"].clone()),
        (json!(0), json!("deep"))
    );
    assert_eq!(
        report["records_read"], 300,
        "deep: every record of every partition decoded"
    );

    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let entries = index.segments(&partition).await.unwrap();
    let (flipped, deleted) = (&entries[0].key, &entries[1].key);
    damage(&storage, flipped, deleted).await;

    let failed = machine.run(&json!({"depth": "deep"}), limit).await;
    assert_eq!(
        failed.status,
        ExecutionStatus::Failed,
        "{}",
        failed.describe()
    );
    assert_eq!(failed.error.as_deref(), Some("Tidemark.ValidationFailed"));
    let cause = failed.cause.clone().unwrap();
    assert!(cause.starts_with("2 errors in backup"), "{cause}");
    assert!(
        cause.contains(&format!("{deleted} is indexed but not in S3")),
        "{cause}"
    );
    assert!(
        cause.contains(&format!("{flipped} does not read back")),
        "{cause}"
    );

    // A listing-only run sees the deletion and not the flip.
    let listing = machine.run(&json!({"depth": "listing"}), limit).await;
    assert_eq!(listing.status, ExecutionStatus::Failed);
    let cause = listing.cause.unwrap();
    assert!(
        cause.starts_with("1 error in backup") && cause.contains(deleted.as_str()),
        "{cause}"
    );

    // Bad input is refused by name before anything is read.
    let refused = machine
        .run(&json!({"topics": ["no.such.topic"]}), limit)
        .await;
    assert_eq!(
        refused.error.as_deref(),
        Some("Tidemark.InvalidRequest"),
        "{}",
        refused.describe()
    );
    assert!(refused.cause.unwrap().contains("no.such.topic"));

    // Each finished run is in the audit trail, the health record keeps the latest.
    let audit = storage.audit_records().await;
    let validations: Vec<(&str, Option<&str>)> = audit
        .iter()
        .filter(|record| record.operation == Operation::Validation)
        .map(|record| (record.outcome.name(), record.caller.identity.as_deref()))
        .collect();
    assert_eq!(
        validations,
        [
            ("succeeded", Some("arn:aws:iam::000000000000:user/alice")),
            ("failed", None),
            ("failed", None)
        ],
        "{audit:#?}"
    );
    assert!(
        audit.iter().all(|record| record
            .caller
            .execution
            .as_deref()
            .is_some_and(|arn| arn.contains(":execution:"))),
        "the execution is named where no identity was recorded"
    );
    let health = index.health(&partition.backup_id).await.unwrap();
    let validation = health.validation.unwrap();
    assert_eq!(
        validation.errors, 1,
        "the listing run was the last: {validation:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_on_real_stores_merges_sealed_segments_and_keeps_every_record() {
    let stack = Stack::from_env();
    let (storage, partition, layout) = backed_up(&stack).await;
    let aws = stack.sdk_config().await;
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    // The compactor seals new segments under a key of its own; readers need none.
    let kms_key = stack.create_kms_key().await;
    let keys = SegmentKeys::new(Arc::new(KmsKeyService::new(&aws)), Some(kms_key));
    let before = read_all(&objects, &index, &keys, &partition).await;
    assert_eq!(before.len(), 100);
    let entries_before = index.segments(&partition).await.unwrap();
    let segments_before = entries_before.len();
    assert!(segments_before >= 3);
    // When the writer made each part durable: what a consistent cut asks of the backup.
    let marks_before = tidemark_core::segment::WriteMark::normalize(
        entries_before
            .iter()
            .flat_map(SegmentEntry::marks)
            .collect(),
    );
    let reached_before = |at: i64| {
        entries_before
            .iter()
            .filter_map(|entry| entry.reached_at(at))
            .max()
    };

    let compactor = Compactor {
        objects: &objects,
        index: &index,
        keys: &keys,
        layout: &layout,
        settings: CompactionSettings {
            target_bytes: 1 << 20,
            grace_ms: 60_000,
            compression_level: 3,
        },
    };
    let report = compactor
        .compact_partition(&partition, &ObjectTags::new(), 1_000)
        .await
        .unwrap();
    assert_eq!(
        (report.segments_written, report.segments_replaced),
        (1, segments_before)
    );
    let merged = index.segments(&partition).await.unwrap();
    assert_eq!(merged.len(), 1);
    assert_eq!(
        read_all(&objects, &index, &keys, &partition).await,
        before,
        "the same records, each once"
    );
    // The merged segment keeps the write marks, in DynamoDB and in its header, where the
    // spec-derived Python reader finds them: a consistent cut is the same before and after.
    assert_eq!(merged[0].write_marks, marks_before);
    for mark in &marks_before {
        for at in [mark.written_at_ms - 1, mark.written_at_ms] {
            assert_eq!(merged[0].reached_at(at), reached_before(at), "cut at {at}");
        }
    }
    let headers = stack.read_segments(&storage.bucket, &merged[0].key);
    let python_marks: Vec<(i64, i64)> = headers[0]["header"]["write_marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pair[0].as_i64().unwrap(), pair[1].as_i64().unwrap()))
        .collect();
    assert_eq!(
        python_marks,
        marks_before
            .iter()
            .map(|mark| (mark.last_offset, mark.written_at_ms))
            .collect::<Vec<_>>()
    );
    let validate = |depth| validate_partition(&objects, &index, &keys, &layout, &partition, depth);
    assert_eq!(
        validate(Depth::Deep).await.unwrap().findings,
        vec![],
        "retired objects are expected"
    );

    let report = compactor
        .compact_partition(&partition, &ObjectTags::new(), 61_000)
        .await
        .unwrap();
    assert_eq!(report.objects_deleted, segments_before);
    let listed = objects
        .list(&layout.partition_prefix(&partition))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(validate(Depth::Deep).await.unwrap().findings, vec![]);
    assert_eq!(read_all(&objects, &index, &keys, &partition).await, before);
}

/// Every record the index leads to, each offset once (as a restore reads).
async fn read_all(
    objects: &S3ObjectStore,
    index: &DynamoIndexStore,
    keys: &SegmentKeys,
    partition: &PartitionId,
) -> Vec<tidemark_core::segment::Record> {
    let mut records = Vec::new();
    let mut next = 0;
    for entry in index.segments(partition).await.unwrap() {
        let stored = objects.get(&entry.key).await.unwrap().unwrap();
        let plain = keys.plain(&partition.backup_id, stored).await.unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn the_maintenance_machine_compacts_then_expires_by_tier_keeping_index_and_s3_agreed() {
    let stack = Stack::from_env();
    let (storage, partition, layout) = backed_up(&stack).await;
    let aws = stack.sdk_config().await;
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let keys = SegmentKeys::new(Arc::new(KmsKeyService::new(&aws)), None);
    let before = read_all(&objects, &index, &keys, &partition).await;
    let limit = Duration::from_secs(120);
    let backup_id = partition.backup_id.as_str();
    let clean = |depth| validate_partition(&objects, &index, &keys, &layout, &partition, depth);

    // Everything is young: nothing expires; the small segments are merged.
    let (host, machine) = stack
        .start_maintenance(
            &storage,
            PREFIX,
            backup_id,
            &[("TIDEMARK_COMPACTION_TARGET_MB", "1")],
            60,
        )
        .await;
    let run = machine
        .run(
            &json!({"requested_by": "schedule:tidemark-maintenance"}),
            limit,
        )
        .await;
    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        run.describe(),
        host.process.log()
    );
    let audit = storage.audit_records().await;
    assert!(
        audit
            .iter()
            .any(|record| record.operation == Operation::Maintenance
                && record.caller.identity.as_deref() == Some("schedule:tidemark-maintenance")
                && record.detail.contains("compacted")),
        "{audit:#?}"
    );
    let report = run.output.unwrap();
    assert_eq!(report["partitions"], 3);
    assert_eq!(report["segments_expired"], 0);
    assert!(
        report["segments_compacted"].as_u64().unwrap() >= 6,
        "{report}"
    );
    assert_eq!(index.segments(&partition).await.unwrap().len(), 1);
    assert_eq!(read_all(&objects, &index, &keys, &partition).await, before);
    assert_eq!(clean(Depth::Deep).await.unwrap().findings, vec![]);
    drop(host);

    // A tier of 0 days and no PITR window: everything written before now expires, from the
    // index and from S3 together; the replaced segments go too (grace 0).
    let (host, machine) = stack
        .start_maintenance(
            &storage,
            PREFIX,
            backup_id,
            &[
                ("TIDEMARK_RETENTION_STANDARD_DAYS", "0"),
                ("TIDEMARK_MIN_PITR_WINDOW_DAYS", "0"),
                ("TIDEMARK_COMPACTION_GRACE_HOURS", "0"),
            ],
            60,
        )
        .await;
    let run = machine.run(&json!({}), limit).await;
    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        run.describe(),
        host.process.log()
    );
    assert_eq!(
        run.output.unwrap()["segments_expired"],
        3,
        "one compacted segment per partition"
    );
    assert!(index.segments(&partition).await.unwrap().is_empty());
    assert!(
        objects
            .list(&layout.partition_prefix(&partition))
            .await
            .unwrap()
            .is_empty()
    );
    let checkpoint = index.checkpoint(&partition).await.unwrap().unwrap();
    assert_eq!(
        (checkpoint.start_offset, checkpoint.next_offset),
        (100, 100)
    );
    assert_eq!(clean(Depth::Deep).await.unwrap().findings, vec![]);
}
