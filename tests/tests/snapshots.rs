//! The offset snapshotter, as deployed: the real binary behind the Lambda host, against the
//! real brokers (plaintext, TLS, SCRAM over TLS), S3 and DynamoDB emulated, secrets in the
//! emulated Secrets Manager. Offsets are committed and read back with an independent client.

use serde_json::{Value, json};
use tidemark_core::layout::BackupId;
use tidemark_core::snapshot::{ClusterSnapshot, SnapshotCatalog, SnapshotEntry};
use tidemark_core::stores::DynamoIndexStore;
use tidemark_tests::{LambdaHost, Stack, Storage, free_port, unique};

const FUNCTION: &str = "offset-snapshotter";

struct Scenario {
    stack: Stack,
    storage: Storage,
    backup_id: BackupId,
    /// Unique per test: topics and groups start with it, and the snapshotter only looks at
    /// names that do, so tests running in parallel on one broker do not see each other.
    prefix: String,
}

impl Scenario {
    async fn new() -> Scenario {
        let stack = Stack::from_env();
        let storage = stack.create_storage().await;
        Scenario {
            stack,
            storage,
            backup_id: BackupId::parse(&unique("backup")).unwrap(),
            prefix: unique("snap").replace('-', "_"),
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn group(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// The snapshotter on the plaintext broker; `extra` adds or overrides variables.
    fn start(&self, extra: &[(&str, &str)]) -> LambdaHost {
        let topics = format!("{}\\..*", self.prefix);
        let groups = format!("{}-.*", self.prefix);
        let mut env = vec![
            ("TIDEMARK_BUCKET", self.storage.bucket.as_str()),
            ("TIDEMARK_TABLE", self.storage.table.as_str()),
            ("TIDEMARK_BACKUP_ID", self.backup_id.as_str()),
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                self.stack.kafka_bootstrap.as_str(),
            ),
            ("TIDEMARK_KAFKA_AUTH", "plaintext"),
            ("TIDEMARK_TOPICS_INCLUDE", topics.as_str()),
            ("TIDEMARK_GROUPS_INCLUDE", groups.as_str()),
            ("TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS", "5000"),
        ];
        for (name, value) in extra {
            env.retain(|(existing, _)| existing != name);
            env.push((name, value));
        }
        self.stack.start_offset_snapshotter(&env, 60)
    }

    /// Invokes the snapshotter and returns its response; panics on a function error.
    async fn snapshot(&self, host: &LambdaHost, request: Value) -> Value {
        let invocation = host.invoke(FUNCTION, &request).await;
        assert_eq!(
            invocation.function_error,
            None,
            "snapshotter failed: {}\n{}",
            invocation.payload,
            host.process.log()
        );
        invocation.payload
    }

    /// Invokes the snapshotter expecting a function error; returns its type and message.
    async fn failure(&self, host: &LambdaHost) -> (String, String) {
        let invocation = host.invoke(FUNCTION, &json!({})).await;
        assert_eq!(
            invocation.function_error.as_deref(),
            Some("Unhandled"),
            "{}",
            invocation.payload
        );
        let field = |name: &str| {
            invocation.payload[name]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        (field("errorType"), field("errorMessage"))
    }

    fn catalog(&self) -> DynamoIndexStore {
        DynamoIndexStore::new(self.storage.dynamodb.clone(), &self.storage.table)
    }

    async fn entry_at_or_before(&self, at_ms: i64) -> Option<SnapshotEntry> {
        self.catalog()
            .snapshot_at_or_before(&self.backup_id, at_ms)
            .await
            .unwrap()
    }

    /// The latest snapshot, read through the catalog and S3 as a restore would.
    async fn latest(&self) -> ClusterSnapshot {
        let entry = self
            .entry_at_or_before(i64::MAX)
            .await
            .expect("an indexed snapshot");
        let bytes = self.storage.read_object(&entry.key).await;
        ClusterSnapshot::decode(&bytes, &entry.key).unwrap()
    }

    fn commit(
        &self,
        topic: &str,
        group: &str,
        offsets: &[(i32, i64)],
        bootstrap: &str,
        security: &[&str],
    ) {
        self.stack
            .commit_offsets(bootstrap, topic, group, offsets, security);
    }

    /// A one-partition topic on another broker, through the independent client.
    fn create_topic_on(&self, bootstrap: &str, topic: &str, security: &[&str]) {
        let mut args = vec!["create-topic", "--bootstrap", bootstrap, "--topic", topic];
        args.extend(security);
        self.stack.python(&args);
    }

    fn produce_payments(&self, topic: &str, count: u32, partitions: u32) {
        let count = count.to_string();
        let partitions = partitions.to_string();
        self.stack.python(&[
            "produce-payments",
            "--bootstrap",
            &self.stack.kafka_bootstrap,
            "--topic",
            topic,
            "--count",
            &count,
            "--partitions",
            &partitions,
        ]);
    }

    async fn create_secret(&self, value: &Value) -> String {
        let name = unique("secret");
        let created = self.stack.python(&[
            "create-secret",
            "--endpoint",
            &self.stack.aws_endpoint,
            "--name",
            &name,
            "--value",
            &value.to_string(),
        ]);
        created["arn"].as_str().unwrap().to_owned()
    }
}

fn offsets_of(snapshot: &ClusterSnapshot, group: &str) -> Vec<(String, i32, i64)> {
    snapshot
        .group(group)
        .unwrap_or_else(|| panic!("group {group} missing from the snapshot"))
        .offsets
        .iter()
        .map(|offset| (offset.topic.clone(), offset.partition, offset.offset))
        .collect()
}

#[tokio::test]
async fn committed_offsets_watermarks_and_configs_are_captured_exactly() {
    let scenario = Scenario::new().await;
    let stack = &scenario.stack;
    let payments = scenario.topic("payments");
    let (processor, excluded, live) = (
        scenario.group("processor"),
        scenario.group("scratch"),
        scenario.group("live"),
    );
    stack.create_topic(
        &payments,
        3,
        &[
            "retention.ms=3600000",
            "cleanup.policy=compact",
            "max.message.bytes=2097152",
        ],
    );
    scenario.produce_payments(&payments, 30, 3);
    // An empty group with commits, committed from outside as an operator tool would.
    scenario.commit(
        &payments,
        &processor,
        &[(0, 7), (1, 3), (2, 10)],
        &stack.kafka_bootstrap,
        &[],
    );
    scenario.commit(&payments, &excluded, &[(0, 1)], &stack.kafka_bootstrap, &[]);
    // A group with a live member that never committed.
    let _member = stack.join_group(&payments, &live);

    let host = scenario.start(&[("TIDEMARK_GROUPS_EXCLUDE", ".*-scratch")]);
    let response = scenario.snapshot(&host, json!({})).await;
    assert_eq!(
        response["snapshots"].as_array().unwrap().len(),
        1,
        "{response}"
    );

    let snapshot = scenario.latest().await;
    let ids: Vec<&str> = snapshot
        .groups
        .iter()
        .map(|group| group.group.group_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [live.as_str(), processor.as_str()],
        "include and exclude patterns apply"
    );

    let expected = vec![
        (payments.clone(), 0, 7),
        (payments.clone(), 1, 3),
        (payments.clone(), 2, 10),
    ];
    assert_eq!(offsets_of(&snapshot, &processor), expected);
    let independent = stack.python(&[
        "group-offsets",
        "--bootstrap",
        &stack.kafka_bootstrap,
        "--topic",
        &payments,
        "--group",
        &processor,
        "--partitions",
        "3",
    ]);
    assert_eq!(
        independent,
        json!({"0": 7, "1": 3, "2": 10}),
        "the independent client agrees"
    );
    let processor_group = snapshot.group(&processor).unwrap();
    assert!(processor_group.group.members.is_empty());
    assert_eq!(processor_group.error, None);

    let live_group = snapshot.group(&live).unwrap();
    assert!(
        live_group.offsets.is_empty(),
        "a group without commits has no offsets"
    );
    assert_eq!(live_group.error, None);
    assert_eq!(live_group.group.members.len(), 1, "{live_group:?}");
    assert_eq!(live_group.group.state, "Stable");

    let topic = snapshot.topic(&payments).expect("the backed-up topic");
    assert_eq!(topic.partition_count, 3);
    assert_eq!(topic.generation, 0);
    let produced: i64 = topic
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.low_watermark)
        .sum();
    assert_eq!(produced, 30, "{:?}", topic.partitions);
    let configs: Vec<(&str, Option<&str>)> = topic
        .configs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_deref()))
        .collect();
    assert_eq!(
        configs,
        [
            ("cleanup.policy", Some("compact")),
            ("max.message.bytes", Some("2097152")),
            ("retention.ms", Some("3600000")),
        ],
        "exactly the non-default configs"
    );

