//! Recovery drills end to end on real parts: a live backup (bridge, backup-writer, snapshotter),
//! then `statemachines/drill.asl.json` in the emulator's Step Functions, running the restore
//! state machine as its child and the real drill binary for its own steps. What the drill
//! leaves is checked in the cluster, in S3 and in the index table.

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use tidemark_core::layout::BackupId;
use tidemark_core::operations::{Operation, OperationsBook};
use tidemark_core::stores::DynamoIndexStore;
use tidemark_tests::live_backup::{Backup, PREFIX, now_ms};
use tidemark_tests::stepfunctions::{Execution, Machines};
use tidemark_tests::unique;

const ALICE: &str = "arn:aws:sts::000000000000:assumed-role/sre/alice";

fn payment(partition: i64, n: i64, timestamp: i64) -> Value {
    use base64::Engine;
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    json!({
        "partition": partition,
        "timestamp": timestamp,
        "key": b64(format!("order-{partition}-{n}")),
        "value": b64(format!("{{\"n\":{n},\"amount\":{}}}", n * 7 % 1000)),
        "headers": [["trace", b64(format!("t-{n}"))], ["trace", b64("again".into())]],
    })
}

/// A backup of 2 partitions, 3 batches each (several segments), with a group's commits in a
/// snapshot.
async fn backed_up(topic: &str, group: &str) -> Backup {
    let mut backup = Backup::start(topic, 2).await;
    let start = now_ms() - 60_000;
    for batch in 0..3 {
        let records = (batch * 100..(batch + 1) * 100)
            .map(|n| payment(n % 2, n, start + n * 10))
            .collect();
        backup.produce_and_back_up(records);
    }
    backup.commit(group, &[(0, 60), (1, 75)]);
    backup.snapshot(group).await;
    backup
}

fn drill_request(backup: &Backup, group: &str) -> Value {
    json!({
        "backup_id": backup.backup_id,
        "target": {"bootstrap_servers": backup.stack.kafka_bootstrap, "auth": "plaintext"},
        "topics": {"include": [backup.topic]},
        "groups": [group],
        "tier": {"name": "gold", "rto_target_seconds": 900, "rpo_target_seconds": 86_400},
        "requested_by": ALICE,
    })
}

async fn run_drill(machines: &Machines, request: &Value) -> (String, Execution) {
    let arn = machines.drill.start(request).await;
    let name = arn.rsplit(':').next().unwrap().to_owned();
    (
        name,
        machines.drill.wait(&arn, Duration::from_secs(240)).await,
    )
}

async fn drill_report(backup: &Backup, drill_id: &str) -> Value {
    let key = format!(
        "{PREFIX}/{}/drills/{drill_id}/report.json",
        backup.backup_id
    );
    backup.storage.read_json(&key).await
}

