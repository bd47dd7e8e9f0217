//! Whether records a read-committed consumer would receive wait in an offset range. A backup
//! never receives transaction markers or aborted records, so its checkpoint may stop short of
//! the log end for good: after the commit marker of the last transaction, say. Only batch
//! headers are read (no record is decompressed), one Fetch at a time from the range's start.

use std::collections::{BTreeSet, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest};
use kafka_protocol::records::RecordBatchDecoder;

use super::errors::api_error;
use super::{KafkaCluster, topic_name};
use crate::error::{Error, Result};
use crate::kafka::cluster::TopicPartition;

/// Fetches one scan makes before it counts the range as waiting (the loud answer).
const MAX_FETCHES: usize = 16;
/// Bytes asked per fetch; the broker sends at least one whole batch whatever its size.
const FETCH_BYTES: i32 = 1024 * 1024;
/// How long the broker may wait for data: past the log end it answers empty after this.
const FETCH_WAIT_MS: i32 = 100;

impl KafkaCluster {
    pub(super) async fn deliverable_in(
        &self,
        partition: &TopicPartition,
        from: i64,
        to: i64,
    ) -> Result<bool> {
        let mut scan = CommittedScan::new(from, to);
        for _ in 0..MAX_FETCHES {
            let Some(at) = scan.next_fetch() else {
                return Ok(scan.found_deliverable());
            };
            let (records, aborted) = self
                .retrying(|| async {
                    let leaders = self.leaders(std::slice::from_ref(partition)).await?;
                    let broker = self.node(leaders[partition]).await?;
                    let request = FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(FETCH_WAIT_MS)
                        .with_min_bytes(1)
                        .with_max_bytes(FETCH_BYTES)
                        .with_isolation_level(1)
                        .with_session_epoch(-1)
                        .with_topics(vec![
                            FetchTopic::default()
                                .with_topic(topic_name(&partition.topic))
                                .with_partitions(vec![
                                    FetchPartition::default()
                                        .with_partition(partition.partition)
                                        .with_current_leader_epoch(-1)
                                        .with_fetch_offset(at)
                                        .with_log_start_offset(-1)
                                        .with_partition_max_bytes(FETCH_BYTES),
                                ]),
                        ]);
                    // v13+ names topics by id only.
                    let response = self.call(&broker, &request, 4..=12).await?;
                    let answer = response
                        .responses
                        .into_iter()
                        .flat_map(|topic| topic.partitions)
                        .find(|answer| answer.partition_index == partition.partition)
                        .ok_or_else(|| Error::Kafka {
                            operation: "fetch",
                            message: format!(
                                "no answer for {}/{}",
                                partition.topic, partition.partition
                            ),
                            retryable: true,
                        })?;
                    if answer.error_code != 0 {
                        return Err(api_error(
                            "fetch",
                            &broker.address,
                            ApiKey::Fetch,
                            answer.error_code,
                            Some(&format!("{}/{}", partition.topic, partition.partition)),
                        ));
                    }
                    let aborted: Vec<(i64, i64)> = answer
                        .aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|txn| (txn.producer_id.0, txn.first_offset))
                        .collect();
                    Ok((answer.records.unwrap_or_default(), aborted))
                })
                .await?;
            scan.feed(&records, &aborted)?;
        }
        Ok(true)
    }
}

/// One batch header, as much of it as the scan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    base_offset: i64,
    last_offset: i64,
    producer_id: i64,
    transactional: bool,
    control: bool,
}

