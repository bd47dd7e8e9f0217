//! The backup writer's CPU path on a 6 MB MSK-shaped event (JSON decode, base64, framing,
//! CRC32C, zstd-3) against plain zstd-3 of the same record bytes, in the same run, plus the
//! peak RSS of a process that does only the handler's work, and the cost of sealing the
//! segments (client-side AES-256-GCM).
//!
//! `cargo bench -p backup-writer --bench handler_cpu` (see docs/benchmarks.md).

use std::io::Write;
use std::time::{Duration, Instant};

use backup_writer::{encode_event, encode_partition};
use tidemark_core::config::NameFilter;
use tidemark_core::event::{KafkaEvent, KafkaEventRecord};
use tidemark_core::segment::encryption::{DATA_KEY_LEN, DataKey, seal};
use tidemark_core::segment::{Header, Record, TimestampType};

const EVENT_BYTES: usize = 6 * 1024 * 1024;
const PARTITIONS: i32 = 4;

/// Payment events of ~365 bytes, like the design notes' reference data set.
fn payment_record(n: i64, state: &mut u64) -> Record {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    let order = format!("order-{:06}", next() % 1_000_000);
    let value = format!(
        r#"{{"event":"payment.captured","order_id":"{order}","payment_id":"pay_{:016x}","amount_minor":{},"currency":"{}","merchant":"m-{:03}","card":{{"brand":"{}","last4":"{:04}"}},"customer":"cus_{:012x}","captured_at":{},"sequence":{n},"risk":{{"score":{},"checks":["cvc","avs","3ds"]}}}}"#,
        next(),
        next() % 500_000,
        ["EUR", "USD", "GBP"][(next() % 3) as usize],
        next() % 500,
        ["visa", "mc", "amex"][(next() % 3) as usize],
        next() % 10_000,
        next() & 0xffff_ffff_ffff,
        1_763_732_940_000 + n * 10,
        next() % 100,
    );
    Record {
        offset: n,
        timestamp: 1_763_732_940_000 + n * 10,
        timestamp_type: TimestampType::CreateTime,
        key: Some(order.into_bytes()),
        value: Some(value.into_bytes()),
        headers: vec![
            Header {
                key: "trace-id".into(),
                value: Some(format!("{:016x}", next()).into_bytes()),
            },
            Header {
                key: "source".into(),
                value: Some(b"checkout".to_vec()),
            },
        ],
    }
}

/// An MSK event of just under 6 MB of JSON, and the raw record bytes it carries.
fn build_event() -> (Vec<u8>, Vec<u8>, usize) {
    let mut state = 0x2545_f491_4f6c_dd1d;
    let mut event = KafkaEvent {
        event_source: Some("aws:kafka".into()),
        event_source_arn: Some(
            "arn:aws:kafka:eu-west-1:123456789012:cluster/payments/abc-1".into(),
        ),
        bootstrap_servers: Some("b-1.payments.kafka.eu-west-1.amazonaws.com:9098".into()),
        records: Default::default(),
    };
    let mut raw = Vec::new();
    let mut estimated = 400;
    let mut n = 0i64;
    loop {
        let record = payment_record(n, &mut state);
        let partition = (n % i64::from(PARTITIONS)) as i32;
        let event_record = KafkaEventRecord::encode(
            "payments.captured",
            partition,
            &Record {
                offset: n / i64::from(PARTITIONS),
                ..record.clone()
            },
        );
        let size = serde_json::to_vec(&event_record).unwrap().len() + 1;
        if estimated + size > EVENT_BYTES {
            break;
        }
        estimated += size;
        raw.extend_from_slice(record.key.as_deref().unwrap());
        raw.extend_from_slice(record.value.as_deref().unwrap());
        for header in &record.headers {
            raw.extend_from_slice(header.key.as_bytes());
            raw.extend_from_slice(header.value.as_deref().unwrap());
        }
        event
            .records
            .entry(format!("payments.captured-{partition}"))
            .or_default()
            .push(event_record);
        n += 1;
    }
    let json = serde_json::to_vec(&event).unwrap();
    assert!(json.len() <= EVENT_BYTES, "event is {} bytes", json.len());
    (json, raw, n as usize)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(iterations: usize, mut work: impl FnMut() -> usize) -> (Duration, usize) {
    let mut output = 0;
    for _ in 0..3 {
        output = work();
    }
    let samples = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            output = std::hint::black_box(work());
            started.elapsed()
        })
        .collect();
    (median(samples), output)
}

