//! Kafka as real clusters run it, end to end on real parts: a compacted topic whose log has
//! holes and tombstones, backed up by the real backup-writer through the event-source bridge,
//! restored by the restore state machine into a compacted target, and read back with the
//! independent client. The broker compacts as Kafka's log cleaner does (the last record of
//! each key stays, tombstones included).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tidemark_core::index::IndexStore;
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::stores::DynamoIndexStore;
use tidemark_tests::live_backup::{Backup, assert_succeeded, content, now_ms, per_partition};
use tidemark_tests::{Stack, unique, wait_until};

const PARTITIONS: u32 = 2;

fn b64(text: &str) -> String {
    BASE64.encode(text)
}

/// The `n`th change of an account balance, keyed by account: every third change opens an
/// account of its own, which compaction keeps; the others change one of four shared accounts,
/// of which compaction keeps only the last change, leaving holes all along the log. Changes
/// 22, 39 and 57 close their account (a tombstone); 22's account changes again later.
fn balance_change(partition: i64, n: i64) -> Value {
    let account = if n % 3 == 0 {
        format!("account-{partition}-own-{n}")
    } else {
        format!("account-{partition}-shared-{}", n % 4)
    };
    let value = (![22, 39, 57].contains(&n)).then(|| b64(&format!("balance after change {n}")));
    json!({
        "partition": partition,
        "key": b64(&account),
        "value": value,
        "headers": [["change", b64(&n.to_string())]],
    })
}

fn changes(numbers: std::ops::Range<i64>) -> Vec<Value> {
    (0..PARTITIONS as i64)
        .flat_map(|partition| numbers.clone().map(move |n| balance_change(partition, n)))
        .collect()
}

/// What compaction keeps of `records`: the last record of each key, in offset order.
fn last_per_key(records: &[Value]) -> Vec<Value> {
    let mut last: BTreeMap<(i64, String), Value> = BTreeMap::new();
    for record in records {
        let key = record["key"]
            .as_str()
            .expect("every record has a key")
            .to_owned();
        let slot = (record["partition"].as_i64().unwrap(), key);
        let newer = last
            .get(&slot)
            .is_none_or(|kept| kept["offset"].as_i64() < record["offset"].as_i64());
        if newer {
            last.insert(slot, record.clone());
        }
    }
    let mut kept: Vec<Value> = last.into_values().collect();
    kept.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    kept
}

fn place(record: &Value) -> (i64, i64) {
    (
        record["partition"].as_i64().unwrap(),
        record["offset"].as_i64().unwrap(),
    )
}

/// Key, value and headers: what a record carries, whichever reader read it.
fn carried(record: &Value) -> Value {
    json!([record["key"], record["value"], record["headers"]])
}

fn consume(stack: &Stack, topic: &str) -> Vec<Value> {
    let mut records = stack.consume_on(&stack.kafka_bootstrap, topic);
    records.sort_by_key(place);
    records
}

