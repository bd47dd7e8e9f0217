//! Offsets: ListOffsets (one request per partition leader) for watermarks and offsets by time,
//! and OffsetFetch of many groups per request where the broker takes v8+.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, OffsetFetchRequest, OffsetFetchResponse,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
};

use super::broker::BrokerConnection;
use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, api_error};
use super::{Attempt, KafkaCluster, attempt_of, group_id, topic_name};
use crate::error::{Error, Result};
use crate::kafka::cluster::{CommittedOffset, TopicPartition};

/// ListOffsets' special timestamps.
pub(super) const EARLIEST: i64 = -2;
pub(super) const LATEST: i64 = -1;
/// Groups per multi-group OffsetFetch: keeps each answer a few hundred KB at most.
const GROUPS_PER_OFFSET_FETCH: usize = 200;

impl KafkaCluster {
    /// For each of `timestamps`, per partition (in the order asked), the offset ListOffsets
    /// gives: -1 where no record is that late. One metadata read finds the leaders; each leader
    /// gets one request per timestamp for all its partitions, all in flight at once.
    pub(super) async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        timestamps: &[i64],
    ) -> Result<Vec<Vec<i64>>> {
        if partitions.is_empty() {
            return Ok(vec![Vec::new(); timestamps.len()]);
        }
        self.retrying(|| async {
            let leaders = self.leaders(partitions).await?;
            let mut by_leader: BTreeMap<i32, Vec<&TopicPartition>> = BTreeMap::new();
            for partition in partitions {
                by_leader
                    .entry(leaders[partition])
                    .or_default()
                    .push(partition);
            }
            let requests = by_leader.iter().flat_map(|(&leader, asked)| {
                timestamps
                    .iter()
                    .enumerate()
                    .map(move |(which, &timestamp)| async move {
                        let broker = self.node(leader).await?;
                        let answers = self.list_offsets_on(&broker, asked, timestamp).await?;
                        Ok::<_, Error>((which, answers))
                    })
            });
            let mut found: Vec<BTreeMap<TopicPartition, i64>> =
                vec![BTreeMap::new(); timestamps.len()];
            for (which, answers) in futures::future::try_join_all(requests).await? {
                found[which].extend(answers);
            }
            found
                .iter()
                .map(|found| {
                    partitions
                        .iter()
                        .map(|partition| {
                            found.get(partition).copied().ok_or_else(|| Error::Kafka {
                                operation: "list offsets",
                                message: format!(
                                    "no answer for {}/{}",
                                    partition.topic, partition.partition
                                ),
                                retryable: true,
                            })
                        })
                        .collect()
                })
                .collect()
        })
        .await
    }

    /// One ListOffsets request to `broker` (the leader of every partition in `asked`).
    async fn list_offsets_on(
        &self,
        broker: &BrokerConnection,
        asked: &[&TopicPartition],
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for partition in asked {
            topics
                .entry(&partition.topic)
                .or_default()
                .push(partition.partition);
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            // Log-end offsets, not the last stable offset.
            .with_isolation_level(0)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|partition| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(partition)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self.call(broker, &request, 1..=6).await?;
        let mut found = BTreeMap::new();
        for topic in response.topics {
            for answer in topic.partitions {
                if answer.error_code != 0 {
                    return Err(api_error(
                        "list offsets",
                        &broker.address,
                        ApiKey::ListOffsets,
                        answer.error_code,
                        Some(&format!(
                            "{}/{}",
                            topic.name.as_str(),
                            answer.partition_index
                        )),
                    ));
                }
                found.insert(
                    TopicPartition::new(topic.name.to_string(), answer.partition_index),
                    answer.offset,
                );
            }
        }
        Ok(found)
    }

    /// The leader of each partition, from fresh metadata.
    pub(super) async fn leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i32>> {
        let topics: BTreeSet<&str> = partitions.iter().map(|p| p.topic.as_str()).collect();
        let topics: Vec<String> = topics.into_iter().map(str::to_owned).collect();
        let metadata = self.metadata(Some(&topics)).await?;
        let mut leaders = BTreeMap::new();
        for topic in &metadata.topics {
            let name = topic
                .name
                .as_ref()
                .map(|name| name.to_string())
                .unwrap_or_default();
            if topic.error_code != 0 {
                return Err(api_error(
                    "read metadata",
                    "(any)",
                    ApiKey::Metadata,
                    topic.error_code,
                    Some(&format!("topic {name}")),
                ));
            }
            for partition in &topic.partitions {
                leaders.insert(
                    TopicPartition::new(name.clone(), partition.partition_index),
                    partition.leader_id.0,
                );
            }
        }
        for partition in partitions {
            match leaders.get(partition) {
                Some(leader) if *leader >= 0 => {}
                _ => {
                    return Err(api_error(
                        "find a partition's leader",
                        "(any)",
                        ApiKey::Metadata,
                        if leaders.contains_key(partition) {
                            5
                        } else {
                            UNKNOWN_TOPIC_OR_PARTITION
                        },
                        Some(&format!("{}/{}", partition.topic, partition.partition)),
                    ));
                }
            }
        }
        Ok(leaders)
    }

    /// OffsetFetch of `groups` on one coordinator: many groups per request on v8+, one request
    /// per group (all in flight at once) before.
    pub(super) async fn fetch_offsets(
        &self,
        broker: Arc<BrokerConnection>,
        groups: Vec<String>,
        wanted: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> Result<Vec<(String, Attempt<Vec<CommittedOffset>>)>> {
        let by_topic = |group: &str| -> BTreeMap<String, Vec<i32>> {
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for partition in &wanted[group] {
                topics
                    .entry(partition.topic.clone())
                    .or_default()
                    .push(partition.partition);
            }
            topics
        };
        if self
            .version_for::<OffsetFetchRequest>(&broker, 8..=9)
            .is_ok()
        {
            let requests = groups.chunks(GROUPS_PER_OFFSET_FETCH).map(|chunk| {
                let request = OffsetFetchRequest::default().with_groups(
                    chunk
                        .iter()
                        .map(|group| {
                            OffsetFetchRequestGroup::default()
                                .with_group_id(group_id(group))
                                .with_topics(Some(
                                    by_topic(group)
                                        .into_iter()
                                        .map(|(topic, partitions)| {
                                            OffsetFetchRequestTopics::default()
                                                .with_name(topic_name(&topic))
                                                .with_partition_indexes(partitions)
                                        })
                                        .collect(),
                                ))
                        })
                        .collect(),
                );
                let broker = Arc::clone(&broker);
                async move { self.call(&broker, &request, 8..=9).await }
            });
            let mut answers = Vec::new();
            for response in futures::future::try_join_all(requests).await? {
                for group in response.groups {
                    let name = group.group_id.to_string();
                    let offsets = committed(&broker.address, &name, fetched!(group.topics));
                    answers.push((name, attempt_of(group.error_code, || offsets)));
                }
            }
            return Ok(answers);
        }
        let requests = groups.into_iter().map(|group| {
            let request = OffsetFetchRequest::default()
                .with_group_id(group_id(&group))
                .with_topics(Some(
                    by_topic(&group)
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(&topic))
                                .with_partition_indexes(partitions)
                        })
                        .collect(),
                ));
            let broker = Arc::clone(&broker);
            async move {
                let response: OffsetFetchResponse = self.call(&broker, &request, 1..=7).await?;
                let offsets = committed(&broker.address, &group, fetched!(response.topics));
                // Before v2 the group-level error is only in the partitions.
                Ok::<_, Error>((group, attempt_of(response.error_code, || offsets)))
            }
        });
        futures::future::try_join_all(requests).await
    }
}

