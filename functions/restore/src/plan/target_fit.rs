//! Will the target keep what the restore writes? Checked in Plan, before any write:
//!
//! - **Timestamps.** A topic with `message.timestamp.type=LogAppendTime` overwrites every
//!   restored timestamp. Created topics get `CreateTime`; an existing one that appends its own
//!   time is refused.
//! - **Retention.** Restored records keep their old timestamps, and the broker deletes records
//!   older than `retention.ms` at its next pass. A created topic whose retention would reach the
//!   oldest restored record gets `retention.ms=-1` (the plan warns: set it back once consumers
//!   have caught up); an existing one is refused. Time-window limits on produce
//!   (`message.timestamp.*.max.ms`) are not copied to created topics.
//! - **Record size.** The largest restored record must fit the target topic's
//!   `max.message.bytes`: a created topic is given room for it, an existing one that cannot take
//!   it is refused, naming the topic, partition and segment. The partition restores' producer is
//!   sized from the same figure (librdkafka's default refuses records over 1,000,000 bytes).

use std::collections::BTreeMap;

use tidemark_core::kafka::{ClusterReader, TopicConfigs};

use crate::error::{RestoreError, Result};
use tidemark_core::stores::SegmentRef;

/// Bytes a Kafka record batch adds around one record (batch header, record framing, headers'
/// varints): room left above the largest framed record.
pub const RECORD_BATCH_OVERHEAD: u64 = 1_024;
/// Apache Kafka's default `max.message.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1_048_588;
/// Apache Kafka's default `retention.ms` (7 days).
const DEFAULT_RETENTION_MS: i64 = 604_800_000;
/// librdkafka's ceiling for `message.max.bytes`.
const PRODUCER_MAX_MESSAGE_BYTES: u64 = 1_000_000_000;

const CHECKED_CONFIGS: [&str; 4] = [
    "max.message.bytes",
    "message.timestamp.type",
    "retention.ms",
    "cleanup.policy",
];
/// Produce-time windows that would refuse old restored timestamps.
const TIME_WINDOW_CONFIGS: [&str; 3] = [
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
];

/// What a topic's restore will write, as far as the backup's index knows.
#[derive(Debug, Clone, Default)]
pub struct RestoredRange {
    /// The largest framed record and where it is (partition, segment key).
    pub largest: Option<(u64, i32, String)>,
    /// For segments whose largest record the index does not know (a rebuilt index, older
    /// entries, the S3 listing): the largest segment's size, which bounds it.
    pub unknown_bound: Option<u64>,
    /// The oldest record timestamp among segments whose timestamps are known.
    pub oldest_timestamp: Option<i64>,
    /// Some segment's timestamps are unknown (planned from the S3 listing).
    pub any_unknown_timestamp: bool,
}

impl RestoredRange {
    pub fn add(&mut self, partition: i32, segment: &SegmentRef) {
        match segment.max_record_bytes {
            Some(bytes) => {
                if self.largest.as_ref().is_none_or(|(max, ..)| bytes > *max) {
                    self.largest = Some((bytes, partition, segment.key.clone()));
                }
            }
            None => {
                let bound = segment.uncompressed_bytes.unwrap_or(segment.stored_bytes);
                self.unknown_bound = self.unknown_bound.max(Some(bound));
            }
        }
        match segment.min_timestamp {
            Some(min) if min >= 0 => {
                self.oldest_timestamp = Some(self.oldest_timestamp.map_or(min, |old| old.min(min)));
            }
            Some(_) => {}
            None => self.any_unknown_timestamp = true,
        }
    }

    /// The largest record the producer must be able to send: the known largest, or, where the
    /// index does not know, the segment-size bound.
    pub fn producer_record_bytes(&self) -> u64 {
        let known = self.largest.as_ref().map_or(0, |(bytes, ..)| *bytes);
        known.max(self.unknown_bound.unwrap_or(0))
    }
}

/// librdkafka's `message.max.bytes` for a restore whose largest record is `record_bytes`.
pub fn producer_message_max_bytes(record_bytes: u64) -> u64 {
    (record_bytes + RECORD_BATCH_OVERHEAD).clamp(1_000_000, PRODUCER_MAX_MESSAGE_BYTES)
}

fn number(configs: &TopicConfigs, name: &str) -> Option<i64> {
    configs.get(name)?.as_deref()?.trim().parse().ok()
}

fn deletes_old_records(configs: &TopicConfigs) -> bool {
    configs
        .get("cleanup.policy")
        .and_then(|value| value.as_deref())
        .is_none_or(|policy| policy.contains("delete"))
}