    // The stored form is plain zstd-compressed JSON that any tool can read.
    let entry = scenario.entry_at_or_before(i64::MAX).await.unwrap();
    let raw = stack.python(&[
        "read-snapshot",
        "--endpoint",
        &stack.aws_endpoint,
        "--bucket",
        &scenario.storage.bucket,
        "--key",
        &entry.key,
    ]);
    assert_eq!(raw["taken_at_ms"], json!(snapshot.taken_at_ms));
    assert_eq!(raw["groups"].as_array().unwrap().len(), 2);
    assert_eq!(entry.group_count, 2);
    assert_eq!(entry.topic_count, 1);
    assert!(
        host.process.log().contains("\"GroupsCaptured\""),
        "EMF metrics are printed"
    );
}

#[tokio::test]
async fn snapshots_are_found_by_time_at_the_boundaries() {
    let scenario = Scenario::new().await;
    let payments = scenario.topic("payments");
    scenario.stack.create_topic(&payments, 1, &[]);
    scenario.commit(
        &payments,
        &scenario.group("g"),
        &[(0, 0)],
        &scenario.stack.kafka_bootstrap,
        &[],
    );
    let host = scenario.start(&[]);
    let response = scenario
        .snapshot(&host, json!({"samples": 2, "interval_seconds": 1}))
        .await;
    let field = |name: &str| -> Vec<i64> {
        response["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|snapshot| snapshot[name].as_i64().unwrap())
            .collect()
    };
    let (starts, times) = (field("started_at_ms"), field("taken_at_ms"));
    assert_eq!(times.len(), 2, "{response}");
    assert!(
        starts[1] - starts[0] >= 1_000,
        "samples start an interval apart: {starts:?}"
    );
    let (first, second) = (times[0], times[1]);
    assert!(first < second, "{times:?}");

    let at = |t: i64| {
        let scenario = &scenario;
        async move {
            scenario
                .entry_at_or_before(t)
                .await
                .map(|entry| entry.taken_at_ms)
        }
    };
    assert_eq!(at(first - 1).await, None, "before the first snapshot");
    assert_eq!(at(first).await, Some(first), "exactly at a snapshot time");
    assert_eq!(at(second - 1).await, Some(first), "just before the second");
    assert_eq!(at(second).await, Some(second));
    assert_eq!(
        at(second + 86_400_000).await,
        Some(second),
        "after the last"
    );

    // The next invocation measures staleness against the latest snapshot.
    scenario.snapshot(&host, json!({})).await;
    assert!(host.process.log().contains("\"SnapshotStaleness\""));
}

#[tokio::test]
async fn a_deleted_and_recreated_topic_starts_a_new_generation() {
    let scenario = Scenario::new().await;
    let stack = &scenario.stack;
    let payments = scenario.topic("payments");
    stack.create_topic(&payments, 1, &[]);
    scenario.produce_payments(&payments, 20, 1);
    let host = scenario.start(&[]);
    let first = scenario.snapshot(&host, json!({})).await;
    assert_eq!(first["recreations"], json!([]));

    stack.python(&[
        "delete-topic",
        "--bootstrap",
        &stack.kafka_bootstrap,
        "--topic",
        &payments,
    ]);
    stack.create_topic(&payments, 1, &[]);
    scenario.produce_payments(&payments, 2, 1);
    let second = scenario.snapshot(&host, json!({})).await;
    let recreations = second["recreations"].as_array().unwrap();
    assert_eq!(recreations.len(), 1, "{second}");
    assert_eq!(recreations[0]["topic"], json!(payments));
    assert_eq!(recreations[0]["generation"], json!(1));
    // The broker reports topic ids (Metadata v10+): the new id is the first evidence.
    let evidence = recreations[0]["evidence"].as_array().unwrap();
    assert!(
        evidence[0]
            .as_str()
            .unwrap()
            .starts_with("topic id changed from "),
        "{evidence:?}"
    );
    assert_eq!(
        evidence[1],
        json!("partition 0 log end went back from 20 to 2")
    );
    assert!(recreations[0]["topic_id"].is_string(), "{second}");
    assert_eq!(
        scenario.latest().await.topic(&payments).unwrap().generation,
        1
    );
    let recorded = scenario
        .catalog()
        .topic_generations(&scenario.backup_id, &payments)
        .await
        .unwrap();
    // Generation 0's id was recorded at the first snapshot, so the new id is known for new.
    assert_eq!(
        recorded.iter().map(|g| g.generation).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_ne!(recorded[0].topic_id, recorded[1].topic_id);
    assert_eq!(
        recorded[1].topic_id.as_deref(),
        recreations[0]["topic_id"].as_str()
    );

    let third = scenario.snapshot(&host, json!({})).await;
    assert_eq!(
        third["recreations"],
        json!([]),
        "recorded once, not at every sample"
    );
}

#[tokio::test]
async fn tls_with_the_ca_from_secrets_manager_and_a_clear_error_with_the_wrong_ca() {
    let scenario = Scenario::new().await;
    let stack = &scenario.stack;
    let ca = stack.certs_dir.join("ca.pem");
    let ca_arg = ca.to_str().unwrap();
    let payments = scenario.topic("payments");
    let group = scenario.group("processor");
    let tls = ["--ca", ca_arg];
    scenario.create_topic_on(&stack.kafka_tls_bootstrap, &payments, &tls);
    scenario.commit(
        &payments,
        &group,
        &[(0, 0)],
        &stack.kafka_tls_bootstrap,
        &tls,
    );
    let secret = scenario
        .create_secret(&json!({"certificate": std::fs::read_to_string(&ca).unwrap()}))
        .await;

    let host = scenario.start(&[
        (
            "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
            &stack.kafka_tls_bootstrap,
        ),
        ("TIDEMARK_KAFKA_AUTH", "tls"),
        ("TIDEMARK_KAFKA_TLS_CA_SECRET_ARN", &secret),
    ]);
    scenario.snapshot(&host, json!({})).await;
    assert_eq!(
        offsets_of(&scenario.latest().await, &group),
        [(payments.clone(), 0, 0)]
    );

    let other_ca = stack.certs_dir.join("other-ca.pem");
    let wrong = scenario.start(&[
        (
            "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
            &stack.kafka_tls_bootstrap,
        ),
        ("TIDEMARK_KAFKA_AUTH", "tls"),
        ("TIDEMARK_KAFKA_TLS_CA_FILE", other_ca.to_str().unwrap()),
    ]);
    let (error_type, message) = scenario.failure(&wrong).await;
    assert_eq!(error_type, "Tidemark.Failed", "{message}");
    assert!(
        message.contains(&format!("TLS to {} failed", stack.kafka_tls_bootstrap)),
        "{message}"
    );
    assert!(
        message.contains("certificate"),
        "the reason is kept: {message}"
    );
}

/// A password distinctive enough that finding it anywhere means it leaked.
const WRONG_PASSWORD: &str = "wrong-Zq81x-password";

#[tokio::test]
async fn scram_credentials_come_from_secrets_manager_and_a_wrong_password_is_named() {
    let scenario = Scenario::new().await;
    let stack = &scenario.stack;
    let ca = stack.certs_dir.join("ca.pem");
    let payments = scenario.topic("payments");
    let group = scenario.group("processor");
    let (user, password) = (tidemark_tests::SCRAM_USER, tidemark_tests::SCRAM_PASSWORD);
    let scram = [
        "--ca",
        ca.to_str().unwrap(),
        "--username",
        user,
        "--password",
        password,
    ];
    scenario.create_topic_on(&stack.kafka_scram_bootstrap, &payments, &scram);
    scenario.commit(
        &payments,
        &group,
        &[(0, 0)],
        &stack.kafka_scram_bootstrap,
        &scram,
    );
    let good = scenario
        .create_secret(&json!({"username": user, "password": password}))
        .await;
    let bad = scenario
        .create_secret(&json!({"username": user, "password": WRONG_PASSWORD}))
        .await;
    let start = |secret: &str| {
        scenario.start(&[
            // The most an operator would turn on to debug; secrets still stay out.
            ("RUST_LOG", "debug"),
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                &stack.kafka_scram_bootstrap,
            ),
            ("TIDEMARK_KAFKA_AUTH", "sasl-scram-sha-512"),
            ("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", secret),
            ("TIDEMARK_KAFKA_TLS_CA_FILE", ca.to_str().unwrap()),
        ])
    };

    let host = start(&good);
    scenario.snapshot(&host, json!({})).await;
    let log = host.process.log();
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert!(
        !log.contains(password),
        "the password must not reach the logs"
    );
    assert_eq!(
        offsets_of(&scenario.latest().await, &group),
        [(payments.clone(), 0, 0)]
    );

    let host = start(&bad);
    let (error_type, message) = scenario.failure(&host).await;
    assert_eq!(error_type, "Tidemark.Failed", "{message}");
    assert!(
        message.contains(&format!(
            "authentication to {} failed",
            stack.kafka_scram_bootstrap
        )),
        "{message}"
    );
    assert!(
        !message.contains(WRONG_PASSWORD),
        "the password must not appear: {message}"
    );
    let log = host.process.log();
    assert!(!log.contains(WRONG_PASSWORD), "nor in the logs");
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_clear_retryable_error_that_writes_nothing() {
    let scenario = Scenario::new().await;
    let nowhere = format!("127.0.0.1:{}", free_port());
    let host = scenario.start(&[
        ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", &nowhere),
        ("TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS", "2000"),
    ]);
    let (error_type, message) = scenario.failure(&host).await;
    assert_eq!(error_type, "Tidemark.Retryable", "{message}");
    assert!(
        message.contains(&format!("cannot reach broker {nowhere} of {nowhere}")),
        "{message}"
    );
    assert!(
        message.contains("Connection refused"),
        "the broker error is kept: {message}"
    );
    assert!(scenario.storage.object_keys().await.is_empty());
    assert_eq!(scenario.storage.item_count().await, 0);
}