fn handler_path_parallel(
    runtime: &tokio::runtime::Runtime,
    json: &[u8],
    parallelism: usize,
) -> usize {
    let event: KafkaEvent = serde_json::from_slice(json).unwrap();
    let filter = NameFilter::new(None, None);
    let (partitions, _) = runtime
        .block_on(encode_event(event, &filter, 3, parallelism))
        .unwrap();
    partitions.iter().map(|p| p.segment.bytes.len()).sum()
}

fn handler_path_single_thread(json: &[u8]) -> usize {
    let event: KafkaEvent = serde_json::from_slice(json).unwrap();
    event
        .into_partition_batches()
        .unwrap()
        .into_iter()
        .map(|batch| encode_partition(batch, 3).unwrap().segment.bytes.len())
        .sum()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Child mode: read the event like the runtime does, run the handler's CPU path, report RSS.
fn rss_probe(path: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let json = std::fs::read(path).unwrap();
    let before = peak_rss_kib();
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    let stored = handler_path_parallel(&runtime, &json, parallelism);
    println!("{before} {} {stored}", peak_rss_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|arg| arg == "--rss-probe") {
        return rss_probe(&args[position + 1]);
    }
    let iterations: usize = std::env::var("TIDEMARK_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let (json, raw, records) = build_event();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    let (plain, plain_bytes) = measure(iterations, || zstd::bulk::compress(&raw, 3).unwrap().len());
    let (single, single_bytes) = measure(iterations, || handler_path_single_thread(&json));
    let (parallel, _) = measure(iterations, || handler_path_parallel(&runtime, &json, cores));
    let (json_only, _) = measure(iterations, || {
        serde_json::from_slice::<KafkaEvent>(&json)
            .unwrap()
            .records
            .len()
    });
    let parsed: KafkaEvent = serde_json::from_slice(&json).unwrap();
    let (encode_only, _) = measure(iterations, || {
        let batches = parsed.clone().into_partition_batches().unwrap();
        batches
            .into_iter()
            .map(|batch| encode_partition(batch, 3).unwrap().segment.bytes.len())
            .sum()
    });
    let (clone_only, _) = measure(iterations, || parsed.clone().records.len());
    let segments: Vec<_> = parsed
        .clone()
        .into_partition_batches()
        .unwrap()
        .into_iter()
        .map(|batch| encode_partition(batch, 3).unwrap().segment)
        .collect();
    let key = DataKey::new(&[7; DATA_KEY_LEN], vec![0; 184]).unwrap();
    let (seal_only, _) = measure(iterations, || {
        segments
            .iter()
            .map(|segment| seal(segment, &key).unwrap().bytes.len())
            .sum()
    });

    let mb_per_s = |duration: Duration| raw.len() as f64 / duration.as_secs_f64() / 1e6;
    println!(
        "event: {} bytes of JSON, {records} records in {PARTITIONS} partitions, {} bytes of record data",
        json.len(),
        raw.len()
    );
    println!("iterations: {iterations} (median reported), cores: {cores}");
    println!(
        "{:<44} {:>9} {:>10} {:>10}",
        "path", "median", "MB/s", "vs zstd-3"
    );
    for (name, duration) in [
        ("plain zstd-3 of the record bytes (baseline)", plain),
        ("handler CPU path, one thread", single),
        ("handler CPU path, partitions in parallel", parallel),
    ] {
        println!(
            "{name:<44} {:>7.2}ms {:>10.1} {:>9.2}x",
            duration.as_secs_f64() * 1e3,
            mb_per_s(duration),
            plain.as_secs_f64() / duration.as_secs_f64()
        );
    }
    println!("breakdown, one thread:");
    for (name, duration) in [
        ("  JSON decode of the event", json_only),
        (
            "  base64 + framing + CRC32C + zstd-3",
            encode_only.saturating_sub(clone_only),
        ),
        ("  sealing the segments (AES-256-GCM)", seal_only),
    ] {
        println!("{name:<44} {:>7.2}ms", duration.as_secs_f64() * 1e3);
    }
    println!(
        "compression: plain zstd-3 {:.2}x, segments {:.2}x (record bytes / stored bytes)",
        raw.len() as f64 / plain_bytes as f64,
        raw.len() as f64 / single_bytes as f64
    );

    let path =
        std::env::temp_dir().join(format!("tidemark-bench-event-{}.json", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&json)
        .unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--rss-probe", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let probe = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<u64> = probe
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    if let [before, after, _] = fields[..] {
        println!(
            "peak RSS of a process running the handler path: {:.1} MiB (of which {:.1} MiB before decoding, event bytes included)",
            after as f64 / 1024.0,
            before as f64 / 1024.0
        );
    } else {
        println!(
            "rss probe failed: {probe} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
