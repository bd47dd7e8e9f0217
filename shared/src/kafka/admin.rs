//! The cluster-changing seam: what a restore (and the offset reset) does to a target cluster.
//! [`KafkaCluster`] does it through librdkafka; `MemoryCluster` is the in-memory twin.

use async_trait::async_trait;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, describe_failure};
use super::cluster::{CommittedOffset, KafkaCluster, TopicConfigs};
use crate::error::{Error, Result};

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

    /// Deletes a group that has no active members, with all its committed offsets.
    async fn delete_group(&self, group_id: &str) -> Result<()>;
}

#[async_trait]
impl ClusterAdmin for KafkaCluster {
    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &TopicConfigs,
    ) -> Result<()> {
        let admin = self.admin_client().await?;
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (key, value) in configs {
            if let Some(value) = value {
                topic = topic.set(key, value);
            }
        }
        let results = admin
            .create_topics([&topic], &self.admin_options())
            .await
            .map_err(|error| describe_failure("create topic", self.connection(), None, error))?;
        self.check_results("create topic", results, None)?;
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let admin = self.admin_client().await?;
        let results = admin
            .delete_topics(&[name], &self.admin_options())
            .await
            .map_err(|error| describe_failure("delete topic", self.connection(), None, error))?;
        // Already gone is what was asked for.
        self.check_results(
            "delete topic",
            results,
            Some(RDKafkaErrorCode::UnknownTopicOrPartition),
        )?;
        Ok(())
    }

    async fn commit_offsets(&self, group_id: &str, offsets: &[CommittedOffset]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for offset in offsets {
            list.add_partition_offset(
                &offset.topic,
                offset.partition,
                Offset::Offset(offset.offset),
            )
            .map_err(|error| Error::Kafka {
                operation: "commit offsets",
                message: error.to_string(),
                retryable: false,
            })?;
        }
        let connection = self.connection().clone();
        let client_id = self.client_id().to_owned();
        let group_id = group_id.to_owned();
        tokio::task::spawn_blocking(move || {
            // A client that never subscribes commits as "no member" (generation -1), which
            // the coordinator accepts only for an empty group.
            let consumer = client::consumer(&connection, &client_id, Some(&group_id))?;
            let result = consumer.commit(&list, CommitMode::Sync).map_err(|error| {
                let permanent = error
                    .rdkafka_error_code()
                    .is_some_and(commit_error_is_permanent);
                let failure =
                    describe_failure("commit offsets", &connection, Some(&consumer), error)
                        .with_subject(&group_id);
                match failure {
                    Error::Kafka {
                        operation, message, ..
                    } if permanent => Error::Kafka {
                        operation,
                        message,
                        retryable: false,
                    },
                    other => other,
                }
            });
            client::close(consumer);
            result
        })
        .await
        .map_err(client::join_error)?
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        let admin = self.admin_client().await?;
        let results = admin
            .delete_groups(&[group_id], &self.admin_options())
            .await
            .map_err(|error| describe_failure("delete group", self.connection(), None, error))?;
        self.check_results(
            "delete group",
            results,
            Some(RDKafkaErrorCode::GroupIdNotFound),
        )?;
        Ok(())
    }
}

/// Commit errors that another attempt would meet again: the group has members now (the broker
/// refuses commits from outside a live group), or the partitions or metadata are refused as
/// such. Coordinator moves and lost connections stay retryable.
fn commit_error_is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::InvalidCommitOffsetSize
            | RDKafkaErrorCode::OffsetMetadataTooLarge
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
    )
}

impl KafkaCluster {
    /// Fails on the first per-item error of an admin request, except `tolerated`.
    fn check_results(
        &self,
        operation: &'static str,
        results: Vec<std::result::Result<String, (String, RDKafkaErrorCode)>>,
        tolerated: Option<RDKafkaErrorCode>,
    ) -> Result<()> {
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, code)) if Some(code) == tolerated => {}
                Err((subject, code)) => {
                    return Err(describe_failure(
                        operation,
                        self.connection(),
                        None,
                        KafkaError::AdminOp(code),
                    )
                    .with_subject(&subject));
                }
            }
        }
        Ok(())
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.connection().request_timeout))
            .operation_timeout(Some(self.connection().request_timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_group_or_a_refused_partition_is_permanent_and_a_moving_coordinator_is_not() {
        for code in [
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::RebalanceInProgress,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::GroupAuthorizationFailed,
        ] {
            assert!(commit_error_is_permanent(code), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::RequestTimedOut,
        ] {
            assert!(!commit_error_is_permanent(code), "{code:?}");
        }
    }
}
