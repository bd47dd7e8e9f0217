//! The backup path end to end on real parts: records produced by an independent client to the
//! broker, delivered by the event-source bridge to the real backup-writer binary running behind
//! the Lambda host, written to the emulated S3 and DynamoDB, and read back both by the
//! spec-derived Python reader and by Tidemark's own.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tidemark_core::checkpoint::Checkpoint;
use tidemark_core::index::IndexStore;
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::segment::SegmentReader;
use tidemark_core::stores::DynamoIndexStore;
use tidemark_tests::fault_proxy::FaultProxy;
use tidemark_tests::live_backup::backed_up_records;
use tidemark_tests::{ChildProcess, LambdaHost, Stack, Storage, unique, wait_for, wait_until};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:backup-writer";

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// One test's own world: a fresh bucket, index table, backup id and topic on the shared stack.
struct Scenario {
    stack: Stack,
    storage: Storage,
    backup_id: String,
    topic: String,
}

impl Scenario {
    async fn new(topic_prefix: &str, partitions: u32, topic_configs: &[&str]) -> Scenario {
        let stack = Stack::from_env();
        let storage = stack.create_storage().await;
        let topic = unique(topic_prefix);
        stack.create_topic(&topic, partitions, topic_configs);
        Scenario {
            stack,
            storage,
            backup_id: unique("backup"),
            topic,
        }
    }

    /// Produces `count` records keyed `k{n}` to partition 0, with `value(n)` as the value.
    fn produce_numbered(&self, count: usize, value: impl Fn(usize) -> Vec<u8>) -> Vec<Value> {
        let records: Vec<Value> = (0..count)
            .map(|n| json!({"key": b64(format!("k{n}").as_bytes()), "value": b64(&value(n))}))
            .collect();
        self.stack.produce(&self.topic, &Value::Array(records))
    }

    /// The topic as an independent consumer reads it: the truth backups are compared against.
    fn consume(&self) -> Vec<Value> {
        self.stack
            .consume_on(&self.stack.kafka_bootstrap, &self.topic)
    }

    /// Starts the real backup-writer for this scenario; `extra_env` adds or overrides variables.
    fn start_writer(&self, extra_env: &[(&str, &str)]) -> LambdaHost {
        let mut env = vec![
            ("TIDEMARK_BUCKET", self.storage.bucket.as_str()),
            ("TIDEMARK_TABLE", self.storage.table.as_str()),
            ("TIDEMARK_BACKUP_ID", self.backup_id.as_str()),
            ("TIDEMARK_PREFIX", "it"),
        ];
        env.extend_from_slice(extra_env);
        self.stack.start_backup_writer(&env, 30)
    }

    fn start_bridge(&self, host: &LambdaHost, function: &str, flags: &[&str]) -> ChildProcess {
        self.stack
            .start_bridge(&host.endpoint, &self.topic, function, flags)
    }

    /// Waits until every partition in `records` is backed up to its last offset.
    fn wait_for_checkpoints(&self, records: &[Value]) {
        let expected = next_offsets(records)
            .into_iter()
            .map(|(partition, next)| (self.topic.clone(), partition, next));
        self.stack
            .wait_for_checkpoints(&self.storage.table, &self.backup_id, expected, 90);
    }

    /// Every segment of this backup, decoded by the spec-derived Python reader.
    fn segments(&self) -> Vec<Value> {
        self.stack
            .read_segments(&self.storage.bucket, &format!("it/{}/", self.backup_id))
    }

    fn index(&self) -> DynamoIndexStore {
        DynamoIndexStore::new(self.storage.dynamodb.clone(), &self.storage.table)
    }

    async fn checkpoint(&self, partition: i32) -> Checkpoint {
        self.index()
            .checkpoint(&self.partition(partition))
            .await
            .unwrap()
            .expect("a checkpoint")
    }

    fn partition(&self, partition: i32) -> PartitionId {
        PartitionId::new(
            BackupId::parse(&self.backup_id).unwrap(),
            self.topic.clone(),
            partition,
        )
    }
}

fn next_offsets(records: &[Value]) -> BTreeMap<i64, i64> {
    let mut next = BTreeMap::new();
    for record in records {
        let entry = next
            .entry(record["partition"].as_i64().unwrap())
            .or_insert(0);
        *entry = (*entry).max(record["offset"].as_i64().unwrap() + 1);
    }
    next
}

