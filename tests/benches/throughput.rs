//! Throughput of the whole backup and restore paths on one data set, each against its limit
//! measured in the same run: raw consume for backup, produce from memory for restore.
//!
//! Needs a freshly started local stack, release binaries and `TIDEMARK_FAST_S3` naming the
//! `benches/fast-s3` binary; `local/bench.sh` does all three and publishes the results. By hand:
//!   cargo bench -p tidemark-tests --bench throughput -- [MEGABYTES] [SEED] --json FILE
//! `--only-backup` stops after the backup paths (produce, raw consume, bridge, backup end to
//! end) and writes no results: for profiling the backup side without the restores.
//!
//! The data set: MEGABYTES (default 1000) of payment records (~365 bytes of key, value and two
//! headers) generated from SEED over 4 partitions. Every figure is MB/s of record bytes
//! (keys, values, header names and values; MB = 10^6 bytes). Each path also records where the
//! machine's core-seconds went meanwhile: the emulator, the broker, the bench itself and
//! everything else (Tidemark's processes), with steal; the stack's pid files name the first two.
//! The restore-partition binary and its baseline, a few seconds each, run three times,
//! interleaved, and their medians are compared.
//!
//! The emulator serves S3 from one Python process on the same cores. The backup paths, the
//! restore-partition binary and the storage calls alone are measured again with S3 on s3s-fs
//! ([`FastS3`], files on local disk; DynamoDB stays emulated), to show how much of their time
//! is the emulator's. The restore state machine is not: its map reads the plan through the
//! emulated Step Functions' own S3.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use restore::partition::PartitionRequest;
use restore::partition::target::{KafkaTargetWriter, TargetWriter};
use serde_json::{Value, json};
use tidemark_core::index::{IndexStore, SegmentEntry, record_segment};
use tidemark_core::kafka::{ClusterReader, KafkaCluster, KafkaConnection, TopicPartition};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::object_store::{ObjectInfo, ObjectStore, segment_metadata};
use tidemark_core::sample::Payments;
use tidemark_core::segment::{Record, SegmentHeader, verify_stored_segment};
use tidemark_core::stores::{DynamoIndexStore, S3ObjectStore};
use tidemark_tests::fast_s3::FastS3;
use tidemark_tests::measure::{
    CpuSample, children_running, peak_rss_kib, process_cpu_seconds, run_facts, stack_server_pid,
};
use tidemark_tests::stepfunctions::{Machines, whole_partition_task};
use tidemark_tests::{ChildProcess, Stack, Storage, bench_args, unique, write_bench_json};

const PARTITIONS: i32 = 4;
const PREFIX: &str = "bench";
/// Records per produce call, as the restore sends them.
const PRODUCE_BATCH: usize = 5_000;
/// How often progress is read while a path runs (checkpoints, committed offsets).
const POLL: Duration = Duration::from_millis(50);
const LIMIT: Duration = Duration::from_secs(600);
/// Runs of each short path: the restore-partition binary and its baseline take a few seconds
/// each, and a single run of each was decided by the VM's jitter (0.63x to 1.14x of the same
/// binaries). Their medians are compared.
const SHORT_PATH_RUNS: usize = 3;

struct DataSet {
    topic: String,
    partitions: Vec<Vec<Record>>,
    /// Record bytes per partition.
    bytes: Vec<u64>,
}

impl DataSet {
    fn generate(megabytes: u64, seed: u64) -> DataSet {
        let mut payments = Payments::new(seed);
        let mut partitions = vec![Vec::new(); PARTITIONS as usize];
        let mut bytes = vec![0u64; PARTITIONS as usize];
        let mut total = 0;
        let mut n = 0i64;
        while total < megabytes * 1_000_000 {
            let partition = (n % i64::from(PARTITIONS)) as usize;
            let mut record = payments.record(n);
            record.offset = partitions[partition].len() as i64;
            let size = record.payload_len() as u64;
            bytes[partition] += size;
            total += size;
            partitions[partition].push(record);
            n += 1;
        }
        DataSet {
            topic: unique("payments.captured"),
            partitions,
            bytes,
        }
    }

    fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    fn records(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    fn end_offsets(&self) -> Vec<i64> {
        self.partitions.iter().map(|p| p.len() as i64).collect()
    }
}

/// One measured path.
#[derive(Debug, Clone)]
struct Measured {
    seconds: f64,
    bytes: u64,
    peak_rss_kib: BTreeMap<&'static str, u64>,
    /// Of `seconds`, the time until the first record arrived (process start, group join).
    startup_seconds: Option<f64>,
    /// Where the machine's core-seconds went meanwhile ([`CpuSample::since`]).
    cpu_core_seconds: Value,
    /// A restore-partition invocation's own account: how long it waited for the backup's
    /// records and for the target's acknowledgements.
    waited: Option<Value>,
    /// For the median of several runs ([`median_run`]): every run's rate, in run order.
    runs_mb_per_s: Option<Vec<f64>>,
    /// For a state machine: seconds in each state it entered once, in order.
    seconds_by_state: Option<Vec<(String, f64)>>,
}

/// The wall clock and the CPU account of one path, started together.
struct Clock {
    started: Instant,
    cpu: CpuSample,
}

impl Clock {
    fn start() -> Self {
        Clock {
            cpu: CpuSample::take(accounted_apart()),
            started: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The path's measurement: `bytes` over the time since the start, and where the CPU went.
    fn stop(&self, bytes: u64) -> Measured {
        let seconds = self.started.elapsed().as_secs_f64();
        Measured {
            seconds,
            bytes,
            peak_rss_kib: BTreeMap::new(),
            startup_seconds: None,
            cpu_core_seconds: CpuSample::take(accounted_apart()).since(&self.cpu, seconds),
            waited: None,
            runs_mb_per_s: None,
            seconds_by_state: None,
        }
    }
}

/// The processes whose CPU every path accounts apart from Tidemark's: the emulated AWS, the
/// faster S3 store, the broker, and the bench itself (its producers, consumer and instant
/// function). Set once, before the first path.
static ACCOUNTED_APART: OnceLock<Vec<(&'static str, u32)>> = OnceLock::new();

fn account_apart(fast_s3: &FastS3) {
    let processes = vec![
        ("emulator", stack_server_pid("moto")),
        ("fast_s3", fast_s3.process.id()),
        ("broker", stack_server_pid("kafka")),
        ("bench", std::process::id()),
    ];
    assert!(ACCOUNTED_APART.set(processes).is_ok(), "set once");
}

fn accounted_apart() -> &'static [(&'static str, u32)] {
    ACCOUNTED_APART
        .get()
        .expect("the processes to account apart are named before the first path")
}

impl Measured {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }

