//! What of the backup was alive at the cut: which generation of each topic (a topic deleted
//! and recreated under its name is a new one, never mixed with the old), which of its
//! partitions existed then (partitions added later are left out), and where each partition's
//! records at the cut end.

use std::collections::HashMap;

use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::snapshot::TopicGeneration;
use tidemark_core::snapshot::generations::{generation_alive_at, generation_ended_at};

use crate::error::{RestoreError, Result};
use crate::request::{Cut, CutMode, ValidRequest};
use tidemark_core::stores::{BackedUpTopic, BackupStores, SegmentRef, SegmentSource};

/// Where a partition's restore ends: after its last backed-up record at the cut (its first
/// offset when it holds none).
pub(super) async fn end_at_cut(
    backup: &BackupStores,
    segments: &[SegmentRef],
    source: SegmentSource,
    cut: Cut,
) -> Result<i64> {
    let first_offset = segments.first().map_or(0, |segment| segment.first_offset);
    let end = match cut.mode {
        CutMode::Time => segments
            .iter()
            .filter(|segment| segment.min_timestamp.is_none_or(|min| min <= cut.at_ms))
            .map(|segment| segment.last_offset + 1)
            .max(),
        CutMode::Consistent => backup.consistent_end(segments, source, cut.at_ms).await?,
    };
    Ok(end.unwrap_or(first_offset))
}

/// Segment lists read while planning, kept so that no partition's list is read twice.
pub(super) type ReadSegments = HashMap<PartitionId, (Vec<SegmentRef>, SegmentSource)>;

/// The partitions of a topic that existed at the cut. Partitions added later (past the count
/// the snapshot at the cut describes) are left out unless they hold records at the cut, which
/// shows the snapshot predates their creation. The segment lists it reads go to `read`.
pub(super) async fn partitions_alive_at_cut(
    backup: &BackupStores,
    id: &PartitionId,
    partitions: &[i32],
    described_count: i32,
    cut: Cut,
    read: &mut ReadSegments,
    warnings: &mut Vec<String>,
) -> Result<Vec<i32>> {
    let mut alive = Vec::with_capacity(partitions.len());
    let (mut later, mut outgrew) = (Vec::new(), Vec::new());
    for &partition in partitions {
        if partition < described_count {
            alive.push(partition);
            continue;
        }
        let id = PartitionId {
            partition,
            ..id.clone()
        };
        let (segments, source) = backup.segments(&id, None).await?;
        let first_offset = segments.first().map_or(0, |segment| segment.first_offset);
        if end_at_cut(backup, &segments, source, cut).await? > first_offset {
            alive.push(partition);
            outgrew.push(partition);
            read.insert(id, (segments, source));
        } else {
            later.push(partition);
        }
    }
    if !later.is_empty() {
        warnings.push(format!(
            "{}: partitions {} were added after the cut (the snapshot at the cut describes \
             {described_count}) and hold nothing at it; they are not restored",
            id.topic,
            listed(&later)
        ));
    }
    if !outgrew.is_empty() {
        warnings.push(format!(
            "{}: the snapshot at the cut describes {described_count} partitions, but partitions \
             {} hold records at the cut (the topic grew after that snapshot); they are restored",
            id.topic,
            listed(&outgrew)
        ));
    }
    Ok(alive)
}

/// Partition numbers for a warning: at most 20 of them, and how many there are.
fn listed(partitions: &[i32]) -> String {
    const SHOWN: usize = 20;
    if partitions.len() <= SHOWN {
        format!("{partitions:?}")
    } else {
        format!(
            "{:?} and {} more",
            &partitions[..SHOWN],
            partitions.len() - SHOWN
        )
    }
}

/// Which generation of `topic` to restore (the one named in the request, else the one alive at
/// the cut) and the partitions the backup holds of it. Two generations are never mixed: each
/// is a topic of its own under the same name.
pub(super) async fn choose_generation(
    backup: &BackupStores,
    backup_id: &BackupId,
    topic: &BackedUpTopic,
    request: &ValidRequest,
    warnings: &mut Vec<String>,
) -> Result<(u32, Vec<i32>)> {
    let recorded = backup
        .catalog
        .topic_generations(backup_id, &topic.name)
        .await?;
    let named = request.generations.get(&topic.name).copied();
    let generation = named.unwrap_or_else(|| generation_alive_at(&recorded, request.cut.at_ms));
    let held: Vec<u32> = topic.generations.keys().copied().collect();
    let Some(partitions) = topic.generations.get(&generation) else {
        let why = match named {
            Some(_) => "named in topics.generations".to_owned(),
            None => format!("alive at the cut ({} ms)", request.cut.at_ms),
        };
        return Err(RestoreError::Refused(format!(
            "{}: the backup holds no records of generation {generation} ({why}); it holds \
             generations {held:?}. Name one in topics.generations",
            topic.name
        )));
    };
    check_unmixed(
        backup,
        backup_id,
        &topic.name,
        &recorded,
        generation,
        request.cut.at_ms,
    )
    .await?;
    if held.len() > 1 || generation > 0 {
        let ended = generation_ended_at(&recorded, generation).map_or(String::new(), |at| {
            format!(", until it was found recreated at {at} ms")
        });
        warnings.push(format!(
            "{}: restoring generation {generation}{ended}; the backup holds generations {held:?} \
             of this name (a topic deleted and created again is a new generation)",
            topic.name
        ));
    }
    Ok((generation, partitions.clone()))
}

/// A generation found from watermarks going back (no topic ids) was recorded after the fact:
/// between the last snapshot that saw the old topic and the detection, a writer could not tell
/// the topics apart, and a new topic that outgrew the old one's offsets may have continued
/// `generation`'s backup. A cut past that snapshot is refused rather than trusted. Topic ids
/// leave no such window: the writer starts the new generation at its first batch.
async fn check_unmixed(
    backup: &BackupStores,
    backup_id: &BackupId,
    topic: &str,
    recorded: &[TopicGeneration],
    generation: u32,
    cut_ms: i64,
) -> Result<()> {
    let Some(next) = recorded
        .iter()
        .find(|g| g.generation == generation + 1 && g.topic_id.is_none())
    else {
        return Ok(());
    };
    let last_seen_old = backup
        .catalog
        .snapshot_at_or_before(backup_id, next.detected_at_ms - 1)
        .await?
        .map(|entry| entry.taken_at_ms);
    if last_seen_old.is_some_and(|seen| cut_ms <= seen) {
        return Ok(());
    }
    let since = last_seen_old.map_or("the backup's start".to_owned(), |seen| {
        format!("the snapshot at {seen} ms")
    });
    Err(RestoreError::Refused(format!(
        "topic {topic} was deleted and recreated (generation {}, found at {} ms from watermarks, \
         without topic ids: {}); generation {generation}'s backup after {since} may hold records \
         of the new topic. Restore to a cut at or before {since}, or name generation {}",
        next.generation,
        next.detected_at_ms,
        next.evidence.join("; "),
        next.generation
    )))
}