/// Waits until the broker has compacted `topic` down to `expected` (by partition and offset).
fn wait_for_compaction(stack: &Stack, topic: &str, expected: &[Value]) {
    let expected: Vec<(i64, i64)> = expected.iter().map(place).collect();
    let held = || consume(stack, topic).iter().map(place).collect::<Vec<_>>();
    wait_until(
        Duration::from_secs(60),
        || held() == expected,
        || format!("{topic} holds {:?}, expected {expected:?}", held()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_topic_backs_up_with_its_holes_and_tombstones_and_restores_compacted() {
    let (_broker, stack) = Stack::from_env().start_compacting_broker().await;
    let topic = unique("accounts.compacted");
    stack.create_topic(&topic, PARTITIONS, &["cleanup.policy=compact"]);

    // Forty changes per partition, compacted before the backup starts: its log has holes.
    let before = stack.produce(&topic, &Value::Array(changes(0..40)));
    let compacted = last_per_key(&before);
    wait_for_compaction(&stack, &topic, &compacted);

    // Batches of three records, so that batch edges fall on holes and gaps are recorded.
    let mut backup = Backup::start_on(
        stack.clone(),
        topic.clone(),
        PARTITIONS,
        &[],
        &["--batch-size", "3"],
    )
    .await;
    backup.wait_until_backed_up(&before);
    let backed_up = backup.backed_up_records();
    assert_eq!(
        backed_up.iter().map(place).collect::<Vec<_>>(),
        compacted.iter().map(place).collect::<Vec<_>>(),
        "the backup holds exactly what the compacted log held"
    );
    for (record, source) in backed_up.iter().zip(&compacted) {
        assert_eq!(carried(record), carried(source), "at {:?}", place(source));
    }
    let tombstones: Vec<(i64, i64)> = backed_up
        .iter()
        .filter(|r| r["value"].is_null())
        .map(place)
        .collect();
    assert_eq!(
        tombstones,
        vec![(0, 39), (1, 39)],
        "the tombstone still in the log is backed up as a record"
    );

    // The holes between batches are recorded as gaps, and only holes: no gap hides a record.
    let index = DynamoIndexStore::new(backup.storage.dynamodb.clone(), &backup.storage.table);
    for partition in 0..PARTITIONS as i64 {
        let id = PartitionId::new(
            BackupId::parse(&backup.backup_id).unwrap(),
            topic.clone(),
            partition as i32,
        );
        let gaps = index.gaps(&id).await.unwrap();
        assert!(!gaps.is_empty(), "partition {partition}: no gap recorded");
        for gap in &gaps {
            assert!(
                !compacted
                    .iter()
                    .any(|r| place(r).0 == partition && (gap.start..=gap.end).contains(&place(r).1)),
                "partition {partition}: gap {gap:?} covers a record"
            );
        }
    }

    // The group had consumed up to offset 22, which compaction removed (a tombstone that a
    // later change superseded): it must resume on the next record that is restored.
    let group = unique("balance-projector");
    backup.commit(&group, &[(0, 22), (1, 22)]);

    // More changes while the backup runs: they reopen the closed accounts and close another.
    let after = stack.produce(&topic, &Value::Array(changes(40..60)));
    backup.wait_until_backed_up(&after);
    backup.snapshot(&group).await;

    let (functions, machine) = backup.restore_machine(&[], 60).await;
    let target = format!("{topic}.restored");
    let execution = machine
        .run(
            &backup.request(&target, json!({"mode": "time", "at": now_ms()}), &[&group]),
            Duration::from_secs(180),
        )
        .await;
    assert_succeeded(&execution, &functions);

    let configs = stack.python(&[
        "describe-topic-configs",
        "--bootstrap",
        &stack.kafka_bootstrap,
        "--topic",
        &target,
    ]);
    assert_eq!(configs["cleanup.policy"], "compact", "{configs}");

    // The target is compacted in turn: per key, the last value of the source, tombstones
    // included, in the source's order.
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    let expected: Vec<Value> = last_per_key(&all);
    wait_until(
        Duration::from_secs(60),
        || consume(&stack, &target).len() == expected.len(),
        || format!("{target} never compacted to {} records", expected.len()),
    );
    let restored = consume(&stack, &target);
    let restored_by_partition = per_partition(&restored);
    for (partition, expected) in per_partition(&expected) {
        let got: Vec<Value> = restored_by_partition[&partition]
            .iter()
            .map(content)
            .collect();
        let want: Vec<Value> = expected.iter().map(content).collect();
        assert_eq!(
            got, want,
            "partition {partition}: the last record of each key"
        );
    }

    // Restored records are renumbered from 0 in backup order; offset 22 translates to the
    // first backed-up record after it.
    let backed_up = backup.backed_up_records();
    let translated: BTreeMap<String, i64> = per_partition(&backed_up)
        .iter()
        .map(|(partition, records)| {
            let next = records
                .iter()
                .position(|r| r["offset"].as_i64().unwrap() >= 22)
                .unwrap();
            (partition.to_string(), next as i64)
        })
        .collect();
    assert_eq!(backup.group_offsets(&target, &group), translated);
}

/// Records `numbers` of each partition, their values naming the topic's `life`.
fn lives_records(life: &str, numbers: std::ops::Range<i64>) -> Value {
    Value::Array(
        (0..PARTITIONS as i64)
            .flat_map(|partition| {
                numbers.clone().map(move |n| {
                    json!({
                        "partition": partition,
                        "key": b64(&format!("key-{n}")),
                        "value": b64(&format!("{life} topic, record {n}")),
                        "headers": [["life", b64(life)]],
                    })
                })
            })
            .collect(),
    )
}

/// Makes the index look as the layout before generations wrote it: its items carried no
/// `generation` attribute (S3 keys and index keys of generation 0 are the same).
async fn as_written_before_generations(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    let items = dynamodb.scan().table_name(table).send().await.unwrap();
    let mut stripped = 0;
    for item in items.items() {
        if !item.contains_key("generation") {
            continue;
        }
        dynamodb
            .update_item()
            .table_name(table)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .update_expression("REMOVE generation")
            .send()
            .await
            .unwrap();
        stripped += 1;
    }
    assert!(stripped > 0, "the index has items to migrate");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_is_backed_up_as_a_new_generation_and_each_cut_restores_its_own() {
    let stack = Stack::from_env();
    let topic = unique("payments.recreated");
    stack.create_topic(&topic, PARTITIONS, &[]);
    // A backup as the previous layout wrote it: a writer with no cluster to ask for topic ids
    // records no generation, and its index items carried no generation attribute.
    let mut backup = Backup::start_on(stack.clone(), topic.clone(), PARTITIONS, &[], &[]).await;
    let mut first_life =
        backup.produce_and_back_up(lives_records("first", 0..6).as_array().unwrap().clone());
    as_written_before_generations(&backup.storage.dynamodb, &backup.storage.table).await;

    // The upgraded writer asks the cluster for topic ids, so a new topic is known at its first
    // batch. The live topic is the one backed up so far: it continues generation 0.
    let writer_env = [
        (
            "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
            stack.kafka_bootstrap.as_str(),
        ),
        ("TIDEMARK_KAFKA_AUTH", "plaintext"),
    ];
    backup.restart_writer(&writer_env, &[]);
    let more = stack.produce(&topic, &lives_records("first", 6..10));
    backup.wait_until_backed_up(&more);
    first_life.extend(more);
    let before_deletion = now_ms();

    // Deleted and created again under the same name, with fewer records: offsets 0..3 again.
    stack.python(&[
        "delete-topic",
        "--bootstrap",
        &stack.kafka_bootstrap,
        "--topic",
        &topic,
    ]);
    stack.create_topic(&topic, PARTITIONS, &[]);
    let second_life = stack.produce(&topic, &lives_records("second", 0..3));
    backup.restart_bridge(&[]);
    stack.wait_for_checkpoints(
        &backup.storage.table,
        &backup.backup_id,
        (0..PARTITIONS as i64).map(|partition| (format!("{topic}#g1"), partition, 3)),
        120,
    );

    // The backup continued on the new topic in generation 1; generation 0 is as it was.
    let index = DynamoIndexStore::new(backup.storage.dynamodb.clone(), &backup.storage.table);
    let backup_id = BackupId::parse(&backup.backup_id).unwrap();
    for partition in 0..PARTITIONS as i32 {
        let old = PartitionId::new(backup_id.clone(), topic.clone(), partition);
        let checkpoint = index.checkpoint(&old).await.unwrap().unwrap();
        assert_eq!(
            checkpoint.next_offset, 10,
            "generation 0 was left as it was"
        );
        assert!(index.gaps(&old).await.unwrap().is_empty());
    }
    let backed_up = backup.backed_up_records();
    assert_eq!(backed_up.len(), first_life.len() + second_life.len());
    let catalog =
        tidemark_core::snapshot::SnapshotCatalog::topic_generations(&index, &backup_id, &topic)
            .await
            .unwrap();
    assert_eq!(
        catalog.iter().map(|g| g.generation).collect::<Vec<_>>(),
        vec![0, 1],
        "the upgraded writer claimed the live id for generation 0: {catalog:?}"
    );
    assert!(catalog.iter().all(|g| g.topic_id.is_some()), "{catalog:?}");
    assert!(catalog[1].detected_at_ms > before_deletion, "{catalog:?}");

    // The CLI describes each generation's partitions apart.
    let described = std::process::Command::new(stack.binary("tidemark"))
        .args(["-o", "json", "backups", "describe", &backup.backup_id])
        .env("TIDEMARK_BUCKET", &backup.storage.bucket)
        .env("TIDEMARK_TABLE", &backup.storage.table)
        .env("TIDEMARK_PREFIX", tidemark_tests::live_backup::PREFIX)
        .env("TIDEMARK_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_ENDPOINT_URL", &stack.aws_endpoint)
        .output()
        .unwrap();
    assert!(described.status.success(), "{described:?}");
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    let partitions: Vec<(u64, u64, i64)> = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["generation"].as_u64().unwrap(),
                p["partition"].as_u64().unwrap(),
                p["next_offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        partitions,
        vec![(0, 0, 10), (0, 1, 10), (1, 0, 3), (1, 1, 3)],
        "{described}"
    );

    // A cut before the deletion restores the first topic; a cut now, the second; each exactly.
    let (functions, machine) = backup.restore_machine(&[], 60).await;
    for (cut, life, produced) in [
        (before_deletion, "first", &first_life),
        (now_ms(), "second", &second_life),
    ] {
        let target = format!("{topic}.{life}");
        let execution = machine
            .run(
                &backup.request(&target, json!({"mode": "time", "at": cut}), &[]),
                Duration::from_secs(180),
            )
            .await;
        assert_succeeded(&execution, &functions);
        let restored = per_partition(&consume(&stack, &target));
        for (partition, expected) in per_partition(produced) {
            let got: Vec<Value> = restored[&partition].iter().map(content).collect();
            let want: Vec<Value> = expected.iter().map(content).collect();
            assert_eq!(got, want, "{life} topic, partition {partition}");
        }
    }
}
