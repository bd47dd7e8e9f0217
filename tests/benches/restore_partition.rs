//! Restore throughput of one partition into the local broker, against producing the same
//! records straight from memory with the same idempotent producer settings, in the same run;
//! the engine again with S3-like first-byte latency on every segment read, fetching one
//! segment at a time and prefetching; and the real restore-partition binary (segments in the
//! emulated S3) with its peak RSS.
//!
//! Needs the local stack (`local/up.sh`). Run:
//!   source local/env.sh && local/up.sh && \
//!   cargo bench -p tidemark-tests --bench restore_partition -- [RECORDS]

use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::keys::{MemoryKeyService, SegmentKeys};

use restore::partition::target::{KafkaTargetWriter, TargetWriter};
use restore::partition::{Pacing, PartitionRequest, restore_partition};
use restore::plan::PartitionTask;
use serde_json::json;
use tidemark_core::index::{IndexStore, SegmentCommit, SegmentEntry};
use tidemark_core::kafka::KafkaConnection;
use tidemark_core::layout::{BackupId, PartitionId, RestoreId, StorageLayout};
use tidemark_core::object_store::ObjectStore;
use tidemark_core::segment::{EncodedSegment, Header, Record, SegmentEncoder, TimestampType};
use tidemark_core::stores::BackupStores;
use tidemark_core::stores::{DynamoIndexStore, MemoryIndexStore, MemoryObjectStore, S3ObjectStore};
use tidemark_tests::stepfunctions::whole_partition_task;
use tidemark_tests::{Stack, unique};

const RUNS: usize = 3;
/// Records per segment: about what one 6 MB event source mapping batch carries.
const SEGMENT_RECORDS: usize = 9_000;
const TOPIC: &str = "payments.captured";
/// First-byte latency of one GET of a small object from S3 in the same region, roughly.
const GET_LATENCY: Duration = Duration::from_millis(30);

/// An object store whose reads wait `latency` first, as S3's do.
struct Latent {
    inner: Arc<dyn ObjectStore>,
    latency: Duration,
}

#[async_trait::async_trait]
impl ObjectStore for Latent {
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: bytes::Bytes,
        metadata: &tidemark_core::object_store::ObjectMetadata,
        tags: &tidemark_core::object_store::ObjectTags,
    ) -> tidemark_core::Result<tidemark_core::object_store::PutOutcome> {
        self.inner
            .put_tagged_if_absent(key, body, metadata, tags)
            .await
    }

    async fn get(&self, key: &str) -> tidemark_core::Result<Option<bytes::Bytes>> {
        tokio::time::sleep(self.latency).await;
        self.inner.get(key).await
    }

    async fn delete(&self, key: &str) -> tidemark_core::Result<()> {
        self.inner.delete(key).await
    }

    async fn list_objects(
        &self,
        prefix: &str,
    ) -> tidemark_core::Result<Vec<tidemark_core::object_store::ObjectInfo>> {
        self.inner.list_objects(prefix).await
    }

    async fn list_prefixes(&self, prefix: &str) -> tidemark_core::Result<Vec<String>> {
        self.inner.list_prefixes(prefix).await
    }

    async fn retention(
        &self,
        key: &str,
    ) -> tidemark_core::Result<Option<tidemark_core::object_store::ObjectRetention>> {
        self.inner.retention(key).await
    }

    async fn delete_all_versions(&self, key: &str) -> tidemark_core::Result<usize> {
        self.inner.delete_all_versions(key).await
    }
}

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .map_or(200_000, |arg| arg.parse().expect("RECORDS"));
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(records));
}

