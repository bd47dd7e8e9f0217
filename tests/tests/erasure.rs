//! Erasure end to end on real parts: a live backup (bridge, backup-writer), then
//! `statemachines/erasure.asl.json` in the emulator's Step Functions with the real eraser binary.
//! What it leaves is checked in S3 (every version, read by the independent reader of the format
//! spec), in the index, by deep validation, and by a restore with a consumer group.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use tidemark_core::index::IndexStore;
use tidemark_core::keys::{KmsKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::object_store::ObjectStore;
use tidemark_core::operations::Operation;
use tidemark_core::shredding::Shredding;
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore};
use tidemark_core::validation::{Depth, validate_partition};
use tidemark_tests::live_backup::{
    Backup, PREFIX, assert_succeeded, content, now_ms, per_partition,
};
use tidemark_tests::unique;

const ALICE: &str = "arn:aws:sts::000000000000:assumed-role/privacy/alice";
const ERASED: &str = "customer-3";

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Record `n` of the topic: partition n % 2, keyed by one of five customers, so the erased
/// customer's records are in every batch of both partitions.
fn payment(n: i64, timestamp: i64) -> Value {
    json!({
        "partition": n % 2,
        "timestamp": timestamp,
        "key": b64(&format!("customer-{}", n % 5)),
        "value": b64(&format!("{{\"n\":{n},\"customer\":{{\"id\":{}}}}}", n % 5)),
        "headers": [["trace", b64(&format!("t-{n}"))]],
    })
}

