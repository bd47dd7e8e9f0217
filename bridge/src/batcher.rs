//! Gathers records into events exactly as a Kafka event source mapping would: grouped by
//! `topic-partition` in offset order, at most `max_records` records, and a serialised payload
//! that never exceeds `max_payload_bytes` (Lambda's 6 MB).
//!
//! Each record is serialised once, when it is read, straight from the consumer's buffer: its
//! JSON both measures it against the payload limit and becomes part of the payload.

use tidemark_core::event::{EventRecordRef, KafkaEvent};

use crate::error::{BridgeError, Result};

/// The static part of every event this bridge sends.
#[derive(Debug, Clone)]
pub struct EventEnvelope {
    pub event_source: String,
    pub event_source_arn: Option<String>,
    pub bootstrap_servers: Option<String>,
}

impl EventEnvelope {
    /// The JSON of an event with no records: `{...,"records":{}}`.
    fn empty_event_json(&self) -> Vec<u8> {
        serde_json::to_vec(&KafkaEvent {
            event_source: Some(self.event_source.clone()),
            event_source_arn: self.event_source_arn.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            records: Default::default(),
        })
        .expect("an event envelope always serialises")
    }
}

/// One record read from the source, already in its event JSON form.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    json: Vec<u8>,
}

impl PendingRecord {
    pub fn new(record: &EventRecordRef<'_>) -> Result<Self> {
        let json =
            serde_json::to_vec(record).map_err(|error| BridgeError::Encode(error.to_string()))?;
        Ok(PendingRecord {
            topic: record.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
            json,
        })
    }
}

/// A partition's records in a batch: their JSON, comma-separated.
struct PartitionRecords {
    topic: String,
    partition: i32,
    /// `"topic-partition"`, the group's key in the event.
    group: String,
    json: Vec<u8>,
    last_offset: i64,
}

/// The payload of one invocation and what committing it needs.
pub struct Batch {
    pub payload: Vec<u8>,
    pub record_count: usize,
    /// Each partition in the batch with the offset of its last record.
    pub last_offsets: Vec<(String, i32, i64)>,
}

pub struct BatchBuilder {
    max_records: usize,
    max_payload_bytes: usize,
    partitions: Vec<PartitionRecords>,
    /// Where the last record went: records come in runs of one partition.
    last_partition: usize,
    record_count: usize,
    /// Exact length of the compact JSON of the event built so far.
    payload_bytes: usize,
    empty_event: Vec<u8>,
}

pub enum Added {
    Yes,
    /// The batch is full; the record was not added and starts the next batch.
    Full(PendingRecord),
}

