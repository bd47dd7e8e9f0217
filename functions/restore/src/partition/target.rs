//! The target side of a partition restore: produce records exactly as they were (idempotent
//! producer, one partition, original timestamps, keys, values and headers including null
//! values) and look at what the target already holds, to resume without duplicates.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tidemark_core::kafka::KafkaConnection;
use tidemark_core::kafka::client::{self, ClusterContext};
use tidemark_core::segment::Record;

use crate::error::{RestoreError, Result};

/// One target partition as the restore sees it.
#[async_trait]
pub trait TargetWriter: Send + Sync {
    /// One past the last record of the partition (its high watermark).
    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64>;

    /// The record stored at `offset`, if there is one.
    async fn read_record(&self, topic: &str, partition: i32, offset: i64)
    -> Result<Option<Record>>;

    /// Queues `records` for production, in order, without waiting for them to be durable.
    /// Returns the offsets of the records acknowledged since the last call, oldest first
    /// (possibly none, possibly some sent by earlier calls).
    async fn send(&self, topic: &str, partition: i32, records: &[Record]) -> Result<Vec<i64>>;

    /// Waits until every queued record is durable; returns the offsets not yet returned.
    async fn flush(&self) -> Result<Vec<i64>>;
}

/// librdkafka's idempotent producer: retries inside the client can neither duplicate nor
/// reorder records.
pub struct KafkaTargetWriter {
    connection: KafkaConnection,
    producer: FutureProducer<ClusterContext>,
    /// Sent records' delivery reports, oldest first.
    pending: tokio::sync::Mutex<VecDeque<DeliveryFuture>>,
}

/// Records sent but not yet acknowledged before sending waits for the oldest: keeps the
/// producer busy across batches while bounding memory.
const MAX_IN_FLIGHT: usize = 40_000;

impl KafkaTargetWriter {
    /// A producer for records of up to `max_record_bytes` (framed, as the plan measured them).
    pub fn connect(connection: KafkaConnection, max_record_bytes: u64) -> Result<Self> {
        let mut config = connection.client_config("tidemark-restore-partition");
        config
            // librdkafka refuses, for good, records over its 1,000,000-byte default.
            .set(
                "message.max.bytes",
                crate::plan::target_fit::producer_message_max_bytes(max_record_bytes).to_string(),
            )
            // A zombie invocation must never bring back a topic a rollback deleted.
            .set("allow.auto.create.topics", "false")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "none")
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.messages", "100000")
            .set("message.timeout.ms", "60000");
        let producer = config
            .create_with_context(ClusterContext::new(&connection))
            .map_err(|error| kafka_error("create producer", &error, false))?;
        Ok(KafkaTargetWriter {
            connection,
            producer,
            pending: tokio::sync::Mutex::new(VecDeque::new()),
        })
    }

    /// The producer's fatal error (an idempotence failure such as a sequence number the
    /// broker refused): this producer sends nothing more, but the restore is not lost. A new
    /// invocation has a new producer and resumes from what the target holds (records past the
    /// progress are checked and adopted, never produced twice), so the state machine retries.
    fn fatal_error(&self) -> RestoreError {
        let reason = self.producer.client().fatal_error().map_or_else(
            || "unknown".to_owned(),
            |(code, reason)| format!("{code:?}: {reason}"),
        );
        RestoreError::Core(tidemark_core::Error::Kafka {
            operation: "produce",
            message: format!(
                "the producer failed for good ({reason}); a new invocation resumes with a new one"
            ),
            retryable: true,
        })
    }
}

pub(crate) fn kafka_error(
    operation: &'static str,
    error: &KafkaError,
    retryable: bool,
) -> RestoreError {
    RestoreError::Core(tidemark_core::Error::Kafka {
        operation,
        message: error.to_string(),
        retryable,
    })
}