/// The complete batches in fetched `records` (a fetch may end inside one), headers only.
fn batches(records: &Bytes) -> Result<Vec<Batch>> {
    // Base offset, batch length, leader epoch, magic, CRC, attributes; then lastOffsetDelta.
    const LENGTH_END: usize = 12;
    const LAST_OFFSET_DELTA_AT: usize = 23;
    let corrupt = |message: String| Error::Kafka {
        operation: "fetch",
        message,
        retryable: true,
    };
    let mut found = Vec::new();
    let mut at = 0;
    while records.len() >= at + LENGTH_END {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let end = at + LENGTH_END + length.max(0) as usize;
        if end > records.len() || length < 0 {
            break;
        }
        let mut one = records.slice(at..end);
        let info = RecordBatchDecoder::decode_batch_info(&mut one)
            .map_err(|error| corrupt(format!("a fetched record batch is unreadable: {error}")))?;
        let Some(info) = info.into_iter().next() else {
            // A message set older than v2 has no transactions.
            return Err(corrupt(
                "a fetched batch is older than record format v2".into(),
            ));
        };
        let delta = i32::from_be_bytes(
            records[at + LAST_OFFSET_DELTA_AT..at + LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        );
        found.push(Batch {
            base_offset: info.min_offset,
            last_offset: info.min_offset + i64::from(delta),
            producer_id: info.producer_id,
            transactional: info.transactional,
            control: info.control,
        });
        at = end;
    }
    Ok(found)
}

/// Reads `from..to` fetch by fetch, as a read-committed consumer filters it: markers are
/// skipped, and a transactional batch is skipped while its producer's transaction is one the
/// broker listed as aborted (from the listed first offset to the producer's next marker).
struct CommittedScan {
    next: i64,
    to: i64,
    /// Listed aborted transactions not reached yet: (first offset, producer id).
    aborted: BTreeSet<(i64, i64)>,
    aborting: HashSet<i64>,
    deliverable: Option<bool>,
}

impl CommittedScan {
    fn new(from: i64, to: i64) -> Self {
        CommittedScan {
            next: from,
            to,
            aborted: BTreeSet::new(),
            aborting: HashSet::new(),
            deliverable: (from >= to).then_some(false),
        }
    }

    /// The offset to fetch from, or `None` once decided.
    fn next_fetch(&self) -> Option<i64> {
        self.deliverable.is_none().then_some(self.next)
    }

    fn found_deliverable(&self) -> bool {
        self.deliverable.unwrap_or(true)
    }

    fn feed(&mut self, records: &Bytes, aborted: &[(i64, i64)]) -> Result<()> {
        self.aborted
            .extend(aborted.iter().map(|&(pid, first)| (first, pid)));
        let batches = batches(records)?;
        if batches.is_empty() {
            // Read-committed fetches stop at the last stable offset: past it, records of an
            // open transaction are not deliverable yet, whatever follows them.
            self.deliverable = Some(false);
            return Ok(());
        }
        for batch in batches {
            if batch.last_offset < self.next {
                continue;
            }
            if batch.base_offset >= self.to {
                self.deliverable = Some(false);
                return Ok(());
            }
            while let Some(&(first, pid)) = self.aborted.first()
                && first <= batch.base_offset
            {
                self.aborted.pop_first();
                self.aborting.insert(pid);
            }
            let skipped = if batch.control {
                self.aborting.remove(&batch.producer_id);
                true
            } else {
                batch.transactional && self.aborting.contains(&batch.producer_id)
            };
            if !skipped {
                self.deliverable = Some(true);
                return Ok(());
            }
            self.next = batch.last_offset + 1;
        }
        if self.next >= self.to {
            self.deliverable = Some(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;

    /// One encoded batch of `count` records from `base`, by producer `pid`.
    fn batch(base: i64, count: i64, pid: i64, transactional: bool, control: bool) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|n| Record {
                transactional,
                control,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base + n,
                sequence: n as i32,
                timestamp: 1_000,
                key: None,
                // A control record's value says commit (1) or abort (0); its content does not
                // matter here.
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut bytes = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut bytes,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        bytes.freeze()
    }

    fn chunk(batches: &[Bytes]) -> Bytes {
        batches.concat().into()
    }

    fn scan(from: i64, to: i64, fetched: &[(Bytes, Vec<(i64, i64)>)]) -> bool {
        let mut scan = CommittedScan::new(from, to);
        for (records, aborted) in fetched {
            if scan.next_fetch().is_none() {
                break;
            }
            scan.feed(records, aborted).unwrap();
        }
        scan.found_deliverable()
    }

    #[test]
    fn headers_are_read_without_the_records_and_a_cut_off_batch_is_left_for_the_next_fetch() {
        let whole = chunk(&[batch(10, 3, 7, true, false), batch(13, 1, 7, true, true)]);
        let cut = whole.slice(..whole.len() - 5);
        let read = batches(&cut).unwrap();
        assert_eq!(
            read,
            vec![Batch {
                base_offset: 10,
                last_offset: 12,
                producer_id: 7,
                transactional: true,
                control: false,
            }]
        );
        assert!(batches(&whole).unwrap()[1].control);
    }

    #[test]
    fn a_trailing_commit_marker_is_not_a_record_waiting() {
        // The backup holds 0..=12; offset 13 is the transaction's commit marker, the log ends
        // at 14.
        let fetched = chunk(&[batch(13, 1, 7, true, true)]);
        assert!(!scan(13, 14, &[(fetched, Vec::new())]));
    }

    #[test]
    fn records_of_an_aborted_transaction_and_its_marker_are_not_waiting() {
        let fetched = chunk(&[batch(20, 5, 9, true, false), batch(25, 1, 9, true, true)]);
        assert!(!scan(20, 26, &[(fetched.clone(), vec![(9, 20)])]));
        // The same records committed are waiting.
        assert!(scan(20, 26, &[(fetched, Vec::new())]));
    }

    #[test]
    fn a_record_after_markers_is_waiting_even_fetches_later() {
        let first = chunk(&[batch(30, 1, 4, true, true)]);
        let second = chunk(&[batch(31, 2, -1, false, false)]);
        assert!(scan(30, 33, &[(first, Vec::new()), (second, Vec::new())]));
    }

    #[test]
    fn an_empty_answer_is_an_open_transaction_not_a_record_waiting() {
        assert!(!scan(40, 45, &[(Bytes::new(), Vec::new())]));
        assert!(!scan(5, 5, &[]), "an empty range holds nothing");
    }
}
