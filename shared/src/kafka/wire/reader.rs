//! The reading requests: Metadata (with topic ids), DescribeConfigs, ListGroups and
//! DescribeGroups here; ListOffsets and OffsetFetch in [`super::offsets`].

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeGroupsRequest, ListGroupsRequest, MetadataResponse,
    describe_configs_request::DescribeConfigsResource,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{api_error, api_error_with};
use super::offsets::{EARLIEST, LATEST};
use super::{KafkaCluster, attempt_of, group_id};
use crate::error::{Error, Result};
use crate::kafka::cluster::{
    ClusterReader, CommittedOffset, GroupDescription, GroupMember, TopicConfigs, TopicDescription,
    TopicPartition, Watermarks, kafka_default,
};

/// DescribeConfigs' resource type of a topic, and the source of a topic's own override.
const TOPIC_RESOURCE: i8 = 2;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

impl KafkaCluster {
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
}

#[async_trait]
impl ClusterReader for KafkaCluster {
    async fn topics(&self) -> Result<Vec<TopicDescription>> {
        Ok(described(self.metadata(None).await?))
    }

    async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicDescription>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // A topic that does not exist comes back with an error code and is left out.
        Ok(described(self.metadata(Some(names)).await?))
    }

    async fn records_waiting(
        &self,
        partition: &TopicPartition,
        from: i64,
        to: i64,
    ) -> Result<bool> {
        self.deliverable_in(partition, from, to).await
    }

    async fn watermarks(&self, partitions: &[TopicPartition]) -> Result<Vec<Watermarks>> {
        let mut found = self.list_offsets(partitions, &[EARLIEST, LATEST]).await?;
        let (high, low) = (
            found.pop().unwrap_or_default(),
            found.pop().unwrap_or_default(),
        );
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
        // The log ends are asked alongside: where no record is that late (-1), the answer is
        // the partition's end.
        let mut found = self.list_offsets(partitions, &[at_ms, LATEST]).await?;
        let (ends, at) = (
            found.pop().unwrap_or_default(),
            found.pop().unwrap_or_default(),
        );
        Ok(at
            .into_iter()
            .zip(ends)
            .map(|(offset, end)| if offset < 0 { end } else { offset })
            .collect())
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

/// The topics a Metadata response describes without error.
fn described(metadata: MetadataResponse) -> Vec<TopicDescription> {
    metadata
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
        .collect()
}
