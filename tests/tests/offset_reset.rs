//! The offset-reset state machine end to end: the repository's ASL executed by the emulator,
//! the real offset-reset binary behind the Lambda host, a real broker, and every position
//! read back with an independent client (confluent-kafka).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use tidemark_core::config::{S3Settings, StoreLocation};
use tidemark_core::kafka::{CommittedOffset, GroupDescription};
use tidemark_core::layout::{BackupId, StorageLayout};
use tidemark_core::object_store::ObjectStore;
use tidemark_core::operations::{Operation, Outcome};
use tidemark_core::snapshot::{
    ClusterSnapshot, GroupSnapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, SnapshotCatalog,
    SnapshotEntry,
};
use tidemark_tests::stepfunctions::{Execution, Machines, RestoreFunctions, StateMachine};
use tidemark_tests::{Stack, Storage, unique};

const PREFIX: &str = "tidemark";
const RECORDS_PER_PARTITION: i64 = 20;

struct World {
    stack: Stack,
    storage: Storage,
    functions: RestoreFunctions,
    machine: StateMachine,
    topic: String,
    /// Record n of each partition is stamped `base_ms + 10 n`.
    base_ms: i64,
}

fn offsets(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(p, o)| (p.to_string(), *o)).collect()
}

impl World {
    /// A topic of 2 partitions × 20 records, the functions and the offset-reset machine,
    /// targeting `bootstrap` (the shared broker unless a test brings its own).
    async fn start(bootstrap: Option<&str>) -> World {
        let stack = Stack::from_env();
        let storage = stack.create_storage().await;
        let topic = unique("orders");
        let bootstrap = bootstrap.unwrap_or(&stack.kafka_bootstrap).to_owned();
        stack.python(&[
            "create-topic",
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--partitions",
            "2",
        ]);
        let base_ms = 1_700_000_000_000;
        let records: Vec<Value> = (0..RECORDS_PER_PARTITION)
            .flat_map(|n| {
                (0..2).map(move |partition| {
                    json!({"key": null, "value": "eA==", "partition": partition,
                           "timestamp": base_ms + 10 * n, "headers": []})
                })
            })
            .collect();
        let file = std::env::temp_dir().join(format!("{}.json", unique("records")));
        std::fs::write(&file, Value::from(records).to_string()).unwrap();
        stack.python(&[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--records",
            file.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(file);
        let functions = stack
            .start_restore_functions(&storage, PREFIX, &[], 60)
            .await;
        let machine = Machines::create(&stack, &functions).await.offset_reset;
        World {
            stack,
            storage,
            functions,
            machine,
            topic,
            base_ms,
        }
    }

    fn request(&self, bootstrap: &str, groups: Value, strategy: Value) -> Value {
        let mut request = json!({
            "target": {"bootstrap_servers": bootstrap, "auth": "plaintext"},
            "groups": groups,
            "strategy": strategy,
        });
        if strategy_needs_topics(&request) {
            request["topics"] = json!([self.topic]);
        }
        request
    }

    async fn run(&self, request: &Value) -> Execution {
        self.machine.run(request, Duration::from_secs(120)).await
    }

    async fn run_ok(&self, request: &Value) -> Value {
        let execution = self.run(request).await;
        assert_eq!(
            execution.status,
            ExecutionStatus::Succeeded,
            "{}\n{}",
            execution.describe(),
            self.functions.host.process.log()
        );
        execution.output.expect("output")
    }

    fn commit(&self, bootstrap: &str, group: &str, offsets: &[(i32, i64)]) {
        self.stack
            .commit_offsets(bootstrap, &self.topic, group, offsets, &[]);
    }

    fn offsets(&self, bootstrap: &str, group: &str) -> BTreeMap<String, i64> {
        self.stack.group_offsets(bootstrap, &self.topic, group, 2)
    }
}

fn strategy_needs_topics(request: &Value) -> bool {
    matches!(
        request["strategy"]["type"].as_str(),
        Some("timestamp" | "earliest" | "latest")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn each_strategy_moves_the_groups_exactly_where_asked() {
    let world = World::start(None).await;
    let broker = world.stack.kafka_bootstrap.clone();
    let prefix = unique("billing");
    let (first, second) = (format!("{prefix}-eu"), format!("{prefix}-us"));
    world.commit(&broker, &first, &[(0, 3), (1, 4)]);
    world.commit(&broker, &second, &[(0, 10), (1, 10)]);
    let both = json!({"names": [first], "patterns": [format!("{prefix}-u.")]});

    let output = world
        .run_ok(&world.request(&broker, both.clone(), json!({"type": "earliest"})))
        .await;
    assert_eq!(output["verified"], json!({"groups": 2, "partitions": 4}));
    for group in [&first, &second] {
        assert_eq!(
            world.offsets(&broker, group),
            offsets(&[("0", 0), ("1", 0)])
        );
    }

    world
        .run_ok(&world.request(&broker, both.clone(), json!({"type": "latest"})))
        .await;
    for group in [&first, &second] {
        assert_eq!(
            world.offsets(&broker, group),
            offsets(&[("0", 20), ("1", 20)])
        );
    }

    // The first record stamped at or after base + 75 ms is record 8 on both partitions.
    let at = world.base_ms + 75;
    world
        .run_ok(&world.request(
            &broker,
            both.clone(),
            json!({"type": "timestamp", "at": at}),
        ))
        .await;
    for group in [&first, &second] {
        assert_eq!(
            world.offsets(&broker, group),
            offsets(&[("0", 8), ("1", 8)])
        );
    }

    let explicit = json!({"type": "explicit", "offsets": [
        {"group": first, "topic": world.topic, "partition": 0, "offset": 5},
        {"group": second, "topic": world.topic, "partition": 1, "offset": 13},
    ]});
    world
        .run_ok(&world.request(&broker, json!({"names": [first, second]}), explicit))
        .await;
    assert_eq!(
        world.offsets(&broker, &first),
        offsets(&[("0", 5), ("1", 8)])
    );
    assert_eq!(
        world.offsets(&broker, &second),
        offsets(&[("0", 8), ("1", 13)])
    );

    // A cluster snapshot in the backup's bucket and catalog, as the snapshotter writes them.
    let taken_at_ms = 1_800_000_000_000;
    write_snapshot(&world, "prod", taken_at_ms, &first, &[(0, 2), (1, 17)]).await;
    world
        .run_ok(&world.request(
            &broker,
            json!({"names": [first]}),
            json!({"type": "snapshot", "backup_id": "prod", "at": taken_at_ms + 60_000}),
        ))
        .await;
    assert_eq!(
        world.offsets(&broker, &first),
        offsets(&[("0", 2), ("1", 17)])
    );
    assert_eq!(
        world.offsets(&broker, &second),
        offsets(&[("0", 8), ("1", 13)]),
        "a group the request does not select stays where it was"
    );
}

async fn write_snapshot(
    world: &World,
    backup_id: &str,
    taken_at_ms: i64,
    group: &str,
    at: &[(i32, i64)],
) {
    let snapshot = ClusterSnapshot {
        format: SNAPSHOT_FORMAT.into(),
        version: SNAPSHOT_VERSION,
        backup_id: backup_id.into(),
        bootstrap_servers: world.stack.kafka_bootstrap.clone(),
        started_at_ms: taken_at_ms - 100,
        taken_at_ms,
        topics: Vec::new(),
        groups: vec![GroupSnapshot {
            group: GroupDescription {
                group_id: group.into(),
                state: "Stable".into(),
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                members: Vec::new(),
            },
            offsets: at
                .iter()
                .map(|&(partition, offset)| CommittedOffset {
                    topic: world.topic.clone(),
                    partition,
                    offset,
                    metadata: String::new(),
                })
                .collect(),
            error: None,
        }],
        recreations: Vec::new(),
    };
    let backup_id = BackupId::parse(backup_id).unwrap();
    let key = StorageLayout::new(PREFIX)
        .unwrap()
        .snapshot_key(&backup_id, taken_at_ms);
    let sdk = world.stack.sdk_config().await;
    let (objects, catalog) = StoreLocation {
        bucket: world.storage.bucket.clone(),
        table: world.storage.table.clone(),
        layout: StorageLayout::new(PREFIX).unwrap(),
        s3: S3Settings {
            force_path_style: true,
        },
    }
    .connect(&sdk);
    let body = snapshot.encode(3).unwrap();
    let stored_bytes = body.len() as u64;
    objects
        .put_if_absent(&key, body.into(), &Default::default())
        .await
        .unwrap();
    catalog
        .record_snapshot(
            &backup_id,
            &SnapshotEntry {
                taken_at_ms,
                key,
                group_count: 1,
                topic_count: 0,
                stored_bytes,
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_returns_current_and_new_per_partition_and_changes_nothing() {
    let world = World::start(None).await;
    let broker = world.stack.kafka_bootstrap.clone();
    let group = unique("ledger");
    world.commit(&broker, &group, &[(0, 3)]);
    let mut request = world.request(
        &broker,
        json!({"names": [group]}),
        json!({"type": "latest"}),
    );
    request["dry_run"] = json!(true);
    let execution = world.run(&request).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Succeeded,
        "{}",
        execution.describe()
    );
    assert_eq!(
        execution.entered_states(),
        ["Start", "Plan", "IsDryRun", "Planned"]
    );
    let plan = execution.output.unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["moves"],
        json!([
            {"group": group, "topic": world.topic, "partition": 0, "current": 3, "new": 20},
            {"group": group, "topic": world.topic, "partition": 1, "current": null, "new": 20},
        ])
    );
    assert_eq!(world.offsets(&broker, &group), offsets(&[("0", 3)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_active_group_blocks_the_run_before_any_change() {
    let world = World::start(None).await;
    let broker = world.stack.kafka_bootstrap.clone();
    let (idle, busy) = (unique("idle"), unique("busy"));
    world.commit(&broker, &idle, &[(0, 1), (1, 1)]);
    let member = world.stack.join_group(&world.topic, &busy);
    let request = world.request(
        &broker,
        json!({"names": [idle, busy]}),
        json!({"type": "latest"}),
    );
    let execution = world.run(&request).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed,
        "{}",
        execution.describe()
    );
    assert_eq!(execution.error.as_deref(), Some("Tidemark.Refused"));
    let cause = execution.cause.clone().unwrap();
    assert!(
        cause.contains(&format!("{busy} (1 members: ")),
        "names the group: {cause}"
    );
    // Kafka reports each member's client id and host, and the cause shows them (unit tests);
    // the local broker reports neither, so the member id stands in.
    assert!(
        cause.contains("member rdkafka-"),
        "names the member: {cause}"
    );
    assert!(!cause.contains(&idle), "names only active groups: {cause}");
    let states = execution.entered_states();
    assert_eq!(
        states.last().map(String::as_str),
        Some("NothingChanged"),
        "{states:?}"
    );
    assert!(
        !states
            .iter()
            .any(|s| s == "ApplyOffsets" || s == "SnapshotOffsets"),
        "{states:?}"
    );
    drop(member);
    assert_eq!(
        world.offsets(&broker, &idle),
        offsets(&[("0", 1), ("1", 1)])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_cut_mid_apply_rolls_every_group_back_to_its_snapshot() {
    let stack = Stack::from_env();
    let (_broker, proxy) = stack.start_proxied_broker().await;
    let world = World::start(Some(&proxy.address)).await;
    let target = proxy.address.clone();
    let [moved_a, moved_b, cut, created] =
        ["ledger", "notifier", "auditor", "newcomer"].map(unique);
    world.commit(&target, &moved_a, &[(0, 1), (1, 2)]);
    world.commit(&target, &moved_b, &[(0, 3)]);
    world.commit(&target, &cut, &[(0, 5), (1, 6)]);
    proxy.refuse_commits_for(&cut);

    let mut request = world.request(
        &target,
        json!({"names": [moved_a, moved_b, cut, created]}),
        json!({"type": "latest"}),
    );
    request["requested_by"] = json!("arn:aws:iam::000000000000:user/bob");
    let execution = world.run(&request).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed,
        "{}\n{}",
        execution.describe(),
        world.functions.host.process.log()
    );
    assert!(proxy.refused() >= 1, "the fault was never injected");
    let states = execution.entered_states();
    let path: Vec<&str> = states
        .iter()
        .map(String::as_str)
        .skip_while(|state| *state != "ApplyOffsets")
        .collect();
    assert_eq!(
        path,
        [
            "ApplyOffsets",
            "ApplyOffsetsFailed",
            "Rollback",
            "VerifyRollback",
            "ResetFailed"
        ],
        "{states:?}"
    );
    assert_eq!(
        execution.task_errors(),
        ["Tidemark.Retryable"; 4],
        "a lost connection is retried with backoff (3 retries) before the rollback"
    );
    assert_eq!(
        execution.error.as_deref(),
        Some("Tidemark.OffsetResetFailed")
    );
    let cause = execution.cause.clone().unwrap();
    assert!(cause.starts_with("ApplyOffsets failed: "), "{cause}");
    assert!(
        cause.contains("1 of 4 groups failed (3 committed)"),
        "{cause}"
    );
    assert!(
        cause.contains(&format!("group {cut}: ")),
        "names the failed group: {cause}"
    );
    assert!(
        cause.contains(
            "the 3 groups that existed are back at their offsets from before the reset (verified)"
        ),
        "{cause}"
    );
    assert!(
        cause.contains(&format!(
            "[\"{created}\"], which did not exist before, were deleted"
        )),
        "{cause}"
    );

    assert_eq!(
        world.offsets(&target, &moved_a),
        offsets(&[("0", 1), ("1", 2)])
    );
    assert_eq!(world.offsets(&target, &cut), offsets(&[("0", 5), ("1", 6)]));
    assert!(world.offsets(&target, &created).is_empty());
    // Invariant 8: notifier had no offset on partition 1 before, and an independent client
    // (confluent-kafka) reads none there again. The local broker has no OffsetDelete, so the
    // rollback took the fallback (offset -1) and the cause says so.
    assert_eq!(world.offsets(&target, &moved_b), offsets(&[("0", 3)]));
    let audit = world.storage.audit_records().await;
    assert!(
        audit
            .iter()
            .any(|record| record.operation == Operation::OffsetReset
                && record.outcome == Outcome::Failed
                && record.detail.contains("Tidemark.OffsetResetFailed")
                && record.caller.identity.as_deref() == Some("arn:aws:iam::000000000000:user/bob")),
        "{audit:#?}"
    );
    assert!(
        cause.contains(&format!(
            "offset -1 (read as no offset) was committed where groups had none before (verified): [\"{moved_b} {}/1\"]",
            world.topic
        )),
        "{cause}"
    );
}
