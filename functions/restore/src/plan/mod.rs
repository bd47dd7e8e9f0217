//! Validate + plan: everything a restore will do, decided before anything is written, so bad
//! input and impossible targets are refused while nothing has changed (invariant 10).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tidemark_core::kafka::{ClusterReader, CommittedOffset, TopicConfigs, TopicPartition};
use tidemark_core::layout::{BackupId, PartitionId, RestoreId};
use tidemark_core::snapshot::ClusterSnapshot;

use crate::error::{RestoreError, Result};
use crate::request::{Cut, TopicCreation, ValidRequest};
use tidemark_core::stores::{BackedUpTopic, BackupStores, SegmentSource};

mod alive_at_cut;
pub mod target_fit;

use alive_at_cut::{ReadSegments, choose_generation, end_at_cut, partitions_alive_at_cut};
use target_fit::RestoredRange;

/// One partition's share of the restore: the unit the state machine's Map runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTask {
    pub source_topic: String,
    /// The source topic's generation read (plans made before generations existed read 0).
    #[serde(default)]
    pub generation: u32,
    pub target_topic: String,
    pub partition: i32,
    pub segment_source: SegmentSource,
    /// Source offsets `first_offset..end_offset` are read; the cut filters them further.
    pub first_offset: i64,
    pub end_offset: i64,
    pub cut: Cut,
    pub start_ms: Option<i64>,
    /// The target partition's end offset when planned: the first restored record lands here.
    pub target_base: i64,
    /// Records in the segments read (before de-duplication and the cut): an upper bound.
    pub records_to_scan: u64,
    pub bytes_to_scan: u64,
    /// The largest record this topic's restore produces (framed length), or a bound on it:
    /// the producer is sized from it.
    #[serde(default)]
    pub max_record_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPlan {
    pub source: String,
    /// Which life of the source topic is restored: the one alive at the cut, or the one named.
    #[serde(default)]
    pub generation: u32,
    pub target: String,
    /// Partitions the backup holds.
    pub partitions: Vec<i32>,
    /// Partition count to create the target with (from the snapshot, else the backup).
    pub partition_count: i32,
    pub configs: TopicConfigs,
    pub target_exists: bool,
    /// This restore creates the target topic.
    pub create: bool,
}

/// A group to reposition: where it stood on the source topics at the cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub group: String,
    pub source_offsets: Vec<CommittedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub key: String,
    pub taken_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    pub restore_id: String,
    pub backup_id: String,
    pub planned_at_ms: i64,
    pub cut: Cut,
    pub start_ms: Option<i64>,
    pub dry_run: bool,
    /// `false`: the groups' positions are planned and checked, never applied.
    #[serde(default = "yes")]
    pub move_groups: bool,
    pub replication_factor: i32,
    pub rollback_deletes_created_topics: bool,
    /// The cluster snapshot at or before the cut: group positions and topic configs.
    pub snapshot: Option<SnapshotRef>,
    pub topics: Vec<TopicPlan>,
    pub groups: Vec<GroupPlan>,
    pub partitions: Vec<PartitionTask>,
    pub warnings: Vec<String>,
}

impl RestorePlan {
    /// The plan's backup and restore ids, checked again (the plan is read back from S3).
    pub fn ids(&self) -> Result<(BackupId, RestoreId)> {
        let invalid = |error: tidemark_core::Error| RestoreError::InvalidRequest(error.to_string());
        Ok((
            BackupId::parse(&self.backup_id).map_err(invalid)?,
            RestoreId::parse(&self.restore_id).map_err(invalid)?,
        ))
    }

    /// `name` under this restore's prefix in `backup` (its report, its created-topic marks).
    pub fn object_key(&self, backup: &BackupStores, name: &str) -> Result<String> {
        let (backup_id, restore_id) = self.ids()?;
        Ok(backup.restore_key(&backup_id, &restore_id, name))
    }

