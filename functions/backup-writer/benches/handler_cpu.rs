//! The backup writer's CPU path on a 6 MB MSK-shaped event (JSON decode, base64, framing,
//! CRC32C, zstd-3) against plain zstd-3 of the same record bytes, in the same run, plus the
//! peak RSS of a process that does only the handler's work, and the cost of sealing the
//! segments (client-side AES-256-GCM) and of shredding them (crypto-shredding: each keyed record
//! sealed under its key's data key), in time, stored bytes and key-service calls; and the
//! restore's side, decoding the same segments, against plain zstd decompression of their bodies.
//!
//! `cargo bench -p backup-writer --bench handler_cpu` (see docs/benchmarks.md).

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use backup_writer::{Encoding, encode_event};
use tidemark_core::config::NameFilter;
use tidemark_core::event::{
    KafkaEvent, KafkaEventRecord, RecordSink, decode_event, decode_event_from,
};
use tidemark_core::sample::Payments;
use tidemark_core::segment::Record;
use tidemark_core::segment::encryption::{DATA_KEY_LEN, DataKey, seal};
use tidemark_core::segment::{BodyBuffers, EncodedSegment, SegmentReader, verify_stored_segment};

const EVENT_BYTES: usize = 6 * 1024 * 1024;
const PARTITIONS: i32 = 4;

/// An MSK event of just under 6 MB of JSON, and the raw record bytes it carries.
fn build_event() -> (Vec<u8>, Vec<u8>, usize) {
    let mut payments = Payments::new(0);
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
        let record = payments.record(n);
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

/// Plain zstd-3 of the record bytes split into one part per core, each compressed on a thread
/// started for it: what the cores give together in this run, with the thread and context
/// start-up the handler path also pays (a VM's second core is not always a whole one).
fn plain_zstd3_on_every_core(raw: &[u8], cores: usize) -> usize {
    std::thread::scope(|scope| {
        let parts: Vec<_> = raw
            .chunks(raw.len().div_ceil(cores))
            .map(|part| scope.spawn(move || zstd::bulk::compress(part, 3).unwrap().len()))
            .collect();
        parts.into_iter().map(|part| part.join().unwrap()).sum()
    })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Medians of `paths`, run in turn within each iteration: on a shared VM whose speed drifts
/// (steal time), one path measured after another got a different machine, and ratios moved by
/// half between runs. Returns each path's median and its last output.
fn measure_interleaved(
    iterations: usize,
    paths: &mut [&mut dyn FnMut() -> usize],
) -> Vec<(Duration, usize)> {
    let mut outputs = vec![0; paths.len()];
    for _ in 0..3 {
        for (path, output) in paths.iter_mut().zip(&mut outputs) {
            *output = path();
        }
    }
    let mut samples = vec![Vec::with_capacity(iterations); paths.len()];
    for _ in 0..iterations {
        for ((path, output), samples) in paths.iter_mut().zip(&mut outputs).zip(&mut samples) {
            let started = Instant::now();
            *output = std::hint::black_box(path());
            samples.push(started.elapsed());
        }
    }
    samples.into_iter().map(median).zip(outputs).collect()
}

fn encoding(in_background: bool) -> Encoding {
    Encoding {
        topics: NameFilter::new(None, None),
        compression_level: 3,
        open_partitions: 3,
        compress_in_background: in_background,
        masking: None,
    }
}

/// The handler's CPU path as deployed: the writer's layer in front of the Lambda runtime
/// decodes and encodes the invocation body, partitions compressed beside the reading.
/// Returns the stored bytes.
fn handler_path(json: &[u8]) -> usize {
    encode_event(json, &encoding(true))
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.segment.bytes.len())
        .sum()
}

/// The same on one thread: compression after framing, in turn.
fn handler_path_one_thread(json: &[u8]) -> usize {
    encode_event(json, &encoding(false))
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.segment.bytes.len())
        .sum()
}

/// Counts partitions, takes no record: what is left is reading the JSON and decoding base64.
struct CountPartitions(usize);

impl RecordSink for CountPartitions {
    fn partition(&mut self, _: &str, _: i32) -> tidemark_core::Result<bool> {
        self.0 += 1;
        Ok(false)
    }
    fn record(&mut self, _: &Record) -> tidemark_core::Result<()> {
        Ok(())
    }
}

/// Only reading the JSON and decoding base64, the records handed nowhere.
fn decode_only(json: &[u8]) -> usize {
    let mut count = CountPartitions(0);
    decode_event(json, &mut count).unwrap();
    count.0
}