    fn json(&self) -> Value {
        json!({
            "seconds": self.seconds,
            "record_bytes": self.bytes,
            "mb_per_s": self.mb_per_s(),
            "startup_seconds": self.startup_seconds,
            "cpu_core_seconds": self.cpu_core_seconds,
            "waited": self.waited,
            "runs_mb_per_s": self.runs_mb_per_s,
            "seconds_by_state": self.seconds_by_state.as_ref().map(|states| {
                states.iter()
                    .map(|(state, seconds)| json!({"state": state, "seconds": seconds}))
                    .collect::<Vec<_>>()
            }),
            "peak_rss_mib": self.peak_rss_kib.iter()
                .map(|(process, kib)| (process.to_string(), json!(*kib as f64 / 1024.0)))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn main() {
    let (numbers, json_path) = bench_args();
    let megabytes = numbers.first().copied().unwrap_or(1000) as u64;
    let seed = numbers.get(1).copied().unwrap_or(1) as u64;
    let only_backup = std::env::args().any(|arg| arg == "--only-backup");
    assert!(
        !(only_backup && json_path.is_some()),
        "--only-backup measures part of the paths: it writes no results"
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(megabytes, seed, json_path, only_backup));
}

async fn run(megabytes: u64, seed: u64, json_path: Option<String>, only_backup: bool) {
    // The commit and tree as the binaries were built, before a run of many minutes.
    let facts = run_facts();
    let stack = Stack::from_env();
    let fast_s3 = FastS3::start();
    account_apart(&fast_s3);
    let started = Instant::now();
    let data = DataSet::generate(megabytes, seed);
    eprintln!(
        "data set: {} records, {:.1} MB of record bytes, {PARTITIONS} partitions, seed {seed} ({:.1?})",
        data.records(),
        data.total_bytes() as f64 / 1e6,
        started.elapsed()
    );
    stack.create_topic(&data.topic, PARTITIONS as u32, &[]);

    let produce_all = produce_from_memory(&stack, &data, &data.topic, PARTITIONS).await;
    report(
        "produce from memory, 4 partitions (loads the source topic)",
        &produce_all,
    );
    let consume = raw_consume(&stack, &data).await;
    report("raw consume", &consume);
    let bridge_alone = bridge_with_instant_function(&stack, &data).await;
    report("bridge alone, instant function", &bridge_alone);
    let storage = stack.create_storage().await;
    let backup_id = unique("bench");
    let (backup, backup_scaled, stored_bytes) =
        both_backups(&stack, &data, &storage, &backup_id, &[], "").await;
    if only_backup {
        return;
    }
    // Interleaved, so a slow spell of the machine falls on both.
    let (mut produce_runs, mut restore_runs) = (Vec::new(), Vec::new());
    for _ in 0..SHORT_PATH_RUNS {
        produce_runs
            .push(produce_from_memory(&stack, &data, &unique("bench-produce-one"), 1).await);
        restore_runs.push(restore_partition_binary(&stack, &data, &storage, &backup_id, &[]).await);
    }
    let produce_one = median_run(produce_runs);
    report("produce from memory, 1 partition", &produce_one);
    let restore_one = median_run(restore_runs);
    report("restore-partition binary, 1 partition", &restore_one);
    let restore_all = restore_state_machine(&stack, &data, &storage, &backup_id).await;
    report("restore state machine, 4 partitions", &restore_all);
    let (emulator_reads, emulator_writes) =
        storage_alone(&storage, &backup_id, data.total_bytes()).await;
    report("emulator alone: read every segment", &emulator_reads);
    report(
        "emulator alone: store every segment as the writer does",
        &emulator_writes,
    );

    // Again with S3 on s3s-fs: the same paths, the same data set, another bucket.
    let fast_storage = fast_s3.create_storage(&stack).await;
    let fast_env = [fast_s3.function_env()];
    let fast_backup_id = unique("bench-fast");
    // Batches close by size or by the batching window, so the segments (and the stored
    // bytes) can differ from the first backup's by a few boundaries.
    let (backup_fast, backup_fast_scaled, _) = both_backups(
        &stack,
        &data,
        &fast_storage,
        &fast_backup_id,
        &fast_env,
        ", S3 on s3s-fs",
    )
    .await;
    let mut restore_fast_runs = Vec::new();
    for _ in 0..SHORT_PATH_RUNS {
        restore_fast_runs.push(
            restore_partition_binary(&stack, &data, &fast_storage, &fast_backup_id, &fast_env)
                .await,
        );
    }
    let restore_one_fast = median_run(restore_fast_runs);
    report(
        "restore-partition binary, 1 partition, S3 on s3s-fs",
        &restore_one_fast,
    );
    let (fast_reads, fast_writes) =
        storage_alone(&fast_storage, &fast_backup_id, data.total_bytes()).await;
    report("s3s-fs alone: read every segment", &fast_reads);
    report(
        "s3s-fs and emulated DynamoDB alone: store every segment",
        &fast_writes,
    );

    let compression = data.total_bytes() as f64 / stored_bytes as f64;
    let ratio = |path: &Measured, baseline: &Measured| path.mb_per_s() / baseline.mb_per_s();
    let results = json!({
        "run": facts,
        "data_set": {
            "records": data.records(),
            "record_bytes": data.total_bytes(),
            "partitions": PARTITIONS,
            "seed": seed,
            "average_record_bytes": data.total_bytes() as f64 / data.records() as f64,
        },
        "paths": {
            "raw_consume": consume.json(),
            "bridge_instant_function": bridge_alone.json(),
            "backup_end_to_end": backup.json(),
            "backup_end_to_end_poller_per_partition": backup_scaled.json(),
            "produce_from_memory_4_partitions": produce_all.json(),
            "restore_state_machine": restore_all.json(),
            "produce_from_memory_1_partition": produce_one.json(),
            "restore_partition_binary": restore_one.json(),
            "emulator_reads_alone": emulator_reads.json(),
            "emulator_writes_alone": emulator_writes.json(),
            "backup_end_to_end_fast_s3": backup_fast.json(),
            "backup_end_to_end_poller_per_partition_fast_s3": backup_fast_scaled.json(),
            "restore_partition_binary_fast_s3": restore_one_fast.json(),
            "fast_s3_reads_alone": fast_reads.json(),
            "fast_s3_writes_alone": fast_writes.json(),
        },
        "stored_bytes": stored_bytes,
        "compression_ratio": compression,
        "ratios": {
            "backup_vs_raw_consume": ratio(&backup, &consume),
            "backup_poller_per_partition_vs_raw_consume": ratio(&backup_scaled, &consume),
            "bridge_vs_raw_consume": ratio(&bridge_alone, &consume),
            "restore_state_machine_vs_produce": ratio(&restore_all, &produce_all),
            "restore_partition_vs_produce": ratio(&restore_one, &produce_one),
            "emulator_writes_vs_raw_consume": ratio(&emulator_writes, &consume),
            "backup_fast_s3_vs_raw_consume": ratio(&backup_fast, &consume),
            "backup_poller_per_partition_fast_s3_vs_raw_consume": ratio(&backup_fast_scaled, &consume),
            "restore_partition_fast_s3_vs_produce": ratio(&restore_one_fast, &produce_one),
            "fast_s3_writes_vs_raw_consume": ratio(&fast_writes, &consume),
        },
    });
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    write_bench_json(json_path, &results);
}

fn report(name: &str, measured: &Measured) {
    let runs = measured
        .runs_mb_per_s
        .as_ref()
        .map(|runs| format!(" (median of {runs:.1?} MB/s)"))
        .unwrap_or_default();
    let states = measured
        .seconds_by_state
        .as_ref()
        .map(|states| format!(", seconds by state {states:.2?}"))
        .unwrap_or_default();
    eprintln!(
        "{name}: {:.2} s (startup {:?} s), {:.1} MB/s{runs}, peak RSS {:?} KiB, core-seconds {}{states}",
        measured.seconds,
        measured.startup_seconds,
        measured.mb_per_s(),
        measured.peak_rss_kib,
        measured.cpu_core_seconds
    );
}

/// The median run by time, with every run's rate and the highest peak RSS of them all.
fn median_run(mut runs: Vec<Measured>) -> Measured {
    let rates = runs.iter().map(Measured::mb_per_s).collect();
    let mut peaks = BTreeMap::new();
    for run in &runs {
        for (process, kib) in &run.peak_rss_kib {
            let peak = peaks.entry(*process).or_insert(0);
            *peak = (*peak).max(*kib);
        }
    }
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mut median = runs.swap_remove(runs.len() / 2);
    median.runs_mb_per_s = Some(rates);
    median.peak_rss_kib = peaks;
    median
}

/// The restore's own producer (idempotent, `acks=all`, its batching), fed from memory: one
/// producer per partition, all at once, as one restore-partition function per partition is.
async fn produce_from_memory(
    stack: &Stack,
    data: &DataSet,
    topic: &str,
    partitions: i32,
) -> Measured {
    if topic != data.topic {
        stack.create_topic(topic, partitions as u32, &[]);
    }
    let writers: Vec<KafkaTargetWriter> = (0..partitions)
        .map(|_| {
            KafkaTargetWriter::connect(KafkaConnection::plaintext(stack.kafka_bootstrap.clone()), 0)
                .unwrap()
        })
        .collect();
    // As a restore does before it produces: reading the partition's end also connects the
    // producer, which then asks for its producer id on the metadata answer rather than at
    // librdkafka's 500 ms retry (benches/results/2026-12-06-restore-producer-id-order.txt).
    for (partition, writer) in writers.iter().enumerate() {
        writer.end_offset(topic, partition as i32).await.unwrap();
    }
    let clock = Clock::start();
    futures::future::join_all(writers.iter().enumerate().map(|(partition, writer)| {
        let records = &data.partitions[partition];
        async move {
            for batch in records.chunks(PRODUCE_BATCH) {
                writer.send(topic, partition as i32, batch).await.unwrap();
            }
            writer.flush().await.unwrap();
        }
    }))
    .await;
    let measured = clock.stop(data.bytes[..partitions as usize].iter().sum());
    for (partition, writer) in writers.iter().enumerate() {
        assert_eq!(
            writer.end_offset(topic, partition as i32).await.unwrap(),
            data.partitions[partition].len() as i64,
            "every record produced"
        );
    }
    measured
}

/// librdkafka reading every partition from the start with the bridge's consumer settings,
/// doing nothing with the records but count their bytes: the limit of any backup.
async fn raw_consume(stack: &Stack, data: &DataSet) -> Measured {
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = data.topic.clone();
    let ends = data.end_offsets();
    let measured = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique("raw-consume"))
            .set("enable.auto.commit", "false")
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .unwrap();
        }
        let clock = Clock::start();
        consumer.assign(&assignment).unwrap();
        let mut next = vec![0i64; PARTITIONS as usize];
        let mut bytes = 0u64;
        while next != ends {
            assert!(clock.elapsed() < LIMIT, "raw consume stalled at {next:?}");
            let Some(message) = consumer.poll(Duration::from_secs(1)) else {
                continue;
            };
            let message = message.unwrap();
            bytes += (message.key().map_or(0, <[u8]>::len)
                + message.payload().map_or(0, <[u8]>::len)
                + message.headers().map_or(0, |headers| {
                    headers
                        .iter()
                        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                        .sum()
                })) as u64;
            next[message.partition() as usize] = message.offset() + 1;
        }
        clock.stop(bytes)
    })
    .await
    .unwrap();
    assert_eq!(
        measured.bytes,
        data.total_bytes(),
        "raw consume read every record once"
    );
    measured
}

/// The bridge's flags in every run: the largest batch the ESM allows, so the 6 MB payload
/// limit closes batches (the harness sets a 100 ms batching window for the last one).
const BRIDGE_FLAGS: [&str; 2] = ["--batch-size", "10000"];

/// The event-source bridge delivering to a function that returns at once: whether the bridge
/// itself keeps up with the consumer. Done when the bridge's group has committed every end.
async fn bridge_with_instant_function(stack: &Stack, data: &DataSet) -> Measured {
    let received = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // When the first event came: what went before it is starting up and joining the group.
    let first_event = Arc::new(std::sync::OnceLock::new());
    let (counter, first) = (received.clone(), first_event.clone());
    let function = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(move |body: bytes::Bytes| {
                first.get_or_init(Instant::now);
                counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                async { "{}" }
            }),
        )
        .layer(DefaultBodyLimit::disable());
    let server = tokio::spawn(async move { axum::serve(listener, function).await });

