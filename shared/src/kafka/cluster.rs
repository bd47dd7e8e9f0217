//! The cluster-reading seam: what the snapshotter (and later restore planning) asks a cluster.
//! [`KafkaCluster`] answers from a real cluster through librdkafka; `MemoryCluster` is the
//! in-memory twin for unit tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{self, ClusterConsumer, ClusterContext, describe_failure, join_error};
use super::connection::KafkaConnection;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    pub name: String,
    pub partition_count: i32,
}

/// A partition's earliest and log-end offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

/// A consumer group as the coordinator lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance` or `Dead`.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// One committed offset: the next offset the group will read, and the commit's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

/// Non-default config values of one topic; `None` for a sensitive value the broker hides.
pub type TopicConfigs = BTreeMap<String, Option<String>>;

/// Apache Kafka's default for a topic config this project checks, used where a broker does
/// not describe it.
pub fn kafka_default(name: &str) -> Option<&'static str> {
    match name {
        "max.message.bytes" => Some("1048588"),
        "message.timestamp.type" => Some("CreateTime"),
        "retention.ms" => Some("604800000"),
        "cleanup.policy" => Some("delete"),
        _ => None,
    }
}

/// Reads a cluster's topology and consumer state. Every call is a snapshot of that moment.
#[async_trait]
pub trait ClusterReader: Send + Sync {
    /// Every topic with its partition count.
    async fn topics(&self) -> Result<Vec<TopicDescription>>;

    /// Low and high watermark of each partition, in the order asked.
    async fn watermarks(&self, partitions: &[TopicPartition]) -> Result<Vec<Watermarks>>;

    /// Each topic's non-default config values.
    async fn topic_configs(&self, topics: &[String]) -> Result<BTreeMap<String, TopicConfigs>>;

    /// Each topic's effective value of each config in `names`, default or not; a name the
    /// broker does not describe gets Kafka's default ([`kafka_default`]).
    async fn effective_topic_configs(
        &self,
        topics: &[String],
        names: &[&str],
    ) -> Result<BTreeMap<String, TopicConfigs>>;

    /// Per partition, in the order asked: the earliest offset whose record timestamp is at
    /// or after `at_ms`, or the log end when no record is that late (Kafka's ListOffsets by
    /// time).
    async fn offsets_for_time(&self, partitions: &[TopicPartition], at_ms: i64)
    -> Result<Vec<i64>>;

    /// Every consumer group the cluster knows.
    async fn groups(&self) -> Result<Vec<GroupDescription>>;

    /// The group's committed offsets among `partitions` (partitions without one are left out).
    /// Asks for explicit partitions: some brokers answer "all topics" with nothing.
    async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<CommittedOffset>>;
}

/// A real cluster through librdkafka. Blocking librdkafka calls run on Tokio's blocking pool.
pub struct KafkaCluster {
    connection: KafkaConnection,
    client_id: String,
    metadata: Arc<ClusterConsumer>,
    /// Made on first use and kept: dropping an admin client costs ~100 ms, and a warm Lambda
    /// reuses its connections. (Nobody polls its main queue; librdkafka only queues its
    /// warnings and errors there.)
    admin: tokio::sync::OnceCell<AdminClient<ClusterContext>>,
    parallelism: usize,
}

impl KafkaCluster {
    /// `parallelism` bounds concurrent watermark requests.
    pub fn connect(
        connection: KafkaConnection,
        client_id: &str,
        parallelism: usize,
    ) -> Result<Self> {
        let metadata = Arc::new(client::consumer(&connection, client_id, None)?);
        Ok(KafkaCluster {
            connection,
            client_id: client_id.to_owned(),
            metadata,
            admin: tokio::sync::OnceCell::new(),
            parallelism: parallelism.max(1),
        })
    }