/// Payment-like records of ~365 bytes of key, value and headers.
fn payments(count: usize) -> Vec<Record> {
    (0..count)
        .map(|n| {
            let value = format!(
                "{{\"event\":\"payment.captured\",\"order_id\":\"order-{:06}\",\"payment_id\":\"pay_{:016x}\",\
                 \"amount_minor\":{},\"currency\":\"EUR\",\"merchant\":\"m-{:03}\",\
                 \"card\":{{\"brand\":\"visa\",\"last4\":\"{:04}\"}},\"captured_at\":{},\"sequence\":{n},\
                 \"note\":\"{}\"}}",
                n % 1_000_000,
                (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                100 + n % 50_000,
                n % 500,
                n % 10_000,
                1_795_000_000_000u64 + n as u64,
                "x".repeat(64 + n % 32)
            );
            Record {
                offset: n as i64,
                timestamp: 1_795_000_000_000 + n as i64,
                timestamp_type: TimestampType::CreateTime,
                key: Some(format!("order-{:06}", n % 1_000_000).into_bytes()),
                value: Some(value.into_bytes()),
                headers: vec![
                    Header { key: "trace-id".into(), value: Some(format!("{:016x}", n * 7919).into_bytes()) },
                    Header { key: "source".into(), value: Some(b"checkout".to_vec()) },
                ],
            }
        })
        .collect()
}

fn record_bytes(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| {
            r.key.as_ref().map_or(0, Vec::len)
                + r.value.as_ref().map_or(0, Vec::len)
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
        })
        .sum()
}

fn segments(records: &[Record]) -> Vec<EncodedSegment> {
    records
        .chunks(SEGMENT_RECORDS)
        .map(|chunk| {
            let mut encoder = SegmentEncoder::new(TOPIC, 0, 3).unwrap();
            for record in chunk {
                encoder.push(record).unwrap();
            }
            encoder.finish().unwrap()
        })
        .collect()
}

async fn store(
    segments: &[EncodedSegment],
    objects: &dyn ObjectStore,
    index: &dyn IndexStore,
    layout: &StorageLayout,
    partition: &PartitionId,
) {
    for segment in segments {
        let key = layout.segment_key(
            partition,
            segment.header.first_offset,
            segment.header.last_offset,
        );
        objects
            .put_if_absent(&key, segment.bytes.clone(), &Default::default())
            .await
            .unwrap();
        let entry = SegmentEntry::new(key, &segment.header, segment.bytes.len() as u64, 0);
        index
            .commit_segment(SegmentCommit {
                partition,
                segment: &entry,
                gap: None,
                filled_gaps: &[],
                remaining_gaps: &[],
                expected: None,
                new: None,
            })
            .await
            .unwrap();
    }
}