    let group = unique("bench-bridge");
    let mut flags = BRIDGE_FLAGS.to_vec();
    flags.extend(["--group-id", &group]);
    let cluster = KafkaCluster::connect(
        KafkaConnection::plaintext(stack.kafka_bootstrap.clone()),
        "tidemark-bench",
    )
    .unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|partition| TopicPartition {
            topic: data.topic.clone(),
            partition,
        })
        .collect();
    let clock = Clock::start();
    let mut bridge = stack.start_bridge(&endpoint, &data.topic, "instant", &flags);
    let ends = data.end_offsets();
    let mut peak = 0;
    loop {
        peak = peak.max(peak_rss_kib(bridge.id()));
        let committed = cluster
            .committed_offsets(&group, &partitions)
            .await
            .unwrap_or_default();
        let mut next = vec![-1; PARTITIONS as usize];
        for offset in committed {
            next[offset.partition as usize] = offset.offset;
        }
        if next == ends {
            break;
        }
        assert!(bridge.is_running(), "the bridge exited:\n{}", bridge.log());
        assert!(clock.elapsed() < LIMIT, "the bridge stalled at {next:?}");
        tokio::time::sleep(POLL).await;
    }
    let mut measured = clock.stop(data.total_bytes());
    peak = peak.max(peak_rss_kib(bridge.id()));
    bridge.terminate();
    server.abort();
    eprintln!(
        "bridge alone: {:.1} MB of event payloads for {:.1} MB of records",
        received.load(Ordering::Relaxed) as f64 / 1e6,
        data.total_bytes() as f64 / 1e6
    );
    measured.peak_rss_kib.insert("bridge", peak);
    let startup = first_event
        .get()
        .expect("events came")
        .duration_since(clock.started);
    measured.startup_seconds = Some(startup.as_secs_f64());
    measured
}

