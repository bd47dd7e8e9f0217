//! Backup maintenance on one partition's segments, against zstd on the same bytes in the same
//! run: deep validation against decompressing the bodies (how much reading a backup back costs
//! beyond decompressing it; plain and sealed segments, the listing check for reference), and
//! compaction against decompressing and recompressing them. In-memory stores, so S3 latency is
//! not in it.
//!
//! `cargo bench -p maintenance --bench maintenance` (see docs/benchmarks.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_core::compaction::{CompactionSettings, Compactor};
use tidemark_core::index::{IndexStore, SegmentEntry, record_segment};
use tidemark_core::keys::{KeyService, MemoryKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::object_store::{ObjectMetadata, ObjectStore, ObjectTags};
use tidemark_core::segment::{EncodedSegment, Header, Record, SegmentEncoder, TimestampType};
use tidemark_core::stores::{MemoryIndexStore, MemoryObjectStore};
use tidemark_core::validation::{Depth, validate_partition};

const SEGMENTS: i64 = 64;
const RECORDS_PER_SEGMENT: i64 = 2_500;
const RUNS: usize = 7;

/// A ~330-byte JSON payment event with a key and two headers.
fn record(offset: i64, state: &mut u64) -> Record {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    let order = format!("order-{:06}", next() % 1_000_000);
    let value = format!(
        r#"{{"event":"payment.captured","order_id":"{order}","payment_id":"pay_{:016x}","amount_minor":{},"currency":"{}","merchant":"m-{:03}","customer":"cus_{:012x}","captured_at":{},"sequence":{offset},"risk":{{"score":{},"checks":["cvc","avs","3ds"]}}}}"#,
        next(),
        next() % 500_000,
        ["EUR", "USD", "GBP"][(next() % 3) as usize],
        next() % 500,
        next() & 0xffff_ffff_ffff,
        1_763_732_940_000 + offset * 10,
        next() % 100,
    );
    Record {
        offset,
        timestamp: 1_763_732_940_000 + offset * 10,
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

struct Backup {
    objects: MemoryObjectStore,
    index: MemoryIndexStore,
    keys: SegmentKeys,
    /// The plain segments, for the baseline.
    plain: Vec<EncodedSegment>,
}

async fn backup(partition: &PartitionId, layout: &StorageLayout, seal: bool) -> Backup {
    let service: Arc<dyn KeyService> = Arc::new(MemoryKeyService::default());
    let keys = SegmentKeys::new(service, seal.then(|| "alias/bench".to_owned()));
    let objects = MemoryObjectStore::new();
    let index = MemoryIndexStore::new();
    let mut state = 0x2545_f491_4f6c_dd1d;
    let mut plain = Vec::new();
    for segment in 0..SEGMENTS {
        let first = segment * RECORDS_PER_SEGMENT;
        let mut encoder = SegmentEncoder::new(&partition.topic, partition.partition, 3).unwrap();
        for offset in first..first + RECORDS_PER_SEGMENT {
            encoder.push(&record(offset, &mut state)).unwrap();
        }
        let encoded = encoder.finish().unwrap();
        let stored = keys
            .protect(&partition.backup_id, encoded.clone())
            .await
            .unwrap();
        let key = layout.segment_key(partition, first, first + RECORDS_PER_SEGMENT - 1);
        objects
            .put_if_absent(&key, stored.bytes.clone(), &ObjectMetadata::new())
            .await
            .unwrap();
        let entry = SegmentEntry::new(key, &stored.header, stored.bytes.len() as u64, 1);
        let observed = index.checkpoint(partition).await.unwrap();
        record_segment(
            &index,
            partition,
            &entry,
            stored.header.max_timestamp,
            observed,
            1,
        )
        .await
        .unwrap();
        plain.push(encoded);
    }
    Backup {
        objects,
        index,
        keys,
        plain,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn measure<F, Fut>(mut work: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    std::hint::black_box(work().await);
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        std::hint::black_box(work().await);
        samples.push(started.elapsed());
    }
    median(samples)
}

#[tokio::main]
async fn main() {
    let partition = PartitionId::new(BackupId::parse("bench").unwrap(), "payments.captured", 0);
    let layout = StorageLayout::new("bench").unwrap();
    let plain = backup(&partition, &layout, false).await;
    let sealed = backup(&partition, &layout, true).await;
    let uncompressed: u64 = plain.plain.iter().map(|s| s.header.uncompressed_len).sum();
    let stored: u64 = plain.plain.iter().map(|s| s.bytes.len() as u64).sum();

    let baseline = measure(|| async {
        plain
            .plain
            .iter()
            .map(|segment| {
                let body = &segment.bytes[segment.header.header_len()..];
                zstd::bulk::decompress(body, segment.header.uncompressed_len as usize)
                    .unwrap()
                    .len() as u64
            })
            .sum()
    })
    .await;
    let validate = |backup: &'static Backup, depth| {
        let partition = partition.clone();
        let layout = layout.clone();
        move || {
            let partition = partition.clone();
            let layout = layout.clone();
            async move {
                let check = validate_partition(
                    &backup.objects,
                    &backup.index,
                    &backup.keys,
                    &layout,
                    &partition,
                    depth,
                )
                .await
                .unwrap();
                assert!(check.findings.is_empty());
                check.records_read
            }
        }
    };
    let plain: &'static Backup = Box::leak(Box::new(plain));
    let sealed: &'static Backup = Box::leak(Box::new(sealed));
    let deep_plain = measure(validate(plain, Depth::Deep)).await;
    let deep_sealed = measure(validate(sealed, Depth::Deep)).await;
    let listing = measure(validate(plain, Depth::Listing)).await;

    // Compaction rewrites the whole partition into 8 MB segments; each sample starts from a
    // fresh copy of the small segments (built outside the timing).
    let recompress = measure(|| async {
        plain
            .plain
            .iter()
            .map(|segment| {
                let body = &segment.bytes[segment.header.header_len()..];
                let records =
                    zstd::bulk::decompress(body, segment.header.uncompressed_len as usize).unwrap();
                zstd::bulk::compress(&records, 3).unwrap().len() as u64
            })
            .sum()
    })
    .await;
    let mut compaction_samples = Vec::new();
    let mut compacted_into = 0;
    for _ in 0..=RUNS {
        let fresh = backup(&partition, &layout, false).await;
        let compactor = Compactor {
            objects: &fresh.objects,
            index: &fresh.index,
            keys: &fresh.keys,
            layout: &layout,
            settings: CompactionSettings {
                target_bytes: 8 << 20,
                grace_ms: 0,
                compression_level: 3,
            },
        };
        let started = Instant::now();
        let report = compactor
            .compact_partition(&partition, &ObjectTags::new(), 1)
            .await
            .unwrap();
        compaction_samples.push(started.elapsed());
        compacted_into = report.segments_written;
    }
    compaction_samples.remove(0);
    let compaction = median(compaction_samples);

    println!(
        "{SEGMENTS} segments x {RECORDS_PER_SEGMENT} records: {:.1} MB of framed records, {:.1} MB stored ({:.2}x); median of {RUNS} runs",
        uncompressed as f64 / 1e6,
        stored as f64 / 1e6,
        uncompressed as f64 / stored as f64
    );
    println!(
        "{:<48} {:>9} {:>12} {:>10}",
        "path", "median", "MB/s framed", "vs zstd -d"
    );
    for (name, duration) in [
        ("zstd decompression of the bodies (baseline)", baseline),
        ("deep validation, plain segments", deep_plain),
        ("deep validation, sealed segments", deep_sealed),
        ("listing validation (no segment read)", listing),
    ] {
        println!(
            "{name:<48} {:>7.2}ms {:>12.1} {:>9.2}x",
            duration.as_secs_f64() * 1e3,
            uncompressed as f64 / duration.as_secs_f64() / 1e6,
            baseline.as_secs_f64() / duration.as_secs_f64()
        );
    }
    println!(
        "{:<48} {:>9} {:>12} {:>10}",
        "path", "median", "MB/s framed", "vs zstd -d|-3"
    );
    for (name, duration) in [
        ("zstd decompress + compress -3 (baseline)", recompress),
        ("compaction into 8 MB segments", compaction),
    ] {
        println!(
            "{name:<48} {:>7.2}ms {:>12.1} {:>9.2}x",
            duration.as_secs_f64() * 1e3,
            uncompressed as f64 / duration.as_secs_f64() / 1e6,
            recompress.as_secs_f64() / duration.as_secs_f64()
        );
    }
    println!("compaction: {SEGMENTS} segments into {compacted_into}");
}
