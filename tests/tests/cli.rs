//! The `tidemark` binary against the emulated S3 and DynamoDB, compared with golden output in
//! `tests/fixtures/cli/` (regenerate with `TIDEMARK_UPDATE_GOLDEN=1` and review the diff).
//!
//! The backup is written through Tidemark's own stores with fixed records and times, so every
//! byte of the output is reproducible.

use std::path::PathBuf;
use std::process::Command;

use tidemark_core::index::{IndexStore, SegmentEntry, record_segment};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::object_store::{ObjectStore, segment_metadata};
use tidemark_core::segment::{Header, Record, SegmentEncoder, TimestampType};
use tidemark_core::snapshot::{SnapshotCatalog, SnapshotEntry};
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore};
use tidemark_tests::{Stack, Storage};

const PREFIX: &str = "tidemark";
const BACKUP: &str = "payments-golden";
/// 2026-11-22T14:29:00Z
const T0: i64 = 1_795_357_740_000;

fn record(offset: i64) -> Record {
    Record {
        offset,
        timestamp: T0 + offset * 1_000,
        timestamp_type: TimestampType::CreateTime,
        key: (offset % 5 != 4).then(|| format!("order-{offset}").into_bytes()),
        value: Some(format!("{{\"amount\":{}}}", offset * 125).into_bytes()),
        headers: vec![Header {
            key: "trace".into(),
            value: Some(format!("t-{offset}").into_bytes()),
        }],
    }
}

