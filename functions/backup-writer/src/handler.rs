//! The backup writer's logic: one event in, one durable segment per topic-partition out.
//!
//! Two phases. The CPU phase ([`crate::encode`]) decodes and encodes every partition and fails
//! before any write if anything in the event is malformed. The I/O phase then
//! writes each partition concurrently: the segment with a conditional create in S3, and only
//! after that the index entry, gap and checkpoint in one DynamoDB transaction (invariant 1).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tidemark_core::config::{BackupWriterConfig, RetentionTier};
use tidemark_core::index::{IndexStore, SegmentEntry, record_segment};
use tidemark_core::keys::SegmentKeys;
use tidemark_core::layout::PartitionId;
use tidemark_core::object_store::{
    ObjectStore, ObjectTags, PutOutcome, holds_same_records, segment_metadata,
};
use tidemark_core::segment::{EncodedSegment, SegmentEncoder, SegmentReader};
use tidemark_core::shredding::sealed_under_same_keys;
use tidemark_core::telemetry::{MetricsLine, Unit};
use tracing::{info, warn};

use crate::encode::{EncodedEvent, EncodedPartition, Encoding, encode_event};
use crate::error::{Result, WriterError};
use crate::generations::{TopicGenerations, is_divergence};
use crate::overlap::{Overlap, verify_overlap};

/// What the writer did for one partition; returned to the caller and logged.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionReport {
    pub topic: String,
    /// The topic's generation the segment belongs to (0 until the topic is recreated).
    pub generation: u32,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u32,
    pub segment_key: String,
    /// False when an identical segment already existed (a retried batch).
    pub created: bool,
    /// Offsets found missing between the previous checkpoint and this segment.
    pub gap: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub partitions: Vec<PartitionReport>,
    /// Topics in the event that the include/exclude patterns leave out.
    pub skipped_topics: Vec<String>,
}

pub struct BackupWriter {
    config: BackupWriterConfig,
    objects: Arc<dyn ObjectStore>,
    index: Arc<dyn IndexStore>,
    keys: Arc<SegmentKeys>,
    generations: TopicGenerations,
    masking: Option<Arc<tidemark_core::masking::Masking>>,
}

impl BackupWriter {
    pub fn new(
        config: BackupWriterConfig,
        objects: Arc<dyn ObjectStore>,
        index: Arc<dyn IndexStore>,
        keys: Arc<SegmentKeys>,
        generations: TopicGenerations,
    ) -> Self {
        BackupWriter {
            config,
            objects,
            index,
            keys,
            generations,
            masking: None,
        }
    }

    /// A writer of a masked backup: every record is masked before it is framed.
    pub fn masking(self, masking: Option<tidemark_core::masking::Masking>) -> Self {
        BackupWriter {
            masking: masking.map(Arc::new),
            ..self
        }
    }

    /// How this writer encodes events.
    pub fn encoding(&self) -> Encoding {
        Encoding {
            masking: self.masking.clone(),
            ..Encoding::of(&self.config)
        }
    }

    /// Backs up the event JSON in `body` ([`Self::handle`] after the CPU phase).
    pub async fn handle_json(&self, body: &[u8]) -> Result<BatchReport> {
        self.handle(encode_event(body, &self.encoding())).await
    }

