//! In-memory twin of a cluster for unit tests: topics, watermarks, configs, groups and their
//! committed offsets, each settable, plus injected failures per group.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::admin::{ClusterAdmin, OffsetRemoval};
use super::cluster::{
    ClusterReader, CommittedOffset, GroupDescription, TopicConfigs, TopicDescription,
    TopicPartition, Watermarks,
};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct State {
    topics: BTreeMap<String, (Vec<Watermarks>, TopicConfigs)>,
    groups: BTreeMap<String, GroupDescription>,
    /// Offset and commit metadata; a negative offset reads as "no offset", as on Kafka.
    offsets: BTreeMap<(String, TopicPartition), (i64, String)>,
    topic_ids: BTreeMap<String, String>,
    /// Like a broker without OffsetDelete: `delete_offsets` commits -1 instead.
    without_offset_delete: bool,
    failing_groups: BTreeMap<String, String>,
    /// Per group: the failure message, and whether it is one a retry may not meet.
    failing_commits: BTreeMap<String, (String, bool)>,
    /// Record timestamps of a partition from its first offset on, for ListOffsets by time.
    timestamps: BTreeMap<TopicPartition, (i64, Vec<i64>)>,
    /// Offsets that hold transaction markers (or aborted records): no consumer receives them.
    markers: BTreeMap<TopicPartition, Vec<i64>>,
}

#[derive(Debug, Default)]
pub struct MemoryCluster {
    state: Mutex<State>,
}

impl MemoryCluster {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates (or recreates, emptying it) a topic.
    pub fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let configs = configs
            .iter()
            .map(|(key, value)| (key.to_string(), Some(value.to_string())))
            .collect();
        let watermarks = vec![Watermarks { low: 0, high: 0 }; partitions as usize];
        let mut state = self.lock();
        state.topics.insert(name.to_owned(), (watermarks, configs));
        state
            .topic_ids
            .insert(name.to_owned(), uuid::Uuid::new_v4().to_string());
    }

    /// From now on behaves like a broker without OffsetDelete (before Kafka 2.4).
    pub fn without_offset_delete(&self) {
        self.lock().without_offset_delete = true;
    }

    /// Marks `offsets` of a partition as transaction markers or aborted records.
    pub fn set_markers(&self, topic: &str, partition: i32, offsets: &[i64]) {
        self.lock()
            .markers
            .insert(TopicPartition::new(topic, partition), offsets.to_vec());
    }

    pub fn set_watermarks(&self, topic: &str, partition: i32, low: i64, high: i64) {
        let mut state = self.lock();
        let (watermarks, _) = state.topics.get_mut(topic).expect("unknown topic");
        watermarks[partition as usize] = Watermarks { low, high };
    }

    /// Adds a group in `state` with `members` member ids.
    pub fn add_group(&self, group_id: &str, state: &str, members: &[&str]) {
        let description = GroupDescription {
            group_id: group_id.to_owned(),
            state: state.to_owned(),
            protocol_type: "consumer".to_owned(),
            protocol: if members.is_empty() {
                String::new()
            } else {
                "range".to_owned()
            },
            members: members
                .iter()
                .map(|member| super::cluster::GroupMember {
                    member_id: member.to_string(),
                    client_id: format!("client-{member}"),
                    client_host: "/127.0.0.1".to_owned(),
                })
                .collect(),
        };
        self.lock().groups.insert(group_id.to_owned(), description);
    }

    pub fn commit(&self, group_id: &str, topic: &str, partition: i32, offset: i64) {
        self.lock().offsets.insert(
            (group_id.to_owned(), TopicPartition::new(topic, partition)),
            (offset, String::new()),
        );
    }

    /// Gives the records of a partition, from `first_offset` on, these timestamps.
    pub fn set_timestamps(
        &self,
        topic: &str,
        partition: i32,
        first_offset: i64,
        timestamps: &[i64],
    ) {
        self.lock().timestamps.insert(
            TopicPartition::new(topic, partition),
            (first_offset, timestamps.to_vec()),
        );
    }

    /// Makes reading `group_id`'s offsets fail with `message`.
    pub fn fail_group(&self, group_id: &str, message: &str) {
        self.lock()
            .failing_groups
            .insert(group_id.to_owned(), message.to_owned());
    }

    /// Makes committing `group_id`'s offsets fail with `message`, for good.
    pub fn fail_commits(&self, group_id: &str, message: &str) {
        self.lock()
            .failing_commits
            .insert(group_id.to_owned(), (message.to_owned(), false));
    }

    /// Makes committing `group_id`'s offsets fail with `message`, as a transient error (a lost
    /// connection, a coordinator moving).
    pub fn fail_commits_transiently(&self, group_id: &str, message: &str) {
        self.lock()
            .failing_commits
            .insert(group_id.to_owned(), (message.to_owned(), true));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock poisoned")
    }
}