fn task(target_topic: &str, records: usize) -> PartitionTask {
    whole_partition_task(TOPIC, target_topic, 0, records)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

async fn run(count: usize) {
    let stack = Stack::from_env();
    let records = payments(count);
    let megabytes = record_bytes(&records) as f64 / 1e6;
    let encoded = segments(&records);
    let stored: usize = encoded.iter().map(|segment| segment.bytes.len()).sum();
    println!(
        "records={count} record_bytes={megabytes:.1} MB segments={} stored={:.1} MB runs={RUNS} (median)",
        encoded.len(),
        stored as f64 / 1e6
    );

    let backup_id = BackupId::parse("bench").unwrap();
    let layout = StorageLayout::new("bench").unwrap();
    let partition = PartitionId::new(backup_id.clone(), TOPIC, 0);
    let memory_index = Arc::new(MemoryIndexStore::new());
    let memory = BackupStores {
        objects: Arc::new(MemoryObjectStore::new()),
        index: memory_index.clone(),
        catalog: memory_index.clone(),
        operations: memory_index,
        layout: layout.clone(),
        bucket: "bench".into(),
        keys: Arc::new(SegmentKeys::new(
            Arc::new(MemoryKeyService::default()),
            None,
        )),
    };
    store(
        &encoded,
        memory.objects.as_ref(),
        memory.index.as_ref(),
        &layout,
        &partition,
    )
    .await;
    let writer =
        KafkaTargetWriter::connect(KafkaConnection::plaintext(stack.kafka_bootstrap.clone()), 0)
            .unwrap();
    let pacing = Pacing::default();

    let latent = BackupStores {
        objects: Arc::new(Latent {
            inner: memory.objects.clone(),
            latency: GET_LATENCY,
        }),
        ..memory.clone()
    };
    let one_at_a_time = Pacing {
        prefetch_segments: 0,
        ..pacing
    };

    let mut baseline = Vec::new();
    let mut engine = Vec::new();
    let mut latent_serial = Vec::new();
    let mut latent_prefetch = Vec::new();
    for _ in 0..RUNS {
        let topic = unique("bench-produce");
        stack.create_topic(&topic, 1, &[]);
        let started = Instant::now();
        for batch in records.chunks(pacing.batch_records) {
            writer.send(&topic, 0, batch).await.unwrap();
        }
        writer.flush().await.unwrap();
        baseline.push(started.elapsed());
        assert_eq!(writer.end_offset(&topic, 0).await.unwrap(), count as i64);

        let topic = unique("bench-restore");
        stack.create_topic(&topic, 1, &[]);
        let restore_id = RestoreId::parse(&unique("r")).unwrap();
        let started = Instant::now();
        let report = restore_partition(
            &memory,
            &writer,
            &backup_id,
            &restore_id,
            &task(&topic, count),
            i64::MAX,
            pacing,
        )
        .await
        .unwrap();
        engine.push(started.elapsed());
        assert!(report.done && report.produced == count as u64);

        for (setting, times) in [
            (one_at_a_time, &mut latent_serial),
            (pacing, &mut latent_prefetch),
        ] {
            let topic = unique("bench-latent");
            stack.create_topic(&topic, 1, &[]);
            let restore_id = RestoreId::parse(&unique("r")).unwrap();
            let started = Instant::now();
            let report = restore_partition(
                &latent,
                &writer,
                &backup_id,
                &restore_id,
                &task(&topic, count),
                i64::MAX,
                setting,
            )
            .await
            .unwrap();
            times.push(started.elapsed());
            assert!(report.done && report.produced == count as u64);
        }
    }

    // The real binary, reading the segments from the emulated S3 and DynamoDB.
    let storage = stack.create_storage().await;
    let s3 = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let dynamodb = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    store(&encoded, &s3, &dynamodb, &layout, &partition).await;
    let functions = stack
        .start_restore_functions(&storage, "bench", &[], 900)
        .await;
    let mut binary = Vec::new();
    for _ in 0..RUNS {
        let topic = unique("bench-binary");
        stack.create_topic(&topic, 1, &[]);
        let request = PartitionRequest {
            restore_id: unique("r"),
            backup_id: "bench".into(),
            target: serde_json::from_value(
                json!({"bootstrap_servers": stack.kafka_bootstrap, "auth": "plaintext"}),
            )
            .unwrap(),
            task: task(&topic, count),
        };
        let started = Instant::now();
        let invocation = functions
            .host
            .invoke(
                &functions.partition,
                &serde_json::to_value(&request).unwrap(),
            )
            .await;
        binary.push(started.elapsed());
        assert_eq!(invocation.function_error, None, "{}", invocation.payload);
        assert_eq!(invocation.payload["produced"], count);
    }
    let peak_rss = functions.host.function_peak_rss_kib("restore-partition");

    let baseline = median(baseline);
    let engine = median(engine);
    let binary = median(binary);
    let latent_serial = median(latent_serial);
    let latent_prefetch = median(latent_prefetch);
    let rate = |elapsed: Duration| megabytes / elapsed.as_secs_f64();
    println!("| path | median | MB/s of record bytes | vs producing from memory |");
    println!("|---|---|---|---|");
    println!(
        "| produce from memory (baseline) | {baseline:.2?} | {:.1} | 1.00× |",
        rate(baseline)
    );
    println!(
        "| restore engine, segments in memory | {engine:.2?} | {:.1} | {:.2}× |",
        rate(engine),
        baseline.as_secs_f64() / engine.as_secs_f64()
    );
    let latency_ms = GET_LATENCY.as_millis();
    println!(
        "| restore engine, {latency_ms} ms per segment GET, one segment at a time | {latent_serial:.2?} | {:.1} | {:.2}× |",
        rate(latent_serial),
        baseline.as_secs_f64() / latent_serial.as_secs_f64()
    );
    println!(
        "| restore engine, {latency_ms} ms per segment GET, {} segments prefetched | {latent_prefetch:.2?} | {:.1} | {:.2}× |",
        pacing.prefetch_segments,
        rate(latent_prefetch),
        baseline.as_secs_f64() / latent_prefetch.as_secs_f64()
    );
    println!(
        "| restore-partition binary, segments in emulated S3 | {binary:.2?} | {:.1} | {:.2}× |",
        rate(binary),
        baseline.as_secs_f64() / binary.as_secs_f64()
    );
    println!(
        "peak RSS of the restore-partition process: {:.1} MiB",
        peak_rss as f64 / 1024.0
    );
}
