//! The baseline of the control-plane benchmarks: group offsets the way Tidemark read and
//! committed them through librdkafka before the wire-protocol client — one short-lived
//! consumer per group (a client cannot read or commit another group's offsets), on Tokio's
//! blocking pool, `concurrency` groups at a time.

use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tidemark_core::kafka::client;
use tidemark_core::kafka::{CommittedOffset, KafkaConnection, TopicPartition};

pub struct LibrdkafkaGroups {
    pub connection: KafkaConnection,
    pub concurrency: usize,
}

impl LibrdkafkaGroups {
    /// Commits each group's offsets from outside the group.
    pub async fn commit(&self, commits: &[(String, Vec<CommittedOffset>)]) {
        futures::stream::iter(commits.iter().cloned())
            .map(|(group, offsets)| {
                let connection = self.connection.clone();
                tokio::task::spawn_blocking(move || {
                    let mut list = TopicPartitionList::new();
                    for offset in &offsets {
                        list.add_partition_offset(
                            &offset.topic,
                            offset.partition,
                            Offset::Offset(offset.offset),
                        )
                        .unwrap();
                    }
                    let consumer = client::consumer(&connection, "baseline", Some(&group)).unwrap();
                    consumer.commit(&list, CommitMode::Sync).expect("commit");
                    client::close(consumer);
                })
            })
            .buffer_unordered(self.concurrency)
            .for_each(|done| async move { done.unwrap() })
            .await;
    }

    /// Each group's committed offsets on its partitions, in the order asked.
    pub async fn committed(
        &self,
        wanted: &[(String, Vec<TopicPartition>)],
    ) -> Vec<Vec<CommittedOffset>> {
        futures::stream::iter(wanted.iter().cloned())
            .map(|(group, partitions)| {
                let connection = self.connection.clone();
                tokio::task::spawn_blocking(move || {
                    let mut list = TopicPartitionList::new();
                    for partition in &partitions {
                        list.add_partition(&partition.topic, partition.partition);
                    }
                    let consumer = client::consumer(&connection, "baseline", Some(&group)).unwrap();
                    let committed = consumer
                        .committed_offsets(list, connection.request_timeout)
                        .expect("committed offsets");
                    client::close(consumer);
                    committed
                        .elements()
                        .iter()
                        .filter_map(|element| match element.offset() {
                            Offset::Offset(offset) => Some(CommittedOffset {
                                topic: element.topic().to_owned(),
                                partition: element.partition(),
                                offset,
                                metadata: element.metadata().to_owned(),
                            }),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                })
            })
            .buffered(self.concurrency)
            .map(|read| read.unwrap())
            .collect()
            .await
    }
}