fn erasure_request(topic: &str, dry_run: bool) -> Value {
    json!({
        "topics": [topic],
        "matchers": [{"key": ERASED}],
        "dry_run": dry_run,
        "grace_seconds": 0,
        "requested_by": ALICE,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_key_is_gone_from_every_segment_and_version_and_the_rest_restores_exactly() {
    let group = unique("payment-processor");
    let mut backup = Backup::start("payments.erased", 2).await;
    // As deployed: a replaced object's earlier versions stay readable unless erasure deletes
    // every one.
    backup.storage.enable_versioning().await;
    let start = now_ms() - 60_000;
    for batch in 0..3 {
        let records = (batch * 100..(batch + 1) * 100)
            .map(|n| payment(n, start + n * 10))
            .collect();
        backup.produce_and_back_up(records);
    }
    // Partition 0's offset 4 is record 8, the erased customer's: the group must resume on the
    // next record that remains. Partition 1's 75 is kept; 15 erased records lie below it.
    backup.commit(&group, &[(0, 4), (1, 75)]);
    backup.snapshot(&group).await;
    let backed_up = backup.backed_up_records();
    assert_eq!(backed_up.len(), 300);

    let aws = backup.stack.sdk_config().await;
    let storage = &backup.storage;
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let keys = SegmentKeys::new(std::sync::Arc::new(KmsKeyService::new(&aws)), None);
    let layout = StorageLayout::new(PREFIX).unwrap();
    let backup_id = BackupId::parse(&backup.backup_id).unwrap();
    let partitions: Vec<PartitionId> = (0..2)
        .map(|p| PartitionId::new(backup_id.clone(), &backup.topic, p))
        .collect();
    let segments_before = index.segments(&partitions[0]).await.unwrap();
    assert!(segments_before.len() >= 3, "{segments_before:?}");

    let (host, machine) = backup
        .stack
        .start_erasure(storage, PREFIX, &backup.backup_id, &[], 60)
        .await;
    let limit = Duration::from_secs(180);

    // A dry run reports what would go and changes nothing.
    let dry = machine
        .run(&erasure_request(&backup.topic, true), limit)
        .await;
    assert_eq!(
        dry.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        dry.describe(),
        host.process.log()
    );
    let planned = dry.output.unwrap();
    assert_eq!(planned["dry_run"], true);
    assert_eq!(planned["records_erased"], 60, "{planned:#}");
    assert_eq!(
        index.segments(&partitions[0]).await.unwrap(),
        segments_before
    );

    // A request the eraser cannot take is refused naming what is wrong.
    let bad = machine
        .run(
            &json!({"topics": [backup.topic], "matchers": [{"key": ""}]}),
            limit,
        )
        .await;
    assert_eq!(bad.status, ExecutionStatus::Failed);
    assert_eq!(bad.error.as_deref(), Some("Tidemark.InvalidRequest"));
    assert!(bad.cause.unwrap_or_default().contains("matchers[0]"));

    let run = machine
        .run(&erasure_request(&backup.topic, false), limit)
        .await;
    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        run.describe(),
        host.process.log()
    );
    let report = run.output.unwrap();
    assert_eq!(report["records_erased"], 60, "{report:#}");
    assert_eq!(report["remaining"], json!([]));
    let rewritten = report["segments_rewritten"].as_u64().unwrap();
    assert!(
        rewritten >= 6,
        "every batch of both partitions held the key: {report:#}"
    );
    assert_eq!(report["objects_deleted"].as_u64().unwrap(), rewritten);
    let stored_report = storage
        .read_json(&format!(
            "{PREFIX}/{}/erasures/{}/report.json",
            backup.backup_id,
            report["erasure_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stored_report, report);

    // Stored segments, read by the spec's independent reader (which checks every key filter
    // too): the customer is nowhere, everyone else is there once.
    let stored = backup.stack.read_segments(
        &storage.bucket,
        &layout.topic_prefix(&backup_id, &backup.topic),
    );
    let stored_records: Vec<&Value> = stored
        .iter()
        .flat_map(|segment| segment["records"].as_array().unwrap())
        .collect();
    assert!(
        stored_records
            .iter()
            .all(|record| record["key"] != b64(ERASED))
    );
    assert_eq!(stored_records.len(), 240);
    // No version of any other object is left under the partitions: only what the index names.
    for partition in &partitions {
        let indexed: BTreeSet<String> = index
            .segments(partition)
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.key)
            .collect();
        let versions: BTreeSet<String> = objects
            .list_version_keys(&layout.partition_prefix(partition))
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(versions, indexed, "{partition}");
        let check = validate_partition(&objects, &index, &keys, &layout, partition, Depth::Deep)
            .await
            .unwrap();
        assert_eq!(check.findings, vec![], "{partition}: {check:#?}");
        assert_eq!(check.gaps.iter().map(|(s, e)| e - s + 1).sum::<i64>(), 30);
    }

    // A restore holds every other record exactly, and the group resumes past the erased ones.
    let (functions, restore) = backup.restore_machine(&[], 60).await;
    let target = format!("{}.restored", backup.topic);
    let execution = restore
        .run(
            &backup.request(&target, json!({"mode": "time", "at": now_ms()}), &[&group]),
            limit,
        )
        .await;
    assert_succeeded(&execution, &functions);
    let kept: Vec<Value> = backed_up
        .iter()
        .filter(|record| record["key"] != b64(ERASED))
        .cloned()
        .collect();
    let restored = per_partition(&backup.consume(&target));
    for (partition, records) in per_partition(&kept) {
        assert_eq!(
            restored[&partition].iter().map(content).collect::<Vec<_>>(),
            records.iter().map(content).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
    assert_eq!(
        backup.group_offsets(&target, &group),
        [("0".to_owned(), 4), ("1".to_owned(), 60)].into()
    );

    let audit = storage.audit_records().await;
    let erasure = audit
        .iter()
        .find(|record| {
            record.operation == Operation::Erasure && record.detail.contains("60 records")
        })
        .unwrap_or_else(|| panic!("{audit:#?}"));
    assert_eq!(erasure.caller.identity.as_deref(), Some(ALICE));
    assert!(
        !serde_json::to_string(&erasure).unwrap().contains(ERASED),
        "the audit trail must not keep what was erased"
    );
    assert!(
        !host.process.log().contains(ERASED),
        "the eraser's logs name the key"
    );
}

const COMMIT_LEASE: (&str, &str) = ("TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS", "3");

/// Crypto-shredding on real parts: the real writer shreds the backup into a bucket whose every
/// segment Object Lock holds; the erasure state machine retires the key's data key, waits, removes
/// the key's records from the index, keeps the locked objects and destroys the key. What the locked
/// objects hold of the key can no longer be opened, and a restore holds everything else exactly.
#[tokio::test(flavor = "multi_thread")]
async fn a_shredded_backup_under_object_lock_is_erased_by_destroying_its_key() {
    let kms_key = tidemark_tests::Stack::from_env().create_kms_key().await;
    let writer_env = [
        ("TIDEMARK_SHREDDING_KMS_KEY_ID", kms_key.as_str()),
        COMMIT_LEASE,
    ];
    let mut backup = Backup::start_with("payments.shredded", 2, &writer_env).await;
    backup.storage.enable_object_lock().await;
    let start = now_ms() - 60_000;
    let mut produced = Vec::new();
    for batch in 0..3 {
        let records = (batch * 100..(batch + 1) * 100)
            .map(|n| payment(n, start + n * 10))
            .collect();
        produced.extend(backup.produce_and_back_up(records));
    }

    let storage = &backup.storage;
    let backup_id = BackupId::parse(&backup.backup_id).unwrap();
    let layout = StorageLayout::new(PREFIX).unwrap();
    let topic_prefix = layout.topic_prefix(&backup_id, &backup.topic);
    // The spec's independent reader: key ids and ciphertext, no customer anywhere.
    let stored = backup.stack.read_segments(&storage.bucket, &topic_prefix);
    assert!(!stored.is_empty());
    for segment in &stored {
        assert_eq!(segment["header"]["shredded"], true, "{}", segment["key"]);
        for record in segment["records"].as_array().unwrap() {
            use base64::Engine;
            let decode = |field: &Value| {
                base64::engine::general_purpose::STANDARD
                    .decode(field.as_str().unwrap_or_default())
                    .unwrap()
            };
            assert_eq!(decode(&record["key"]).len(), 16, "a key id: {record}");
            let value = decode(&record["value"]);
            assert!(
                !value.windows(8).any(|window| window == b"customer"),
                "a clear value is stored: {record}"
            );
        }
    }
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let locked_keys = objects.list(&topic_prefix).await.unwrap();
    for key in &locked_keys {
        storage.lock_object(key).await;
    }

    let (host, machine) = backup
        .stack
        .start_erasure(storage, PREFIX, &backup.backup_id, &[COMMIT_LEASE], 60)
        .await;
    let limit = Duration::from_secs(180);
    // Headers and values are sealed: only a key can be erased.
    let by_header = machine
        .run(
            &json!({"topics": [backup.topic], "dry_run": false,
                    "matchers": [{"header": "trace", "value": "t-3"}]}),
            limit,
        )
        .await;
    assert_eq!(by_header.status, ExecutionStatus::Failed);
    assert_eq!(by_header.error.as_deref(), Some("Tidemark.InvalidRequest"));
    assert!(by_header.cause.unwrap_or_default().contains("shredded"));

    let run = machine
        .run(&erasure_request(&backup.topic, false), limit)
        .await;
    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        run.describe(),
        host.process.log()
    );
    for state in ["Prepare", "Settle", "Destroy"] {
        assert!(
            run.entered_states().iter().any(|s| s == state),
            "{:?}",
            run.entered_states()
        );
    }
    let report = run.output.unwrap();
    assert_eq!(report["records_erased"], 60, "{report:#}");
    assert_eq!(report["remaining"], json!([]), "{report:#}");
    assert_eq!(report["data_keys_destroyed"], 1, "{report:#}");
    let kept: Vec<String> = serde_json::from_value(report["objects_kept_locked"].clone()).unwrap();
    assert!(
        kept.len() >= 6,
        "every batch of both partitions held the key: {report:#}"
    );

    // The locked objects are all still stored, and what they hold of the key is unreadable.
    assert_eq!(
        objects
            .list(&topic_prefix)
            .await
            .unwrap()
            .into_iter()
            .filter(|key| locked_keys.contains(key))
            .count(),
        locked_keys.len()
    );
    let aws = backup.stack.sdk_config().await;
    let kms = std::sync::Arc::new(KmsKeyService::new(&aws));
    let index = std::sync::Arc::new(DynamoIndexStore::new(
        storage.dynamodb.clone(),
        &storage.table,
    ));
    let shredding = Shredding::new(index.clone(), kms.clone(), None);
    let keys = SegmentKeys::new(kms, None).with_shredding(std::sync::Arc::new(shredding));
    for key in &kept {
        let stored = objects.get(key).await.unwrap().unwrap();
        let error = keys
            .clear(&backup_id, stored)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("no longer exists"), "{key}: {error}");
    }
    // Deep validation passes on what the index names.
    for partition in 0..2 {
        let partition = PartitionId::new(backup_id.clone(), &backup.topic, partition);
        let check = validate_partition(
            &objects,
            index.as_ref(),
            &keys,
            &layout,
            &partition,
            Depth::Deep,
        )
        .await
        .unwrap();
        assert_eq!(check.findings, vec![], "{partition}: {check:#?}");
    }

    // A restore holds every other record exactly.
    let (target, _functions) = backup.restore_all_to_now(&[], 60).await;
    let restored = per_partition(&backup.consume(&target));
    let wanted: Vec<Value> = produced
        .iter()
        .filter(|record| record["key"] != b64(ERASED))
        .cloned()
        .collect();
    for (partition, records) in per_partition(&wanted) {
        assert_eq!(
            restored[&partition].iter().map(content).collect::<Vec<_>>(),
            records.iter().map(content).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
    assert!(
        !host.process.log().contains(ERASED),
        "the eraser's logs name the key"
    );
}