    /// Backs up one encoded event. Returns only after every partition's segment, index entry
    /// and checkpoint are durable; on any failure returns an error so the batch is retried,
    /// and a retry repeats nothing that already succeeded.
    pub async fn handle(&self, event: tidemark_core::Result<EncodedEvent>) -> Result<BatchReport> {
        let EncodedEvent {
            partitions,
            skipped_topics,
        } = event?;
        if !skipped_topics.is_empty() {
            info!(topics = ?skipped_topics, "skipping topics excluded by the topic patterns");
        }
        let total = partitions.len();
        let mut topics: Vec<String> = partitions.iter().map(|p| p.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let generations = self.generations.current(&topics, now_ms()).await?;
        let results = futures::future::join_all(partitions.into_iter().map(|partition| {
            let generation = generations.get(&partition.topic).copied().unwrap_or(0);
            self.write_partition(partition, generation)
        }))
        .await;

        let mut reports = Vec::with_capacity(total);
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok(report) => reports.push(report),
                Err((partition, error)) => {
                    warn!(%partition, %error, "partition backup failed");
                    if is_divergence(&error) {
                        self.generations.forget(&partition.topic);
                    }
                    failures.push((partition, error));
                }
            }
        }
        if !failures.is_empty() {
            return Err(WriterError::Partitions {
                failed: failures.len(),
                total,
                summary: failures
                    .iter()
                    .map(|(partition, error)| format!("{partition}: {error}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                retryable: failures.iter().all(|(_, error)| error.is_retryable()),
                conflict: failures.iter().any(|(_, error)| {
                    matches!(error, tidemark_core::Error::SegmentConflict { .. })
                }),
                diverged: failures.iter().any(|(_, error)| is_divergence(error)),
            });
        }
        Ok(BatchReport {
            partitions: reports,
            skipped_topics,
        })
    }

    async fn write_partition(
        &self,
        encoded: EncodedPartition,
        generation: u32,
    ) -> std::result::Result<PartitionReport, (PartitionId, tidemark_core::Error)> {
        let partition = PartitionId::new(
            self.config.backup_id.clone(),
            encoded.topic.clone(),
            encoded.partition,
        )
        .in_generation(generation);
        let started = Instant::now();
        match self.write_and_commit(&partition, &encoded).await {
            Ok(report) => {
                emit_metrics(
                    &self.config,
                    &encoded,
                    &report,
                    started.elapsed().as_secs_f64() * 1000.0,
                );
                info!(
                    topic = %report.topic,
                    generation = report.generation,
                    partition = report.partition,
                    first_offset = report.first_offset,
                    last_offset = report.last_offset,
                    records = report.records,
                    created = report.created,
                    key = %report.segment_key,
                    "segment durable and checkpoint advanced"
                );
                Ok(report)
            }
            Err(error) => Err((partition, error)),
        }
    }

    async fn write_and_commit(
        &self,
        partition: &PartitionId,
        encoded: &EncodedPartition,
    ) -> tidemark_core::Result<PartitionReport> {
        // Read first: a batch that overlaps the backup must hold the same records there.
        let observed = self.index.checkpoint(partition).await?;
        let mut segment = std::borrow::Cow::Borrowed(&encoded.segment);
        if let Some(checkpoint) = &observed
            && verify_overlap(
                self.index.as_ref(),
                self.objects.as_ref(),
                &self.keys,
                partition,
                &encoded.segment,
                checkpoint,
            )
            .await?
                == Overlap::ReachesErased
        {
            // The overlap is backed up already, less what an erasure removed: only what lies
            // past the checkpoint is written, so erased records never come back.
            match records_from(
                &encoded.segment,
                checkpoint.next_offset,
                self.config.compression_level,
            )? {
                Some(rest) => segment = std::borrow::Cow::Owned(rest),
                None => {
                    let header = &encoded.segment.header;
                    info!(%partition, first_offset = header.first_offset, last_offset = header.last_offset,
                        "a re-delivered batch reaches erased offsets and holds nothing new: not written");
                    return Ok(PartitionReport {
                        topic: partition.topic.clone(),
                        generation: partition.generation,
                        partition: partition.partition,
                        first_offset: header.first_offset,
                        last_offset: header.last_offset,
                        records: 0,
                        segment_key: String::new(),
                        created: false,
                        gap: None,
                    });
                }
            }
        }
        let segment = segment.as_ref();
        let header = &segment.header;
        // Shredded (when configured) only now: the overlap check compares clear records.
        let shredding = self.keys.shredding().filter(|shredding| shredding.shreds());
        let (to_store, keys_read_at) = match shredding {
            Some(shredding) => {
                let sealed = shredding
                    .seal_segment(partition, segment, self.config.compression_level)
                    .await?;
                (
                    std::borrow::Cow::Owned(sealed.segment),
                    Some((sealed.keys_read_at, shredding.commit_lease())),
                )
            }
            None => (std::borrow::Cow::Borrowed(segment), None),
        };
        let key = self.config.store.layout.segment_key(
            partition,
            header.first_offset,
            header.last_offset,
        );
        let (key, created, entry) = self
            .store_segment(partition, key, segment, &to_store)
            .await?;
        if let Some((read_at, lease)) = keys_read_at
            && read_at.elapsed() > lease
        {
            // An erasure may have retired these keys and be about to look for their records:
            // the retry seals with fresh ones.
            return Err(tidemark_core::Error::IndexStore {
                operation: "commit",
                message: format!(
                    "{partition}: the batch was sealed under data keys read {} s ago, past the \
                     {} s commit lease; its retry seals with fresh keys",
                    read_at.elapsed().as_secs(),
                    lease.as_secs()
                ),
                retryable: true,
            });
        }

        let gap = record_segment(
            self.index.as_ref(),
            partition,
            &entry,
            entry.max_timestamp,
            observed,
            now_ms(),
        )
        .await?;
        if let Some(gap) = &gap {
            warn!(%partition, start = gap.start, end = gap.end, "offsets missing from the source recorded as a gap");
        }
        Ok(PartitionReport {
            topic: partition.topic.clone(),
            generation: partition.generation,
            partition: partition.partition,
            first_offset: header.first_offset,
            last_offset: header.last_offset,
            records: header.record_count,
            segment_key: key,
            created,
            gap: gap.map(|gap| (gap.start, gap.end)),
        })
    }

    /// Stores `to_store` (the batch `clear` as it is kept: shredded or not) under `key`, or
    /// keeps what an earlier attempt stored there when it holds the same records. Returns the
    /// key the batch is indexed under, whether this call created it, and its index entry.
    async fn store_segment(
        &self,
        partition: &PartitionId,
        key: String,
        clear: &EncodedSegment,
        to_store: &EncodedSegment,
    ) -> tidemark_core::Result<(String, bool, SegmentEntry)> {
        let metadata = segment_metadata(&to_store.header);
        // Sealed (when configured) only now: the overlap check compares plain records.
        let stored = self
            .keys
            .protect(&partition.backup_id, to_store.clone())
            .await?;
        let stored_bytes = stored.bytes.len() as u64;
        let tier = self.config.retention.tier(&partition.topic);
        let tags = ObjectTags::from([(RetentionTier::TAG.to_owned(), tier.as_str().to_owned())]);
        let existing = match self
            .objects
            .put_tagged_if_absent(&key, stored.bytes.clone(), &metadata, &tags)
            .await?
        {
            PutOutcome::Created => {
                let entry = SegmentEntry::encoded(key.clone(), to_store, stored_bytes, now_ms());
                return Ok((key, true, entry));
            }
            PutOutcome::AlreadyExists(existing) if holds_same_records(&existing, &metadata) => {
                let entry = SegmentEntry::encoded(key.clone(), to_store, stored_bytes, now_ms());
                return Ok((key, false, entry));
            }
            PutOutcome::AlreadyExists(existing) => existing,
        };
        // Same offsets, other bytes. A retry after the source's log cleaner removed some
        // records holds a subset of what is stored, and a shredded retry differs in its
        // nonces: the stored segment is the backup. Anything else is a conflict.
        match existing_superset(
            self.objects.as_ref(),
            &self.keys,
            partition,
            &key,
            clear,
            to_store,
        )
        .await?
        {
            Existing::Superset(entry) => Ok((key, false, entry)),
            Existing::SealedUnderOtherKeys => {
                // An earlier attempt sealed these records under data keys that are no longer
                // current (an erasure retired them, or shredding was turned off since): that
                // object is never indexed, and this batch goes under a name of its own.
                let header = &to_store.header;
                let resealed = self.config.store.layout.resealed_segment_key(
                    partition,
                    header.first_offset,
                    header.last_offset,
                    header.records_crc32c,
                );
                match self
                    .objects
                    .put_tagged_if_absent(&resealed, stored.bytes, &metadata, &tags)
                    .await?
                {
                    PutOutcome::Created => {}
                    PutOutcome::AlreadyExists(existing)
                        if holds_same_records(&existing, &metadata) => {}
                    PutOutcome::AlreadyExists(existing) => {
                        return Err(tidemark_core::Error::SegmentConflict {
                            key: resealed,
                            detail: format!(
                                "existing object has metadata {existing:?}, this batch has {metadata:?}"
                            ),
                        });
                    }
                }
                let entry =
                    SegmentEntry::encoded(resealed.clone(), to_store, stored_bytes, now_ms());
                Ok((resealed, true, entry))
            }
            Existing::Other => Err(tidemark_core::Error::SegmentConflict {
                key: key.clone(),
                detail: format!(
                    "existing object has metadata {existing:?}, this batch has {metadata:?}, \
                     and the batch's records are not a subset of the stored ones"
                ),
            }),
        }
    }
}

/// `segment`'s records from offset `from` on, as a segment of their own; `None` when it has none.
fn records_from(
    segment: &EncodedSegment,
    from: i64,
    level: i32,
) -> tidemark_core::Result<Option<EncodedSegment>> {
    let header = &segment.header;
    let mut encoder = SegmentEncoder::new(&header.topic, header.partition, level)?;
    let mut reader = SegmentReader::open(segment.bytes.as_ref())?;
    while let Some(record) = reader.next_record()? {
        if record.offset >= from {
            encoder.push(&record)?;
        }
    }
    if encoder.record_count() == 0 {
        return Ok(None);
    }
    encoder.finish().map(Some)
}

/// What an earlier attempt stored under a batch's key.
enum Existing {
    /// Every record of the batch, equal field for field (a re-delivery of a range the source's
    /// log cleaner has since thinned, or a shredded retry): its index entry.
    Superset(SegmentEntry),
    /// Shredded records sealed under data keys other than this batch's (no longer current), or
    /// a batch that is not shredded: the stored object cannot be kept.
    SealedUnderOtherKeys,
    /// Other records.
    Other,
}

/// Compares the segment stored at `key` with the batch: `clear` its records, `to_store` the
/// form they are stored in (shredded or the same).
async fn existing_superset(
    objects: &dyn ObjectStore,
    keys: &SegmentKeys,
    partition: &PartitionId,
    key: &str,
    clear: &EncodedSegment,
    to_store: &EncodedSegment,
) -> tidemark_core::Result<Existing> {
    let Some(stored) = objects.get(key).await? else {
        return Err(tidemark_core::Error::ObjectStore {
            operation: "GetObject",
            key: key.to_owned(),
            message: "the segment existed a moment ago and is gone; retry".into(),
            retryable: true,
        });
    };
    let stored_header = tidemark_core::segment::verify_stored_segment(&stored)?;
    let stored_len = stored.len() as u64;
    let plain = keys.plain(&partition.backup_id, stored).await?;
    // Stored shredded records are kept only when sealed under this batch's keys, which are
    // current: under others an erasure may have retired, they could be indexed after its find.
    if stored_header.shredded
        && !(to_store.header.shredded && sealed_under_same_keys(&plain, &to_store.bytes)?)
    {
        return Ok(Existing::SealedUnderOtherKeys);
    }
    let plain = keys.clear(&partition.backup_id, plain).await?;
    let mut theirs = SegmentReader::open(plain.as_ref())?;
    let mut ours = SegmentReader::open(clear.bytes.as_ref())?;
    let mut candidate = theirs.next_record()?;
    while let Some(record) = ours.next_record()? {
        while candidate
            .as_ref()
            .is_some_and(|stored| stored.offset < record.offset)
        {
            candidate = theirs.next_record()?;
        }
        if candidate.as_ref() != Some(&record) {
            return Ok(Existing::Other);
        }
    }
    Ok(Existing::Superset(SegmentEntry::new(
        key.to_owned(),
        &stored_header,
        stored_len,
        now_ms(),
    )))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn emit_metrics(
    config: &BackupWriterConfig,
    encoded: &EncodedPartition,
    report: &PartitionReport,
    latency_ms: f64,
) {
    let header = &encoded.segment.header;
    let stored = encoded.segment.bytes.len() as f64;
    let now = now_ms();
    let mut line = MetricsLine::new(&config.metrics_namespace)
        .dimension("BackupId", &config.backup_id)
        .dimension("Topic", &report.topic)
        .metric("Records", Unit::Count, f64::from(report.records))
        .metric("BytesIn", Unit::Bytes, encoded.payload_bytes as f64)
        .metric("BytesOut", Unit::Bytes, stored)
        .metric(
            "CompressionRatio",
            Unit::None,
            header.uncompressed_len as f64 / stored.max(1.0),
        )
        .metric("SegmentWriteLatency", Unit::Milliseconds, latency_ms)
        .property("Partition", report.partition)
        .property("Generation", report.generation)
        .property("FirstOffset", report.first_offset)
        .property("LastOffset", report.last_offset);
    if header.max_timestamp >= 0 {
        line = line.metric(
            "LagMs",
            Unit::Milliseconds,
            (now - header.max_timestamp).max(0) as f64,
        );
    }
    if let Some((start, end)) = report.gap {
        line = line.metric("GapOffsets", Unit::Count, (end - start + 1) as f64);
    }
    line.emit(now);
}