/// The data set backed up into `storage` twice: as `backup_id` with one poller, then with one
/// poller per partition. Returns both measurements and the stored bytes of the first.
async fn both_backups(
    stack: &Stack,
    data: &DataSet,
    storage: &Storage,
    backup_id: &str,
    extra_env: &[(&str, &str)],
    label: &str,
) -> (Measured, Measured, u64) {
    let (one, stored_bytes) =
        backup_end_to_end(stack, data, storage, backup_id, 1, extra_env).await;
    report(&format!("backup end to end{label}"), &one);
    let scaled_id = format!("{backup_id}-scaled");
    let (scaled, _) = backup_end_to_end(
        stack,
        data,
        storage,
        &scaled_id,
        PARTITIONS as usize,
        extra_env,
    )
    .await;
    report(
        &format!("backup end to end, one poller per partition{label}"),
        &scaled,
    );
    (one, scaled, stored_bytes)
}

/// The bridge, the real backup-writer behind the Lambda host, the emulated S3 and DynamoDB:
/// from starting the bridge until every partition's checkpoint reaches the end of the topic.
/// Returns the measurement and the stored bytes of every segment.
///
/// `pollers` bridges share one consumer group, each invoking the writer one event at a time:
/// the event source mapping scales its pollers so, up to one per partition. The Lambda host
/// runs as many writer environments.
async fn backup_end_to_end(
    stack: &Stack,
    data: &DataSet,
    storage: &Storage,
    backup_id: &str,
    pollers: usize,
    extra_env: &[(&str, &str)],
) -> (Measured, u64) {
    let mut env = vec![
        ("TIDEMARK_BUCKET", storage.bucket.as_str()),
        ("TIDEMARK_TABLE", storage.table.as_str()),
        ("TIDEMARK_BACKUP_ID", backup_id),
        ("TIDEMARK_PREFIX", PREFIX),
        // As deployed by default: the writer reads each batch's topic ids.
        (
            "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
            stack.kafka_bootstrap.as_str(),
        ),
        ("TIDEMARK_KAFKA_AUTH", "plaintext"),
        // As template.yaml and infra/backup.tf deploy it.
        ("MALLOC_ARENA_MAX", "1"),
    ];
    env.extend_from_slice(extra_env);
    let writer = stack.start_lambda_host_scaled(
        &[format!(
            "backup-writer={}",
            stack.binary("backup-writer").display()
        )],
        &env,
        60,
        pollers,
    );
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let partitions: Vec<PartitionId> = (0..PARTITIONS)
        .map(|partition| {
            PartitionId::new(
                BackupId::parse(backup_id).unwrap(),
                data.topic.clone(),
                partition,
            )
        })
        .collect();
    let ends = data.end_offsets();
    let group = unique("bench-backup");
    let mut flags = BRIDGE_FLAGS.to_vec();
    flags.extend(["--group-id", &group]);
    // Tidemark's share of the CPU, split by process: the host and its writer environments may
    // have started before the clock, so what they used until then is taken off.
    let host = writer.process.id();
    let writers_cpu = || -> f64 {
        children_running(host, "backup-writer")
            .into_iter()
            .map(process_cpu_seconds)
            .sum()
    };
    let (host_before, writers_before) = (process_cpu_seconds(host), writers_cpu());
    let clock = Clock::start();
    let mut bridges: Vec<ChildProcess> = (0..pollers)
        .map(|_| stack.start_bridge(&writer.endpoint, &data.topic, "backup-writer", &flags))
        .collect();
    let bridges_peak = |bridges: &[ChildProcess]| {
        bridges
            .iter()
            .map(|bridge| peak_rss_kib(bridge.id()))
            .max()
            .unwrap_or(0)
    };
    let (mut bridge_peak, mut writer_peak) = (0, 0);
    loop {
        bridge_peak = bridge_peak.max(bridges_peak(&bridges));
        writer_peak = writer_peak.max(writer.function_peak_rss_kib("backup-writer"));
        let mut next = Vec::with_capacity(partitions.len());
        for partition in &partitions {
            let checkpoint = index.checkpoint(partition).await.unwrap();
            next.push(checkpoint.map_or(0, |checkpoint| checkpoint.next_offset));
        }
        if next == ends {
            break;
        }
        for bridge in &mut bridges {
            assert!(bridge.is_running(), "a bridge exited:\n{}", bridge.log());
        }
        assert!(
            clock.elapsed() < LIMIT,
            "the backup stalled at {next:?} of {ends:?}; first bridge's log:\n{}",
            bridges[0].log()
        );
        tokio::time::sleep(POLL).await;
    }
    let mut measured = clock.stop(data.total_bytes());
    measured.cpu_core_seconds["tidemark_by_process"] = json!({
        "bridges": bridges.iter().map(|bridge| process_cpu_seconds(bridge.id())).sum::<f64>(),
        "lambda_host": process_cpu_seconds(host) - host_before,
        "backup_writers": writers_cpu() - writers_before,
    });
    bridge_peak = bridge_peak.max(bridges_peak(&bridges));
    writer_peak = writer_peak.max(writer.function_peak_rss_kib("backup-writer"));
    for bridge in &mut bridges {
        bridge.terminate();
    }

    let stored: u64 = segment_objects(storage, backup_id)
        .await
        .iter()
        .map(|object| object.size)
        .sum();
    measured.peak_rss_kib.insert("bridge", bridge_peak);
    measured.peak_rss_kib.insert("backup-writer", writer_peak);
    (measured, stored)
}

