//! The changing requests: CreateTopics and DeleteTopics (on the controller), OffsetCommit (one
//! request per group, all pipelined to their coordinators), OffsetDelete and DeleteGroups.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest, OffsetCommitRequest,
    OffsetDeleteRequest,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic},
};
use kafka_protocol::protocol::StrBytes;

use super::broker::BrokerConnection;
use super::errors::{
    GROUP_ID_NOT_FOUND, TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION, api_error,
    api_error_with, coordinator_moved,
};
use super::{Attempt, KafkaCluster, attempt_of, group_id, topic_name};
use crate::error::{Error, Result};
use crate::kafka::admin::{ClusterAdmin, OffsetRemoval};
use crate::kafka::cluster::{CommittedOffset, TopicConfigs, TopicPartition};

const NOT_CONTROLLER: i16 = 41;
/// Connections per coordinator that commits are spread over (a broker serves one request per
/// connection at a time; OffsetCommit takes one group).
const COMMIT_LANES: usize = 4;

/// Commit errors another attempt would meet again: the group has members now (a coordinator
/// refuses commits from outside a live group), or the partitions or metadata are refused as
/// such. Coordinator moves and lost connections stay retryable.
fn commit_error_is_permanent(code: i16) -> bool {
    matches!(
        code,
        // UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID
        25 | 22 | 27 | 82
        // UNKNOWN_TOPIC_OR_PARTITION, INVALID_COMMIT_OFFSET_SIZE, OFFSET_METADATA_TOO_LARGE
        | 3 | 28 | 12
        // GROUP_ and TOPIC_AUTHORIZATION_FAILED
        | 30 | 29
    )
}