    pub(crate) fn connection(&self) -> &KafkaConnection {
        &self.connection
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// DescribeConfigs of `topics`, keeping the entries `keep` accepts.
    async fn describe_topic_configs(
        &self,
        topics: &[String],
        keep: impl Fn(&rdkafka::admin::ConfigEntry) -> bool,
    ) -> Result<BTreeMap<String, TopicConfigs>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let admin = self.admin_client().await?;
        let specifiers: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .map(|topic| ResourceSpecifier::Topic(topic))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(self.connection.request_timeout));
        let results = admin
            .describe_configs(&specifiers, &options)
            .await
            .map_err(|error| {
                describe_failure("describe topic configs", &self.connection, None, error)
            })?;
        let mut configs = BTreeMap::new();
        for (topic, result) in topics.iter().zip(results) {
            let resource = result.map_err(|code| {
                describe_failure(
                    "describe topic configs",
                    &self.connection,
                    None,
                    rdkafka::error::KafkaError::AdminOp(code),
                )
            })?;
            let values = resource
                .entries
                .into_iter()
                .filter(|entry| keep(entry))
                .map(|entry| (entry.name, entry.value))
                .collect();
            configs.insert(topic.clone(), values);
        }
        Ok(configs)
    }

    pub(crate) async fn admin_client(&self) -> Result<&AdminClient<ClusterContext>> {
        self.admin
            .get_or_try_init(|| async { client::admin(&self.connection, &self.client_id) })
            .await
    }

    /// Runs a blocking call against the metadata client, mapping failures to clear errors.
    async fn with_metadata<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl FnOnce(&ClusterConsumer, std::time::Duration) -> rdkafka::error::KafkaResult<T>
        + Send
        + 'static,
    ) -> Result<T> {
        let consumer = Arc::clone(&self.metadata);
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            client::serve_events(&consumer);
            call(&consumer, connection.request_timeout)
                .map_err(|error| describe_failure(operation, &connection, Some(&consumer), error))
        })
        .await
        .map_err(join_error)?
    }
}

#[async_trait]
impl ClusterReader for KafkaCluster {
    async fn topics(&self) -> Result<Vec<TopicDescription>> {
        self.with_metadata("read cluster metadata", |consumer, timeout| {
            let metadata = consumer.fetch_metadata(None, timeout)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none())
                .map(|topic| TopicDescription {
                    name: topic.name().to_owned(),
                    partition_count: topic.partitions().len() as i32,
                })
                .collect())
        })
        .await
    }

    async fn watermarks(&self, partitions: &[TopicPartition]) -> Result<Vec<Watermarks>> {
        futures::stream::iter(partitions.iter().cloned())
            .map(|partition| {
                self.with_metadata("read watermarks", move |consumer, timeout| {
                    consumer
                        .fetch_watermarks(&partition.topic, partition.partition, timeout)
                        .map(|(low, high)| Watermarks { low, high })
                })
            })
            .buffered(self.parallelism)
            .try_collect()
            .await
    }

    async fn offsets_for_time(
        &self,
        partitions: &[TopicPartition],
        at_ms: i64,
    ) -> Result<Vec<i64>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut list = TopicPartitionList::with_capacity(partitions.len());
        for partition in partitions {
            list.add_partition_offset(&partition.topic, partition.partition, Offset::Offset(at_ms))
                .map_err(|error| crate::Error::Kafka {
                    operation: "list offsets by time",
                    message: error.to_string(),
                    retryable: false,
                })?;
        }
        let found = self
            .with_metadata("list offsets by time", move |consumer, timeout| {
                consumer.offsets_for_times(list, timeout)
            })
            .await?;
        let mut offsets = Vec::with_capacity(partitions.len());
        let mut past_the_end = Vec::new();
        for (index, partition) in partitions.iter().enumerate() {
            let element = found
                .find_partition(&partition.topic, partition.partition)
                .ok_or_else(|| crate::Error::Kafka {
                    operation: "list offsets by time",
                    message: format!("no answer for {}/{}", partition.topic, partition.partition),
                    retryable: true,
                })?;
            element.error().map_err(|error| {
                describe_failure("list offsets by time", &self.connection, None, error)
                    .with_subject(&format!("{}/{}", partition.topic, partition.partition))
            })?;
            match element.offset() {
                Offset::Offset(offset) => offsets.push(offset),
                // No record that late: the partition's end.
                _ => {
                    offsets.push(-1);
                    past_the_end.push(index);
                }
            }
        }
        if !past_the_end.is_empty() {
            let ends: Vec<TopicPartition> = past_the_end
                .iter()
                .map(|&index| partitions[index].clone())
                .collect();
            for (index, watermarks) in past_the_end.into_iter().zip(self.watermarks(&ends).await?) {
                offsets[index] = watermarks.high;
            }
        }
        Ok(offsets)
    }

    async fn topic_configs(&self, topics: &[String]) -> Result<BTreeMap<String, TopicConfigs>> {
        self.describe_topic_configs(topics, |entry| {
            !entry.is_default
                && matches!(
                    entry.source,
                    ConfigSource::DynamicTopic | ConfigSource::Unknown
                )
        })
        .await
    }

    async fn effective_topic_configs(
        &self,
        topics: &[String],
        names: &[&str],
    ) -> Result<BTreeMap<String, TopicConfigs>> {
        let mut configs = self
            .describe_topic_configs(topics, |entry| names.contains(&entry.name.as_str()))
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
        self.with_metadata("list consumer groups", |consumer, timeout| {
            let list = consumer.fetch_group_list(None, timeout)?;
            Ok(list
                .groups()
                .iter()
                .map(|group| GroupDescription {
                    group_id: group.name().to_owned(),
                    state: group.state().to_owned(),
                    protocol_type: group.protocol_type().to_owned(),
                    protocol: group.protocol().to_owned(),
                    members: group
                        .members()
                        .iter()
                        .map(|member| GroupMember {
                            member_id: member.id().to_owned(),
                            client_id: member.client_id().to_owned(),
                            client_host: member.client_host().to_owned(),
                        })
                        .collect(),
                })
                .collect())
        })
        .await
    }

    async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<CommittedOffset>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let connection = self.connection.clone();
        let client_id = self.client_id.clone();
        let group_id = group_id.to_owned();
        let mut list = TopicPartitionList::with_capacity(partitions.len());
        for partition in partitions {
            list.add_partition(&partition.topic, partition.partition);
        }
        tokio::task::spawn_blocking(move || {
            // librdkafka reads committed offsets only as a member of the group's id; this
            // client never subscribes, so it never joins or disturbs the group.
            let consumer = client::consumer(&connection, &client_id, Some(&group_id))?;
            let offsets = read_committed(&consumer, list, &connection);
            client::close(consumer);
            offsets
        })
        .await
        .map_err(join_error)?
    }
}

