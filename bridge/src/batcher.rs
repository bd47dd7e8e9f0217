//! Gathers records into events exactly as a Kafka event source mapping would: grouped by
//! `topic-partition` in offset order, at most `max_records` records, and a serialised payload
//! that never exceeds `max_payload_bytes` (Lambda's 6 MB).

use std::collections::BTreeMap;

use tidemark_core::event::{KafkaEvent, KafkaEventRecord};

use crate::error::{BridgeError, Result};

/// The static part of every event this bridge sends.
#[derive(Debug, Clone)]
pub struct EventEnvelope {
    pub event_source: String,
    pub event_source_arn: Option<String>,
    pub bootstrap_servers: Option<String>,
}

impl EventEnvelope {
    fn event(&self, records: BTreeMap<String, Vec<KafkaEventRecord>>) -> KafkaEvent {
        KafkaEvent {
            event_source: Some(self.event_source.clone()),
            event_source_arn: self.event_source_arn.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            records,
        }
    }
}

pub struct Batch {
    pub event: KafkaEvent,
    pub record_count: usize,
    pub payload_bytes: usize,
}

pub struct BatchBuilder {
    envelope: EventEnvelope,
    max_records: usize,
    max_payload_bytes: usize,
    records: BTreeMap<String, Vec<KafkaEventRecord>>,
    record_count: usize,
    /// Exact length of the compact JSON of the event built so far.
    payload_bytes: usize,
    empty_payload_bytes: usize,
}

pub enum Added {
    Yes,
    /// The batch is full; the record was not added and starts the next batch.
    Full(KafkaEventRecord),
}

impl BatchBuilder {
    pub fn new(envelope: EventEnvelope, max_records: usize, max_payload_bytes: usize) -> Self {
        let empty_payload_bytes =
            serde_json::to_vec(&envelope.event(BTreeMap::new())).map_or(0, |json| json.len());
        BatchBuilder {
            envelope,
            max_records,
            max_payload_bytes,
            records: BTreeMap::new(),
            record_count: 0,
            payload_bytes: empty_payload_bytes,
            empty_payload_bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn is_full(&self) -> bool {
        self.record_count >= self.max_records
    }

    /// Whether `record` repeats or goes back behind an offset its partition has in this batch
    /// (a consumer re-reading after a rebalance): adding it would break the offset order.
    pub fn repeats(&self, record: &KafkaEventRecord) -> bool {
        self.records
            .get(&format!("{}-{}", record.topic, record.partition))
            .and_then(|records| records.last())
            .is_some_and(|last| record.offset <= last.offset)
    }

    /// Adds `record` unless the batch is full or it would push the payload over the limit.
    /// A record too large to fit even an empty event can never be delivered: an error.
    pub fn add(&mut self, record: KafkaEventRecord) -> Result<Added> {
        if self.is_full() {
            return Ok(Added::Full(record));
        }
        let group = format!("{}-{}", record.topic, record.partition);
        let record_bytes = serde_json::to_vec(&record)
            .map_err(|error| BridgeError::Encode(error.to_string()))?
            .len();
        let added_bytes = match self.records.get(&group) {
            Some(_) => record_bytes + 1, // the comma before it
            // `"group":[record]`, plus a comma unless it is the first group.
            None => group.len() + 5 + record_bytes + usize::from(!self.records.is_empty()),
        };
        if self.payload_bytes + added_bytes > self.max_payload_bytes {
            if self.is_empty() {
                return Err(BridgeError::RecordTooLarge {
                    topic: record.topic,
                    partition: record.partition,
                    offset: record.offset,
                    bytes: self.empty_payload_bytes + added_bytes,
                    limit: self.max_payload_bytes,
                });
            }
            return Ok(Added::Full(record));
        }
        self.payload_bytes += added_bytes;
        self.record_count += 1;
        self.records.entry(group).or_default().push(record);
        Ok(Added::Yes)
    }

    /// Takes the batch built so far and starts an empty one.
    pub fn take(&mut self) -> Batch {
        let records = std::mem::take(&mut self.records);
        let batch = Batch {
            event: self.envelope.event(records),
            record_count: self.record_count,
            payload_bytes: self.payload_bytes,
        };
        self.record_count = 0;
        self.payload_bytes = self.empty_payload_bytes;
        batch
    }
}

#[cfg(test)]
mod tests {
    use tidemark_core::segment::{Header, Record, TimestampType};

    use super::*;

    fn envelope() -> EventEnvelope {
        EventEnvelope {
            event_source: "aws:kafka".into(),
            event_source_arn: Some("arn:aws:kafka:us-east-1:000000000000:cluster/local/1".into()),
            bootstrap_servers: Some("127.0.0.1:9092".into()),
        }
    }

    fn record(topic: &str, partition: i32, offset: i64, value_len: usize) -> KafkaEventRecord {
        let record = Record {
            offset,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k".to_vec()),
            value: Some(vec![b'x'; value_len]),
            headers: vec![Header {
                key: "h".into(),
                value: Some(vec![0xff]),
            }],
        };
        KafkaEventRecord::encode(topic, partition, &record)
    }

    #[test]
    fn size_accounting_matches_the_serialised_event_exactly() {
        let mut builder = BatchBuilder::new(envelope(), 1000, 6 * 1024 * 1024);
        for offset in 0..30 {
            let Added::Yes = builder
                .add(record(
                    ["a", "bb"][offset as usize % 2],
                    (offset % 3) as i32,
                    offset,
                    10 + offset as usize,
                ))
                .unwrap()
            else {
                panic!("batch should not be full")
            };
        }
        let batch = builder.take();
        assert_eq!(
            batch.payload_bytes,
            serde_json::to_vec(&batch.event).unwrap().len()
        );
        assert_eq!(batch.record_count, 30);
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
            let size = serde_json::to_vec(&batch.event).unwrap().len();
            assert!(size <= limit, "{size} > {limit}");
            assert!(size > limit - 5000, "batch closed too early at {size}");
            for records in batch.event.records.values() {
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