/// The release restore-partition binary behind the Lambda host, given partition 0 alone:
/// index from the emulated DynamoDB, segments from S3 (`extra_env` may name another store),
/// records into the broker.
async fn restore_partition_binary(
    stack: &Stack,
    data: &DataSet,
    storage: &Storage,
    backup_id: &str,
    extra_env: &[(&str, &str)],
) -> Measured {
    let functions = stack
        .start_restore_functions_scaled(storage, PREFIX, extra_env, 900, 1)
        .await;
    let target = unique("bench-restore-one");
    stack.create_topic(&target, 1, &[]);
    let request = PartitionRequest {
        restore_id: unique("r"),
        backup_id: backup_id.into(),
        target: serde_json::from_value(
            json!({"bootstrap_servers": stack.kafka_bootstrap, "auth": "plaintext"}),
        )
        .unwrap(),
        task: whole_partition_task(&data.topic, &target, 0, data.partitions[0].len()),
    };
    let clock = Clock::start();
    let invocation = functions
        .host
        .invoke(
            &functions.partition,
            &serde_json::to_value(&request).unwrap(),
        )
        .await;
    let mut measured = clock.stop(data.bytes[0]);
    assert_eq!(invocation.function_error, None, "{}", invocation.payload);
    assert_eq!(invocation.payload["done"], true, "{}", invocation.payload);
    assert_eq!(invocation.payload["produced"], data.partitions[0].len());
    measured.waited = Some(invocation.payload["waited"].clone());
    measured.peak_rss_kib.insert(
        "restore-partition",
        functions.host.function_peak_rss_kib("restore-partition"),
    );
    measured
}

