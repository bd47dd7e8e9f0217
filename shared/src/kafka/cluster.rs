//! The cluster-reading seam: what the snapshotter, restore planning and the offset reset ask a
//! cluster. [`KafkaCluster`](super::KafkaCluster) answers from a real cluster over the wire
//! protocol; `MemoryCluster` is the in-memory twin for unit tests; the conformance suite
//! (`conformance.rs`) holds both to the same contract.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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
    /// The topic's id (Metadata v10+): a topic deleted and created again under the same name
    /// gets a new one. `None` where the cluster does not report ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
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

impl CommittedOffset {
    /// Offset -1 on each of `partitions`: what every reader takes for "no committed offset",
    /// committed where a broker cannot delete an offset.
    pub fn none_on(partitions: &[TopicPartition]) -> Vec<CommittedOffset> {
        partitions
            .iter()
            .map(|partition| CommittedOffset {
                topic: partition.topic.clone(),
                partition: partition.partition,
                offset: -1,
                metadata: String::new(),
            })
            .collect()
    }
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

    /// The named topics that exist, each with its partition count and id: what a caller that
    /// needs a few topics asks, rather than the whole cluster's list.
    async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicDescription>> {
        Ok(self
            .topics()
            .await?
            .into_iter()
            .filter(|topic| names.contains(&topic.name))
            .collect())
    }

    /// Whether a read-committed consumer would receive a record at an offset in `from..to`
    /// of `partition` now: false when those offsets hold only transaction markers, records of
    /// aborted transactions, or records of a transaction still open.
    async fn records_waiting(&self, partition: &TopicPartition, from: i64, to: i64)
    -> Result<bool>;

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

    /// The id of every consumer group the cluster knows (no descriptions: cheaper).
    async fn group_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .groups()
            .await?
            .into_iter()
            .map(|group| group.group_id)
            .collect())
    }

    /// The descriptions of `ids` that exist; the others are left out.
    async fn describe_groups(&self, ids: &[String]) -> Result<Vec<GroupDescription>> {
        let wanted: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        Ok(self
            .groups()
            .await?
            .into_iter()
            .filter(|group| wanted.contains(group.group_id.as_str()))
            .collect())
    }

    /// The group's committed offsets among `partitions` (partitions without one are left out).
    /// Asks for explicit partitions: some brokers answer "all topics" with nothing.
    async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<CommittedOffset>>;

    /// Many groups' committed offsets, each on its partitions, in the order asked. Each group
    /// has its own outcome: one group that cannot be read does not hide the others. (This
    /// default asks one group after another; the wire client batches per coordinator.)
    async fn committed_offsets_of_groups(
        &self,
        wanted: &[(String, Vec<TopicPartition>)],
    ) -> Vec<Result<Vec<CommittedOffset>>> {
        let mut found = Vec::with_capacity(wanted.len());
        for (group, partitions) in wanted {
            found.push(self.committed_offsets(group, partitions).await);
        }
        found
    }
}

/// The groups among `groups` that have members, each described as
/// `name (N members: client on host, ...)`. Kafka only takes offset commits from outside a
/// group while it has no members, and running consumers must not be moved under them.
pub async fn active_groups(cluster: &dyn ClusterReader, groups: &[String]) -> Result<Vec<String>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    Ok(cluster
        .describe_groups(groups)
        .await?
        .into_iter()
        .filter(|group| !group.members.is_empty())
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