fn scratch_topics(backup: &Backup, drill_id: &str) -> Vec<String> {
    let topics =
        backup
            .stack
            .python(&["list-topics", "--bootstrap", &backup.stack.kafka_bootstrap]);
    topics
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|name| name.as_str())
        .filter(|name| name.starts_with(&format!("tidemark-drill.{drill_id}.")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_of_a_sound_backup_proves_every_record_and_the_groups_then_leaves_nothing() {
    let group = unique("payment-processor");
    let backup = backed_up("payments.drilled", &group).await;
    let (functions, machines) = backup.restore_machines(&[], 60).await;
    let (drill_id, execution) = run_drill(&machines, &drill_request(&backup, &group)).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        execution.describe(),
        functions.host.process.log()
    );
    let report = drill_report(&backup, &drill_id).await;
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["partitions_verified"], 2);
    assert_eq!(report["records"], 300);
    for evidence in report["partitions"].as_array().unwrap() {
        let partition = evidence["partition"].as_i64().unwrap();
        assert_eq!(evidence["records"], 150);
        assert_eq!(evidence["first_source_offset"], 0);
        assert_eq!(evidence["last_source_offset"], 149);
        assert_eq!(evidence["digest"].as_str().unwrap().len(), 64);
        let committed = if partition == 0 { 60 } else { 75 };
        assert_eq!(
            evidence["groups"],
            json!([{"group": group, "committed_source_offset": committed,
                    "translated": committed, "expected": committed, "ok": true}]),
            "partition {partition}: the group would land on its next unread record"
        );
    }
    let rto = report["rto_ms"].as_i64().unwrap();
    assert!(rto > 0 && rto < 900_000, "RTO {rto} ms");
    assert!(report["rpo_ms"].as_i64().is_some(), "{report:#}");
    assert_eq!(report["rto_target_ms"], 900_000);
    assert_eq!(
        report["scratch_topics_deleted"],
        json!([format!("tidemark-drill.{drill_id}.{}", backup.topic)])
    );
    assert_eq!(scratch_topics(&backup, &drill_id), Vec::<String>::new());
    assert_eq!(
        backup
            .stack
            .group_offsets(&backup.stack.kafka_bootstrap, &backup.topic, &group, 2),
        [("0".to_owned(), 60), ("1".to_owned(), 75)].into(),
        "the real group is where it was"
    );

    let book = DynamoIndexStore::new(backup.storage.dynamodb.clone(), &backup.storage.table);
    let health = book
        .health(&BackupId::parse(&backup.backup_id).unwrap())
        .await
        .unwrap();
    let drill = health.drill.expect("the drill is in the health record");
    assert!(drill.passed);
    assert_eq!(drill.drill_id, drill_id);
    let audit = book.audit_records(0, now_ms()).await.unwrap();
    let of = |operation: Operation| {
        audit
            .iter()
            .find(|record| record.operation == operation && record.id == drill_id)
            .unwrap_or_else(|| panic!("no {} audit record in {audit:#?}", operation.name()))
    };
    assert_eq!(of(Operation::Drill).caller.identity.as_deref(), Some(ALICE));
    assert_eq!(
        of(Operation::Restore).caller.identity.as_deref(),
        Some(format!("drill {drill_id}, requested by {ALICE}").as_str()),
        "the drill's restore is audited as the drill's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_of_a_tampered_segment_fails_naming_the_partition_and_first_offset_then_cleans_up()
{
    let group = unique("payment-processor");
    let backup = backed_up("payments.tampered", &group).await;
    // Partition 1's last segment: one byte changed at rest, after the backup wrote it.
    let mut segments: Vec<String> = backup
        .storage
        .object_keys()
        .await
        .into_iter()
        .filter(|key| key.contains("/partition=1/") && key.ends_with(".seg.zst"))
        .collect();
    segments.sort();
    let tampered = segments.last().expect("partition 1 has segments").clone();
    let first_offset: i64 = tampered.rsplit('/').next().unwrap()[..20].parse().unwrap();
    assert!(first_offset > 0, "the tampered segment is not the first");
    backup
        .storage
        .rewrite_object(&tampered, |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x5a;
        })
        .await;

    let (_functions, machines) = backup.restore_machines(&[], 60).await;
    let (drill_id, execution) = run_drill(&machines, &drill_request(&backup, &group)).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed,
        "{}",
        execution.describe()
    );
    assert_eq!(execution.error.as_deref(), Some("Tidemark.DrillFailed"));
    let cause = execution.cause.clone().unwrap_or_default();
    // Whatever the restore got through before it stopped, the drill names the partition and
    // where the backup stops being readable.
    let partition = format!("{}-1: ", backup.topic);
    let unreadable = format!("the backup is unreadable from source offset {first_offset}");
    assert!(
        cause.contains(&partition) && cause.contains(&unreadable),
        "{partition:?} and {unreadable:?} not in {cause}"
    );
    assert!(
        !cause.contains(&format!("{}-0", backup.topic)),
        "the sound partition is not blamed: {cause}"
    );
    let report = drill_report(&backup, &drill_id).await;
    assert_eq!(report["passed"], false);
    assert!(
        report["restore"].as_str().unwrap().starts_with("failed"),
        "{report:#}"
    );
    assert!(
        report["rto_ms"].as_i64().is_some(),
        "the time to the verdict is measured"
    );
    assert_eq!(scratch_topics(&backup, &drill_id), Vec::<String>::new());
    let book = DynamoIndexStore::new(backup.storage.dynamodb.clone(), &backup.storage.table);
    let health = book
        .health(&BackupId::parse(&backup.backup_id).unwrap())
        .await
        .unwrap();
    assert!(!health.drill.unwrap().passed);
}