impl BatchBuilder {
    pub fn new(envelope: EventEnvelope, max_records: usize, max_payload_bytes: usize) -> Self {
        let empty_event = envelope.empty_event_json();
        BatchBuilder {
            max_records,
            max_payload_bytes,
            partitions: Vec::new(),
            last_partition: 0,
            record_count: 0,
            payload_bytes: empty_event.len(),
            empty_event,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn is_full(&self) -> bool {
        self.record_count >= self.max_records
    }

    fn position(&self, topic: &str, partition: i32) -> Option<usize> {
        let matches =
            |records: &PartitionRecords| records.partition == partition && records.topic == topic;
        if self
            .partitions
            .get(self.last_partition)
            .is_some_and(matches)
        {
            return Some(self.last_partition);
        }
        self.partitions.iter().position(matches)
    }

    /// Whether `record` repeats or goes back behind an offset its partition has in this batch
    /// (a consumer re-reading after a rebalance): adding it would break the offset order.
    pub fn repeats(&self, record: &PendingRecord) -> bool {
        self.position(&record.topic, record.partition)
            .is_some_and(|at| record.offset <= self.partitions[at].last_offset)
    }

    /// Adds `record` unless the batch is full or it would push the payload over the limit.
    /// A record too large to fit even an empty event can never be delivered: an error.
    pub fn add(&mut self, record: PendingRecord) -> Result<Added> {
        if self.is_full() {
            return Ok(Added::Full(record));
        }
        let at = self.position(&record.topic, record.partition);
        let new_group = at
            .is_none()
            .then(|| format!("{}-{}", record.topic, record.partition));
        let added_bytes = match &new_group {
            None => record.json.len() + 1, // the comma before it
            // `"group":[record]`, plus a comma unless it is the first group.
            Some(group) => {
                json_string_len(group)
                    + 3
                    + record.json.len()
                    + usize::from(!self.partitions.is_empty())
            }
        };
        if self.payload_bytes + added_bytes > self.max_payload_bytes {
            if self.is_empty() {
                return Err(BridgeError::RecordTooLarge {
                    topic: record.topic,
                    partition: record.partition,
                    offset: record.offset,
                    bytes: self.empty_event.len() + added_bytes,
                    limit: self.max_payload_bytes,
                });
            }
            return Ok(Added::Full(record));
        }
        self.payload_bytes += added_bytes;
        self.record_count += 1;
        match at {
            Some(at) => {
                let records = &mut self.partitions[at];
                records.json.push(b',');
                records.json.extend_from_slice(&record.json);
                records.last_offset = record.offset;
                self.last_partition = at;
            }
            None => {
                self.partitions.push(PartitionRecords {
                    group: new_group.expect("a new partition has its group"),
                    topic: record.topic,
                    partition: record.partition,
                    json: record.json,
                    last_offset: record.offset,
                });
                self.last_partition = self.partitions.len() - 1;
            }
        }
        Ok(Added::Yes)
    }

    /// Takes the batch built so far and starts an empty one.
    pub fn take(&mut self) -> Batch {
        let mut partitions = std::mem::take(&mut self.partitions);
        // The event's records are an object keyed by group, in the order a JSON map keeps.
        partitions.sort_by(|a, b| a.group.cmp(&b.group));
        let mut payload = Vec::with_capacity(self.payload_bytes);
        // The empty event ends with `{}}`: the records go between those braces.
        payload.extend_from_slice(&self.empty_event[..self.empty_event.len() - 2]);
        for (n, records) in partitions.iter().enumerate() {
            if n > 0 {
                payload.push(b',');
            }
            serde_json::to_writer(&mut payload, &records.group)
                .expect("writing to a Vec cannot fail");
            payload.extend_from_slice(b":[");
            payload.extend_from_slice(&records.json);
            payload.push(b']');
        }
        payload.extend_from_slice(b"}}");
        debug_assert_eq!(payload.len(), self.payload_bytes);
        let batch = Batch {
            payload,
            record_count: self.record_count,
            last_offsets: partitions
                .into_iter()
                .map(|records| (records.topic, records.partition, records.last_offset))
                .collect(),
        };
        self.record_count = 0;
        self.payload_bytes = self.empty_event.len();
        self.last_partition = 0;
        batch
    }
}

/// Length of `text` as a JSON string, quotes and escapes included.
fn json_string_len(text: &str) -> usize {
    serde_json::to_vec(text).map_or(text.len() + 2, |json| json.len())
}

#[cfg(test)]
mod tests {
    use tidemark_core::event::KafkaEventRecord;
    use tidemark_core::segment::TimestampType;

    use super::*;

    fn envelope() -> EventEnvelope {
        EventEnvelope {
            event_source: "aws:kafka".into(),
            event_source_arn: Some("arn:aws:kafka:us-east-1:000000000000:cluster/local/1".into()),
            bootstrap_servers: Some("127.0.0.1:9092".into()),
        }
    }

    fn record(topic: &str, partition: i32, offset: i64, value_len: usize) -> PendingRecord {
        let value = vec![b'x'; value_len];
        PendingRecord::new(&EventRecordRef {
            topic,
            partition,
            offset,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k"),
            value: Some(&value),
            headers: &[("h", Some(&[0xff]))],
        })
        .unwrap()
    }

    #[test]
    fn the_payload_is_the_event_serialised_and_its_size_is_counted_exactly() {
        let mut builder = BatchBuilder::new(envelope(), 1000, 6 * 1024 * 1024);
        let mut added = Vec::new();
        for offset in 0..30 {
            let record = record(
                ["a", "bb", "a\"q"][offset as usize % 3],
                (offset % 4) as i32,
                offset,
                10 + offset as usize,
            );
            added.push(record.clone());
            let Added::Yes = builder.add(record).unwrap() else {
                panic!("batch should not be full")
            };
        }
        let predicted = builder.payload_bytes;
        let batch = builder.take();
        assert_eq!(batch.payload.len(), predicted);
        let event: KafkaEvent = serde_json::from_slice(&batch.payload).unwrap();
        assert_eq!(event.event_source.as_deref(), Some("aws:kafka"));
        let mut expected: std::collections::BTreeMap<String, Vec<KafkaEventRecord>> =
            Default::default();
        for record in &added {
            expected
                .entry(format!("{}-{}", record.topic, record.partition))
                .or_default()
                .push(serde_json::from_slice(&record.json).unwrap());
        }
        assert_eq!(event.records, expected);
        assert_eq!(
            batch.payload,
            serde_json::to_vec(&event).unwrap(),
            "byte for byte what serialising the event gives"
        );
        assert_eq!(batch.record_count, 30);
        assert_eq!(batch.last_offsets.len(), 12);
        assert!(batch.last_offsets.contains(&("bb".into(), 1, 25)));
        assert!(builder.is_empty());
    }

    #[test]
    fn batches_close_at_the_record_limit() {
        let mut builder = BatchBuilder::new(envelope(), 2, 1 << 20);
        assert!(matches!(
            builder.add(record("t", 0, 0, 1)).unwrap(),
            Added::Yes
        ));
        assert!(matches!(
            builder.add(record("t", 0, 1, 1)).unwrap(),
            Added::Yes
        ));
        let Added::Full(rejected) = builder.add(record("t", 0, 2, 1)).unwrap() else {
            panic!("should be full")
        };
        assert_eq!(rejected.offset, 2);
    }

    #[test]
    fn batches_never_exceed_the_payload_limit() {
        let limit = 64 * 1024;
        let mut builder = BatchBuilder::new(envelope(), 10_000, limit);
        let mut offset = 0;
        let mut batches = Vec::new();
        while batches.len() < 3 {
            match builder
                .add(record("t", (offset % 4) as i32, offset, 3000))
                .unwrap()
            {
                Added::Yes => offset += 1,
                Added::Full(next) => {
                    batches.push(builder.take());
                    assert!(matches!(builder.add(next).unwrap(), Added::Yes));
                    offset += 1;
                }
            }
        }
        for batch in batches {
            let size = batch.payload.len();
            assert!(size <= limit, "{size} > {limit}");
            assert!(size > limit - 5000, "batch closed too early at {size}");
            let event: KafkaEvent = serde_json::from_slice(&batch.payload).unwrap();
            for records in event.records.values() {
                assert!(
                    records
                        .windows(2)
                        .all(|pair| pair[0].offset < pair[1].offset),
                    "order kept"
                );
            }
        }
    }

    #[test]
    fn a_re_read_offset_is_seen_before_it_breaks_the_order() {
        let mut builder = BatchBuilder::new(envelope(), 10, 1 << 20);
        for offset in [5, 6] {
            assert!(matches!(
                builder.add(record("t", 0, offset, 1)).unwrap(),
                Added::Yes
            ));
        }
        assert!(builder.repeats(&record("t", 0, 6, 1)));
        assert!(builder.repeats(&record("t", 0, 2, 1)));
        assert!(!builder.repeats(&record("t", 0, 7, 1)));
        assert!(!builder.repeats(&record("t", 1, 0, 1)), "another partition");
    }

    #[test]
    fn a_record_that_can_never_fit_is_an_error_naming_it() {
        let mut builder = BatchBuilder::new(envelope(), 10, 1024);
        let error = builder
            .add(record("t", 1, 42, 4096))
            .err()
            .expect("must not fit");
        assert!(error.to_string().contains("t-1 offset 42"), "{error}");
    }
}