/// `statemachines/restore.asl.json` in the emulated Step Functions, every partition restored
/// at once by its own restore-partition environment: from start to the execution's success.
async fn restore_state_machine(
    stack: &Stack,
    data: &DataSet,
    storage: &Storage,
    backup_id: &str,
) -> Measured {
    let functions = stack
        .start_restore_functions_scaled(storage, PREFIX, &[], 900, PARTITIONS as usize)
        .await;
    let machines = Machines::create(stack, &functions).await;
    let target = format!("{}.restored", data.topic);
    let input = json!({
        "backup_id": backup_id,
        "target": {"bootstrap_servers": stack.kafka_bootstrap, "auth": "plaintext"},
        "topics": {"mapping": {data.topic.clone(): target}},
        "cut": {"mode": "time", "at": chrono::Utc::now().timestamp_millis()},
        "groups": [],
        "topic_creation": "create",
    });
    let clock = Clock::start();
    let execution = machines.restore.run(&input, LIMIT).await;
    let mut measured = clock.stop(data.total_bytes());
    measured.seconds_by_state = Some(execution.seconds_by_state());
    assert!(
        execution.status == aws_sdk_sfn::types::ExecutionStatus::Succeeded,
        "the restore failed: {}\n{}",
        execution.describe(),
        functions.host.process.log()
    );
    let reader =
        KafkaTargetWriter::connect(KafkaConnection::plaintext(stack.kafka_bootstrap.clone()), 0)
            .unwrap();
    for (partition, records) in data.partitions.iter().enumerate() {
        assert_eq!(
            reader.end_offset(&target, partition as i32).await.unwrap(),
            records.len() as i64,
            "partition {partition} restored whole"
        );
    }
    measured.peak_rss_kib.insert(
        "restore-partition",
        functions.host.function_peak_rss_kib("restore-partition"),
    );
    measured
}