#[async_trait]
impl ClusterReader for MemoryCluster {
    async fn topics(&self) -> Result<Vec<TopicDescription>> {
        let state = self.lock();
        Ok(state
            .topics
            .iter()
            .map(|(name, (watermarks, _))| TopicDescription {
                name: name.clone(),
                partition_count: watermarks.len() as i32,
                topic_id: state.topic_ids.get(name).cloned(),
            })
            .collect())
    }

    async fn records_waiting(
        &self,
        partition: &TopicPartition,
        from: i64,
        to: i64,
    ) -> Result<bool> {
        let state = self.lock();
        let markers = state.markers.get(partition);
        Ok((from..to).any(|offset| markers.is_none_or(|markers| !markers.contains(&offset))))
    }

    async fn watermarks(&self, partitions: &[TopicPartition]) -> Result<Vec<Watermarks>> {
        let state = self.lock();
        partitions
            .iter()
            .map(|tp| {
                state
                    .topics
                    .get(&tp.topic)
                    .and_then(|(watermarks, _)| watermarks.get(tp.partition as usize).copied())
                    .ok_or_else(|| Error::Kafka {
                        operation: "read watermarks",
                        message: format!("unknown partition {}/{}", tp.topic, tp.partition),
                        retryable: false,
                    })
            })
            .collect()
    }

    async fn topic_configs(&self, topics: &[String]) -> Result<BTreeMap<String, TopicConfigs>> {
        let state = self.lock();
        Ok(topics
            .iter()
            .filter_map(|topic| {
                state
                    .topics
                    .get(topic)
                    .map(|(_, configs)| (topic.clone(), configs.clone()))
            })
            .collect())
    }

    async fn effective_topic_configs(
        &self,
        topics: &[String],
        names: &[&str],
    ) -> Result<BTreeMap<String, TopicConfigs>> {
        let state = self.lock();
        Ok(topics
            .iter()
            .filter_map(|topic| {
                let (_, configs) = state.topics.get(topic)?;
                let values = names
                    .iter()
                    .map(|name| {
                        let value = configs.get(*name).cloned().unwrap_or_else(|| {
                            super::cluster::kafka_default(name).map(str::to_owned)
                        });
                        ((*name).to_owned(), value)
                    })
                    .collect();
                Some((topic.clone(), values))
            })
            .collect())
    }

    async fn offsets_for_time(
        &self,
        partitions: &[TopicPartition],
        at_ms: i64,
    ) -> Result<Vec<i64>> {
        let ends = self.watermarks(partitions).await?;
        let state = self.lock();
        Ok(partitions
            .iter()
            .zip(ends)
            .map(|(partition, end)| {
                let Some((first, timestamps)) = state.timestamps.get(partition) else {
                    return end.high;
                };
                timestamps
                    .iter()
                    .position(|&timestamp| timestamp >= at_ms)
                    .map_or(end.high, |index| first + index as i64)
            })
            .collect())
    }

    async fn groups(&self) -> Result<Vec<GroupDescription>> {
        Ok(self.lock().groups.values().cloned().collect())
    }