fn offsets_of(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|record| record["offset"].as_i64().unwrap())
        .collect()
}

/// Checks the Rust reader agrees with the Python one on every segment, and returns the keys.
async fn check_rust_reader_agrees(storage: &Storage, segments: &[Value]) -> Vec<String> {
    let mut keys = Vec::new();
    for segment in segments {
        let key = segment["key"].as_str().unwrap();
        let bytes = storage.read_object(key).await;
        let records: Vec<_> = SegmentReader::open(bytes.as_slice())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let python_records = segment["records"].as_array().unwrap();
        assert_eq!(records.len(), python_records.len(), "{key}");
        for (ours, theirs) in records.iter().zip(python_records) {
            assert_eq!(json!(ours.offset), theirs["offset"], "{key}");
            assert_eq!(json!(ours.timestamp), theirs["timestamp"], "{key}");
            assert_eq!(
                ours.key.as_deref().map(b64),
                theirs["key"].as_str().map(str::to_owned),
                "{key}"
            );
            assert_eq!(
                ours.value.as_deref().map(b64),
                theirs["value"].as_str().map(str::to_owned),
                "{key}"
            );
        }
        keys.push(key.to_owned());
    }
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_keeps_every_record_byte_for_byte() {
    let scenario = Scenario::new("payments.captured", 2, &[]).await;
    let binary: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..200_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let now = 1_763_732_940_000i64;
    let produced = scenario.stack.produce(
        &scenario.topic,
        &json!([
            {"partition": 0, "key": b64(b"order-1"), "value": b64(br#"{"amount":1250}"#), "timestamp": now,
             "headers": [["dup", b64(b"1")], ["dup", b64(b"2")], ["null-value", null], ["empty", ""], ["dup", b64(b"3")]]},
            {"partition": 0, "key": null, "value": b64(b"null key"), "timestamp": now + 1},
            {"partition": 0, "key": b64(b"tombstone"), "value": null, "timestamp": now + 2},
            {"partition": 0, "key": "", "value": "", "timestamp": now + 3},
            {"partition": 0, "key": b64(&binary), "value": b64(&large), "timestamp": now + 4},
            {"partition": 0, "key": b64(b"late"), "value": b64(b"out-of-order producer timestamp"), "timestamp": now - 3_600_000},
            {"partition": 1, "key": b64(b"k"), "value": b64(b"v"), "timestamp": now, "headers": [["ключ", b64("значение".as_bytes())]]},
            {"partition": 1, "key": b64(b"k"), "value": b64(b"v2"), "timestamp": now + 10},
            {"partition": 1, "key": b64(b"k"), "value": b64(b"v3"), "timestamp": now + 5},
        ]),
    );
    let consumed = scenario.consume();
    assert_eq!(consumed.len(), produced.len());
    assert_eq!(
        consumed[0]["headers"][2],
        json!(["null-value", null]),
        "the broker must keep a null header value"
    );

    let host = scenario.start_writer(&[]);
    let _bridge = scenario.start_bridge(&host, FUNCTION_ARN, &["--batch-size", "3"]);
    scenario.wait_for_checkpoints(&consumed);

    let segments = scenario.segments();
    let mut expected = consumed.clone();
    // The Lambda event shape carries header values as byte arrays, so a null header value
    // arrives (and is stored) as empty: the one documented loss of the event source mapping.
    expected[0]["headers"][2] = json!(["null-value", ""]);
    assert_eq!(
        backed_up_records(&segments),
        expected,
        "segments must hold exactly the consumed records"
    );

    let keys = check_rust_reader_agrees(&scenario.storage, &segments).await;
    assert!(
        keys.len() >= 3,
        "batch size 3 must give several segments per partition: {keys:?}"
    );

    let index = scenario.index();
    for (partition, next) in next_offsets(&consumed) {
        let id = scenario.partition(partition as i32);
        let checkpoint = index.checkpoint(&id).await.unwrap().expect("checkpoint");
        assert_eq!((checkpoint.start_offset, checkpoint.next_offset), (0, next));
        let entries = index.segments(&id).await.unwrap();
        let indexed_keys: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
        let stored_keys: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|key| key.contains(&format!("/partition={partition}/")))
            .collect();
        assert_eq!(
            indexed_keys, stored_keys,
            "index and S3 must name the same segments"
        );
        assert!(
            entries
                .windows(2)
                .all(|pair| pair[0].last_offset + 1 == pair[1].first_offset),
            "segments must chain"
        );
        assert_eq!(
            entries.iter().map(|e| e.record_count as i64).sum::<i64>(),
            next
        );
        assert!(index.gaps(&id).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_append_time_topic_keeps_broker_timestamps() {
    let scenario = Scenario::new("audit.log", 1, &["message.timestamp.type=LogAppendTime"]).await;
    scenario.stack.produce(
        &scenario.topic,
        &json!([{"key": b64(b"a"), "value": b64(b"1"), "timestamp": 1000}, {"key": b64(b"b"), "value": b64(b"2"), "timestamp": 2000}]),
    );
    let consumed = scenario.consume();
    for record in &consumed {
        assert_eq!(
            record["timestamp_type"], "LOG_APPEND_TIME",
            "the broker must apply LogAppendTime: {record}"
        );
        assert!(
            record["timestamp"].as_i64().unwrap() > 2000,
            "the broker's time replaces the producer's: {record}"
        );
    }

    let host = scenario.start_writer(&[]);
    let _bridge = scenario.start_bridge(&host, "backup-writer", &[]);
    scenario.wait_for_checkpoints(&consumed);
    // Whatever type and time the broker reports to a consumer is what the backup holds.
    assert_eq!(backed_up_records(&scenario.segments()), consumed);
}

#[tokio::test(flavor = "multi_thread")]
async fn index_failure_after_segment_write_leaves_checkpoint_and_retry_is_exact() {
    let scenario = Scenario::new("orders", 1, &[]).await;
    let produced = scenario.produce_numbered(20, |n| format!("order {n}").into_bytes());

    // DynamoDB answers every commit transaction as throttled until the proxy is disarmed.
    let proxy = FaultProxy::start(&scenario.stack.aws_endpoint, "TransactWriteItems").await;
    let host = scenario.start_writer(&[("AWS_ENDPOINT_URL_DYNAMODB", proxy.endpoint.as_str())]);
    let bridge = scenario.start_bridge(&host, "backup-writer", &[]);

    // The first batch's segment reaches S3, its commit fails, and the bridge retries it.
    wait_for(
        Duration::from_secs(60),
        || async { proxy.failures() >= 6 && bridge.log().contains("batch failed") },
        || format!("no failing retries seen; bridge log:\n{}", bridge.log()),
    )
    .await;
    let keys_while_failing = scenario.storage.object_keys().await;
    assert_eq!(
        keys_while_failing.len(),
        1,
        "retries of the failing batch must land on one key: {keys_while_failing:?}"
    );
    let index = scenario.index();
    let id = scenario.partition(0);
    assert_eq!(
        index.checkpoint(&id).await.unwrap(),
        None,
        "a failed commit must not move the checkpoint"
    );
    assert_eq!(
        scenario.storage.item_count().await,
        0,
        "a failed commit must write no index entry"
    );

    proxy.disarm();
    scenario.wait_for_checkpoints(&produced);
    assert_eq!(
        offsets_of(&backed_up_records(&scenario.segments())),
        (0..20).collect::<Vec<_>>(),
        "no duplicate and no gap"
    );
    let entries = index.segments(&id).await.unwrap();
    assert_eq!(
        entries.len(),
        scenario.storage.object_keys().await.len(),
        "every stored segment is indexed: no orphan"
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry.key == keys_while_failing[0]),
        "the retried batch reused its segment"
    );
    assert!(index.gaps(&id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_get_a_clear_error_and_write_nothing() {
    let scenario = Scenario::new("unused", 1, &[]).await;
    let host = scenario.start_writer(&[]);
    let client = reqwest::Client::new();
    let fixtures = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (std::fs::read_to_string(format!("{fixtures}/malformed-bad-base64.json")).unwrap(), "Tidemark.InvalidEvent", "records[\"payments.captured-0\"][2] (offset 102): value is not valid base64"),
        (std::fs::read_to_string(format!("{fixtures}/malformed-wrong-partition-key.json")).unwrap(), "Tidemark.InvalidEvent", "records[\"payments.refunded-4\"] holds a record of payments.refunded-3"),
        // A shape error is found while the runtime reads the body, and named by its place.
        (r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":"zero"}]}}"#.to_owned(), "Tidemark.InvalidEvent", "records[\"t-0\"][0].offset: invalid type: string \"zero\", expected i64"),
        // An event source mapping with a schema registry (provisioned mode) delivers decoded
        // values, which are not the record's bytes.
        (r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":0,"timestamp":1,"timestampType":"CREATE_TIME","value":"eyJuIjoxfQ==","valueSchemaMetadata":{"dataFormat":"AVRO","schemaId":"a1b2"},"headers":[]}]}}"#.to_owned(), "Tidemark.InvalidEvent", "records[\"t-0\"][0] (offset 0): the value was decoded by the event source mapping's schema registry (valueSchemaMetadata)"),
    ];
    for (payload, error_type, message) in cases {
        let response = client
            .post(format!(
                "{}/2015-03-31/functions/{FUNCTION_ARN}/invocations",
                host.endpoint
            ))
            .body(payload)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "function errors are HTTP 200 with a marker header"
        );
        assert_eq!(
            response
                .headers()
                .get("x-amz-function-error")
                .map(|v| v.to_str().unwrap()),
            Some("Unhandled")
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["errorType"].as_str().unwrap().contains(error_type),
            "{body}"
        );
        assert!(
            body["errorMessage"].as_str().unwrap().contains(message),
            "expected {message:?} in {body}"
        );
    }
    assert!(
        scenario.storage.object_keys().await.is_empty(),
        "a refused event must write no segment"
    );
    assert_eq!(
        scenario.storage.item_count().await,
        0,
        "a refused event must write no index entry"
    );
}

/// Tombstones reach functions with `"value": null` or with no `value`: both are stored as a
/// null value, and an empty string as an empty value.
#[tokio::test(flavor = "multi_thread")]
async fn both_tombstone_shapes_are_stored_as_tombstones() {
    let scenario = Scenario::new("accounts", 1, &[]).await;
    let host = scenario.start_writer(&[]);
    let topic = &scenario.topic;
    let record = |offset: i64, value: Option<Value>| {
        let mut record = json!({"topic": topic, "partition": 0, "offset": offset, "timestamp": 1_700_000_000_000i64,
            "timestampType": "CREATE_TIME", "key": b64(b"account-7"), "headers": []});
        if let Some(value) = value {
            record["value"] = value;
        }
        record
    };
    let event = json!({"eventSource": "aws:kafka", "records": {format!("{topic}-0"): [
        record(0, Some(Value::Null)),
        record(1, None),
        record(2, Some(json!(""))),
        record(3, Some(json!(b64(b"reopened")))),
    ]}});
    let invocation = host.invoke(FUNCTION_ARN, &event).await;
    assert_eq!(invocation.function_error, None, "{}", invocation.payload);
    let values: Vec<Value> = backed_up_records(&scenario.segments())
        .iter()
        .map(|record| record["value"].clone())
        .collect();
    assert_eq!(
        values,
        vec![Value::Null, Value::Null, json!(""), json!(b64(b"reopened"))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_batches_within_the_record_and_payload_limits() {
    let scenario = Scenario::new("limits", 1, &[]).await;
    // ~600-byte values become ~950 bytes of event JSON each: a 2500-byte payload limit leaves
    // room for two records per event, fewer than the batch size of 4.
    let produced = scenario.produce_numbered(10, |_| vec![b'x'; 600]);

    let host = scenario.start_writer(&[]);
    let _bridge = scenario.start_bridge(
        &host,
        "backup-writer",
        &["--batch-size", "4", "--max-payload-bytes", "2500"],
    );
    scenario.wait_for_checkpoints(&produced);

    // Each segment holds exactly one event's records, so segments show how the bridge batched.
    let segments = scenario.segments();
    let counts: Vec<u64> = segments
        .iter()
        .map(|segment| segment["header"]["record_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 10);
    assert!(
        counts.iter().all(|count| *count <= 2),
        "payload limit exceeded: {counts:?}"
    );
    assert_eq!(
        offsets_of(&backed_up_records(&segments)),
        (0..10).collect::<Vec<_>>(),
        "order kept, nothing lost or repeated"
    );
}

/// A record too large for any invocation stops its partition where it stands, loudly, as the
/// event source mapping does with its default of unlimited retries: everything before it is
/// backed up, nothing after it is, and it is never skipped as if it were a gap.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_no_invocation_can_carry_stops_the_bridge_naming_it_and_skips_nothing() {
    let scenario = Scenario::new("oversized", 1, &[]).await;
    let produced = scenario.produce_numbered(10, |n| vec![b'x'; if n == 5 { 3000 } else { 100 }]);
    let host = scenario.start_writer(&[]);
    let bridge = std::cell::RefCell::new(scenario.start_bridge(
        &host,
        "backup-writer",
        &["--batch-size", "3", "--max-payload-bytes", "2500"],
    ));
    wait_until(
        Duration::from_secs(60),
        || !bridge.borrow_mut().is_running(),
        || format!("the bridge kept running:\n{}", bridge.borrow().log()),
    );
    let log = bridge.borrow().log();
    assert!(
        log.contains(&format!("record {}-0 offset 5 needs a", scenario.topic))
            && log.contains("it can never be delivered"),
        "{log}"
    );
    scenario.wait_for_checkpoints(&produced[..5]);
    let checkpoint = scenario.checkpoint(0).await;
    assert_eq!(
        checkpoint.next_offset, 5,
        "stopped at the record, not past it"
    );
    assert_eq!(
        offsets_of(&backed_up_records(&scenario.segments())),
        (0..5).collect::<Vec<_>>()
    );
    assert!(
        scenario
            .index()
            .gaps(&scenario.partition(0))
            .await
            .unwrap()
            .is_empty()
    );
    // The writer is never called again, so only the snapshotter, which reads the topic's end,
    // can tell: it names the partition and the offset the backup stopped at.
    let mut env = scenario.stack.snapshotter_env(
        &scenario.storage,
        &scenario.backup_id,
        "it",
        &scenario.topic,
    );
    env.push(("TIDEMARK_STALL_AFTER_SECONDS", "1"));
    let snapshotter = scenario.stack.start_offset_snapshotter(&env, 60);
    // Each invocation is a new snapshot; the checkpoint becomes a second old meanwhile.
    let mut stalled = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let invocation = snapshotter.invoke("offset-snapshotter", &json!({})).await;
        assert_eq!(invocation.function_error, None, "{}", invocation.payload);
        stalled = invocation.payload["stalled_partitions"].clone();
        if stalled
            .as_array()
            .is_some_and(|stalled| !stalled.is_empty())
        {
            break;
        }
    }
    assert_eq!(stalled[0]["topic"], scenario.topic.as_str(), "{stalled}");
    assert_eq!(stalled[0]["partition"], 0);
    assert_eq!(stalled[0]["next_offset"], 5);
    assert_eq!(stalled[0]["high_watermark"], 10);
    assert!(
        snapshotter.process.log().contains("\"StalledPartitions\""),
        "the count is published as a metric"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_commits_only_after_success_so_a_restart_loses_nothing() {
    let scenario = Scenario::new("restarts", 1, &[]).await;
    let produced = scenario.produce_numbered(20, |n| format!("v{n}").into_bytes());

    let proxy = FaultProxy::start(&scenario.stack.aws_endpoint, "TransactWriteItems").await;
    let host = scenario.start_writer(&[("AWS_ENDPOINT_URL_DYNAMODB", proxy.endpoint.as_str())]);
    let group = unique("group");
    let flags = ["--group-id", group.as_str(), "--batch-size", "5"];

    // The first batch keeps failing; the bridge is stopped while it retries.
    let mut first_bridge = scenario.start_bridge(&host, "backup-writer", &flags);
    wait_for(
        Duration::from_secs(60),
        || async { proxy.failures() >= 3 },
        || {
            format!(
                "no failing invocations; bridge log:\n{}",
                first_bridge.log()
            )
        },
    )
    .await;
    first_bridge.terminate();

    // A new bridge in the same group resumes from the last committed offset: had the first one
    // committed before the function succeeded, the first batch would now be skipped.
    proxy.disarm();
    let _second_bridge = scenario.start_bridge(&host, "backup-writer", &flags);
    scenario.wait_for_checkpoints(&produced);
    assert_eq!(
        offsets_of(&backed_up_records(&scenario.segments())),
        (0..20).collect::<Vec<_>>()
    );
    let checkpoint = scenario.checkpoint(0).await;
    assert_eq!((checkpoint.start_offset, checkpoint.next_offset), (0, 20));
}

#[tokio::test]
async fn a_recreated_topic_is_refused_by_the_writer_not_mixed_into_the_backup() {
    let scenario = Scenario::new("recreated", 1, &[]).await;
    let stack = &scenario.stack;
    let produced = scenario.produce_numbered(10, |n| format!("first-topic-{n}").into_bytes());
    let host = scenario.start_writer(&[]);
    let mut first_bridge = scenario.start_bridge(&host, FUNCTION_ARN, &[]);
    scenario.wait_for_checkpoints(&produced);
    first_bridge.terminate();
    let keys_before = scenario.storage.object_keys().await;

    stack.python(&[
        "delete-topic",
        "--bootstrap",
        &stack.kafka_bootstrap,
        "--topic",
        &scenario.topic,
    ]);
    stack.create_topic(&scenario.topic, 1, &[]);
    scenario.produce_numbered(3, |n| format!("second-topic-{n}").into_bytes());

    // An event source mapping that starts again from the beginning of the recreated topic hands
    // the writer offsets 0..2, which the backup already holds with other records. The writer
    // refuses every attempt and the bridge stops after its retries.
    let mut bridge = scenario.start_bridge(&host, FUNCTION_ARN, &["--max-retry-attempts", "2"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while bridge.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge kept running:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = bridge.log();
    assert!(log.contains("Tidemark.TopicRecreated"), "{log}");
    assert!(
        log.contains("offset 0 differs from the backed-up record"),
        "{log}"
    );
    assert_eq!(
        scenario.storage.object_keys().await,
        keys_before,
        "nothing of the new topic was written"
    );
    let checkpoint = scenario.checkpoint(0).await;
    assert_eq!(checkpoint.next_offset, 10);
    let values: Vec<Value> = backed_up_records(&scenario.segments())
        .iter()
        .map(|record| record["value"].clone())
        .collect();
    assert_eq!(values.len(), 10);
    assert!(
        values
            .iter()
            .all(|value| value.to_string().contains(&b64(b"first-topic")[..8])),
        "only the first topic's records are in the backup: {values:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bridges_in_one_group_back_up_every_record_across_rebalances() {
    let scenario = Scenario::new("rebalanced", 4, &[]).await;
    let writer = scenario.start_writer(&[]);
    let group = unique("bridge-group");
    let flags = ["--group-id", group.as_str(), "--batch-size", "50"];
    let function = "arn:aws:lambda:us-east-1:000000000000:function:backup-writer";
    let produce = |round: usize| {
        let records: Vec<Value> = (0..400)
            .map(|n| {
                json!({
                    "partition": n % 4,
                    "key": b64(format!("r{round}-{n}").as_bytes()),
                    "value": b64(&[b'v'; 200]),
                })
            })
            .collect();
        scenario
            .stack
            .produce(&scenario.topic, &Value::Array(records))
    };
    let mut first = scenario.start_bridge(&writer, function, &flags);
    let mut produced = produce(0);
    // A second member joins while the first is delivering: the group rebalances, twice more
    // when the second member leaves again.
    let mut second = scenario.start_bridge(&writer, function, &flags);
    produced.extend(produce(1));
    produced.extend(produce(2));
    second.terminate();
    produced.extend(produce(3));
    scenario.wait_for_checkpoints(&produced);
    assert!(
        first.is_running(),
        "the first bridge exited:\n{}",
        first.log()
    );

    let backed_up = backed_up_records(&scenario.segments());
    let mut offsets: Vec<(i64, i64)> = backed_up
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    offsets.dedup();
    let mut expected: Vec<(i64, i64)> = produced
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(
        offsets, expected,
        "every record backed up, none twice per offset"
    );
    let log = writer.process.log();
    assert!(
        !log.contains("Tidemark.InvalidEvent"),
        "a batch with re-read offsets reached the writer:\n{log}"
    );
    for partition in 0..4 {
        let gaps = scenario
            .index()
            .gaps(&scenario.partition(partition))
            .await
            .unwrap();
        assert_eq!(gaps, vec![], "partition {partition}");
    }
}