#[async_trait]
impl TargetWriter for KafkaTargetWriter {
    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64> {
        let connection = self.connection.clone();
        let topic = topic.to_owned();
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            // Not the producer's own client: librdkafka lists offsets at the client's isolation
            // level, a consumer-only setting a producer leaves at read_committed, which would
            // give the last stable offset rather than the log's end.
            let consumer = client::consumer(&connection, "tidemark-restore-partition", None)?;
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, connection.request_timeout)
                .map_err(|error| {
                    client::describe_failure("read watermarks", &connection, Some(&consumer), error)
                })?;
            // The idempotent producer asks for its producer id only from a broker it is already
            // connected to, and retries every 500 ms: created idle, it sent nothing for 0.5-1 s.
            // A metadata request connects it; answered once the connection is up (after the
            // consumer's query, not before it), it also makes librdkafka ask for the id at once
            // (benches/results/2026-12-06-restore-producer-id-order.txt). The cluster has just
            // answered the consumer, so an error here is left to the first send to report.
            let _ = producer
                .client()
                .fetch_metadata(Some(&topic), connection.request_timeout);
            Ok(high)
        })
        .await
        .map_err(|error| RestoreError::Core(client::join_error(error)))?
    }

    async fn read_record(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Record>> {
        let connection = self.connection.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            // librdkafka's consumer refuses to poll without a group id; an assigned (never
            // subscribed) consumer does not join the group or commit.
            let consumer = client::consumer(
                &connection,
                "tidemark-restore-partition",
                Some("tidemark-restore-reader"),
            )?;
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(|error| kafka_error("read record", &error, false))?;
            consumer
                .assign(&assignment)
                .map_err(|error| kafka_error("read record", &error, true))?;
            let deadline = std::time::Instant::now() + connection.request_timeout;
            while std::time::Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        let record = (message.offset() == offset)
                            .then(|| client::record_from_message(&message));
                        drop(message);
                        client::close(consumer);
                        return Ok(record);
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        client::close(consumer);
                        return Ok(None);
                    }
                    Some(Err(error)) => {
                        client::close(consumer);
                        return Err(kafka_error("read record", &error, true));
                    }
                    None => {}
                }
            }
            client::close(consumer);
            Err(RestoreError::Core(tidemark_core::Error::Kafka {
                operation: "read record",
                message: format!(
                    "no answer for {topic}/{partition} offset {offset} within {:?}",
                    connection.request_timeout
                ),
                retryable: true,
            }))
        })
        .await
        .map_err(|error| RestoreError::Core(client::join_error(error)))?
    }

    async fn send(&self, topic: &str, partition: i32, records: &[Record]) -> Result<Vec<i64>> {
        let mut pending = self.pending.lock().await;
        let mut acknowledged = Vec::new();
        for record in records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for header in &record.headers {
                headers = headers.insert(KafkaHeader {
                    key: &header.key,
                    value: header.value.as_deref(),
                });
            }
            let mut message = FutureRecord::<[u8], [u8]>::to(topic)
                .partition(partition)
                .timestamp(record.timestamp)
                .headers(headers);
            if let Some(key) = &record.key {
                message = message.key(key.as_slice());
            }
            if let Some(value) = &record.value {
                message = message.payload(value.as_slice());
            }
            loop {
                if pending.len() >= MAX_IN_FLIGHT {
                    let oldest = pending.pop_front().expect("non-empty");
                    acknowledged.push(await_delivery(oldest).await?);
                }
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        message = returned;
                        match pending.pop_front() {
                            Some(delivery) => acknowledged.push(await_delivery(delivery).await?),
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::Fatal), _)) => {
                        return Err(self.fatal_error());
                    }
                    Err((error, _)) => return Err(kafka_error("produce", &error, false)),
                }
            }
        }
        // Whatever is already acknowledged, without waiting for the rest.
        while let Some(oldest) = pending.front_mut() {
            match futures::FutureExt::now_or_never(oldest) {
                Some(result) => {
                    pending.pop_front();
                    acknowledged.push(delivery_offset(result)?);
                }
                None => break,
            }
        }
        Ok(acknowledged)
    }

    async fn flush(&self) -> Result<Vec<i64>> {
        let mut pending = self.pending.lock().await;
        let mut acknowledged = Vec::with_capacity(pending.len());
        while let Some(delivery) = pending.pop_front() {
            acknowledged.push(await_delivery(delivery).await?);
        }
        Ok(acknowledged)
    }
}

async fn await_delivery(delivery: DeliveryFuture) -> Result<i64> {
    delivery_offset(delivery.await)
}

