//! Gathers records into events exactly as a Kafka event source mapping would: grouped by
//! `topic-partition` in offset order, at most `max_records` records, and a serialised payload
//! that never exceeds `max_payload_bytes` (Lambda's 6 MB).
//!
//! Each record is serialised once, when it is read, straight from the consumer's buffer into
//! its partition's part of the payload; its JSON's length is what is counted against the limit.

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

/// A record that did not fit its batch, in its event JSON form: it starts the next one.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    json: Vec<u8>,
}

impl PendingRecord {
    pub fn new(record: &EventRecordRef<'_>) -> Self {
        let mut json = Vec::new();
        record.write_json(&mut json);
        PendingRecord {
            topic: record.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
            json,
        }
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
    /// Partition buffers of earlier batches, kept with their capacity: growing fresh ones
    /// for every batch was a tenth of the gathering thread's time (perf).
    spare_buffers: Vec<Vec<u8>>,
    /// Payloads of delivered batches, to be written into again: a fresh 6 MB buffer per batch
    /// leaves freed ones in the allocator's arenas, resident (the bridge's peak RSS).
    spare_payloads: Vec<Vec<u8>>,
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
            spare_buffers: Vec::new(),
            spare_payloads: Vec::new(),
        }
    }

    /// Gives back the payload of a delivered batch, to be written into again.
    pub fn recycle(&mut self, mut payload: Vec<u8>) {
        payload.clear();
        self.spare_payloads.push(payload);
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

    /// Whether a record at `offset` repeats or goes back behind an offset its partition has in
    /// this batch (a consumer re-reading after a rebalance): adding it would break the order.
    pub fn repeats(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.position(topic, partition)
            .is_some_and(|at| offset <= self.partitions[at].last_offset)
    }

    /// Adds a record read from the consumer unless the batch is full or it would push the
    /// payload over the limit; then it comes back, serialised, to start the next batch.
    pub fn add_read(&mut self, record: &EventRecordRef<'_>) -> Result<Added> {
        if self.is_full() {
            return Ok(Added::Full(PendingRecord::new(record)));
        }
        self.place(record.topic, record.partition, record.offset, |json| {
            record.write_json(json)
        })
    }

    /// Adds a record carried over from the previous batch, on the same terms as `add_read`.
    pub fn add(&mut self, record: PendingRecord) -> Result<Added> {
        if self.is_full() {
            return Ok(Added::Full(record));
        }
        self.place(&record.topic, record.partition, record.offset, |json| {
            json.extend_from_slice(&record.json)
        })
    }

    /// Writes a record into its partition's JSON, then takes it back out if it overflows the
    /// payload: measuring by writing keeps one serialisation per record in the common case.
    fn place(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        write_json: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Added> {
        let at = match self.position(topic, partition) {
            Some(at) => at,
            None => {
                self.partitions.push(PartitionRecords {
                    topic: topic.to_owned(),
                    partition,
                    group: format!("{topic}-{partition}"),
                    json: self.spare_buffers.pop().unwrap_or_default(),
                    last_offset: offset,
                });
                self.partitions.len() - 1
            }
        };
        let first_group = self.partitions.len() == 1;
        let records = &mut self.partitions[at];
        let new_group = records.json.is_empty();
        let start = records.json.len();
        if !new_group {
            records.json.push(b',');
        }
        let record_start = records.json.len();
        write_json(&mut records.json);
        let added_bytes = match new_group {
            false => records.json.len() - start,
            // `"group":[record]`, plus a comma unless it is the first group.
            true => {
                json_string_len(&records.group) + 3 + records.json.len() + usize::from(!first_group)
            }
        };
        if self.payload_bytes + added_bytes > self.max_payload_bytes {
            let pending = PendingRecord {
                topic: topic.to_owned(),
                partition,
                offset,
                json: records.json.split_off(record_start),
            };
            records.json.truncate(start);
            if new_group {
                self.partitions.remove(at);
            }
            if self.is_empty() {
                return Err(BridgeError::RecordTooLarge {
                    topic: pending.topic,
                    partition,
                    offset,
                    bytes: self.empty_event.len() + added_bytes,
                    limit: self.max_payload_bytes,
                });
            }
            return Ok(Added::Full(pending));
        }
        records.last_offset = offset;
        self.payload_bytes += added_bytes;
        self.record_count += 1;
        self.last_partition = at;
        Ok(Added::Yes)
    }

    /// Takes the batch built so far and starts an empty one.
    pub fn take(&mut self) -> Batch {
        let mut partitions = std::mem::take(&mut self.partitions);
        // The event's records are an object keyed by group, in the order a JSON map keeps.
        partitions.sort_by(|a, b| a.group.cmp(&b.group));
        let mut payload = self.spare_payloads.pop().unwrap_or_default();
        payload.reserve(self.payload_bytes);
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
        let mut last_offsets = Vec::with_capacity(partitions.len());
        for mut records in partitions {
            last_offsets.push((records.topic, records.partition, records.last_offset));
            records.json.clear();
            self.spare_buffers.push(records.json);
        }
        let batch = Batch {
            payload,
            record_count: self.record_count,
            last_offsets,
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

    /// Calls `with` on a record as the consumer would hand it over.
    fn read<T>(
        topic: &str,
        partition: i32,
        offset: i64,
        value_len: usize,
        with: impl FnOnce(&EventRecordRef<'_>) -> T,
    ) -> T {
        let value = vec![b'x'; value_len];
        with(&EventRecordRef {
            topic,
            partition,
            offset,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k"),
            value: Some(&value),
            headers: &[("h", Some(&[0xff]))],
        })
    }

    fn record(topic: &str, partition: i32, offset: i64, value_len: usize) -> PendingRecord {
        read(topic, partition, offset, value_len, PendingRecord::new)
    }

    fn add_read(
        builder: &mut BatchBuilder,
        topic: &str,
        partition: i32,
        offset: i64,
        value_len: usize,
    ) -> Added {
        read(topic, partition, offset, value_len, |record| {
            builder.add_read(record).unwrap()
        })
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
            // Carried-over and freshly read records go into the same JSON.
            let added_now = if offset % 5 == 0 {
                builder.add(record.clone()).unwrap()
            } else {
                add_read(
                    &mut builder,
                    &record.topic,
                    record.partition,
                    record.offset,
                    10 + offset as usize,
                )
            };
            added.push(record);
            let Added::Yes = added_now else {
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
    fn a_given_back_payload_is_written_into_again_holding_only_the_new_batch() {
        let mut builder = BatchBuilder::new(envelope(), 1000, 1 << 20);
        add_read(&mut builder, "t", 0, 0, 5000);
        let first = builder.take();
        let first_buffer = first.payload.as_ptr();
        builder.recycle(first.payload);

        add_read(&mut builder, "t", 1, 7, 10);
        let second = builder.take();
        assert_eq!(
            second.payload.as_ptr(),
            first_buffer,
            "the same buffer, no new one"
        );
        let event: KafkaEvent = serde_json::from_slice(&second.payload).unwrap();
        assert_eq!(event.records.len(), 1);
        assert_eq!(event.records["t-1"][0].offset, 7);
        assert_eq!(
            second.payload,
            serde_json::to_vec(&event).unwrap(),
            "nothing of the first batch is left"
        );
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
        let Added::Full(rejected) = add_read(&mut builder, "t", 0, 2, 1) else {
            panic!("should be full")
        };
        assert_eq!(rejected.offset, 2);
        let Added::Full(carried) = builder.add(rejected).unwrap() else {
            panic!("still full")
        };
        builder.take();
        assert!(matches!(builder.add(carried).unwrap(), Added::Yes));
    }

    #[test]
    fn batches_never_exceed_the_payload_limit_and_lose_no_record_at_the_edge() {
        // With 50 partitions the record that overflows often opens a new group.
        for partitions in [4, 50] {
            let limit = 64 * 1024;
            let mut builder = BatchBuilder::new(envelope(), 10_000, limit);
            let mut offset = 0;
            let mut batches = Vec::new();
            while batches.len() < 6 {
                let partition = (offset % partitions) as i32;
                match add_read(&mut builder, "t", partition, offset, 3000) {
                    Added::Yes => offset += 1,
                    Added::Full(next) => {
                        batches.push(builder.take());
                        assert!(matches!(builder.add(next).unwrap(), Added::Yes));
                        offset += 1;
                    }
                }
            }
            let mut delivered = Vec::new();
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
                    delivered.extend(records.iter().map(|record| record.offset));
                }
            }
            let rest: KafkaEvent = serde_json::from_slice(&builder.take().payload).unwrap();
            delivered.extend(rest.records.values().flatten().map(|record| record.offset));
            delivered.sort();
            assert_eq!(
                delivered,
                (0..offset).collect::<Vec<_>>(),
                "{partitions} partitions"
            );
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
        assert!(builder.repeats("t", 0, 6));
        assert!(builder.repeats("t", 0, 2));
        assert!(!builder.repeats("t", 0, 7));
        assert!(!builder.repeats("t", 1, 0), "another partition");
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
