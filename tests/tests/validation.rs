//! Validation and index rebuild on real parts: a backup made by the real backup-writer binary
//! (fed by the bridge, segments sealed with a KMS data key) in the emulated S3 and DynamoDB,
//! then damaged through the S3 API as bit rot or an operator would.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tidemark_core::index::{IndexStore, SegmentEntry};
use tidemark_core::keys::{KmsKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore};
use tidemark_core::validation::{
    Depth, Finding, backed_up_partitions, rebuild_partition, validate_partition,
};
use tidemark_tests::{Stack, unique};

const WRITER: &str = "arn:aws:lambda:us-east-1:000000000000:function:backup-writer";
const PREFIX: &str = "it";

/// Backs up 300 records over 3 partitions in segments of at most 40 records.
async fn backed_up(stack: &Stack) -> (tidemark_tests::Storage, PartitionId, StorageLayout) {
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
    let partition = PartitionId {
        backup_id: BackupId::parse(&backup_id).unwrap(),
        topic,
        partition: 1,
    };
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
    assert_eq!(topics, vec![(partition.topic.clone(), vec![0, 1, 2])]);
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
    let object = storage
        .s3
        .get_object()
        .bucket(&storage.bucket)
        .key(flipped)
        .send()
        .await
        .unwrap();
    let mut bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    storage
        .s3
        .put_object()
        .bucket(&storage.bucket)
        .key(flipped)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    storage
        .s3
        .delete_object()
        .bucket(&storage.bucket)
        .key(deleted)
        .send()
        .await
        .unwrap();

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
