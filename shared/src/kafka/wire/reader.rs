//! The reading requests: Metadata (with topic ids), ListOffsets, DescribeConfigs, ListGroups,
//! DescribeGroups and OffsetFetch (many groups per request where the broker takes v8+).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeGroupsRequest, ListGroupsRequest, ListOffsetsRequest,
    OffsetFetchRequest, OffsetFetchResponse,
    describe_configs_request::DescribeConfigsResource,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
};
use kafka_protocol::protocol::StrBytes;

use super::broker::BrokerConnection;
use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, api_error, api_error_with};
use super::{Attempt, KafkaCluster, attempt_of, group_id, topic_name};
use crate::error::{Error, Result};
use crate::kafka::cluster::{
    ClusterReader, CommittedOffset, GroupDescription, GroupMember, TopicConfigs, TopicDescription,
    TopicPartition, Watermarks, kafka_default,
};

/// ListOffsets' special timestamps.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
/// DescribeConfigs' resource type of a topic, and the source of a topic's own override.
const TOPIC_RESOURCE: i8 = 2;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// Groups per multi-group OffsetFetch: keeps each answer a few hundred KB at most.
const GROUPS_PER_OFFSET_FETCH: usize = 200;

impl KafkaCluster {
    /// Per partition (in the order asked), the offset ListOffsets gives for `timestamp`; -1
    /// where no record is that late. Each leader gets one request for all its partitions.
    async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<Vec<i64>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
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
            let requests = by_leader.into_iter().map(|(leader, asked)| async move {
                let broker = self.node(leader).await?;
                let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for partition in &asked {
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
                let response = self.call(&broker, &request, 1..=6).await?;
                let mut found = BTreeMap::new();
                for topic in response.topics {
                    for answer in topic.partitions {
                        let subject = format!("{}/{}", topic.name.as_str(), answer.partition_index);
                        if answer.error_code != 0 {
                            return Err(api_error(
                                "list offsets",
                                &broker.address,
                                ApiKey::ListOffsets,
                                answer.error_code,
                                Some(&subject),
                            ));
                        }
                        found.insert(
                            TopicPartition::new(topic.name.to_string(), answer.partition_index),
                            answer.offset,
                        );
                    }
                }
                Ok::<_, Error>(found)
            });
            let mut found = BTreeMap::new();
            for answers in futures::future::try_join_all(requests).await? {
                found.extend(answers);
            }
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
        .await
    }