    pub fn target_of(&self, source_topic: &str) -> Option<&str> {
        self.topics
            .iter()
            .find(|topic| topic.source == source_topic)
            .map(|topic| topic.target.as_str())
    }
}

fn yes() -> bool {
    true
}

/// Plans a restore. Reads the backup and the target; writes nothing.
pub async fn make_plan(
    backup: &BackupStores,
    target: &dyn ClusterReader,
    restore_id: &RestoreId,
    request: &ValidRequest,
    now_ms: i64,
) -> Result<RestorePlan> {
    let backup_id = &request.backup_id;
    let mut warnings = Vec::new();

    let backed_up = backup.topics(backup_id).await?;
    if backed_up.is_empty() {
        return Err(RestoreError::Refused(format!(
            "unknown backup id \"{backup_id}\": nothing is stored under s3://{}/{}",
            backup.bucket,
            backup.layout.topics_prefix(backup_id)
        )));
    }
    let selected: Vec<(&BackedUpTopic, String)> = backed_up
        .iter()
        .filter_map(|topic| Some((topic, request.naming.target_of(&topic.name)?)))
        .collect();
    if let crate::request::TopicNaming::Mapping(mapping) = &request.naming {
        let missing: Vec<&String> = mapping
            .keys()
            .filter(|source| !backed_up.iter().any(|topic| topic.name == **source))
            .collect();
        if !missing.is_empty() {
            return Err(RestoreError::Refused(format!(
                "topics.mapping names topics backup \"{backup_id}\" does not hold: {missing:?}"
            )));
        }
    }
    if selected.is_empty() {
        let names: Vec<&String> = backed_up.iter().map(|topic| &topic.name).collect();
        return Err(RestoreError::Refused(format!(
            "topics select none of backup \"{backup_id}\"'s topics {names:?}"
        )));
    }

    let snapshot = tidemark_core::snapshot::load_at_or_before(
        backup.catalog.as_ref(),
        backup.objects.as_ref(),
        backup_id,
        request.cut.at_ms,
    )
    .await?;
    if snapshot.is_none() && !request.groups.is_empty() {
        return Err(RestoreError::Refused(format!(
            "groups cannot be repositioned: backup \"{backup_id}\" has no cluster snapshot at or \
             before the cut ({} ms)",
            request.cut.at_ms
        )));
    }

    let named_elsewhere: Vec<&String> = request
        .generations
        .keys()
        .filter(|name| !selected.iter().any(|(topic, _)| topic.name == **name))
        .collect();
    if !named_elsewhere.is_empty() {
        return Err(RestoreError::Refused(format!(
            "topics.generations names topics this restore does not select: {named_elsewhere:?}"
        )));
    }
    let mut chosen = Vec::with_capacity(selected.len());
    for (topic, target) in &selected {
        let (generation, partitions) =
            choose_generation(backup, backup_id, topic, request, &mut warnings).await?;
        chosen.push((topic.name.clone(), target.clone(), generation, partitions));
    }

    let target_topics: BTreeMap<String, i32> = target
        .topics()
        .await?
        .into_iter()
        .map(|topic| (topic.name, topic.partition_count))
        .collect();
    let mut topics = Vec::new();
    let mut missing = Vec::new();
    let mut read_segments = ReadSegments::new();
    for (source, target_name, generation, partitions) in &chosen {
        // A snapshot of another generation describes another topic.
        let from_snapshot = snapshot
            .as_ref()
            .and_then(|(snapshot, _)| snapshot.topic(source))
            .filter(|described| described.generation == *generation);
        let partitions = match from_snapshot {
            Some(described) => {
                let id = PartitionId::new(backup_id.clone(), source.clone(), 0)
                    .in_generation(*generation);
                partitions_alive_at_cut(
                    backup,
                    &id,
                    partitions,
                    described.partition_count,
                    request.cut,
                    &mut read_segments,
                    &mut warnings,
                )
                .await?
            }
            None => partitions.clone(),
        };
        let backed_up_count = partitions.iter().max().map_or(0, |max| max + 1);
        let (partition_count, configs) = match from_snapshot {
            Some(topic) => (
                topic.partition_count.max(backed_up_count),
                topic.configs.clone(),
            ),
            None => {
                warnings.push(format!(
                    "{source}: no snapshot at or before the cut describes it; a created target \
                     gets {backed_up_count} partitions and default configs"
                ));
                (backed_up_count, TopicConfigs::new())
            }
        };
        let existing = target_topics.get(target_name).copied();
        if let Some(count) = existing
            && count < backed_up_count
        {
            return Err(RestoreError::Refused(format!(
                "target topic {target_name} has {count} partitions but {source} needs \
                 partition {} restored: add partitions or restore to a new topic",
                backed_up_count - 1
            )));
        }
        if existing.is_none() && request.topic_creation == TopicCreation::Require {
            missing.push(target_name.clone());
        }
        topics.push(TopicPlan {
            source: source.clone(),
            generation: *generation,
            target: target_name.clone(),
            partitions,
            partition_count,
            configs,
            target_exists: existing.is_some(),
            create: existing.is_none(),
        });
    }
    if !missing.is_empty() {
        return Err(RestoreError::Refused(format!(
            "target topics {missing:?} do not exist; create them or set \"topic_creation\": \"create\""
        )));
    }

    if request.move_groups {
        check_groups_inactive(target, &request.groups).await?;
    }

    let groups = match &snapshot {
        Some((snapshot, key)) => group_plans(snapshot, key, &request.groups, &topics)?,
        None => Vec::new(),
    };
    for group in groups
        .iter()
        .filter(|group| group.source_offsets.is_empty())
    {
        warnings.push(format!(
            "group {}: no committed offset on the restored topics at the cut; it is not moved",
            group.group
        ));
    }

    let mut partitions = Vec::new();
    let mut ranges = Vec::with_capacity(topics.len());
    // One warning for all of them: the index-lost case can span thousands of partitions.
    let mut from_listing = Vec::new();
    for topic in &topics {
        let mut range = RestoredRange::default();
        let bases = target_bases(target, topic).await?;
        for (&partition, base) in topic.partitions.iter().zip(bases) {
            let id = PartitionId::new(backup_id.clone(), topic.source.clone(), partition)
                .in_generation(topic.generation);
            let (segments, source) = match read_segments.remove(&id) {
                Some(read) => read,
                None => backup.segments(&id, None).await?,
            };
            if source == SegmentSource::S3Listing && !segments.is_empty() {
                from_listing.push(id.to_string());
            }
            let first_offset = segments.first().map_or(0, |segment| segment.first_offset);
            let end_offset = end_at_cut(backup, &segments, source, request.cut).await?;
            let scanned = segments
                .iter()
                .filter(|segment| segment.first_offset < end_offset);
            for segment in scanned.clone() {
                range.add(partition, segment);
            }
            partitions.push(PartitionTask {
                source_topic: topic.source.clone(),
                generation: topic.generation,
                target_topic: topic.target.clone(),
                partition,
                segment_source: source,
                first_offset,
                end_offset,
                cut: request.cut,
                start_ms: request.start_ms,
                target_base: base,
                records_to_scan: scanned
                    .clone()
                    .map(|segment| u64::from(segment.record_count.unwrap_or(0)))
                    .sum(),
                bytes_to_scan: scanned.map(|segment| segment.stored_bytes).sum(),
                max_record_bytes: 0,
            });
        }
        ranges.push(range);
    }

    if !from_listing.is_empty() {
        let shown = from_listing.len().min(5);
        warnings.push(format!(
            "{} partitions planned from the S3 listing (the index has no entries for them): {}{}",
            from_listing.len(),
            from_listing[..shown].join(", "),
            if from_listing.len() > shown {
                ", …"
            } else {
                ""
            }
        ));
    }

    // Will the targets keep what is restored (timestamps, retention, record size)?
    let mut existing = Vec::new();
    for (topic, range) in topics.iter_mut().zip(&ranges) {
        if topic.create {
            warnings.extend(target_fit::fit_created_topic(
                &topic.target,
                &mut topic.configs,
                range,
                now_ms,
            ));
        } else {
            existing.push((topic.target.clone(), range.clone()));
        }
    }
    warnings.extend(target_fit::check_existing_targets(target, &existing, now_ms).await?);
    let record_bytes: BTreeMap<&str, u64> = topics
        .iter()
        .zip(&ranges)
        .map(|(topic, range)| (topic.source.as_str(), range.producer_record_bytes()))
        .collect();
    for task in &mut partitions {
        task.max_record_bytes = record_bytes
            .get(task.source_topic.as_str())
            .copied()
            .unwrap_or(0);
    }

    Ok(RestorePlan {
        restore_id: restore_id.to_string(),
        backup_id: backup_id.to_string(),
        planned_at_ms: now_ms,
        cut: request.cut,
        start_ms: request.start_ms,
        dry_run: request.dry_run,
        move_groups: request.move_groups,
        replication_factor: request.replication_factor,
        rollback_deletes_created_topics: request.rollback_deletes_created_topics,
        snapshot: snapshot.as_ref().map(|(snapshot, key)| SnapshotRef {
            key: key.clone(),
            taken_at_ms: snapshot.taken_at_ms,
        }),
        topics,
        groups,
        partitions,
        warnings,
    })
}