    async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<CommittedOffset>> {
        let state = self.lock();
        if let Some(message) = state.failing_groups.get(group_id) {
            return Err(Error::Kafka {
                operation: "read committed offsets",
                message: message.clone(),
                retryable: false,
            });
        }
        Ok(partitions
            .iter()
            .filter_map(|tp| {
                state
                    .offsets
                    .get(&(group_id.to_owned(), tp.clone()))
                    .filter(|(offset, _)| *offset >= 0)
                    .map(|(offset, metadata)| CommittedOffset {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: *offset,
                        metadata: metadata.clone(),
                    })
            })
            .collect())
    }
}

#[async_trait]
impl ClusterAdmin for MemoryCluster {
    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        _replication_factor: i32,
        configs: &TopicConfigs,
    ) -> Result<()> {
        let mut state = self.lock();
        if state.topics.contains_key(name) {
            return Err(Error::Kafka {
                operation: "create topic",
                message: format!("{name}: topic already exists"),
                retryable: false,
            });
        }
        let watermarks = vec![Watermarks { low: 0, high: 0 }; partitions as usize];
        state
            .topics
            .insert(name.to_owned(), (watermarks, configs.clone()));
        state
            .topic_ids
            .insert(name.to_owned(), uuid::Uuid::new_v4().to_string());
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        state.topics.remove(name);
        state.topic_ids.remove(name);
        state.offsets.retain(|(_, tp), _| tp.topic != name);
        Ok(())
    }

    async fn commit_offsets(&self, group_id: &str, offsets: &[CommittedOffset]) -> Result<()> {
        let mut state = self.lock();
        if let Some((message, retryable)) = state.failing_commits.get(group_id) {
            return Err(Error::Kafka {
                operation: "commit offsets",
                message: format!("{group_id}: {message}"),
                retryable: *retryable,
            });
        }
        if let Some(group) = state.groups.get(group_id)
            && !group.members.is_empty()
        {
            return Err(Error::Kafka {
                operation: "commit offsets",
                message: format!("{group_id}: the group has active members"),
                retryable: false,
            });
        }
        for offset in offsets {
            let partition = TopicPartition::new(offset.topic.clone(), offset.partition);
            state.offsets.insert(
                (group_id.to_owned(), partition),
                (offset.offset, offset.metadata.clone()),
            );
        }
        state
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| GroupDescription {
                group_id: group_id.to_owned(),
                state: "Empty".to_owned(),
                protocol_type: "consumer".to_owned(),
                protocol: String::new(),
                members: Vec::new(),
            });
        Ok(())
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<OffsetRemoval> {
        let without_offset_delete = self.lock().without_offset_delete;
        if without_offset_delete {
            self.commit_offsets(group_id, &CommittedOffset::none_on(partitions))
                .await?;
            return Ok(OffsetRemoval::CommittedAsNone);
        }
        let mut state = self.lock();
        if let Some(group) = state.groups.get(group_id)
            && !group.members.is_empty()
        {
            return Err(Error::Kafka {
                operation: "delete committed offsets",
                message: format!("{group_id}: the group has active members"),
                retryable: false,
            });
        }
        for partition in partitions {
            state
                .offsets
                .remove(&(group_id.to_owned(), partition.clone()));
        }
        Ok(OffsetRemoval::Deleted)
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        let mut state = self.lock();
        state.groups.remove(group_id);
        state.offsets.retain(|(group, _), _| group != group_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::conformance::cluster_contract;

    #[tokio::test]
    async fn the_twin_meets_the_cluster_contract() {
        assert_eq!(
            cluster_contract(&MemoryCluster::new(), "twin", true).await,
            OffsetRemoval::Deleted
        );
        let old_broker = MemoryCluster::new();
        old_broker.without_offset_delete();
        assert_eq!(
            cluster_contract(&old_broker, "twin", true).await,
            OffsetRemoval::CommittedAsNone
        );
    }
}