/// The same through the deserializer the Lambda runtime wraps around serde_json to name the
/// path of an error (an owned string per map key): what the writer's own decoding avoids.
fn decode_only_as_the_runtime_would(json: &[u8]) -> usize {
    let mut count = CountPartitions(0);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut deserializer, &mut track);
    if decode_event_from(tracked, &mut count).is_err() {
        panic!("the bench's event decodes");
    }
    count.0
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
    let json = std::fs::read(path).unwrap();
    let before = peak_rss_kib();
    let stored = handler_path(&json);
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
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    let measured = measure_interleaved(
        iterations,
        &mut [
            &mut || zstd::bulk::compress(&raw, 3).unwrap().len(),
            &mut || handler_path_one_thread(&json),
            &mut || handler_path(&json),
            &mut || decode_only(&json),
            &mut || decode_only_as_the_runtime_would(&json),
            &mut || plain_zstd3_on_every_core(&raw, cores),
        ],
    );
    let [
        (plain, plain_bytes),
        (single, single_bytes),
        (parallel, parallel_bytes),
        (decode_only, _),
        (decode_as_the_runtime_would, _),
        (every_core, _),
    ] = measured[..]
    else {
        unreachable!("six paths measured")
    };
    let segments: Vec<_> = encode_event(&json, &encoding(false))
        .unwrap()
        .partitions
        .into_iter()
        .map(|partition| partition.segment)
        .collect();
    // What the key filters (erasure's index) take of the stored bytes.
    let key_filter_bytes: u64 = segments
        .iter()
        .map(|segment| {
            segment
                .header
                .key_filter
                .map_or(0, |filter| u64::from(filter.len))
        })
        .sum();
    let key = DataKey::new(&[7; DATA_KEY_LEN], vec![0; 184]).unwrap();
    let [(seal_only, _)] = measure_interleaved(
        iterations,
        &mut [&mut || {
            segments
                .iter()
                .map(|segment| seal(segment, &key).unwrap().bytes.len())
                .sum()
        }],
    )[..] else {
        unreachable!("one path measured")
    };

    let shredding = shredding_cost(iterations, &segments);
    let reading = reading_cost(iterations, &segments, raw.len());

    let mb_per_s = |duration: Duration| raw.len() as f64 / duration.as_secs_f64() / 1e6;
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let path = |duration: Duration| {
        json!({
            "median_ms": ms(duration),
            "mb_per_s": mb_per_s(duration),
            "vs_plain_zstd3": plain.as_secs_f64() / duration.as_secs_f64(),
        })
    };
    let rss = rss_of_handler_path(&json);
    let results = json!({
        "event": {
            "json_bytes": json.len(),
            "records": records,
            "partitions": PARTITIONS,
            "record_bytes": raw.len(),
        },
        "iterations": iterations,
        "cores": cores,
        "paths": {
            "plain_zstd3": path(plain),
            "handler_one_thread": path(single),
            "handler": path(parallel),
            "plain_zstd3_on_every_core": path(every_core),
        },
        "breakdown_one_thread_ms": {
            "json_and_base64": ms(decode_only),
            "json_and_base64_through_the_runtimes_deserializer": ms(decode_as_the_runtime_would),
            "framing_crc_zstd": ms(single.saturating_sub(decode_only)),
            "sealing_aes_gcm": ms(seal_only),
        },
        "compression": {
            "plain_zstd3": raw.len() as f64 / plain_bytes as f64,
            "segments": raw.len() as f64 / single_bytes as f64,
            "segments_compressed_beside_reading": raw.len() as f64 / parallel_bytes as f64,
            "key_filter_bytes": key_filter_bytes,
            "segments_without_key_filters":
                raw.len() as f64 / (single_bytes as u64 - key_filter_bytes) as f64,
        },
        "reading": reading,
        "shredding": {
            "median_ms": ms(shredding.median),
            "vs_plain_zstd3": plain.as_secs_f64() / shredding.median.as_secs_f64(),
            "stored_bytes": shredding.stored_bytes,
            "vs_segments": shredding.stored_bytes as f64 / single_bytes as f64,
            "compression": raw.len() as f64 / shredding.stored_bytes as f64,
            "distinct_keys": shredding.distinct_keys,
            "kms_generate_data_key": shredding.kms_generated,
            "kms_decrypt": shredding.kms_decrypted,
        },
        "peak_rss_mib": rss.map(|(before, after)| json!({
            "handler_path": after as f64 / 1024.0,
            "before_decoding": before as f64 / 1024.0,
        })),
    });
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    if let Some(position) = args.iter().position(|arg| arg == "--json") {
        std::fs::write(
            &args[position + 1],
            serde_json::to_string_pretty(&results).unwrap(),
        )
        .expect("writing the results");
    }
}

