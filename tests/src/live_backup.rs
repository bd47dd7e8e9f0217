//! A topic under a live backup on real parts, for the end-to-end tests: the real backup-writer
//! behind the Lambda host, fed by the event-source bridge; the real offset-snapshotter; the
//! restore state machines over the real restore binaries. Records are produced and read back
//! with the independent client.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};

use crate::stepfunctions::{Execution, Machines, RestoreFunctions, StateMachine};
use crate::{ChildProcess, LambdaHost, Stack, Storage, unique};

pub const PREFIX: &str = "it";
pub const WRITER: &str = "arn:aws:lambda:us-east-1:000000000000:function:backup-writer";

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
/// A topic under a live backup on the shared stack, with its own bucket, table and backup id.
pub struct Backup {
    pub stack: Stack,
    pub storage: Storage,
    pub backup_id: String,
    pub topic: String,
    pub partitions: u32,
    /// Next offset per partition of everything produced so far.
    pub next_offsets: BTreeMap<i64, i64>,
    pub writer: LambdaHost,
    bridge: ChildProcess,
}

impl Backup {
    pub async fn start(topic_prefix: &str, partitions: u32) -> Backup {
        Self::start_with(topic_prefix, partitions, &[]).await
    }

    /// [`Self::start`] with more writer variables.
    pub async fn start_with(
        topic_prefix: &str,
        partitions: u32,
        writer_env: &[(&str, &str)],
    ) -> Backup {
        Self::start_with_topic(topic_prefix, partitions, &[], writer_env).await
    }

    /// [`Self::start_with`] on a topic created with `topic_configs` (`name=value`).
    pub async fn start_with_topic(
        topic_prefix: &str,
        partitions: u32,
        topic_configs: &[&str],
        writer_env: &[(&str, &str)],
    ) -> Backup {
        let stack = Stack::from_env();
        let topic = unique(topic_prefix);
        stack.create_topic(&topic, partitions, topic_configs);
        Self::start_on(
            stack,
            topic,
            partitions,
            writer_env,
            &["--batch-size", "2000"],
        )
        .await
    }

    /// Starts backing up `topic`, which exists on `stack`'s broker, from its first offset, into
    /// a bucket, table and backup id of its own; `bridge_args` are the bridge's batching flags.
    pub async fn start_on(
        stack: Stack,
        topic: String,
        partitions: u32,
        writer_env: &[(&str, &str)],
        bridge_args: &[&str],
    ) -> Backup {
        let storage = stack.create_storage().await;
        let backup_id = unique("backup");
        let writer = Self::start_writer(&stack, &storage, &backup_id, writer_env);
        let bridge = stack.start_bridge(&writer.endpoint, &topic, WRITER, bridge_args);
        Backup {
            stack,
            storage,
            backup_id,
            topic,
            partitions,
            next_offsets: BTreeMap::new(),
            writer,
            bridge,
        }
    }

    /// The real backup-writer behind a Lambda host, writing backup `backup_id` into `storage`.
    fn start_writer(
        stack: &Stack,
        storage: &Storage,
        backup_id: &str,
        writer_env: &[(&str, &str)],
    ) -> LambdaHost {
        let mut env = vec![
            ("TIDEMARK_BUCKET", storage.bucket.as_str()),
            ("TIDEMARK_TABLE", storage.table.as_str()),
            ("TIDEMARK_BACKUP_ID", backup_id),
            ("TIDEMARK_PREFIX", PREFIX),
        ];
        env.extend_from_slice(writer_env);
        stack.start_backup_writer(&env, 60)
    }

    /// Every record the backup's segments hold, read by the spec-derived Python reader.
    pub fn backed_up_records(&self) -> Vec<Value> {
        backed_up_records(&self.stack.read_segments(
            &self.storage.bucket,
            &format!("{PREFIX}/{}/", self.backup_id),
        ))
    }

    /// Produces `records` with the independent client and waits until the backup holds them.
    pub fn produce_and_back_up(&mut self, records: Vec<Value>) -> Vec<Value> {
        let produced = self.stack.produce(&self.topic, &Value::Array(records));
        self.wait_until_backed_up(&produced);
        produced
    }

