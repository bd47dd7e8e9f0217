//! Point-in-time restore end to end on real parts: records produced by an independent client,
//! backed up by the real backup-writer through the event-source bridge, snapshotted by the
//! real offset-snapshotter, then restored by `statemachines/restore.asl.json` executed by the
//! emulator's Step Functions, whose tasks run the real restore binaries. What was restored is
//! read back with the independent client.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tidemark_tests::live_backup::{
    Backup, PREFIX, assert_succeeded, content, now_ms, per_partition,
};
use tidemark_tests::stepfunctions::Machines;
use tidemark_tests::{LambdaHost, Stack, unique};

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// A payment record with every field a restore must keep: duplicate header keys, an empty
/// header value, null keys and tombstones among them. (Null header values cannot pass the
/// event source mapping; the restore keeps them, see the S3-only test.)
fn payment(partition: i64, n: i64, timestamp: i64, body: &str) -> Value {
    let key = (n % 7 != 3).then(|| b64(format!("order-{partition}-{n}").as_bytes()));
    let value = (n % 11 != 5).then(|| b64(format!("{{\"n\":{n},\"body\":\"{body}\"}}").as_bytes()));
    json!({
        "partition": partition,
        "timestamp": timestamp,
        "key": key,
        "value": value,
        "headers": [["trace", b64(format!("t-{n}").as_bytes())], ["trace", b64(b"again")], ["empty", ""]],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn payments_restored_to_1429_hold_exactly_the_good_records_and_the_group_resumes() {
    let mut backup = Backup::start("payments.captured", 2).await;
    let group = unique("payment-processor");
    let start = now_ms() - 60_000;
    let good: Vec<Value> = (0..400)
        .map(|n| payment(n % 2, n, start + n * 10, "good"))
        .collect();
    let good = backup.produce_and_back_up(good);
    // The processor had handled 150 and 120 events of each partition by "14:29".
    backup.commit(&group, &[(0, 150), (1, 120)]);
    let snapshot_at = backup.snapshot(&group).await;
    let cut = now_ms().max(snapshot_at);
    // From "14:30" a bad deploy writes garbage, and it is backed up too.
    let garbage: Vec<Value> = (0..300)
        .map(|n| payment(n % 2, n, cut + 60_000 + n, "GARBAGE"))
        .collect();
    backup.produce_and_back_up(garbage);

    let (functions, machine) = backup.restore_machine(&[], 60).await;
    let target = format!("{}.restored", backup.topic);
    let execution = machine
        .run(
            &backup.request(&target, json!({"mode": "time", "at": cut}), &[&group]),
            Duration::from_secs(180),
        )
        .await;
    assert_succeeded(&execution, &functions);
    assert!(
        !execution
            .entered_states()
            .iter()
            .any(|state| state == "Rollback"),
        "{}",
        execution.describe()
    );

    let restored = backup.consume(&target);
    let expected = per_partition(&good);
    let restored_by_partition = per_partition(&restored);
    assert_eq!(restored_by_partition.len(), 2, "both partitions restored");
    for (partition, expected) in &expected {
        let got = &restored_by_partition[partition];
        let offsets: Vec<i64> = got.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
        assert_eq!(
            offsets,
            (0..expected.len() as i64).collect::<Vec<_>>(),
            "partition {partition}: offsets"
        );
        let got: Vec<Value> = got.iter().map(content).collect();
        let expected: Vec<Value> = expected.iter().map(content).collect();
        assert_eq!(
            got, expected,
            "partition {partition}: records restored exactly, in order"
        );
    }
    assert!(
        !restored
            .iter()
            .any(|r| r["value"].as_str().is_some_and(|v| {
                String::from_utf8(BASE64.decode(v).unwrap())
                    .unwrap()
                    .contains("GARBAGE")
            })),
        "no record after the cut is restored"
    );

    assert_eq!(
        backup.group_offsets(&target, &group),
        BTreeMap::from([("0".to_owned(), 150), ("1".to_owned(), 120)]),
        "the group resumes on the restored topic where it stood at the cut"
    );
    let report = backup.report(&execution).await;
    assert_eq!(report["records"], 400);
    assert_eq!(report["partitions"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_encrypted_segments_hide_the_records_at_rest_and_restore_exactly() {
    let stack = Stack::from_env();
    let kms_key = stack.create_kms_key().await;
    // Debug logging, as an operator chasing a problem would turn on: still no record data.
    let debug = ("RUST_LOG", "debug");
    let mut backup = Backup::start_with(
        "payments.sealed",
        2,
        &[("TIDEMARK_SEGMENT_ENCRYPTION_KEY", kms_key.as_str()), debug],
    )
    .await;
    let start = now_ms() - 60_000;
    let card = "card-4111111111111111";
    let records: Vec<Value> = (0..300)
        .map(|n| payment(n % 2, n, start + n * 10, card))
        .collect();
    let produced = backup.produce_and_back_up(records);

    // At rest: every segment sealed (header flag bit 0), and not one record readable.
    let keys = backup.storage.object_keys().await;
    let segment_keys: Vec<&String> = keys
        .iter()
        .filter(|key| key.ends_with(".seg.zst"))
        .collect();
    assert!(!segment_keys.is_empty());
    for key in &segment_keys {
        let bytes = backup.storage.read_object(key).await;
        assert_eq!(bytes[9] & 0x01, 0x01, "{key} is not sealed");
        assert!(
            !bytes.windows(card.len()).any(|w| w == card.as_bytes()),
            "{key} shows a record in clear"
        );
    }
    // The spec-derived Python reader opens them with KMS and finds exactly what was produced.
    let segments = backup.stack.read_segments(
        &backup.storage.bucket,
        &format!("{PREFIX}/{}/", backup.backup_id),
    );
    assert!(
        segments
            .iter()
            .all(|segment| segment["header"]["encrypted"] == true)
    );
    let stored: usize = segments
        .iter()
        .map(|s| s["records"].as_array().unwrap().len())
        .sum();
    assert_eq!(stored, produced.len());

    // The restore functions are given no key: each segment names its wrapped data key.
    let (target, functions) = backup.restore_all_to_now(&[debug], 60).await;
    let restored = per_partition(&backup.consume(&target));
    for (partition, expected) in per_partition(&produced) {
        let got: Vec<Value> = restored[&partition].iter().map(content).collect();
        let expected: Vec<Value> = expected.iter().map(content).collect();
        assert_eq!(
            got, expected,
            "partition {partition}: records restored exactly"
        );
    }

    // Nothing of the records reaches the functions' logs, in clear or as the event's base64.
    let logs = [backup.writer.process.log(), functions.host.process.log()];
    assert!(
        logs.iter().all(|log| log.contains("DEBUG")),
        "debug logging was on"
    );
    for record in &produced {
        let value = record["value"].as_str().map(str::to_owned);
        let key = record["key"].as_str().map(str::to_owned);
        for needle in [Some(card.to_owned()), value, key].into_iter().flatten() {
            for log in &logs {
                assert!(
                    !log.contains(&needle),
                    "{needle:?} appears in a function log"
                );
            }
        }
    }
}

/// The `tidemark` binary with `args`; Lambda and Step Functions calls go through the gateway
/// (it routes invokes to the registered hosts and passes the rest to the emulator).
fn tidemark_cli(backup: &Backup, args: &[&str]) -> std::process::Output {
    std::process::Command::new(backup.stack.binary("tidemark"))
        .args(args)
        .env("AWS_ENDPOINT_URL", &backup.stack.gateway)
        .env("TIDEMARK_BUCKET", &backup.storage.bucket)
        .env("TIDEMARK_TABLE", &backup.storage.table)
        .env("TIDEMARK_PREFIX", PREFIX)
        .env("TIDEMARK_S3_FORCE_PATH_STYLE", "true")
        .output()
        .expect("running tidemark")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_a_restore_an_offset_plan_and_a_snapshot_and_exits_by_the_outcome() {
    let mut backup = Backup::start("payments.cli", 1).await;
    let group = unique("cli-processor");
    let start = now_ms() - 60_000;
    let produced =
        backup.produce_and_back_up((0..50).map(|n| payment(0, n, start + n, "cli")).collect());
    backup.commit(&group, &[(0, 30)]);
    let (functions, machines) = backup.restore_machines(&[], 60).await;
    let dir = std::env::temp_dir().join(unique("cli-requests"));
    std::fs::create_dir_all(&dir).unwrap();

    // A restore request in YAML, started and followed to the end.
    let target = format!("{}.restored", backup.topic);
    let restore = dir.join("restore.yaml");
    std::fs::write(
        &restore,
        format!(
            "backup_id: {}\ntarget:\n  bootstrap_servers: \"{}\"\n  auth: plaintext\ntopics:\n  mapping:\n    {}: {}\ncut:\n  mode: time\n  at: {}\ntopic_creation: create\n",
            backup.backup_id, backup.stack.kafka_bootstrap, backup.topic, target, now_ms()
        ),
    )
    .unwrap();
    let run = tidemark_cli(
        &backup,
        &[
            "restore",
            "start",
            "--config",
            restore.to_str().unwrap(),
            "--watch",
            "--machine",
            &machines.restore.arn,
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&run.stderr),
        functions.host.process.log()
    );
    assert!(stdout.contains(": SUCCEEDED"), "{stdout}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("RestorePartitions"),
        "steps are shown as they start: {stderr}"
    );
    assert!(
        stderr.contains("[####################] 1/1 partitions, 50 records restored"),
        "the partitions' progress is shown as a bar: {stderr}"
    );
    assert_eq!(backup.consume(&target).len(), produced.len());

    // A restore that fails (an unknown backup) exits 1 with the cause.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, json!({"backup_id": "no-such-backup", "target": {"bootstrap_servers": backup.stack.kafka_bootstrap, "auth": "plaintext"}, "topics": {"mapping": {"payments": "payments.restored"}}, "cut": {"mode": "time", "at": now_ms()}}).to_string()).unwrap();
    let run = tidemark_cli(
        &backup,
        &[
            "-o",
            "json",
            "restore",
            "start",
            "--config",
            bad.to_str().unwrap(),
            "--watch",
            "--machine",
            &machines.restore.arn,
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let outcome: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(outcome["status"], "FAILED");
    assert!(
        outcome["cause"]
            .as_str()
            .unwrap()
            .contains("no-such-backup"),
        "{outcome}"
    );

    // An offset reset without --apply is a plan: the group does not move.
    let reset = dir.join("reset.json");
    std::fs::write(
        &reset,
        json!({
            "target": {"bootstrap_servers": backup.stack.kafka_bootstrap, "auth": "plaintext"},
            "groups": {"names": [group]},
            "strategy": {"type": "timestamp", "at": start + 10},
            "topics": [backup.topic],
        })
        .to_string(),
    )
    .unwrap();
    let run = tidemark_cli(
        &backup,
        &[
            "-o",
            "json",
            "offsets",
            "reset",
            "--config",
            reset.to_str().unwrap(),
            "--machine",
            &machines.offset_reset.arn,
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let outcome: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(outcome["output"]["dry_run"], true, "{outcome}");
    assert_eq!(outcome["output"]["moves"][0]["new"], 10, "{outcome}");
    assert_eq!(
        backup.group_offsets(&backup.topic, &group)["0"],
        30,
        "a plan moves nothing"
    );
    let run = tidemark_cli(
        &backup,
        &[
            "offsets",
            "reset",
            "--apply",
            "--config",
            reset.to_str().unwrap(),
            "--machine",
            &machines.offset_reset.arn,
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        backup.group_offsets(&backup.topic, &group)["0"],
        10,
        "--apply moves the group"
    );

    // snapshot now: the deployed snapshotter, invoked by name.
    let name = unique("offset-snapshotter");
    let mut env =
        backup
            .stack
            .snapshotter_env(&backup.storage, &backup.backup_id, PREFIX, &backup.topic);
    env.push(("TIDEMARK_GROUPS_INCLUDE", group.as_str()));
    let host = backup.stack.start_lambda_host_for(
        &[format!(
            "{name}={}",
            backup.stack.binary("offset-snapshotter").display()
        )],
        &env,
        60,
    );
    backup.stack.register_with_gateway(&host, &[&name]).await;
    let run = tidemark_cli(
        &backup,
        &["-o", "json", "snapshot", "now", "--function", &name],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&run.stderr),
        host.process.log()
    );
    let answer: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(answer["snapshots"][0]["key"].as_str().is_some(), "{answer}");
    let run = tidemark_cli(
        &backup,
        &["snapshot", "now", "--function", "no-such-function"],
    );
    assert_ne!(run.status.code(), Some(0));
}

fn offsets_of(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_cut_keeps_out_of_order_timestamps_and_time_cut_follows_timestamps() {
    let mut backup = Backup::start("ledger", 1).await;
    let group = unique("ledger-reader");
    let start = now_ms() - 60_000;
    // Every tenth producer has a clock ten minutes fast.
    let before: Vec<Value> = (0..200)
        .map(|n| {
            let skew = if n % 10 == 0 { 600_000 } else { 0 };
            payment(0, n, start + n * 10 + skew, "before")
        })
        .collect();
    let before = backup.produce_and_back_up(before);
    backup.commit(&group, &[(0, 120)]);
    let snapshot_at = backup.snapshot(&group).await;
    let cut = now_ms().max(snapshot_at) + 1;
    // Written after the cut, but stamped before it: late arrivals from a slow producer.
    let late: Vec<Value> = (200..300)
        .map(|n| payment(0, n, cut - 30_000 + n, "late"))
        .collect();
    let late = backup.produce_and_back_up(late);

    // A reserve as long as the timeout leaves each invocation its one guaranteed batch: the
    // restore takes one invocation per 40 records, the machine looping on continuations.
    let (functions, machine) = backup
        .restore_machine(
            &[
                ("TIDEMARK_RESTORE_BATCH_RECORDS", "40"),
                ("TIDEMARK_RESTORE_DEADLINE_RESERVE_MS", "2000"),
            ],
            2,
        )
        .await;
    let consistent = format!("{}.consistent", backup.topic);
    let execution = machine
        .run(
            &backup.request(
                &consistent,
                json!({"mode": "consistent", "at": cut}),
                &[&group],
            ),
            Duration::from_secs(180),
        )
        .await;
    assert_succeeded(&execution, &functions);
    let report = backup.report(&execution).await;
    let invocations = report["partitions"][0]["invocations"].as_u64().unwrap();
    assert!(
        invocations >= 5,
        "200 records in batches of 40 take at least 5 invocations, saw {invocations}"
    );
    let restored = backup.consume(&consistent);
    assert_eq!(offsets_of(&restored), (0..200).collect::<Vec<_>>());
    assert_eq!(
        restored.iter().map(content).collect::<Vec<_>>(),
        before.iter().map(content).collect::<Vec<_>>(),
        "the consistent cut holds every record written before the cut, whatever its timestamp"
    );
    assert_eq!(
        backup.group_offsets(&consistent, &group),
        BTreeMap::from([("0".to_owned(), 120)])
    );

    let by_time = format!("{}.by-time", backup.topic);
    let execution = machine
        .run(
            &backup.request(&by_time, json!({"mode": "time", "at": cut}), &[&group]),
            Duration::from_secs(180),
        )
        .await;
    assert_succeeded(&execution, &functions);
    let expected: Vec<Value> = before
        .iter()
        .chain(&late)
        .filter(|record| record["timestamp"].as_i64().unwrap() <= cut)
        .map(content)
        .collect();
    let restored = backup.consume(&by_time);
    assert_eq!(restored.len(), 180 + 100);
    assert_eq!(restored.iter().map(content).collect::<Vec<_>>(), expected);
    // Committed 120 (a skewed record, not restored): the group resumes at the first restored
    // record after it, source 121, which is target 121 - 13 skipped = 108.
    assert_eq!(
        backup.group_offsets(&by_time, &group),
        BTreeMap::from([("0".to_owned(), 108)])
    );
}

/// Pids of the Lambda host's function processes running `binary` (children of any of its
/// threads).
fn function_processes(host: &LambdaHost, binary: &str) -> Vec<u32> {
    tidemark_tests::measure::children_running(host.process.id(), binary)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_killed_mid_partition_resumes_with_no_duplicate_and_no_gap() {
    let mut backup = Backup::start("orders", 1).await;
    let start = now_ms() - 600_000;
    let records: Vec<Value> = (0..60_000)
        .map(|n| payment(0, n, start + n, &"x".repeat(100)))
        .collect();
    let source = backup.produce_and_back_up(records);
    let (functions, machine) = backup
        .restore_machine(&[("TIDEMARK_RESTORE_BATCH_RECORDS", "250")], 60)
        .await;
    let target = format!("{}.restored", backup.topic);
    let execution = machine
        .start(&backup.request(&target, json!({"mode": "time", "at": now_ms()}), &[]))
        .await;

    // Kill the function process (as an out-of-memory kill or a host failure would) once
    // some of its records are on the target, before it could record any progress. The
    // process is frozen while the target is read, so a fast restore cannot finish between
    // the read and the kill: it only runs in the short gaps between two reads.
    let writer = restore::partition::target::KafkaTargetWriter::connect(
        tidemark_core::kafka::KafkaConnection::plaintext(backup.stack.kafka_bootstrap.clone()),
        0,
    )
    .unwrap();
    let signal = |signal: &str, pids: &[u32]| {
        for pid in pids {
            let _ = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let killed_at = loop {
        use restore::partition::target::TargetWriter;
        assert!(
            std::time::Instant::now() < deadline,
            "the restore produced nothing within 60 s"
        );
        let running = function_processes(&functions.host, "restore-partition");
        if running.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        signal("-STOP", &running);
        let end = writer.end_offset(&target, 0).await.unwrap_or(0);
        if end > 0 {
            signal("-KILL", &running);
            signal("-CONT", &running);
            break end;
        }
        signal("-CONT", &running);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let execution = machine.wait(&execution, Duration::from_secs(180)).await;
    assert_succeeded(&execution, &functions);
    assert!(
        killed_at < 60_000,
        "killed after {killed_at} of 60000 records: not mid-partition"
    );
    let report = backup.report(&execution).await;
    let recovered = report["partitions"][0]["recovered_after_interruption"]
        .as_u64()
        .unwrap();
    assert!(
        recovered > 0,
        "the resumed invocation must adopt what the killed one produced: {report}"
    );

    let restored = backup.consume(&target);
    assert_eq!(
        offsets_of(&restored),
        (0..60_000).collect::<Vec<_>>(),
        "no duplicate, no gap"
    );
    assert_eq!(
        restored.iter().map(content).collect::<Vec<_>>(),
        source.iter().map(content).collect::<Vec<_>>()
    );
    assert_eq!(report["records"], 60_000);
}

/// A partition that cannot be restored (one of its segments damaged in S3) fails the restore
/// and rolls it back, whichever way the Map reports it: the service fails the Map when an
/// iteration fails; the emulator's distributed Map has been seen to succeed regardless, and
/// then the count validation must catch the unfinished partition.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_segment_fails_the_restore_and_rolls_it_back() {
    let mut backup = Backup::start("settlements", 2).await;
    let start = now_ms() - 60_000;
    backup.produce_and_back_up(
        (0..400)
            .map(|n| payment(n % 2, n, start + n, "s"))
            .collect(),
    );
    let damaged = backup
        .storage
        .object_keys()
        .await
        .into_iter()
        .find(|key| key.contains("/partition=1/") && key.ends_with(".seg.zst"))
        .expect("partition 1 has segments");
    backup
        .storage
        .rewrite_object(&damaged, |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
        })
        .await;

    let (_target, _functions, execution) = backup.try_restore_all_to_now(&[], 60).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed,
        "{}",
        execution.describe()
    );
    assert_eq!(execution.error.as_deref(), Some("Tidemark.RestoreFailed"));
    let states = execution.entered_states();
    assert!(states.iter().any(|state| state == "Rollback"), "{states:?}");
    assert!(
        !states.iter().any(|state| state == "Report"),
        "a failed restore is not reported as restored: {states:?}"
    );
    let cause = execution.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&format!("{}/1", backup.topic)) || cause.contains(&damaged),
        "the cause names the partition or the segment: {cause}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_and_reports_but_changes_nothing() {
    let mut backup = Backup::start("refunds", 2).await;
    let group = unique("refund-worker");
    let start = now_ms() - 60_000;
    backup.produce_and_back_up(
        (0..100)
            .map(|n| payment(n % 2, n, start + n, "r"))
            .collect(),
    );
    backup.commit(&group, &[(0, 10)]);
    backup.snapshot(&group).await;
    let (functions, machine) = backup.restore_machine(&[], 60).await;
    let target = format!("{}.restored", backup.topic);
    let mut request = backup.request(&target, json!({"mode": "time", "at": now_ms()}), &[&group]);
    request["dry_run"] = json!(true);
    let execution = machine.run(&request, Duration::from_secs(120)).await;
    assert_succeeded(&execution, &functions);
    let states = execution.entered_states();
    for state in ["CreateTopics", "RestorePartitions", "ResetOffsets"] {
        assert!(
            !states.iter().any(|s| s == state),
            "dry run entered {state}: {states:?}"
        );
    }
    let report = backup.report(&execution).await;
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["planned_partitions"].as_array().unwrap().len(), 2);
    assert_eq!(report["records_to_scan"], 100);
    assert!(
        !backup.topic_exists(&target),
        "a dry run must not create {target}"
    );
    assert!(backup.group_offsets(&target, &group).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_before_any_write_with_a_clear_cause() {
    let mut backup = Backup::start("invoices", 1).await;
    let group = unique("invoice-mailer");
    let start = now_ms() - 60_000;
    backup.produce_and_back_up((0..50).map(|n| payment(0, n, start + n, "i")).collect());
    backup.commit(&group, &[(0, 5)]);
    backup.snapshot(&group).await;
    let (functions, machine) = backup.restore_machine(&[], 60).await;
    let at = now_ms();
    let existing = format!("{}.existing", backup.topic);
    backup.stack.create_topic(&existing, 1, &[]);
    let missing = format!("{}.missing", backup.topic);

    let unknown_backup = {
        let mut request = backup.request(&missing, json!({"mode": "time", "at": at}), &[]);
        request["backup_id"] = json!("no-such-backup");
        request
    };
    let missing_topic = {
        let mut request = backup.request(&missing, json!({"mode": "time", "at": at}), &[]);
        request["topic_creation"] = json!("require");
        request
    };
    let malformed = {
        let mut request = backup.request(&missing, json!({"mode": "time", "at": "14:29"}), &[]);
        request["groups"] = json!([group]);
        request
    };
    let member = backup.stack.join_group(&existing, &group);
    let active_group = backup.request(&existing, json!({"mode": "time", "at": at}), &[&group]);
    let cases = [
        (unknown_backup, "unknown backup id \"no-such-backup\""),
        (missing_topic, "do not exist"),
        (malformed, "cut.at"),
        (active_group, "active on the target"),
    ];
    for (request, expected) in cases {
        let execution = machine.run(&request, Duration::from_secs(120)).await;
        assert_eq!(
            execution.status,
            ExecutionStatus::Failed,
            "{}",
            execution.describe()
        );
        assert_eq!(execution.error.as_deref(), Some("Tidemark.RestoreFailed"));
        let cause = execution.cause.clone().unwrap_or_default();
        assert!(cause.starts_with("Plan failed: "), "{cause}");
        assert!(
            cause.contains(expected),
            "{cause:?} does not say {expected:?}"
        );
        assert!(cause.contains("nothing needed undoing"), "{cause}");
        let states = execution.entered_states();
        assert!(!states.iter().any(|s| s == "CreateTopics"), "{states:?}");
        let _ = &functions;
    }
    let cause_of_active = machine
        .run(
            &backup.request(&existing, json!({"mode": "time", "at": at}), &[&group]),
            Duration::from_secs(120),
        )
        .await
        .cause
        .unwrap_or_default();
    assert!(
        cause_of_active.contains(&group),
        "the cause names the active group: {cause_of_active}"
    );
    drop(member);
    assert!(
        !backup.topic_exists(&missing),
        "{missing} must not be created"
    );
    assert!(backup.consume(&existing).is_empty(), "nothing was produced");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offset_reset_failure_rolls_every_group_back_to_its_snapshot() {
    let mut backup = Backup::start("settlements", 1).await;
    let ledger = unique("settlement-ledger");
    let notifier = unique("settlement-notifier");
    let start = now_ms() - 60_000;
    backup.produce_and_back_up((0..100).map(|n| payment(0, n, start + n, "s")).collect());
    backup.commit(&ledger, &[(0, 60)]);
    backup.commit(&notifier, &[(0, 40)]);
    backup.snapshot(&format!("{ledger}|{notifier}")).await;
    let cut = now_ms();

    // The target cluster: a broker reached through a proxy that cuts the connection of any
    // offset commit for the notifier group, after the ledger group was already moved.
    let (_broker, proxy) = backup.stack.start_proxied_broker().await;
    let target = format!("{}.restored", backup.topic);
    backup.stack.python(&[
        "create-topic",
        "--bootstrap",
        &proxy.address,
        "--topic",
        &target,
    ]);
    backup.stack.python(&[
        "commit-offsets",
        "--bootstrap",
        &proxy.address,
        "--topic",
        &target,
        "--group",
        &ledger,
        "--offset",
        "0=7",
    ]);
    proxy.refuse_commits_for(&notifier);

    let (functions, machines) = backup.restore_machines(&[], 60).await;
    let machine = &machines.restore;
    let mut request = backup.request(
        &target,
        json!({"mode": "time", "at": cut}),
        &[&ledger, &notifier],
    );
    request["target"]["bootstrap_servers"] = json!(proxy.address);
    request["topic_creation"] = json!("require");
    let execution = machine.run(&request, Duration::from_secs(180)).await;

    assert_eq!(
        execution.status,
        ExecutionStatus::Failed,
        "{}\n{}",
        execution.describe(),
        functions.host.process.log()
    );
    assert!(proxy.refused() >= 1, "the fault was never injected");
    let states = execution.entered_states();
    let path: Vec<&str> = states
        .iter()
        .map(String::as_str)
        .skip_while(|state| *state != "ResetOffsets")
        .collect();
    assert_eq!(
        path,
        [
            "ResetOffsets",
            "ResetOffsetsFailed",
            "Rollback",
            "RestoreFailed"
        ],
        "{states:?}"
    );
    assert_eq!(execution.error.as_deref(), Some("Tidemark.RestoreFailed"));
    let cause = execution.cause.clone().unwrap();
    assert!(cause.starts_with("ResetOffsets failed: "), "{cause}");
    assert!(
        cause.contains(&notifier),
        "the cause names the group that failed: {cause}"
    );
    assert!(
        cause.contains("back at their offsets from before the reset (verified)"),
        "the offset reset's own rollback is reported: {cause}"
    );
    let child = machines
        .offset_reset
        .only_execution()
        .await
        .entered_states();
    assert!(
        child.iter().any(|state| state == "Rollback")
            && child.iter().any(|state| state == "VerifyRollback"),
        "the offset-reset execution took its rollback path: {child:?}"
    );

    assert_eq!(
        backup.group_offsets_on(&proxy.address, &target, &ledger),
        BTreeMap::from([("0".to_owned(), 7)]),
        "the group that had moved is back where it stood before the offset reset"
    );
    assert!(
        backup
            .group_offsets_on(&proxy.address, &target, &notifier)
            .is_empty(),
        "the group that did not exist before has no offsets"
    );
    assert_eq!(
        backup.consume_on(&proxy.address, &target).len(),
        100,
        "restored records stay for inspection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_in_s3_alone_restore_exactly_with_overlaps_read_once_and_null_headers_kept() {
    use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
    use tidemark_core::object_store::ObjectStore;
    use tidemark_core::segment::{Header, Record, SegmentEncoder, TimestampType};

    let stack = Stack::from_env();
    let storage = stack.create_storage().await;
    let backup_id = unique("s3-only");
    let topic = unique("audit");
    let start = now_ms() - 60_000;
    let record = |offset: i64| Record {
        offset,
        timestamp: start + offset,
        timestamp_type: TimestampType::CreateTime,
        key: (offset % 5 != 0).then(|| format!("k{offset}").into_bytes()),
        value: (offset % 7 != 0).then(|| vec![b'v'; offset as usize % 50]),
        headers: vec![
            Header {
                key: "null".into(),
                value: None,
            },
            Header {
                key: "empty".into(),
                value: Some(Vec::new()),
            },
            Header {
                key: "dup".into(),
                value: Some(b"1".to_vec()),
            },
            Header {
                key: "dup".into(),
                value: Some(b"2".to_vec()),
            },
        ],
    };
    // A re-batched retry left overlapping segments: 0-99, 50-149 and 100-199, then a gap
    // (offsets 200-209 removed by retention before the backup read them), then 210-249.
    let layout = StorageLayout::new(PREFIX).unwrap();
    let partition = PartitionId::new(BackupId::parse(&backup_id).unwrap(), topic.clone(), 0);
    let objects = tidemark_core::stores::S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    for (first, last) in [(0, 99), (50, 149), (100, 199), (210, 249)] {
        let mut encoder = SegmentEncoder::new(&topic, 0, 3).unwrap();
        for offset in first..=last {
            encoder.push(&record(offset)).unwrap();
        }
        let segment = encoder.finish().unwrap();
        let key = layout.segment_key(&partition, first, last);
        objects
            .put_if_absent(&key, segment.bytes, &Default::default())
            .await
            .unwrap();
    }

    let functions = stack
        .start_restore_functions(&storage, PREFIX, &[], 60)
        .await;
    let machine = Machines::create(&stack, &functions).await.restore;
    let target = format!("{topic}.restored");
    let request = json!({
        "backup_id": backup_id,
        "target": {"bootstrap_servers": stack.kafka_bootstrap, "auth": "plaintext"},
        "topics": {"mapping": {topic.clone(): target.clone()}},
        "cut": {"mode": "time", "at": now_ms()},
        "topic_creation": "create",
    });
    let execution = machine.run(&request, Duration::from_secs(120)).await;
    assert_succeeded(&execution, &functions);

    let restored = stack
        .python(&[
            "consume",
            "--bootstrap",
            &stack.kafka_bootstrap,
            "--topic",
            &target,
        ])
        .as_array()
        .unwrap()
        .clone();
    let expected: Vec<Value> = (0..200)
        .chain(210..250)
        .map(|offset| {
            let record = record(offset);
            json!({
                "key": record.key.as_deref().map(b64),
                "value": record.value.as_deref().map(b64),
                "headers": [["null", null], ["empty", ""], ["dup", b64(b"1")], ["dup", b64(b"2")]],
                "timestamp": record.timestamp,
                "timestamp_type": "CREATE_TIME",
            })
        })
        .collect();
    assert_eq!(
        offsets_of(&restored),
        (0..240).collect::<Vec<_>>(),
        "each offset once, the gap closed"
    );
    assert_eq!(restored.iter().map(content).collect::<Vec<_>>(), expected);

    let report = storage
        .read_json(
            execution.output.as_ref().unwrap()["report_key"]
                .as_str()
                .unwrap(),
        )
        .await;
    assert_eq!(
        report["planned_partitions"][0]["segment_source"],
        "s3-listing"
    );
    assert!(
        report["warnings"].to_string().contains("S3 listing"),
        "the report says the index was not used: {}",
        report["warnings"]
    );
}

/// Bytes that zstd cannot shrink much, so a record's size survives into every layer.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_one_and_four_megabytes_back_up_and_restore_exactly() {
    // 4 MB is about the largest record an event source mapping can deliver: base64 makes it
    // 5.4 MB of the 6 MB invocation payload.
    let mut backup =
        Backup::start_with_topic("large", 1, &["max.message.bytes=8388608"], &[]).await;
    let start = now_ms() - 60_000;
    let sizes = [1 << 20, 4 << 20, 300];
    let records: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(n, &len)| {
            json!({
                "partition": 0,
                "timestamp": start + n as i64,
                "key": b64(format!("large-{n}").as_bytes()),
                "value": b64(&noise(n as u64, len)),
                "headers": [["size", b64(len.to_string().as_bytes())]],
            })
        })
        .collect();
    let produced = backup.produce_and_back_up(records);
    assert_eq!(produced.len(), 3);

    let (target, _functions) = backup.restore_all_to_now(&[], 120).await;
    let restored = backup.consume(&target);
    assert_eq!(
        restored.iter().map(content).collect::<Vec<_>>(),
        produced.iter().map(content).collect::<Vec<_>>(),
        "every record, large ones included, restored byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn month_old_records_restore_into_a_topic_that_keeps_them_and_a_rewriting_target_is_refused()
{
    let mut backup = Backup::start("aged", 1).await;
    let month_ago = now_ms() - 30 * 24 * 3_600_000;
    let records: Vec<Value> = (0..20)
        .map(|n| payment(0, n, month_ago + n * 1_000, "aged"))
        .collect();
    let produced = backup.produce_and_back_up(records);
    let (functions, machine) = backup.restore_machine(&[], 60).await;

    // A created target: CreateTime, and a retention that cannot delete month-old records.
    let target = format!("{}.restored", backup.topic);
    let cut = json!({"mode": "time", "at": now_ms()});
    let execution = machine
        .run(
            &backup.request(&target, cut.clone(), &[]),
            Duration::from_secs(120),
        )
        .await;
    assert_succeeded(&execution, &functions);
    let configs = backup.stack.python(&[
        "describe-topic-configs",
        "--bootstrap",
        &backup.stack.kafka_bootstrap,
        "--topic",
        &target,
    ]);
    assert_eq!(configs["retention.ms"], "-1", "{configs}");
    assert_eq!(configs["message.timestamp.type"], "CreateTime", "{configs}");
    assert_eq!(
        backup
            .consume(&target)
            .iter()
            .map(content)
            .collect::<Vec<_>>(),
        produced.iter().map(content).collect::<Vec<_>>(),
        "old timestamps kept, every record there"
    );

    // An existing target that stamps its own time would rewrite them: refused in Plan.
    let appending = format!("{}.appending", backup.topic);
    backup.stack.create_topic(
        &appending,
        1,
        &["message.timestamp.type=LogAppendTime", "retention.ms=-1"],
    );
    let execution = machine
        .run(
            &backup.request(&appending, cut, &[]),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed,
        "{}",
        execution.describe()
    );
    let described = execution.describe();
    assert!(
        described.contains("message.timestamp.type=LogAppendTime"),
        "{described}"
    );
    assert!(backup.consume(&appending).is_empty(), "nothing was written");
}