/// Kafka only takes offset commits for a group with no active members, and a restore must
/// not move consumers that are running: name every active group and where its members run.
async fn check_groups_inactive(target: &dyn ClusterReader, groups: &[String]) -> Result<()> {
    let active = tidemark_core::kafka::active_groups(target, groups).await?;
    if active.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::Refused(format!(
            "consumer groups are active on the target; stop their consumers first: {}",
            active.join("; ")
        )))
    }
}

fn group_plans(
    snapshot: &ClusterSnapshot,
    key: &str,
    groups: &[String],
    topics: &[TopicPlan],
) -> Result<Vec<GroupPlan>> {
    let restored: BTreeSet<&str> = topics.iter().map(|topic| topic.source.as_str()).collect();
    groups
        .iter()
        .map(|group| {
            let found = snapshot.group(group).ok_or_else(|| {
                RestoreError::Refused(format!(
                    "group {group:?} is not in the snapshot at or before the cut ({key})"
                ))
            })?;
            if let Some(error) = &found.error {
                return Err(RestoreError::Refused(format!(
                    "group {group:?}'s offsets were unreadable when snapshot {key} was taken \
                     ({error}); its position at the cut is unknown"
                )));
            }
            // Offsets committed on another generation point into another topic's log.
            if let Some(offset) = found.offsets.iter().find(|offset| {
                topics.iter().any(|topic| {
                    topic.source == offset.topic
                        && snapshot
                            .topic(&topic.source)
                            .is_some_and(|described| described.generation != topic.generation)
                })
            }) {
                return Err(RestoreError::Refused(format!(
                    "group {group:?}'s offsets on {} in snapshot {key} were committed on another \
                     generation of the topic than the one restored; restore without groups, or \
                     choose a cut at which that generation was alive",
                    offset.topic
                )));
            }
            Ok(GroupPlan {
                group: group.clone(),
                source_offsets: found
                    .offsets
                    .iter()
                    .filter(|offset| restored.contains(offset.topic.as_str()))
                    .cloned()
                    .collect(),
            })
        })
        .collect()
}

async fn target_bases(target: &dyn ClusterReader, topic: &TopicPlan) -> Result<Vec<i64>> {
    if !topic.target_exists {
        return Ok(vec![0; topic.partitions.len()]);
    }
    let partitions: Vec<TopicPartition> = topic
        .partitions
        .iter()
        .map(|&partition| TopicPartition::new(topic.target.clone(), partition))
        .collect();
    Ok(target
        .watermarks(&partitions)
        .await?
        .into_iter()
        .map(|watermarks| watermarks.high)
        .collect())
}
