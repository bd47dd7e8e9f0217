//! The offset-reset steps on the in-memory twins, in the order the state machine runs them:
//! each strategy's plan, refusals that change nothing, and a failure mid-apply rolled back
//! with every group verified at its snapshot.

use std::sync::Arc;

use async_trait::async_trait;
use offset_reset::handler::{Handler, StepInput};
use offset_reset::records::ResetRecords;
use serde_json::{Value, json};
use tidemark_core::kafka::{
    Cluster, ClusterConnector, ClusterReader, GroupDescription, KafkaSettings, MemoryCluster,
    TopicPartition,
};
use tidemark_core::layout::{BackupId, StorageLayout};
use tidemark_core::snapshot::{
    ClusterSnapshot, GroupSnapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, SnapshotEntry,
};
use tidemark_core::stores::{MemoryIndexStore, MemoryObjectStore};

struct Twin(Arc<MemoryCluster>);

#[async_trait]
impl ClusterConnector for Twin {
    async fn cluster(&self, _: &KafkaSettings) -> tidemark_core::Result<Arc<dyn Cluster>> {
        Ok(self.0.clone())
    }
}

struct World {
    cluster: Arc<MemoryCluster>,
    records: ResetRecords,
    handler: Handler,
}

fn world() -> World {
    let cluster = Arc::new(MemoryCluster::new());
    cluster.create_topic("payments", 2, &[]);
    cluster.set_watermarks("payments", 0, 5, 100);
    cluster.set_watermarks("payments", 1, 0, 80);
    let index = Arc::new(MemoryIndexStore::new());
    let records = ResetRecords {
        objects: Arc::new(MemoryObjectStore::new()),
        catalog: index.clone(),
        operations: index,
        layout: StorageLayout::new("t").unwrap(),
        bucket: "bucket".into(),
        concurrency: 3,
    };
    let handler = Handler::new(records.clone(), Arc::new(Twin(cluster.clone())));
    World {
        cluster,
        records,
        handler,
    }
}

fn request(strategy: Value, extra: Value) -> Value {
    let mut request = json!({
        "target": {"bootstrap_servers": "target:9092", "auth": "plaintext"},
        "groups": {"names": ["billing"], "patterns": ["audit-.*"]},
        "strategy": strategy,
        "topics": ["payments"],
    });
    for (key, value) in extra.as_object().unwrap() {
        request[key] = value.clone();
    }
    request
}

impl World {
    async fn step(&self, step: &str, request: &Value) -> offset_reset::error::Result<Value> {
        self.step_with(step, request, json!({})).await
    }

    async fn step_with(
        &self,
        step: &str,
        request: &Value,
        extra: Value,
    ) -> offset_reset::error::Result<Value> {
        let mut input = json!({"step": step, "reset_id": "reset-1", "request": request});
        for (key, value) in extra.as_object().unwrap() {
            input[key] = value.clone();
        }
        let input: StepInput = serde_json::from_value(input).unwrap();
        self.handler.handle(input).await
    }

    /// plan → check-groups → snapshot → apply → verify, as the state machine runs them.
    async fn run(&self, request: &Value) -> offset_reset::error::Result<Value> {
        for step in ["plan", "check-groups", "snapshot", "apply"] {
            self.step(step, request).await?;
        }
        self.step("verify", request).await
    }

    async fn offsets(&self, group: &str) -> Vec<(i32, i64)> {
        let partitions = [
            TopicPartition::new("payments", 0),
            TopicPartition::new("payments", 1),
        ];
        self.cluster
            .committed_offsets(group, &partitions)
            .await
            .unwrap()
            .into_iter()
            .map(|offset| (offset.partition, offset.offset))
            .collect()
    }

    /// billing at 10/20 and audit-eu at 30 on partition 0 only; audit-us unknown.
    fn groups(&self) {
        self.cluster.add_group("billing", "Empty", &[]);
        self.cluster.commit("billing", "payments", 0, 10);
        self.cluster.commit("billing", "payments", 1, 20);
        self.cluster.add_group("audit-eu", "Empty", &[]);
        self.cluster.commit("audit-eu", "payments", 0, 30);
    }
}

