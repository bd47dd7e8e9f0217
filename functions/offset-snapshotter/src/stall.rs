//! Partitions the backup stopped following: records wait past the checkpoint, and the
//! checkpoint has not moved for a while. An event source mapping that cannot deliver a record
//! (one too large for any invocation, a batch that fails for good without an on-failure
//! destination) stops its partition without ever calling the writer, so no writer metric or
//! error shows it; the snapshotter, which reads the topic's end anyway, does.

use serde::Serialize;
use tidemark_core::checkpoint::Checkpoint;
use tidemark_core::index::IndexStore;
use tidemark_core::kafka::{ClusterReader, TopicPartition};
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::snapshot::ClusterSnapshot;

use crate::error::{Result, SnapshotterError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StalledPartition {
    pub topic: String,
    pub partition: i32,
    /// The first offset the backup does not hold: the record it cannot get past.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub checkpoint_updated_at_ms: i64,
}

/// Whether a partition at `checkpoint` is stalled at `now_ms`, its topic ending at
/// `high_watermark`. A partition with nothing new is quiet, not stalled.
pub fn is_stalled(
    checkpoint: &Checkpoint,
    high_watermark: i64,
    now_ms: i64,
    after_ms: i64,
) -> bool {
    high_watermark > checkpoint.next_offset && now_ms - checkpoint.updated_at_ms >= after_ms
}

/// How far the backup follows its topics, from one comparison of checkpoints and watermarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Following {
    /// Partitions with a checkpoint that were compared.
    pub partitions: usize,
    /// Records past the checkpoints.
    pub records_behind: i64,
    /// The oldest checkpoint of a partition with records waiting.
    pub behind_since_ms: Option<i64>,
    pub stalled: Vec<StalledPartition>,
}

impl Following {
    /// A partition `records` behind since its checkpoint last moved at `since_ms`.
    fn behind(&mut self, records: i64, since_ms: i64) {
        self.records_behind += records;
        self.behind_since_ms = Some(self.behind_since_ms.map_or(since_ms, |s| s.min(since_ms)));
    }
}

/// Compares every partition of `snapshot` that the backup has a checkpoint for (a partition it
/// never reached has no checkpoint to compare: the writer's lag and staleness alarms watch the
/// backup as a whole) and finds the stalled ones.
pub async fn following(
    index: &dyn IndexStore,
    cluster: &dyn ClusterReader,
    backup_id: &BackupId,
    snapshot: &ClusterSnapshot,
    after_ms: i64,
) -> Result<Following> {
    use futures::{StreamExt, TryStreamExt};
    let partitions = snapshot.topics.iter().flat_map(|topic| {
        topic
            .partitions
            .iter()
            .map(move |partition| (topic, partition))
    });
    // One index read per partition, several at a time: large clusters have thousands.
    let checkpoints: Vec<_> = futures::stream::iter(partitions)
        .map(|(topic, partition)| async move {
            let id = PartitionId::new(backup_id.clone(), topic.name.as_str(), partition.partition)
                .in_generation(topic.generation);
            Ok::<_, SnapshotterError>((topic, partition, index.checkpoint(&id).await?))
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let mut following = Following {
        partitions: 0,
        records_behind: 0,
        behind_since_ms: None,
        stalled: Vec::new(),
    };
    // A partition that moved recently and has records waiting is behind by them; one that
    // stood still is a candidate, counted only once the look below finds records a consumer
    // gets.
    let mut candidates = Vec::new();
    for (topic, partition, checkpoint) in checkpoints {
        let Some(checkpoint) = checkpoint else {
            continue;
        };
        following.partitions += 1;
        if is_stalled(
            &checkpoint,
            partition.high_watermark,
            snapshot.taken_at_ms,
            after_ms,
        ) {
            candidates.push(StalledPartition {
                topic: topic.name.clone(),
                partition: partition.partition,
                next_offset: checkpoint.next_offset,
                high_watermark: partition.high_watermark,
                checkpoint_updated_at_ms: checkpoint.updated_at_ms,
            });
        } else if partition.high_watermark > checkpoint.next_offset {
            following.behind(
                partition.high_watermark - checkpoint.next_offset,
                checkpoint.updated_at_ms,
            );
        }
    }
    // Offsets past the checkpoint may hold only what no consumer receives: the marker that
    // ended the last transaction, aborted records. Only the rare candidates are read.
    for candidate in candidates {
        let partition = TopicPartition::new(&candidate.topic, candidate.partition);
        // A failed look counts as waiting: the alarm errs on the loud side, the snapshot goes on.
        let waiting = cluster
            .records_waiting(&partition, candidate.next_offset, candidate.high_watermark)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(topic = %candidate.topic, partition = candidate.partition, %error, "could not read what waits past the checkpoint; counting the partition stalled");
                true
            });
        if waiting {
            following.behind(
                candidate.high_watermark - candidate.next_offset,
                candidate.checkpoint_updated_at_ms,
            );
            following.stalled.push(candidate);
        }
    }
    Ok(following)
}

/// Checkpoint reads in flight at once.
const CONCURRENT_READS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(next_offset: i64, updated_at_ms: i64) -> Checkpoint {
        Checkpoint {
            start_offset: 0,
            next_offset,
            max_timestamp: 0,
            updated_at_ms,
        }
    }

    #[test]
    fn stalled_only_when_records_wait_and_the_checkpoint_is_old_enough() {
        assert!(is_stalled(&at(10, 0), 11, 1_000, 1_000));
        assert!(!is_stalled(&at(10, 0), 11, 999, 1_000), "moved recently");
        assert!(
            !is_stalled(&at(10, 0), 10, 5_000, 1_000),
            "nothing waits: quiet"
        );
        assert!(
            !is_stalled(&at(12, 0), 10, 5_000, 1_000),
            "ahead of the topic"
        );
    }
}