/// Adjusts the configs a created target gets so that it keeps what is restored; returns the
/// warnings to show the operator.
pub fn fit_created_topic(
    topic: &str,
    configs: &mut TopicConfigs,
    range: &RestoredRange,
    now_ms: i64,
) -> Vec<String> {
    let mut warnings = Vec::new();
    configs.insert(
        "message.timestamp.type".into(),
        Some("CreateTime".to_owned()),
    );
    for name in TIME_WINDOW_CONFIGS {
        if configs.remove(name).is_some() {
            warnings.push(format!(
                "{topic}: {name} is not copied: the broker would refuse restored records older \
                 than its window"
            ));
        }
    }
    let retention_ms = number(configs, "retention.ms").unwrap_or(DEFAULT_RETENTION_MS);
    let oldest = range
        .oldest_timestamp
        .filter(|_| !range.any_unknown_timestamp);
    if deletes_old_records(configs)
        && retention_ms >= 0
        && oldest.is_none_or(|oldest| oldest < now_ms - retention_ms)
    {
        configs.insert("retention.ms".into(), Some("-1".to_owned()));
        warnings.push(format!(
            "{topic}: created with retention.ms=-1 (the source's is {retention_ms}): restored \
             records are older than that and the broker would delete them; set it back once \
             consumers have caught up"
        ));
    }
    let needed = range.producer_record_bytes() + RECORD_BATCH_OVERHEAD;
    let allowed = number(configs, "max.message.bytes")
        .map_or(DEFAULT_MAX_MESSAGE_BYTES, |value| value.max(0) as u64);
    if needed > allowed {
        configs.insert("max.message.bytes".into(), Some(needed.to_string()));
        warnings.push(format!(
            "{topic}: created with max.message.bytes={needed} (the source's is {allowed}) to take \
             the largest restored record"
        ));
    }
    warnings
}

/// Refuses existing targets that would rewrite or delete restored records, or cannot take the
/// largest one; returns warnings for what the index cannot tell. Reads each target topic's
/// effective configs once.
pub async fn check_existing_targets(
    target: &dyn ClusterReader,
    existing: &[(String, RestoredRange)],
    now_ms: i64,
) -> Result<Vec<String>> {
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = existing.iter().map(|(name, _)| name.clone()).collect();
    let configs: BTreeMap<String, TopicConfigs> = target
        .effective_topic_configs(&names, &CHECKED_CONFIGS)
        .await?;
    let mut warnings = Vec::new();
    for (topic, range) in existing {
        let Some(configs) = configs.get(topic) else {
            continue;
        };
        if configs
            .get("message.timestamp.type")
            .and_then(|value| value.as_deref())
            == Some("LogAppendTime")
        {
            return Err(RestoreError::Refused(format!(
                "target topic {topic} has message.timestamp.type=LogAppendTime: the broker would \
                 overwrite every restored timestamp; set it to CreateTime or restore to a new topic"
            )));
        }
        let retention_ms = number(configs, "retention.ms").unwrap_or(-1);
        if deletes_old_records(configs) && retention_ms >= 0 {
            if range.any_unknown_timestamp {
                return Err(RestoreError::Refused(format!(
                    "target topic {topic} deletes records older than retention.ms={retention_ms} \
                     and the restored records' age is unknown (planned from the S3 listing); set \
                     retention.ms=-1 on it or restore to a new topic"
                )));
            }
            if let Some(oldest) = range.oldest_timestamp
                && oldest < now_ms - retention_ms
            {
                return Err(RestoreError::Refused(format!(
                    "target topic {topic} has retention.ms={retention_ms}: the broker would delete \
                     restored records (the oldest has timestamp {oldest}) at its next retention \
                     pass; raise retention.ms (-1 keeps all) or restore to a new topic"
                )));
            }
        }
        let allowed = number(configs, "max.message.bytes")
            .map_or(DEFAULT_MAX_MESSAGE_BYTES, |value| value.max(0) as u64);
        if let Some((bytes, partition, key)) = &range.largest
            && bytes + RECORD_BATCH_OVERHEAD > allowed
        {
            return Err(RestoreError::Refused(format!(
                "target topic {topic} takes records up to max.message.bytes={allowed}, but \
                 partition {partition} holds a record of {bytes} bytes (in {key}); raise it to at \
                 least {} or restore to a new topic",
                bytes + RECORD_BATCH_OVERHEAD
            )));
        }
        if let Some(bound) = range.unknown_bound
            && bound + RECORD_BATCH_OVERHEAD > allowed
        {
            warnings.push(format!(
                "{topic}: the index does not know the largest record of some segments (up to \
                 {bound} bytes uncompressed); a record over max.message.bytes={allowed} would \
                 fail that partition's restore"
            ));
        }
    }
    Ok(warnings)
}