#[tokio::test]
async fn earliest_latest_and_timestamp_move_every_selected_group() {
    let world = world();
    world.groups();
    world
        .run(&request(json!({"type": "earliest"}), json!({})))
        .await
        .unwrap();
    assert_eq!(world.offsets("billing").await, [(0, 5), (1, 0)]);
    assert_eq!(world.offsets("audit-eu").await, [(0, 5), (1, 0)]);

    let world = self::world();
    world.groups();
    world
        .run(&request(json!({"type": "latest"}), json!({})))
        .await
        .unwrap();
    assert_eq!(world.offsets("billing").await, [(0, 100), (1, 80)]);

    let world = self::world();
    world.groups();
    // Partition 0 holds records 5.. stamped 1000, 1010, ...; partition 1 nothing that late.
    let stamps: Vec<i64> = (0..95).map(|n| 1000 + 10 * n).collect();
    world.cluster.set_timestamps("payments", 0, 5, &stamps);
    world
        .run(&request(
            json!({"type": "timestamp", "at": 1205}),
            json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(world.offsets("billing").await, [(0, 26), (1, 80)]);
}

#[tokio::test]
async fn explicit_offsets_move_exactly_the_named_partitions() {
    let world = world();
    world.groups();
    let request = request(
        json!({"type": "explicit", "offsets": [
            {"group": "billing", "topic": "payments", "partition": 1, "offset": 42},
            {"group": "audit-eu", "topic": "payments", "partition": 0, "offset": 7},
        ]}),
        json!({"topics": []}),
    );
    world.run(&request).await.unwrap();
    assert_eq!(world.offsets("billing").await, [(0, 10), (1, 42)]);
    assert_eq!(world.offsets("audit-eu").await, [(0, 7)]);
}

#[tokio::test]
async fn snapshot_strategy_puts_groups_where_the_snapshot_saw_them() {
    let world = world();
    world.groups();
    let snapshot = ClusterSnapshot {
        format: SNAPSHOT_FORMAT.into(),
        version: SNAPSHOT_VERSION,
        backup_id: "prod".into(),
        bootstrap_servers: "source:9092".into(),
        started_at_ms: 900,
        taken_at_ms: 1000,
        topics: Vec::new(),
        groups: vec![GroupSnapshot {
            group: GroupDescription {
                group_id: "billing".into(),
                state: "Stable".into(),
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                members: Vec::new(),
            },
            offsets: vec![tidemark_core::kafka::CommittedOffset {
                topic: "payments".into(),
                partition: 1,
                offset: 55,
                metadata: String::new(),
            }],
            error: None,
        }],
        recreations: Vec::new(),
    };
    let key = "t/prod/snapshots/1000.json.zst";
    world
        .records
        .objects
        .put_if_absent(key, snapshot.encode(3).unwrap().into(), &Default::default())
        .await
        .unwrap();
    world
        .records
        .catalog
        .record_snapshot(
            &BackupId::parse("prod").unwrap(),
            &SnapshotEntry {
                taken_at_ms: 1000,
                key: key.into(),
                group_count: 1,
                topic_count: 0,
                stored_bytes: 1,
            },
        )
        .await
        .unwrap();
    // A snapshot older than any taken: refused, nothing planned.
    let refused = world
        .step(
            "plan",
            &request(
                json!({"type": "snapshot", "backup_id": "prod", "at": 999}),
                json!({}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no cluster snapshot at or before 1970-01-01T00:00:00.999Z (999 ms)"),
        "{refused}"
    );
    let strategy = json!({"type": "snapshot", "backup_id": "prod", "at": 1500});
    let only_billing = |mut request: Value| {
        request["groups"] = json!({"names": ["billing"]});
        request
    };
    world
        .run(&only_billing(request(strategy.clone(), json!({}))))
        .await
        .unwrap();
    assert_eq!(world.offsets("billing").await, [(0, 10), (1, 55)]);
}

#[tokio::test]
async fn dry_run_returns_current_and_new_per_partition_and_changes_nothing() {
    let world = world();
    world.groups();
    let plan = world
        .step(
            "plan",
            &request(json!({"type": "latest"}), json!({"dry_run": true})),
        )
        .await
        .unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["groups"], 2);
    assert_eq!(
        plan["moves"],
        json!([
            {"group": "audit-eu", "topic": "payments", "partition": 0, "current": 30, "new": 100},
            {"group": "audit-eu", "topic": "payments", "partition": 1, "current": null, "new": 80},
            {"group": "billing", "topic": "payments", "partition": 0, "current": 10, "new": 100},
            {"group": "billing", "topic": "payments", "partition": 1, "current": 20, "new": 80},
        ])
    );
    assert_eq!(world.offsets("billing").await, [(0, 10), (1, 20)]);
}

#[tokio::test]
async fn an_active_group_is_refused_by_name_and_host_before_any_change() {
    let world = world();
    world.groups();
    world.cluster.add_group("audit-eu", "Stable", &["m-1"]);
    let request = request(json!({"type": "earliest"}), json!({}));
    world.step("plan", &request).await.unwrap();
    let error = world.step("check-groups", &request).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.Refused");
    assert!(
        error
            .to_string()
            .contains("audit-eu (1 members: client-m-1 on /127.0.0.1)"),
        "{error}"
    );
    assert_eq!(world.offsets("billing").await, [(0, 10), (1, 20)]);
}

#[tokio::test]
async fn bad_plans_are_refused_with_what_is_wrong() {
    let world = world();
    world.groups();
    let cases = [
        (
            request(json!({"type": "latest"}), json!({"topics": ["refunds"]})),
            "topics [\"refunds\"] do not exist",
        ),
        (
            request(
                json!({"type": "explicit", "offsets": [
                    {"group": "billing", "topic": "payments", "partition": 0, "offset": 101}]}),
                json!({"topics": []}),
            ),
            "payments/0 offset 101 for group billing (the log holds 5..100)",
        ),
        (
            request(
                json!({"type": "explicit", "offsets": [
                    {"group": "billing", "topic": "payments", "partition": 7, "offset": 1}]}),
                json!({"topics": []}),
            ),
            "partitions {\"payments/7\"} do not exist",
        ),
        (
            json!({
                "target": {"bootstrap_servers": "target:9092", "auth": "plaintext"},
                "groups": {"patterns": ["nobody-.*"]},
                "strategy": {"type": "latest"}, "topics": ["payments"],
            }),
            "no consumer group matches",
        ),
    ];
    for (request, expected) in cases {
        let error = world.step("plan", &request).await.unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{error} lacks {expected:?}"
        );
    }
    let used = request(json!({"type": "latest"}), json!({}));
    world.step("plan", &used).await.unwrap();
    let other = request(json!({"type": "earliest"}), json!({}));
    let error = world.step("plan", &other).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("already used by a different request"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failure_mid_apply_is_rolled_back_and_every_group_verified_at_its_snapshot() {
    rolled_back_mid_apply(true).await;
}

#[tokio::test]
async fn without_offset_delete_the_rollback_commits_no_offset_and_says_so() {
    rolled_back_mid_apply(false).await;
}

async fn rolled_back_mid_apply(broker_has_offset_delete: bool) {
    let world = world();
    if !broker_has_offset_delete {
        world.cluster.without_offset_delete();
    }
    world.groups();
    world.cluster.add_group("audit-us", "Empty", &[]);
    world.cluster.commit("audit-us", "payments", 1, 3);
    world
        .cluster
        .fail_commits("audit-eu", "connection reset by peer");
    let mut request = request(json!({"type": "latest"}), json!({}));
    request["groups"]["names"] = json!(["billing", "brand-new"]);
    for step in ["plan", "check-groups", "snapshot"] {
        world.step(step, &request).await.unwrap();
    }
    let error = world.step("apply", &request).await.unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.OffsetResetFailed");
    let message = error.to_string();
    assert!(
        message.contains("1 of 4 groups failed (3 committed): group audit-eu: "),
        "{message}"
    );
    // The others moved before the rollback.
    assert_eq!(world.offsets("billing").await, [(0, 100), (1, 80)]);
    assert_eq!(world.offsets("brand-new").await, [(0, 100), (1, 80)]);

    let rollback = world.step("rollback", &request).await.unwrap();
    assert_eq!(rollback["groups_deleted"], json!(["brand-new"]));
    // audit-us had no offset on partition 0: the new one is taken away again.
    let (removed, kept_empty) = if broker_has_offset_delete {
        ("offsets_deleted", "offsets_committed_as_none")
    } else {
        ("offsets_committed_as_none", "offsets_deleted")
    };
    assert_eq!(rollback[removed], json!(["audit-us payments/0"]));
    assert_eq!(rollback[kept_empty], json!([]));
    let failure = json!({
        "Error": error.error_type(),
        "Cause": json!({"errorType": error.error_type(), "errorMessage": message}).to_string(),
    });
    let outcome = world
        .step_with(
            "verify-rollback",
            &request,
            json!({"failed_step": "ApplyOffsets", "failure": failure, "rollback": rollback}),
        )
        .await
        .unwrap();
    let cause = outcome["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("ApplyOffsets failed: offsets were not applied: 1 of 4 groups failed"),
        "{cause}"
    );
    assert!(cause.contains("group audit-eu: "), "{cause}");
    assert!(
        cause.contains(
            "the 3 groups that existed are back at their offsets from before the reset (verified)"
        ),
        "{cause}"
    );
    assert!(
        cause.contains("[\"brand-new\"], which did not exist before, were deleted"),
        "{cause}"
    );
    assert_eq!(world.offsets("billing").await, [(0, 10), (1, 20)]);
    assert_eq!(world.offsets("audit-eu").await, [(0, 30)]);
    assert_eq!(world.offsets("brand-new").await, []);
    // Invariant 8: audit-us is exactly as before, with no offset on partition 0.
    assert_eq!(world.offsets("audit-us").await, [(1, 3)]);
    let said = if broker_has_offset_delete {
        "offsets committed where groups had none before were deleted (verified): [\"audit-us payments/0\"]"
    } else {
        "the broker has no OffsetDelete, so offset -1 (read as no offset) was committed where groups had none before (verified): [\"audit-us payments/0\"]"
    };
    assert!(cause.contains(said), "{cause}");
}

#[tokio::test]
async fn apply_is_retried_only_when_every_failure_is_transient() {
    let world = world();
    world.groups();
    let request = request(json!({"type": "latest"}), json!({}));
    for step in ["plan", "check-groups", "snapshot"] {
        world.step(step, &request).await.unwrap();
    }
    world
        .cluster
        .fail_commits_transiently("billing", "connection reset by peer");
    let error = world.step("apply", &request).await.unwrap_err();
    assert_eq!(
        error.error_type(),
        "Tidemark.Retryable",
        "the state machine retries it with backoff: {error}"
    );
    world
        .cluster
        .fail_commits("audit-eu", "the group has active members");
    let error = world.step("apply", &request).await.unwrap_err();
    assert_eq!(
        error.error_type(),
        "Tidemark.OffsetResetFailed",
        "one permanent failure goes straight to rollback: {error}"
    );
    assert!(
        error
            .to_string()
            .contains("2 of 2 groups failed (0 committed)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_rollback_with_no_snapshot_changes_nothing_and_says_so() {
    let world = world();
    world.groups();
    let request = request(json!({"type": "latest"}), json!({}));
    world.step("plan", &request).await.unwrap();
    let rollback = world.step("rollback", &request).await.unwrap();
    assert_eq!(rollback["changes_found"], false);
    let outcome = world
        .step_with(
            "verify-rollback",
            &request,
            json!({"failed_step": "ApplyOffsets", "failure": {"Error": "States.Timeout", "Cause": "timed out"}, "rollback": rollback}),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome["cause"],
        "ApplyOffsets failed: timed out (States.Timeout). Rollback: nothing needed undoing (no group had been changed)."
    );
}