/// The (topic, partition, offset, metadata, error) of each fetched partition. OffsetFetch has
/// two answer shapes (per group from v8, per request before) with the same fields.
macro_rules! fetched {
    ($topics:expr) => {
        $topics
            .into_iter()
            .flat_map(|topic| {
                let topic_name = topic.name.to_string();
                topic.partitions.into_iter().map(move |partition| {
                    (
                        topic_name.clone(),
                        partition.partition_index,
                        partition.committed_offset,
                        partition.metadata.map(|metadata| metadata.to_string()),
                        partition.error_code,
                    )
                })
            })
            .collect()
    };
}
use fetched;

/// A group's fetched partitions (topic, partition, offset, metadata, error) as committed
/// offsets; -1 (no offset) left out, a partition error fails the group.
fn committed(
    broker: &str,
    group: &str,
    partitions: Vec<(String, i32, i64, Option<String>, i16)>,
) -> Result<Vec<CommittedOffset>> {
    let mut offsets = Vec::new();
    for (topic, partition, offset, metadata, error_code) in partitions {
        if error_code != 0 {
            return Err(api_error(
                "read committed offsets",
                broker,
                ApiKey::OffsetFetch,
                error_code,
                Some(&format!("group {group} on {topic}/{partition}")),
            ));
        }
        if offset >= 0 {
            offsets.push(CommittedOffset {
                topic,
                partition,
                offset,
                metadata: metadata.unwrap_or_default(),
            });
        }
    }
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(offsets)
}