    /// The leader of each partition, from fresh metadata.
    async fn leaders(
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

    /// DescribeConfigs of `topics` (only `names` when given), keeping what `keep` accepts.
    async fn describe_topic_configs(
        &self,
        topics: &[String],
        names: Option<&[&str]>,
        keep: impl Fn(i8) -> bool,
    ) -> Result<BTreeMap<String, TopicConfigs>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|topic| {
                    DescribeConfigsResource::default()
                        .with_resource_type(TOPIC_RESOURCE)
                        .with_resource_name(StrBytes::from_string(topic.clone()))
                        .with_configuration_keys(names.map(|names| {
                            names
                                .iter()
                                .map(|name| StrBytes::from_string((*name).to_owned()))
                                .collect()
                        }))
                })
                .collect(),
        );
        let response = self
            .retrying(|| async {
                let broker = self.any_broker().await?;
                let response = self.call(&broker, &request, 1..=4).await?;
                Ok::<_, Error>((broker, response))
            })
            .await;
        let (broker, response) = response?;
        let mut configs = BTreeMap::new();
        for result in response.results {
            let topic = result.resource_name.to_string();
            if result.error_code != 0 {
                return Err(api_error_with(
                    "describe topic configs",
                    &broker.address,
                    ApiKey::DescribeConfigs,
                    result.error_code,
                    Some(&format!("topic {topic}")),
                    result
                        .error_message
                        .as_ref()
                        .map(|message| message.as_str()),
                ));
            }
            let values = result
                .configs
                .into_iter()
                .filter(|entry| keep(entry.config_source))
                .map(|entry| {
                    let value = if entry.is_sensitive {
                        None
                    } else {
                        entry.value.map(|value| value.to_string())
                    };
                    (entry.name.to_string(), value)
                })
                .collect();
            configs.insert(topic, values);
        }
        Ok(configs)
    }

    /// Every group id the cluster lists (each broker lists the groups it coordinates).
    async fn list_group_ids(&self) -> Result<Vec<String>> {
        let metadata = self.metadata(Some(&[])).await?;
        let listings = metadata.brokers.iter().map(|broker| async move {
            let broker = self.node(broker.node_id.0).await?;
            let response = self
                .call(&broker, &ListGroupsRequest::default(), 0..=5)
                .await?;
            if response.error_code != 0 {
                return Err(api_error(
                    "list consumer groups",
                    &broker.address,
                    ApiKey::ListGroups,
                    response.error_code,
                    None,
                ));
            }
            Ok(response
                .groups
                .into_iter()
                .map(|group| group.group_id.to_string())
                .collect::<Vec<_>>())
        });
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for listed in futures::future::try_join_all(listings).await? {
            groups.extend(listed);
        }
        Ok(groups.into_iter().collect())
    }

    /// OffsetFetch of `groups` on one coordinator: many groups per request on v8+, one request
    /// per group (all in flight at once) before.
    async fn fetch_offsets(
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

#[async_trait]
impl ClusterReader for KafkaCluster {
    async fn topics(&self) -> Result<Vec<TopicDescription>> {
        let metadata = self.metadata(None).await?;
        Ok(metadata
            .topics
            .into_iter()
            .filter(|topic| topic.error_code == 0)
            .filter_map(|topic| {
                Some(TopicDescription {
                    name: topic.name?.to_string(),
                    partition_count: topic.partitions.len() as i32,
                    topic_id: (!topic.topic_id.is_nil()).then(|| topic.topic_id.to_string()),
                })
            })
            .collect())
    }

    async fn watermarks(&self, partitions: &[TopicPartition]) -> Result<Vec<Watermarks>> {
        let (low, high) = futures::try_join!(
            self.list_offsets(partitions, EARLIEST),
            self.list_offsets(partitions, LATEST)
        )?;
        Ok(low
            .into_iter()
            .zip(high)
            .map(|(low, high)| Watermarks { low, high })
            .collect())
    }

    async fn offsets_for_time(
        &self,
        partitions: &[TopicPartition],
        at_ms: i64,
    ) -> Result<Vec<i64>> {
        let mut offsets = self.list_offsets(partitions, at_ms).await?;
        let past_the_end: Vec<usize> = (0..offsets.len())
            .filter(|&index| offsets[index] < 0)
            .collect();
        if !past_the_end.is_empty() {
            // No record that late: the partition's end.
            let ends: Vec<TopicPartition> = past_the_end
                .iter()
                .map(|&index| partitions[index].clone())
                .collect();
            for (index, end) in past_the_end
                .into_iter()
                .zip(self.list_offsets(&ends, LATEST).await?)
            {
                offsets[index] = end;
            }
        }
        Ok(offsets)
    }

    async fn topic_configs(&self, topics: &[String]) -> Result<BTreeMap<String, TopicConfigs>> {
        self.describe_topic_configs(topics, None, |source| source == DYNAMIC_TOPIC_CONFIG)
            .await
    }

    async fn effective_topic_configs(
        &self,
        topics: &[String],
        names: &[&str],
    ) -> Result<BTreeMap<String, TopicConfigs>> {
        let mut configs = self
            .describe_topic_configs(topics, Some(names), |_| true)
            .await?;
        for values in configs.values_mut() {
            for name in names {
                if !values.contains_key(*name) {
                    values.insert((*name).to_owned(), kafka_default(name).map(str::to_owned));
                }
            }
        }
        Ok(configs)
    }

    async fn groups(&self) -> Result<Vec<GroupDescription>> {
        let ids = self.list_group_ids().await?;
        self.describe_groups(&ids).await
    }

    async fn group_ids(&self) -> Result<Vec<String>> {
        self.list_group_ids().await
    }

    async fn describe_groups(&self, ids: &[String]) -> Result<Vec<GroupDescription>> {
        let described = self
            .on_coordinators(ids, |broker, groups| async move {
                let request = DescribeGroupsRequest::default()
                    .with_groups(groups.iter().map(|group| group_id(group)).collect());
                let response = self.call(&broker, &request, 0..=5).await?;
                Ok(response
                    .groups
                    .into_iter()
                    .map(|group| {
                        let name = group.group_id.to_string();
                        let code = group.error_code;
                        let description = GroupDescription {
                            group_id: name.clone(),
                            state: group.group_state.to_string(),
                            protocol_type: group.protocol_type.to_string(),
                            protocol: group.protocol_data.to_string(),
                            members: group
                                .members
                                .into_iter()
                                .map(|member| GroupMember {
                                    member_id: member.member_id.to_string(),
                                    client_id: member.client_id.to_string(),
                                    client_host: member.client_host.to_string(),
                                })
                                .collect(),
                        };
                        let address = broker.address.clone();
                        let outcome = attempt_of(code, move || {
                            if code == 0 {
                                Ok(description)
                            } else {
                                Err(api_error(
                                    "describe consumer groups",
                                    &address,
                                    ApiKey::DescribeGroups,
                                    code,
                                    Some(&format!("group {name}")),
                                ))
                            }
                        });
                        (group.group_id.to_string(), outcome)
                    })
                    .collect())
            })
            .await;
        let mut groups = Vec::with_capacity(described.len());
        for (group, outcome) in described {
            match outcome {
                Ok(description) => groups.push(description),
                // Deleted between the listing and the description.
                Err(error) if error.to_string().contains("GROUP_ID_NOT_FOUND") => {
                    tracing::debug!(group, "group vanished while being described");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(groups)
    }

    async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<CommittedOffset>> {
        let wanted = [(group_id.to_owned(), partitions.to_vec())];
        self.committed_offsets_of_groups(&wanted)
            .await
            .pop()
            .expect("one answer per group")
    }

    async fn committed_offsets_of_groups(
        &self,
        wanted: &[(String, Vec<TopicPartition>)],
    ) -> Vec<Result<Vec<CommittedOffset>>> {
        let asked: BTreeMap<String, Vec<TopicPartition>> = wanted
            .iter()
            .filter(|(_, partitions)| !partitions.is_empty())
            .cloned()
            .collect();
        let groups: Vec<String> = asked.keys().cloned().collect();
        let asked = &asked;
        let mut found = self
            .on_coordinators(&groups, |broker, groups| {
                self.fetch_offsets(broker, groups, asked)
            })
            .await;
        wanted
            .iter()
            .map(|(group, partitions)| {
                if partitions.is_empty() {
                    return Ok(Vec::new());
                }
                match found.get_mut(group) {
                    Some(Ok(offsets)) => Ok(offsets.clone()),
                    Some(Err(error)) => Err(error.duplicate()),
                    None => Err(Error::Kafka {
                        operation: "read committed offsets",
                        message: format!("no answer for group {group}"),
                        retryable: true,
                    }),
                }
            })
            .collect()
    }
}