fn delivery_offset(
    result: std::result::Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<i64> {
    match result {
        Ok(Ok(delivered)) => Ok(delivered.offset),
        Ok(Err((error, _))) => Err(kafka_error("produce", &error, true)),
        Err(_) => Err(RestoreError::Core(tidemark_core::Error::Kafka {
            operation: "produce",
            message: "the producer dropped a delivery report".into(),
            retryable: true,
        })),
    }
}

/// In-memory target partitions for unit tests; can be told to fail after some records.
#[derive(Debug, Default)]
pub struct MemoryTargetWriter {
    partitions: Mutex<BTreeMap<(String, i32), Vec<Record>>>,
    fail_after: Mutex<Option<usize>>,
}

impl MemoryTargetWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn records(&self, topic: &str, partition: i32) -> Vec<Record> {
        self.partitions
            .lock()
            .expect("lock poisoned")
            .get(&(topic.to_owned(), partition))
            .cloned()
            .unwrap_or_default()
    }

    /// Appends records as another producer would.
    pub fn append(&self, topic: &str, partition: i32, records: &[Record]) {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        let log = partitions.entry((topic.to_owned(), partition)).or_default();
        for record in records {
            let mut stored = record.clone();
            stored.offset = log.len() as i64;
            log.push(stored);
        }
    }

    /// The next `send` calls store `count` more records, then fail as a crash would.
    pub fn fail_after(&self, count: usize) {
        *self.fail_after.lock().expect("lock poisoned") = Some(count);
    }
}

#[async_trait]
impl TargetWriter for MemoryTargetWriter {
    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64> {
        Ok(self.records(topic, partition).len() as i64)
    }

    async fn read_record(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Record>> {
        Ok(usize::try_from(offset)
            .ok()
            .and_then(|index| self.records(topic, partition).get(index).cloned()))
    }

    async fn send(&self, topic: &str, partition: i32, records: &[Record]) -> Result<Vec<i64>> {
        let mut offsets = Vec::new();
        for record in records {
            {
                let mut fail_after = self.fail_after.lock().expect("lock poisoned");
                if let Some(left) = fail_after.as_mut() {
                    if *left == 0 {
                        *fail_after = None;
                        return Err(RestoreError::Core(tidemark_core::Error::Kafka {
                            operation: "produce",
                            message: "injected crash".into(),
                            retryable: true,
                        }));
                    }
                    *left -= 1;
                }
            }
            self.append(topic, partition, std::slice::from_ref(record));
            offsets.push(self.records(topic, partition).len() as i64 - 1);
        }
        Ok(offsets)
    }

    async fn flush(&self) -> Result<Vec<i64>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use tidemark_core::segment::{Record, TimestampType};

    use super::*;

    fn records(count: i64) -> Vec<Record> {
        (0..count)
            .map(|offset| Record {
                offset,
                timestamp: 1_700_000_000_000 + offset,
                timestamp_type: TimestampType::CreateTime,
                key: Some(format!("key-{offset}").into_bytes()),
                value: Some(vec![b'v'; 100]),
                headers: Vec::new(),
            })
            .collect()
    }

    /// A broker that refuses a batch's sequence number (the local broker did once under load;
    /// a cluster can after losing acknowledged records) leaves librdkafka's idempotent producer
    /// fatal: it sends nothing more. A new invocation, with a new producer, resumes from what
    /// the target holds, so every error from then on must let the state machine retry.
    #[tokio::test]
    async fn a_producer_the_broker_made_fatal_fails_retryably() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("restored", 1, 1).unwrap();
        let writer =
            KafkaTargetWriter::connect(KafkaConnection::plaintext(cluster.bootstrap_servers()), 0)
                .unwrap();
        let records = records(30);
        writer.send("restored", 0, &records[..10]).await.unwrap();
        assert_eq!(writer.flush().await.unwrap(), (0..10).collect::<Vec<i64>>());

        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
        );
        let refused = match writer.send("restored", 0, &records[10..20]).await {
            Ok(_) => writer.flush().await.unwrap_err(),
            Err(error) => error,
        };
        assert_eq!(refused.error_type(), "Tidemark.Retryable", "{refused}");
        let after = match writer.send("restored", 0, &records[20..]).await {
            Ok(_) => writer.flush().await.unwrap_err(),
            Err(error) => error,
        };
        assert_eq!(after.error_type(), "Tidemark.Retryable", "{after}");
    }
}