/// The restore's read path on the event's segments: each stored segment checked whole, then
/// decoded record by record into one reused record (and body buffers), against plain zstd decompression of the
/// same bodies into a buffer of their declared size (the least any reader must do).
fn reading_cost(
    iterations: usize,
    segments: &[EncodedSegment],
    raw_len: usize,
) -> serde_json::Value {
    let bodies: Vec<(&[u8], usize)> = segments
        .iter()
        .map(|segment| {
            let start = segment.header.header_len();
            let end = start + segment.header.body_len as usize;
            (
                &segment.bytes[start..end],
                segment.header.uncompressed_len as usize,
            )
        })
        .collect();
    let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
    let mut plain = Vec::new();
    let mut record = Record::empty();
    let mut buffers = BodyBuffers::default();
    let measured = measure_interleaved(
        iterations,
        &mut [
            &mut || {
                bodies
                    .iter()
                    .map(|(body, len)| {
                        plain.clear();
                        plain.reserve(*len);
                        decompressor.decompress_to_buffer(body, &mut plain).unwrap()
                    })
                    .sum()
            },
            &mut || {
                let mut records = 0;
                for segment in segments {
                    verify_stored_segment(&segment.bytes).unwrap();
                    let mut reader = SegmentReader::open_reusing(
                        segment.bytes.as_ref(),
                        std::mem::take(&mut buffers),
                    )
                    .unwrap();
                    while reader.next_record_into(&mut record).unwrap() {
                        records += 1;
                    }
                    buffers = reader.into_buffers();
                }
                records
            },
        ],
    );
    let [(plain_decompress, _), (segment_read, _)] = measured[..] else {
        unreachable!("two paths measured")
    };
    let mb_per_s = |duration: Duration| raw_len as f64 / duration.as_secs_f64() / 1e6;
    json!({
        "plain_zstd_decompress": {
            "median_ms": plain_decompress.as_secs_f64() * 1e3,
            "mb_per_s": mb_per_s(plain_decompress),
        },
        "segment_reader": {
            "median_ms": segment_read.as_secs_f64() * 1e3,
            "mb_per_s": mb_per_s(segment_read),
            "vs_plain_zstd_decompress":
                plain_decompress.as_secs_f64() / segment_read.as_secs_f64(),
        },
    })
}

struct ShreddingCost {
    /// Median time to shred every segment once its keys are cached (a warm writer).
    median: Duration,
    stored_bytes: usize,
    distinct_keys: usize,
    kms_generated: usize,
    kms_decrypted: usize,
}

/// Shreds `segments` as a writer with crypto-shredding on does, over in-memory stores: the
/// first pass creates a data key per distinct record key, the measured ones use the cache.
fn shredding_cost(iterations: usize, segments: &[EncodedSegment]) -> ShreddingCost {
    use std::sync::Arc;
    use tidemark_core::keys::MemoryKeyService;
    use tidemark_core::layout::{BackupId, PartitionId};
    use tidemark_core::shredding::Shredding;
    use tidemark_core::stores::MemoryIndexStore;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kms = Arc::new(MemoryKeyService::default());
    // Commit lease of 10 minutes: the cache must not expire between measured passes.
    let shredding = Shredding::new(
        Arc::new(MemoryIndexStore::new()),
        kms.clone(),
        Some("alias/bench".into()),
    )
    .with_commit_lease(Duration::from_secs(600));
    let backup = BackupId::parse("bench").unwrap();
    let shred = || {
        runtime.block_on(async {
            let mut stored = 0;
            for segment in segments {
                let partition = PartitionId::new(
                    backup.clone(),
                    "payments.captured",
                    segment.header.partition,
                );
                stored += shredding
                    .seal_segment(&partition, segment, 3)
                    .await
                    .unwrap()
                    .segment
                    .bytes
                    .len();
            }
            stored
        })
    };
    shred();
    let [(median, stored_bytes)] = measure_interleaved(iterations, &mut [&mut || shred()])[..]
    else {
        unreachable!("one path measured")
    };
    let mut keys = std::collections::HashSet::new();
    for segment in segments {
        for record in SegmentReader::open(segment.bytes.as_ref()).unwrap() {
            keys.extend(record.unwrap().key);
        }
    }
    ShreddingCost {
        median,
        stored_bytes,
        distinct_keys: keys.len(),
        kms_generated: kms.generated(),
        kms_decrypted: kms.decrypted(),
    }
}

/// Peak RSS (KiB) of a fresh process running the handler path on `json`: before decoding (the
/// event bytes read) and after.
fn rss_of_handler_path(json: &[u8]) -> Option<(u64, u64)> {
    let path =
        std::env::temp_dir().join(format!("tidemark-bench-event-{}.json", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(json)
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
    match fields[..] {
        [before, after, _] => Some((before, after)),
        _ => {
            eprintln!(
                "rss probe failed: {probe} {}",
                String::from_utf8_lossy(&output.stderr)
            );
            None
        }
    }
}