/// Two partitions: partition 0 in segments 0..=9 and 10..=19; partition 1 in 0..=4 and
/// 10..=14, with 5..=9 a recorded gap. One snapshot at T0 + 30 s.
async fn golden_backup(stack: &Stack) -> (Storage, Vec<String>) {
    let storage = stack.create_storage().await;
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let layout = StorageLayout::new(PREFIX).unwrap();
    let backup_id = BackupId::parse(BACKUP).unwrap();
    let mut keys = Vec::new();
    for (partition, ranges) in [(0, [(0, 9), (10, 19)]), (1, [(0, 4), (10, 14)])] {
        let id = PartitionId::new(backup_id.clone(), "payments.captured", partition);
        for (first, last) in ranges {
            let mut encoder = SegmentEncoder::new(&id.topic, partition, 3).unwrap();
            for offset in first..=last {
                encoder.push(&record(offset)).unwrap();
            }
            let segment = encoder.finish().unwrap();
            let key = layout.segment_key(&id, first, last);
            objects
                .put_tagged_if_absent(
                    &key,
                    segment.bytes.clone(),
                    &segment_metadata(&segment.header),
                    &Default::default(),
                )
                .await
                .unwrap();
            let entry =
                SegmentEntry::new(key.clone(), &segment.header, segment.bytes.len() as u64, T0);
            let observed = index.checkpoint(&id).await.unwrap();
            record_segment(
                &index,
                &id,
                &entry,
                segment.header.max_timestamp,
                observed,
                T0,
            )
            .await
            .unwrap();
            keys.push(key);
        }
    }
    index
        .record_snapshot(
            &backup_id,
            &SnapshotEntry {
                taken_at_ms: T0 + 30_000,
                key: format!("{PREFIX}/{BACKUP}/snapshots/{:020}.json.zst", T0 + 30_000),
                group_count: 1,
                topic_count: 1,
                stored_bytes: 100,
            },
        )
        .await
        .unwrap();
    (storage, keys)
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn tidemark(stack: &Stack, storage: &Storage, args: &[&str]) -> Run {
    let output = Command::new(stack.binary("tidemark"))
        .args(args)
        .env("TIDEMARK_BUCKET", &storage.bucket)
        .env("TIDEMARK_TABLE", &storage.table)
        .env("TIDEMARK_PREFIX", PREFIX)
        .env("TIDEMARK_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_ENDPOINT_URL", &stack.aws_endpoint)
        .output()
        .expect("running tidemark");
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fixtures", "cli", name]
        .iter()
        .collect();
    if std::env::var("TIDEMARK_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (TIDEMARK_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_describes_validates_and_reads_a_backup_as_the_golden_files_say() {
    let stack = Stack::from_env();
    let (storage, keys) = golden_backup(&stack).await;

    let list = tidemark(&stack, &storage, &["backups", "list"]);
    assert_eq!(
        (list.status, list.stdout.as_str()),
        (0, "payments-golden\n")
    );

    for (format, file) in [
        ("text", "describe.txt"),
        ("json", "describe.json"),
        ("yaml", "describe.yaml"),
    ] {
        let run = tidemark(
            &stack,
            &storage,
            &["-o", format, "backups", "describe", BACKUP],
        );
        assert_eq!(run.status, 0, "{}", run.stderr);
        golden(file, &run.stdout);
    }

    let sound = tidemark(&stack, &storage, &["validate", BACKUP, "--deep"]);
    assert_eq!(sound.status, 0, "{}", sound.stderr);
    golden("validate-sound.txt", &sound.stdout);

    let cat = tidemark(&stack, &storage, &["segment", "cat", &keys[2]]);
    assert_eq!(cat.status, 0, "{}", cat.stderr);
    golden("segment-cat.jsonl", &cat.stdout);

    // The index lost: rebuilt from S3 into an empty table, it describes the same partitions.
    let fresh = stack.create_storage().await;
    let rebuilt_storage = Storage {
        bucket: storage.bucket.clone(),
        table: fresh.table.clone(),
        s3: storage.s3.clone(),
        dynamodb: storage.dynamodb.clone(),
    };
    let rebuild = tidemark(&stack, &rebuilt_storage, &["index", "rebuild", BACKUP]);
    assert_eq!(rebuild.status, 0, "{}", rebuild.stderr);
    golden("index-rebuild.txt", &rebuild.stdout);
    // The rebuild is in the audit trail, with who ran it (STS's answer for the credentials).
    let audit = tidemark(
        &stack,
        &rebuilt_storage,
        &["-o", "json", "audit", "list", "--kind", "index-rebuild"],
    );
    assert_eq!(audit.status, 0, "{}", audit.stderr);
    let audit: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit:#}");
    assert_eq!(records[0]["operation"], "index-rebuild");
    assert_eq!(records[0]["backup_id"], BACKUP);
    assert!(
        records[0]["caller"]["identity"]
            .as_str()
            .is_some_and(|identity| identity.starts_with("arn:aws:")),
        "{audit:#}"
    );
    let other_kind = tidemark(
        &stack,
        &rebuilt_storage,
        &["-o", "json", "audit", "list", "--kind", "restore"],
    );
    assert_eq!(other_kind.stdout.trim(), "{\n  \"records\": []\n}");
    let original = tidemark(&stack, &storage, &["backups", "describe", BACKUP]);
    let from_s3 = tidemark(&stack, &rebuilt_storage, &["backups", "describe", BACKUP]);
    let partition_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("  "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        partition_lines(&from_s3.stdout),
        partition_lines(&original.stdout)
    );

    // A lost segment: validation exits 1 and names it.
    storage
        .s3
        .delete_object()
        .bucket(&storage.bucket)
        .key(&keys[1])
        .send()
        .await
        .unwrap();
    let damaged = tidemark(&stack, &storage, &["validate", BACKUP]);
    assert_eq!(damaged.status, 1, "{}", damaged.stderr);
    golden("validate-missing.txt", &damaged.stdout);
    let json = tidemark(&stack, &storage, &["-o", "json", "validate", BACKUP]);
    assert_eq!(json.status, 1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["errors"], 1);
    assert_eq!(report["findings"][0]["kind"], "missing-segment");
    assert_eq!(report["findings"][0]["key"], keys[1].as_str());

    // Bad input: exit 2, the reason on stderr, nothing on stdout.
    for args in [
        &["backups", "describe", "no-such-backup"][..],
        &["validate", BACKUP, "--topic", "refunds"][..],
        &["segment", "cat", "not/a/segment"][..],
        &["backups", "describe", "bad id"][..],
        &["audit", "list", "--kind", "erase-everything"][..],
        &["audit", "list", "--since", "yesterday"][..],
    ] {
        let run = tidemark(&stack, &storage, args);
        assert_eq!(run.status, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(
            run.stderr.starts_with("tidemark: "),
            "{args:?}: {}",
            run.stderr
        );
    }
    let nowhere = Command::new(stack.binary("tidemark"))
        .args(["--bucket", "b", "--table", "t", "backups", "list"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("TIDEMARK_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(
        nowhere.status.code(),
        Some(3),
        "an unreachable endpoint cannot complete"
    );
}