    /// Waits until every partition's checkpoint is past the last of `produced` (as the
    /// independent client's produce returned them) and of everything produced before.
    pub fn wait_until_backed_up(&mut self, produced: &[Value]) {
        for record in produced {
            let next = record["offset"].as_i64().unwrap() + 1;
            let entry = self
                .next_offsets
                .entry(record["partition"].as_i64().unwrap())
                .or_default();
            *entry = (*entry).max(next);
        }
        let expected = self
            .next_offsets
            .iter()
            .map(|(partition, next)| (self.topic.clone(), *partition, *next));
        self.stack
            .wait_for_checkpoints(&self.storage.table, &self.backup_id, expected, 120);
    }

    /// Replaces the writer with one given `writer_env` (an upgrade, say), and the bridge with
    /// one that invokes it, in a consumer group of its own.
    pub fn restart_writer(&mut self, writer_env: &[(&str, &str)], bridge_args: &[&str]) {
        self.bridge.terminate();
        self.writer = Self::start_writer(&self.stack, &self.storage, &self.backup_id, writer_env);
        self.bridge =
            self.stack
                .start_bridge(&self.writer.endpoint, &self.topic, WRITER, bridge_args);
    }

    /// Stops the bridge and starts another in a consumer group of its own, which reads the
    /// topic from its first offset: what a new event source mapping does.
    pub fn restart_bridge(&mut self, bridge_args: &[&str]) {
        self.bridge.terminate();
        self.bridge =
            self.stack
                .start_bridge(&self.writer.endpoint, &self.topic, WRITER, bridge_args);
    }

    /// Stops feeding the writer, as a broken event source mapping would.
    pub fn stop_bridge(&mut self) {
        self.bridge.terminate();
    }

    /// Audit records and health records of this backup's table.
    pub fn operations_book(&self) -> tidemark_core::stores::DynamoIndexStore {
        tidemark_core::stores::DynamoIndexStore::new(
            self.storage.dynamodb.clone(),
            &self.storage.table,
        )
    }

    pub fn commit(&self, group: &str, offsets: &[(i32, i64)]) {
        self.stack.commit_offsets(
            &self.stack.kafka_bootstrap,
            &self.topic,
            group,
            offsets,
            &[],
        );
    }

    /// Takes a cluster snapshot with the real offset-snapshotter; returns its time.
    pub async fn snapshot(&self, groups_include: &str) -> i64 {
        self.snapshot_with(groups_include, &[]).await
    }

    /// [`Self::snapshot`] with more snapshotter variables.
    pub async fn snapshot_with(&self, groups_include: &str, more_env: &[(&str, &str)]) -> i64 {
        let mut env =
            self.stack
                .snapshotter_env(&self.storage, &self.backup_id, PREFIX, &self.topic);
        env.push(("TIDEMARK_GROUPS_INCLUDE", groups_include));
        env.extend_from_slice(more_env);
        let host = self.stack.start_offset_snapshotter(&env, 60);
        let invocation = host.invoke("offset-snapshotter", &json!({})).await;
        assert_eq!(invocation.function_error, None, "{}", invocation.payload);
        invocation.payload["snapshots"][0]["taken_at_ms"]
            .as_i64()
            .unwrap()
    }

