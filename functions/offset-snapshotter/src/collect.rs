//! Takes one snapshot: topology of the backed-up topics, then every selected group's committed
//! offsets on them, read in parallel, then the recreation check against what came before.

use std::time::{SystemTime, UNIX_EPOCH};

use tidemark_core::config::NameFilter;
use tidemark_core::index::IndexStore;
use tidemark_core::kafka::{ClusterReader, GroupDescription, TopicDescription, TopicPartition};
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::snapshot::generations::{generation_of_topic_id, latest_generation};
use tidemark_core::snapshot::{
    ClusterSnapshot, GroupSnapshot, PartitionSnapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION,
    SnapshotCatalog, TopicGeneration, TopicSnapshot,
};

use crate::error::Result;
use crate::recreation::{evidence_against_backup, evidence_against_previous, evidence_from_ids};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// What one snapshot reads from, and which names are in scope.
pub struct Collector<'a> {
    pub cluster: &'a dyn ClusterReader,
    pub index: &'a dyn IndexStore,
    pub catalog: &'a dyn SnapshotCatalog,
    pub backup_id: &'a BackupId,
    pub bootstrap_servers: &'a str,
    pub topics: &'a NameFilter,
    pub groups: &'a NameFilter,
}

impl Collector<'_> {
    /// One snapshot. `previous` is the latest earlier snapshot, if any: the baseline for
    /// recreation checks and the source of each topic's generation.
    pub async fn collect(&self, previous: Option<&ClusterSnapshot>) -> Result<ClusterSnapshot> {
        let started_at_ms = now_ms();
        let mut topics: Vec<_> = self
            .cluster
            .topics()
            .await?
            .into_iter()
            // Internal topics (`__consumer_offsets`, ...) are never backed up.
            .filter(|topic| !topic.name.starts_with("__") && self.topics.accepts(&topic.name))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let partitions: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|topic| {
                (0..topic.partition_count)
                    .map(|partition| TopicPartition::new(&topic.name, partition))
            })
            .collect();
        let watermarks = self.cluster.watermarks(&partitions).await?;
        let names: Vec<String> = topics.iter().map(|topic| topic.name.clone()).collect();
        let mut configs = self.cluster.topic_configs(&names).await?;

        let groups = self.group_offsets(&partitions).await?;
        // Taken when the last offset was read: nothing here is newer than this moment.
        let taken_at_ms = now_ms();

        let mut topic_snapshots = Vec::with_capacity(topics.len());
        let mut recreations = Vec::new();
        let mut marks = watermarks.into_iter();
        for topic in topics {
            let topic_marks: Vec<_> = marks
                .by_ref()
                .take(topic.partition_count as usize)
                .collect();
            let before = previous.and_then(|p| p.topic(&topic.name));
            let (generation, recreation) = match topic.topic_id.as_deref() {
                Some(id) => {
                    self.generation_of_id(&topic.name, id, before, &topic_marks, taken_at_ms)
                        .await?
                }
                None => {
                    self.generation_by_watermarks(&topic, before, &topic_marks, taken_at_ms)
                        .await?
                }
            };
            if let Some(recreation) = recreation {
                tracing::warn!(topic = %topic.name, generation = recreation.generation, evidence = ?recreation.evidence, "topic was recreated");
                recreations.push(recreation);
            }
            topic_snapshots.push(TopicSnapshot {
                configs: configs.remove(&topic.name).unwrap_or_default(),
                generation,
                topic_id: topic.topic_id.clone(),
                partition_count: topic.partition_count,
                partitions: topic_marks
                    .iter()
                    .enumerate()
                    .map(|(partition, marks)| PartitionSnapshot {
                        partition: partition as i32,
                        low_watermark: marks.low,
                        high_watermark: marks.high,
                    })
                    .collect(),
                name: topic.name,
            });
        }

        Ok(ClusterSnapshot {
            format: SNAPSHOT_FORMAT.to_owned(),
            version: SNAPSHOT_VERSION,
            backup_id: self.backup_id.to_string(),
            bootstrap_servers: self.bootstrap_servers.to_owned(),
            started_at_ms,
            taken_at_ms,
            topics: topic_snapshots,
            groups,
            recreations,
        })
    }

    /// The generation of a topic the cluster reports an id for: the one the catalog maps the
    /// id to, or a new one recorded now (the writer, which may see the id first, records
    /// through the same rule). Returns the recreation when this snapshot is the first to see
    /// the generation.
    async fn generation_of_id(
        &self,
        topic: &str,
        id: &str,
        before: Option<&TopicSnapshot>,
        watermarks: &[tidemark_core::kafka::Watermarks],
        taken_at_ms: i64,
    ) -> Result<(u32, Option<TopicGeneration>)> {
        if let Some(before) = before
            && before.topic_id.as_deref() == Some(id)
        {
            return Ok((before.generation, None));
        }
        // What shows the live topic is not the one seen before: another id in the previous
        // snapshot, watermarks gone back since, or (first sight) generation 0 holding offsets
        // past the topic's end. With nothing recorded yet, it keeps the id from generation 0.
        // Only a first sight reads what was recorded before.
        let (seen_new, recorded_before) = match before {
            Some(before) => {
                let mut seen: Vec<String> = evidence_from_ids(before.topic_id.as_deref(), Some(id))
                    .into_iter()
                    .collect();
                seen.extend(evidence_against_previous(
                    before,
                    watermarks.len() as i32,
                    watermarks,
                ));
                (seen, Vec::new())
            }
            None => {
                let recorded = self
                    .catalog
                    .topic_generations(self.backup_id, topic)
                    .await?;
                let seen = if recorded.is_empty() {
                    self.evidence_against_backup(topic, watermarks).await?
                } else {
                    Vec::new()
                };
                (seen, recorded)
            }
        };
        let record = generation_of_topic_id(
            self.catalog,
            self.backup_id,
            topic,
            id,
            taken_at_ms,
            seen_new,
        )
        .await?;
        let generation = record.generation;
        let first_seen_now = match before {
            Some(before) => before.generation != generation,
            None => generation > 0 && !recorded_before.iter().any(|g| g.generation == generation),
        };
        Ok((generation, first_seen_now.then_some(record)))
    }

    /// The generation of a topic on a cluster that reports no ids: the previous snapshot's
    /// (or the latest recorded), and the next one when the watermarks went back.
    async fn generation_by_watermarks(
        &self,
        topic: &TopicDescription,
        before: Option<&TopicSnapshot>,
        watermarks: &[tidemark_core::kafka::Watermarks],
        taken_at_ms: i64,
    ) -> Result<(u32, Option<TopicGeneration>)> {
        let (generation, evidence) = match before {
            Some(before) => (
                before.generation,
                evidence_against_previous(before, topic.partition_count, watermarks),
            ),
            None => {
                let generation = latest_generation(
                    &self
                        .catalog
                        .topic_generations(self.backup_id, &topic.name)
                        .await?,
                );
                // Only a backup of this same generation says anything about the live topic.
                let evidence = if generation == 0 {
                    self.evidence_against_backup(&topic.name, watermarks)
                        .await?
                } else {
                    Vec::new()
                };
                (generation, evidence)
            }
        };
        if evidence.is_empty() {
            return Ok((generation, None));
        }
        Ok((
            generation + 1,
            Some(TopicGeneration {
                topic: topic.name.clone(),
                generation: generation + 1,
                detected_at_ms: taken_at_ms,
                evidence,
                topic_id: None,
            }),
        ))
    }

    /// What shows the live topic ends before offsets generation 0 of its backup holds.
    async fn evidence_against_backup(
        &self,
        topic: &str,
        watermarks: &[tidemark_core::kafka::Watermarks],
    ) -> Result<Vec<String>> {
        let mut backed_up_to = Vec::new();
        for partition in 0..watermarks.len() as i32 {
            let id = PartitionId::new(self.backup_id.clone(), topic.to_owned(), partition);
            if let Some(checkpoint) = self.index.checkpoint(&id).await? {
                backed_up_to.push((partition, checkpoint.next_offset));
            }
        }
        Ok(evidence_against_backup(&backed_up_to, watermarks))
    }

    /// Every selected group with its committed offsets on `partitions`, sorted by group id. A
    /// group whose offsets cannot be read is kept, marked with the error.
    async fn group_offsets(&self, partitions: &[TopicPartition]) -> Result<Vec<GroupSnapshot>> {
        // Filter the ids first: describing groups the snapshot does not keep costs requests.
        let ids: Vec<String> = self
            .cluster
            .group_ids()
            .await?
            .into_iter()
            .filter(|group| self.groups.accepts(group))
            .collect();
        let mut listed: Vec<GroupDescription> = self.cluster.describe_groups(&ids).await?;
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        // One batched read for every group (many groups per request to each coordinator).
        let wanted: Vec<(String, Vec<TopicPartition>)> = listed
            .iter()
            .map(|group| (group.group_id.clone(), partitions.to_vec()))
            .collect();
        let read = self.cluster.committed_offsets_of_groups(&wanted).await;
        let mut groups: Vec<GroupSnapshot> = listed
            .into_iter()
            .zip(read)
            .map(|(group, read)| match read {
                Ok(offsets) => GroupSnapshot {
                    group,
                    offsets,
                    error: None,
                },
                Err(error) => {
                    tracing::warn!(group = %group.group_id, %error, "cannot read committed offsets");
                    GroupSnapshot {
                        group,
                        offsets: Vec::new(),
                        error: Some(error.to_string()),
                    }
                }
            })
            .collect();
        for group in &mut groups {
            group
                .offsets
                .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        }
        groups.sort_by(|a, b| a.group.group_id.cmp(&b.group.group_id));
        Ok(groups)
    }
}