/// Every segment object of the backup (the listing under its topics prefix).
async fn segment_objects(storage: &Storage, backup_id: &str) -> Vec<ObjectInfo> {
    let layout = StorageLayout::new(PREFIX).unwrap();
    S3ObjectStore::new(storage.s3.clone(), &storage.bucket)
        .list_objects(&layout.topics_prefix(&BackupId::parse(backup_id).unwrap()))
        .await
        .unwrap()
}

/// The emulator's own speed on the calls the functions make, with no Tidemark work around
/// them. Reads: every segment of the backup with GetObject, two at a time (as a
/// restore-partition prefetches). Writes: the same segments again under another backup, as
/// the writer stores them (checkpoint read, conditional PutObject, index transaction), one
/// event after another with its partitions at once. Bytes are the backup's record bytes.
async fn storage_alone(
    storage: &Storage,
    backup_id: &str,
    record_bytes: u64,
) -> (Measured, Measured) {
    use futures::StreamExt;
    let objects = S3ObjectStore::new(storage.s3.clone(), &storage.bucket);
    let index = DynamoIndexStore::new(storage.dynamodb.clone(), &storage.table);
    let layout = StorageLayout::new(PREFIX).unwrap();
    let keys: Vec<String> = segment_objects(storage, backup_id)
        .await
        .into_iter()
        .map(|object| object.key)
        .collect();
    let clock = Clock::start();
    let bodies: Vec<bytes::Bytes> = futures::stream::iter(&keys)
        .map(|key| {
            let objects = &objects;
            async move { objects.get(key).await.unwrap().expect("listed segment") }
        })
        .buffered(2)
        .collect()
        .await;
    let reads = clock.stop(record_bytes);

    // Each partition's segments in offset order; event n held segment n of every partition.
    let copy = BackupId::parse(&format!("{backup_id}-copy")).unwrap();
    let mut by_partition: BTreeMap<i32, Vec<(SegmentHeader, bytes::Bytes)>> = BTreeMap::new();
    for body in bodies {
        let header = verify_stored_segment(&body).unwrap();
        by_partition
            .entry(header.partition)
            .or_default()
            .push((header, body));
    }
    for segments in by_partition.values_mut() {
        segments.sort_by_key(|(header, _)| header.first_offset);
    }
    let events = by_partition.values().map(Vec::len).max().unwrap_or(0);
    let clock = Clock::start();
    for event in 0..events {
        futures::future::join_all(by_partition.iter().filter_map(|(partition, segments)| {
            let (header, body) = segments.get(event)?;
            let partition = PartitionId::new(copy.clone(), header.topic.clone(), *partition);
            let (index, objects, layout) = (&index, &objects, &layout);
            Some(async move {
                let observed = index.checkpoint(&partition).await.unwrap();
                let key = layout.segment_key(&partition, header.first_offset, header.last_offset);
                objects
                    .put_tagged_if_absent(
                        &key,
                        body.clone(),
                        &segment_metadata(header),
                        &Default::default(),
                    )
                    .await
                    .unwrap();
                let entry = SegmentEntry::new(key, header, body.len() as u64, 0);
                record_segment(index, &partition, &entry, header.max_timestamp, observed, 0)
                    .await
                    .unwrap();
            })
        }))
        .await;
    }
    (reads, clock.stop(record_bytes))
}