impl KafkaCluster {
    /// OffsetCommit of each group's offsets from outside the group (generation -1, no member),
    /// which a coordinator accepts only while the group has no members.
    async fn commit_on(
        &self,
        broker: Arc<BrokerConnection>,
        groups: Vec<String>,
        offsets: &BTreeMap<String, Vec<CommittedOffset>>,
    ) -> Result<Vec<(String, Attempt<()>)>> {
        let lanes = groups.len().clamp(1, COMMIT_LANES);
        let requests = groups.into_iter().enumerate().map(|(index, group)| {
            let first = Arc::clone(&broker);
            async move {
                let broker = match index % lanes {
                    0 => first,
                    lane => self.lane(&first.address, lane).await?,
                };
                let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
                for offset in &offsets[&group] {
                    topics.entry(&offset.topic).or_default().push(
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(offset.partition)
                            .with_committed_offset(offset.offset)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(StrBytes::from_string(
                                offset.metadata.clone(),
                            ))),
                    );
                }
                let request = OffsetCommitRequest::default()
                    .with_group_id(group_id(&group))
                    .with_generation_id_or_member_epoch(-1)
                    .with_member_id(StrBytes::from_static_str(""))
                    .with_retention_time_ms(-1)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetCommitRequestTopic::default()
                                    .with_name(topic_name(topic))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    );
                let response = self.call(&broker, &request, 2..=8).await?;
                let mut refused = Vec::new();
                let mut moved = None;
                for topic in &response.topics {
                    for partition in &topic.partitions {
                        match partition.error_code {
                            0 => {}
                            code if coordinator_moved(code) => moved = Some(code),
                            code => refused.push((
                                topic.name.to_string(),
                                partition.partition_index,
                                code,
                            )),
                        }
                    }
                }
                if let Some(code) = moved {
                    return Ok::<_, Error>((group, Attempt::CoordinatorMoved(code)));
                }
                let outcome = match refused.first() {
                    None => Ok(()),
                    Some(&(ref topic, partition, code)) => {
                        let error = api_error(
                            "commit offsets",
                            &broker.address,
                            ApiKey::OffsetCommit,
                            code,
                            Some(&format!("group {group} on {topic}/{partition}")),
                        );
                        Err(match error {
                            Error::Kafka {
                                operation, message, ..
                            } => Error::Kafka {
                                operation,
                                message: if refused.len() > 1 {
                                    format!("{message} (and {} more partitions)", refused.len() - 1)
                                } else {
                                    message
                                },
                                retryable: !refused
                                    .iter()
                                    .any(|&(_, _, code)| commit_error_is_permanent(code)),
                            },
                            other => other,
                        })
                    }
                };
                Ok((group, Attempt::Done(outcome)))
            }
        });
        futures::future::try_join_all(requests).await
    }

    /// Runs one topic request on the controller, finding it again when it moved.
    async fn on_controller<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Arc<BrokerConnection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.retrying(|| async {
            let controller = self.controller().await?;
            let result = call(controller).await;
            if result.as_ref().is_err_and(Error::is_retryable) {
                self.topology().controller = None;
            }
            result
        })
        .await
    }
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
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor as i16)
            .with_configs(
                configs
                    .iter()
                    .filter_map(|(key, value)| {
                        Some(
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(key.clone()))
                                .with_value(Some(StrBytes::from_string(value.clone()?))),
                        )
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(self.connection.request_timeout.as_millis() as i32);
        self.on_controller(|controller| {
            let request = &request;
            async move {
                let response = self.call(&controller, request, 2..=7).await?;
                for result in response.topics {
                    let code = if result.error_code == NOT_CONTROLLER {
                        NOT_CONTROLLER
                    } else {
                        result.error_code
                    };
                    if code != 0 {
                        let mut error = api_error_with(
                            "create topic",
                            &controller.address,
                            ApiKey::CreateTopics,
                            code,
                            Some(&format!("topic {name}")),
                            result
                                .error_message
                                .as_ref()
                                .map(|message| message.as_str()),
                        );
                        if code == TOPIC_ALREADY_EXISTS
                            || code != NOT_CONTROLLER && !error.is_retryable()
                        {
                            error = non_retryable(error);
                        }
                        return Err(error);
                    }
                }
                Ok(())
            }
        })
        .await
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.on_controller(|controller| async move {
            let version = self.version_for::<DeleteTopicsRequest>(&controller, 1..=6)?;
            let mut request = DeleteTopicsRequest::default()
                .with_timeout_ms(self.connection.request_timeout.as_millis() as i32);
            if version >= 6 {
                request = request.with_topics(vec![
                    DeleteTopicState::default().with_name(Some(topic_name(name))),
                ]);
            } else {
                request = request.with_topic_names(vec![topic_name(name)]);
            }
            let response = controller.send(&request, version).await?;
            for result in response.responses {
                // Already gone is what was asked for.
                if result.error_code != 0 && result.error_code != UNKNOWN_TOPIC_OR_PARTITION {
                    return Err(api_error_with(
                        "delete topic",
                        &controller.address,
                        ApiKey::DeleteTopics,
                        result.error_code,
                        Some(&format!("topic {name}")),
                        result
                            .error_message
                            .as_ref()
                            .map(|message| message.as_str()),
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    async fn commit_offsets(&self, group_id: &str, offsets: &[CommittedOffset]) -> Result<()> {
        let commits = [(group_id.to_owned(), offsets.to_vec())];
        self.commit_offsets_of_groups(&commits)
            .await
            .pop()
            .expect("one answer per group")
    }

    async fn commit_offsets_of_groups(
        &self,
        commits: &[(String, Vec<CommittedOffset>)],
    ) -> Vec<Result<()>> {
        let offsets: BTreeMap<String, Vec<CommittedOffset>> = commits
            .iter()
            .filter(|(_, offsets)| !offsets.is_empty())
            .cloned()
            .collect();
        let groups: Vec<String> = offsets.keys().cloned().collect();
        let offsets = &offsets;
        let mut done = self
            .on_coordinators(&groups, |broker, groups| {
                self.commit_on(broker, groups, offsets)
            })
            .await;
        commits
            .iter()
            .map(|(group, offsets)| {
                if offsets.is_empty() {
                    return Ok(());
                }
                match done.remove(group) {
                    Some(outcome) => outcome,
                    None => Err(Error::Kafka {
                        operation: "commit offsets",
                        message: format!("no answer for group {group}"),
                        retryable: true,
                    }),
                }
            })
            .collect()
    }

    async fn delete_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<OffsetRemoval> {
        if partitions.is_empty() {
            return Ok(OffsetRemoval::Deleted);
        }
        let groups = [group.to_owned()];
        let mut outcome = self
            .on_coordinators(&groups, |broker, groups| async move {
                let group = &groups[0];
                if self
                    .version_for::<OffsetDeleteRequest>(&broker, 0..=0)
                    .is_err()
                {
                    // No OffsetDelete (before Kafka 2.4, and some Kafka-compatible brokers):
                    // commit -1, which every reader takes for "no committed offset".
                    let offsets =
                        BTreeMap::from([(group.clone(), CommittedOffset::none_on(partitions))]);
                    let mut answers = self.commit_on(broker, groups.clone(), &offsets).await?;
                    let (group, answer) = answers.pop().expect("one answer");
                    let answer = match answer {
                        Attempt::Done(result) => {
                            Attempt::Done(result.map(|()| OffsetRemoval::CommittedAsNone))
                        }
                        Attempt::CoordinatorMoved(code) => Attempt::CoordinatorMoved(code),
                    };
                    return Ok(vec![(group, answer)]);
                }
                let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
                for partition in partitions {
                    topics.entry(&partition.topic).or_default().push(
                        OffsetDeleteRequestPartition::default()
                            .with_partition_index(partition.partition),
                    );
                }
                let request = OffsetDeleteRequest::default()
                    .with_group_id(group_id(group))
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetDeleteRequestTopic::default()
                                    .with_name(topic_name(topic))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    );
                let response = self.call(&broker, &request, 0..=0).await?;
                let address = broker.address.clone();
                let code = response.error_code;
                let answer = attempt_of(code, || {
                    // A group that is gone has no offsets left to delete.
                    if code != 0 && code != GROUP_ID_NOT_FOUND {
                        return Err(non_retryable(api_error(
                            "delete committed offsets",
                            &address,
                            ApiKey::OffsetDelete,
                            code,
                            Some(&format!("group {group}")),
                        )));
                    }
                    for topic in &response.topics {
                        for partition in &topic.partitions {
                            let code = partition.error_code;
                            if code != 0 && code != UNKNOWN_TOPIC_OR_PARTITION {
                                // GROUP_SUBSCRIBED_TO_TOPIC: a live consumer still reads it.
                                return Err(non_retryable(api_error(
                                    "delete committed offsets",
                                    &address,
                                    ApiKey::OffsetDelete,
                                    code,
                                    Some(&format!(
                                        "group {group} on {}/{}",
                                        topic.name.as_str(),
                                        partition.partition_index
                                    )),
                                )));
                            }
                        }
                    }
                    Ok(OffsetRemoval::Deleted)
                });
                Ok(vec![(group.clone(), answer)])
            })
            .await;
        outcome.remove(group).unwrap_or_else(|| {
            Err(Error::Kafka {
                operation: "delete committed offsets",
                message: format!("no answer for group {group}"),
                retryable: true,
            })
        })
    }

    async fn delete_group(&self, group: &str) -> Result<()> {
        let groups = [group.to_owned()];
        let mut outcome = self
            .on_coordinators(&groups, |broker, groups| async move {
                let request = DeleteGroupsRequest::default()
                    .with_groups_names(groups.iter().map(|group| group_id(group)).collect());
                let response = self.call(&broker, &request, 0..=2).await?;
                Ok(response
                    .results
                    .into_iter()
                    .map(|result| {
                        let name = result.group_id.to_string();
                        let code = result.error_code;
                        let address = broker.address.clone();
                        let subject = format!("group {name}");
                        let answer = attempt_of(code, move || {
                            // Already gone is what was asked for.
                            if code == 0 || code == GROUP_ID_NOT_FOUND {
                                Ok(())
                            } else {
                                Err(api_error(
                                    "delete group",
                                    &address,
                                    ApiKey::DeleteGroups,
                                    code,
                                    Some(&subject),
                                ))
                            }
                        });
                        (name, answer)
                    })
                    .collect())
            })
            .await;
        outcome.remove(group).unwrap_or_else(|| {
            Err(Error::Kafka {
                operation: "delete group",
                message: format!("no answer for group {group}"),
                retryable: true,
            })
        })
    }
}

fn non_retryable(error: Error) -> Error {
    match error {
        Error::Kafka {
            operation, message, ..
        } => Error::Kafka {
            operation,
            message,
            retryable: false,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_group_or_a_refused_partition_is_permanent_and_a_moving_coordinator_is_not() {
        // UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION, GROUP_AUTHORIZATION_FAILED
        for code in [25, 27, 3, 30] {
            assert!(commit_error_is_permanent(code), "{code}");
        }
        // NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, REQUEST_TIMED_OUT
        for code in [16, 15, 14, 7] {
            assert!(!commit_error_is_permanent(code), "{code}");
        }
    }
}