fn read_committed(
    consumer: &ClusterConsumer,
    partitions: TopicPartitionList,
    connection: &KafkaConnection,
) -> Result<Vec<CommittedOffset>> {
    let failure =
        |error| describe_failure("read committed offsets", connection, Some(consumer), error);
    let committed = consumer
        .committed_offsets(partitions, connection.request_timeout)
        .map_err(failure)?;
    let mut offsets = Vec::new();
    for element in committed.elements() {
        element.error().map_err(failure)?;
        if let Offset::Offset(offset) = element.offset() {
            offsets.push(CommittedOffset {
                topic: element.topic().to_owned(),
                partition: element.partition(),
                offset,
                metadata: element.metadata().to_owned(),
            });
        }
    }
    Ok(offsets)
}

/// The groups among `groups` that have members, each described as
/// `name (N members: client on host, ...)`. Kafka only takes offset commits from outside a
/// group while it has no members, and running consumers must not be moved under them.
pub async fn active_groups(cluster: &dyn ClusterReader, groups: &[String]) -> Result<Vec<String>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: std::collections::BTreeSet<&str> = groups.iter().map(String::as_str).collect();
    Ok(cluster
        .groups()
        .await?
        .into_iter()
        .filter(|group| wanted.contains(group.group_id.as_str()) && !group.members.is_empty())
        .map(|group| {
            let hosts: Vec<String> = group
                .members
                .iter()
                .map(|member| {
                    if member.client_id.is_empty() && member.client_host.is_empty() {
                        // Some brokers leave both out; the member id still tells it apart.
                        format!("member {} (client and host not reported)", member.member_id)
                    } else {
                        format!("{} on {}", member.client_id, member.client_host)
                    }
                })
                .collect();
            format!(
                "{} ({} members: {})",
                group.group_id,
                hosts.len(),
                hosts.join(", ")
            )
        })
        .collect())
}