    /// Restores everything backed up, to now, into `<topic>.restored` with functions given
    /// `env`; the execution must succeed. Returns the target topic and the functions.
    pub async fn restore_all_to_now(
        &self,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (String, RestoreFunctions) {
        let (target, functions, execution) =
            self.try_restore_all_to_now(env, timeout_seconds).await;
        assert_succeeded(&execution, &functions);
        (target, functions)
    }

    /// As [`Self::restore_all_to_now`], for an execution that may fail: returns it too.
    pub async fn try_restore_all_to_now(
        &self,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (String, RestoreFunctions, Execution) {
        let (functions, machine) = self.restore_machine(env, timeout_seconds).await;
        let target = format!("{}.restored", self.topic);
        let execution = machine
            .run(
                &self.request(&target, json!({"mode": "time", "at": now_ms()}), &[]),
                Duration::from_secs(180),
            )
            .await;
        (target, functions, execution)
    }

    /// The restore functions (with `env`) and the restore state machine over them.
    pub async fn restore_machine(
        &self,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (RestoreFunctions, StateMachine) {
        let (functions, machines) = self.restore_machines(env, timeout_seconds).await;
        (functions, machines.restore)
    }

    /// The functions and both state machines (the restore runs the offset reset as a child).
    pub async fn restore_machines(
        &self,
        env: &[(&str, &str)],
        timeout_seconds: u32,
    ) -> (RestoreFunctions, Machines) {
        let functions = self
            .stack
            .start_restore_functions(&self.storage, PREFIX, env, timeout_seconds)
            .await;
        let machines = Machines::create(&self.stack, &functions).await;
        (functions, machines)
    }

    pub fn request(&self, target_topic: &str, cut: Value, groups: &[&str]) -> Value {
        json!({
            "backup_id": self.backup_id,
            "target": {"bootstrap_servers": self.stack.kafka_bootstrap, "auth": "plaintext"},
            "topics": {"mapping": {self.topic.clone(): target_topic}},
            "cut": cut,
            "groups": groups,
            "topic_creation": "create",
        })
    }

    pub fn topic_exists(&self, topic: &str) -> bool {
        let topics =
            self.stack
                .python(&["list-topics", "--bootstrap", &self.stack.kafka_bootstrap]);
        topics.as_array().unwrap().iter().any(|name| name == topic)
    }

    /// A topic as the independent client reads it.
    pub fn consume(&self, topic: &str) -> Vec<Value> {
        self.consume_on(&self.stack.kafka_bootstrap, topic)
    }

    pub fn consume_on(&self, bootstrap: &str, topic: &str) -> Vec<Value> {
        self.stack.consume_on(bootstrap, topic)
    }

    pub fn group_offsets(&self, topic: &str, group: &str) -> BTreeMap<String, i64> {
        self.group_offsets_on(&self.stack.kafka_bootstrap, topic, group)
    }

    pub fn group_offsets_on(
        &self,
        bootstrap: &str,
        topic: &str,
        group: &str,
    ) -> BTreeMap<String, i64> {
        self.stack
            .group_offsets(bootstrap, topic, group, self.partitions)
    }

    pub async fn report(&self, execution: &Execution) -> Value {
        let key = execution.output.as_ref().expect("output")["report_key"]
            .as_str()
            .expect("report key")
            .to_owned();
        self.storage.read_json(&key).await
    }
}

/// The records `segments` hold, in the consumer's JSON shape, sorted by partition and offset
/// (an offset held by two overlapping segments appears twice).
pub fn backed_up_records(segments: &[Value]) -> Vec<Value> {
    let mut records: Vec<Value> = segments
        .iter()
        .flat_map(|segment| {
            let partition = segment["header"]["partition"].clone();
            segment["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |record| {
                    let mut record = record.clone();
                    record["partition"] = partition.clone();
                    record
                })
        })
        .collect();
    records.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    records
}

/// What a consumer sees of a record: everything but where it sits.
pub fn content(record: &Value) -> Value {
    json!({
        "key": record["key"],
        "value": record["value"],
        "headers": record["headers"],
        "timestamp": record["timestamp"],
        "timestamp_type": record["timestamp_type"],
    })
}

pub fn per_partition(records: &[Value]) -> BTreeMap<i64, Vec<Value>> {
    let mut partitions: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for record in records {
        partitions
            .entry(record["partition"].as_i64().unwrap())
            .or_default()
            .push(record.clone());
    }
    for records in partitions.values_mut() {
        records.sort_by_key(|record| record["offset"].as_i64().unwrap());
    }
    partitions
}

pub fn assert_succeeded(execution: &Execution, functions: &RestoreFunctions) {
    assert_eq!(
        execution.status,
        ExecutionStatus::Succeeded,
        "{}\n{}",
        execution.describe(),
        functions.host.process.log()
    );
}
