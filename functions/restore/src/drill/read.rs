//! Reading a restored partition back, record by record, to compare it with the backup.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tidemark_core::kafka::KafkaConnection;
use tidemark_core::kafka::client;
use tidemark_core::segment::Record;
use tokio::sync::mpsc;

use crate::error::{RestoreError, Result};
use crate::partition::target::{MemoryTargetWriter, kafka_error};

const READ: &str = "read restored records";

/// Records per chunk handed from the reading thread.
const CHUNK_RECORDS: usize = 512;

/// The restored side of a drill.
pub trait RestoredReader: Send + Sync {
    /// Target offsets `from..end` of the partition, in order, in chunks. An error ends the
    /// stream.
    fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        end: i64,
    ) -> mpsc::Receiver<Result<Vec<Record>>>;
}

/// A partition's records through librdkafka: an assigned consumer that neither joins its
/// group nor commits.
pub struct KafkaRestoredReader {
    pub connection: KafkaConnection,
}

impl RestoredReader for KafkaRestoredReader {
    fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        end: i64,
    ) -> mpsc::Receiver<Result<Vec<Record>>> {
        let (sender, receiver) = mpsc::channel(8);
        let connection = self.connection.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let result = (|| -> Result<()> {
                if from >= end {
                    return Ok(());
                }
                // librdkafka refuses to poll without a group id; an assigned consumer never
                // joins it.
                let consumer =
                    client::consumer(&connection, "tidemark-drill", Some("tidemark-drill-reader"))?;
                let mut assignment = TopicPartitionList::new();
                assignment
                    .add_partition_offset(&topic, partition, Offset::Offset(from))
                    .map_err(|error| kafka_error(READ, &error, true))?;
                consumer
                    .assign(&assignment)
                    .map_err(|error| kafka_error(READ, &error, true))?;
                let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
                let mut next = from;
                let mut quiet_since = std::time::Instant::now();
                while next < end {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(message)) => {
                            quiet_since = std::time::Instant::now();
                            next = message.offset() + 1;
                            chunk.push(client::record_from_message(&message));
                            if chunk.len() == CHUNK_RECORDS
                                && sender
                                    .blocking_send(Ok(std::mem::take(&mut chunk)))
                                    .is_err()
                            {
                                break;
                            }
                        }
                        // The end moved no further than `end`: fewer records than expected.
                        Some(Err(KafkaError::PartitionEOF(_))) => break,
                        Some(Err(error)) => {
                            client::close(consumer);
                            return Err(kafka_error(READ, &error, true));
                        }
                        None if quiet_since.elapsed() > connection.request_timeout => {
                            client::close(consumer);
                            return Err(RestoreError::Core(tidemark_core::Error::Kafka {
                                operation: READ,
                                message: format!(
                                    "{topic}/{partition}: nothing at offset {next} within {:?}",
                                    connection.request_timeout
                                ),
                                retryable: true,
                            }));
                        }
                        None => {}
                    }
                }
                client::close(consumer);
                if !chunk.is_empty() {
                    let _ = sender.blocking_send(Ok(chunk));
                }
                Ok(())
            })();
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error));
            }
        });
        receiver
    }
}

impl RestoredReader for MemoryTargetWriter {
    fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        end: i64,
    ) -> mpsc::Receiver<Result<Vec<Record>>> {
        let records: Vec<Record> = self
            .records(topic, partition)
            .into_iter()
            .filter(|record| (from..end).contains(&record.offset))
            .collect();
        let (sender, receiver) = mpsc::channel(records.len().div_ceil(CHUNK_RECORDS).max(1));
        for chunk in records.chunks(CHUNK_RECORDS) {
            sender
                .try_send(Ok(chunk.to_vec()))
                .expect("the channel holds every chunk");
        }
        receiver
    }
}
