//! The cluster-changing seam: what a restore (and the offset reset) does to a target cluster.
//! [`KafkaCluster`](super::KafkaCluster) does it over the wire protocol; `MemoryCluster` is
//! the in-memory twin.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::cluster::{CommittedOffset, TopicConfigs, TopicPartition};
use crate::error::Result;

/// How a committed offset was taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OffsetRemoval {
    /// OffsetDelete (KIP-496): the group has no offset there, exactly as if none was ever
    /// committed.
    Deleted,
    /// The broker has no OffsetDelete: offset -1 committed instead, which every consumer and
    /// OffsetFetch read as "no committed offset"; a listing of all the group's offsets still
    /// shows the partition, at -1.
    CommittedAsNone,
}

/// Changes to a cluster. Each call either fully happens or returns an error saying what did not.
#[async_trait]
pub trait ClusterAdmin: Send + Sync {
    /// Creates a topic with `partitions` partitions and the given config overrides.
    /// `replication_factor` -1 takes the broker's default.
    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &TopicConfigs,
    ) -> Result<()>;

    /// Deletes a topic and its records.
    async fn delete_topic(&self, name: &str) -> Result<()>;

    /// Commits `offsets` for `group_id` from outside the group. Kafka accepts this only while
    /// the group has no active members.
    async fn commit_offsets(&self, group_id: &str, offsets: &[CommittedOffset]) -> Result<()>;

    /// Commits many groups' offsets, in the order given; each group has its own outcome. (This
    /// default commits one group after another; the wire client pipelines them.)
    async fn commit_offsets_of_groups(
        &self,
        commits: &[(String, Vec<CommittedOffset>)],
    ) -> Vec<Result<()>> {
        let mut done = Vec::with_capacity(commits.len());
        for (group, offsets) in commits {
            done.push(self.commit_offsets(group, offsets).await);
        }
        done
    }

    /// Takes away the group's committed offsets on `partitions`, so the group reads as if it
    /// never committed there. Kafka accepts this only where no member consumes the topic.
    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<OffsetRemoval>;

    /// Deletes a group that has no active members, with all its committed offsets.
    async fn delete_group(&self, group_id: &str) -> Result<()>;
}
