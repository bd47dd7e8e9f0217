//! Compaction: merges runs of small adjacent segments of a partition into one larger segment.
//!
//! Each run goes through steps that each leave every record readable exactly once (readers
//! de-duplicate by offset, invariant 2):
//!
//! 1. The run's segments are read (opened when sealed) and their records, each offset once,
//!    written as one new segment under its deterministic key with a conditional create. A crash
//!    here leaves an unindexed object that the next run finds identical and reuses.
//! 2. Only once that object is durable does the index switch, in one transaction: the new entry
//!    in, the old ones out and recorded as retired. Before it readers see the old segments,
//!    after it the new one.
//! 3. Old objects are deleted only after a grace period (readers that listed them before the
//!    switch may still read them), then forgotten. A crash between the two deletes again.

use futures::StreamExt;
use serde::Serialize;

use crate::checkpoint::{Gap, GapKind};
use crate::error::{Error, Result};
use crate::index::{IndexStore, MAX_SEGMENTS_REPLACED, SegmentEntry};
use crate::keys::SegmentKeys;
use crate::layout::{PartitionId, StorageLayout};
use crate::object_store::{ObjectStore, ObjectTags, put_rewritten_segment};
use crate::segment::{MAX_WRITE_MARKS, SegmentEncoder, SegmentHeader, SegmentReader};

/// What a compaction of one partition aims at and waits for.
#[derive(Debug, Clone, Copy)]
pub struct CompactionSettings {
    /// A run closes once its segments hold this many stored bytes; segments this large are left
    /// alone.
    pub target_bytes: u64,
    /// How long a replaced segment's object stays readable after the switch.
    pub grace_ms: i64,
    /// zstd level of the new segments.
    pub compression_level: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// New segments the index switched to.
    pub segments_written: usize,
    /// Old segments they replaced.
    pub segments_replaced: usize,
    pub bytes_replaced: u64,
    pub bytes_written: u64,
    /// Replaced objects deleted after their grace period.
    pub objects_deleted: usize,
    /// Runs another compaction switched first (nothing done).
    pub runs_lost: usize,
}

/// Runs of adjacent (or overlapping) segments worth merging, in offset order: each of at least two
/// segments, each segment smaller than `target_bytes`, closed once the run reaches it or its
/// segments' write marks would exceed what one segment may carry. A recorded gap breaks a run,
/// and so does a run whose range one of its segments already spans.
pub fn plan_runs(entries: &[SegmentEntry], target_bytes: u64) -> Vec<Vec<SegmentEntry>> {
    let mut runs = Vec::new();
    let mut run: Vec<SegmentEntry> = Vec::new();
    let mut run_bytes = 0;
    let mut run_marks = 0;
    let marks_of = |entry: &SegmentEntry| entry.write_marks.len().max(1);
    let close = |run: &mut Vec<SegmentEntry>, runs: &mut Vec<Vec<SegmentEntry>>| {
        let taken = std::mem::take(run);
        if taken.len() >= 2 {
            let first = taken.iter().map(|e| e.first_offset).min().unwrap_or(0);
            let last = taken.iter().map(|e| e.last_offset).max().unwrap_or(0);
            // The new segment's key must not be one of the old ones (one transaction cannot
            // put and delete the same item).
            if !taken
                .iter()
                .any(|e| e.first_offset == first && e.last_offset == last)
            {
                runs.push(taken);
            }
        }
    };
    for entry in entries {
        let adjacent = run
            .iter()
            .map(|e| e.last_offset)
            .max()
            .is_some_and(|last| entry.first_offset <= last + 1);
        let too_many_marks = run_marks + marks_of(entry) > MAX_WRITE_MARKS;
        if entry.stored_bytes >= target_bytes || !adjacent || too_many_marks {
            close(&mut run, &mut runs);
            run_bytes = 0;
            run_marks = 0;
        }
        if entry.stored_bytes >= target_bytes {
            continue;
        }
        run_bytes += entry.stored_bytes;
        run_marks += marks_of(entry);
        run.push(entry.clone());
        if run_bytes >= target_bytes || run.len() == MAX_SEGMENTS_REPLACED {
            close(&mut run, &mut runs);
            run_bytes = 0;
            run_marks = 0;
        }
    }
    close(&mut run, &mut runs);
    runs
}

/// Everything compaction needs, borrowed.
pub struct Compactor<'a> {
    pub objects: &'a dyn ObjectStore,
    pub index: &'a dyn IndexStore,
    pub keys: &'a SegmentKeys,
    pub layout: &'a StorageLayout,
    pub settings: CompactionSettings,
}

impl Compactor<'_> {
    /// Deletes what earlier compactions replaced once its grace has passed, then merges the
    /// partition's runs. `tags` go on the new segments (the partition's retention tier).
    pub async fn compact_partition(
        &self,
        partition: &PartitionId,
        tags: &ObjectTags,
        now_ms: i64,
    ) -> Result<CompactionReport> {
        let mut report = CompactionReport {
            objects_deleted: self.delete_retired(partition, now_ms).await?,
            ..CompactionReport::default()
        };
        let entries = self.index.segments(partition).await?;
        // Runs are disjoint, so they merge side by side, one per core.
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        let mut merged = futures::stream::iter(plan_runs(&entries, self.settings.target_bytes))
            .map(|run| async move {
                let written = self.compact_run(partition, &run, tags, now_ms).await?;
                Ok::<_, Error>((run, written))
            })
            .buffer_unordered(parallelism);
        while let Some(result) = merged.next().await {
            match result? {
                (run, Some(written)) => {
                    report.segments_written += 1;
                    report.segments_replaced += run.len();
                    report.bytes_replaced += run.iter().map(|e| e.stored_bytes).sum::<u64>();
                    report.bytes_written += written.stored_bytes;
                }
                (_, None) => report.runs_lost += 1,
            }
        }
        Ok(report)
    }

    /// Merges one run: writes the new segment, then switches the index. `None` when another
    /// compaction switched these segments first.
    pub async fn compact_run(
        &self,
        partition: &PartitionId,
        run: &[SegmentEntry],
        tags: &ObjectTags,
        now_ms: i64,
    ) -> Result<Option<SegmentEntry>> {
        let mut plain = Vec::with_capacity(run.len());
        for entry in run {
            let stored = self
                .objects
                .get(&entry.key)
                .await?
                .ok_or_else(|| Error::ObjectStore {
                    operation: "GetObject",
                    key: entry.key.clone(),
                    message:
                        "an indexed segment is missing: validate the backup before compacting it"
                            .into(),
                    retryable: false,
                })?;
            plain.push(self.keys.plain(&partition.backup_id, stored).await?);
        }
        // Offsets an erasure marked stay out of the merge, even while its rewrite is pending.
        let erased: Vec<Gap> = self
            .index
            .gaps(partition)
            .await?
            .into_iter()
            .filter(|gap| gap.kind == GapKind::Erased)
            .collect();
        let topic = partition.topic.clone();
        let number = partition.partition;
        let level = self.settings.compression_level;
        // The merged segment keeps when each replaced segment was written: a consistent cut
        // between two of those times still ends where the backup had reached then.
        let write_marks = run.iter().flat_map(SegmentEntry::marks).collect();
        // Shredded records are copied sealed; a run that mixes them with plain ones (a backup
        // that turned shredding on) is left as it is.
        let mut shredded = std::collections::BTreeSet::new();
        for segment in &plain {
            shredded.insert(SegmentHeader::read_from(&mut segment.as_ref())?.shredded);
        }
        if shredded.len() > 1 {
            tracing::info!(%partition, first = %run[0].key, "a run mixes shredded and plain segments: not merged");
            return Ok(None);
        }
        let shredded = shredded.contains(&true);
        let merged = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut encoder = SegmentEncoder::with_write_marks(&topic, number, level, write_marks)?
                .shredded(shredded);
            let mut next = i64::MIN;
            for segment in &plain {
                let mut reader = SegmentReader::open(segment.as_ref())?;
                while let Some(record) = reader.next_record()? {
                    // Overlapping segments (re-batched retries) hold some offsets twice.
                    if record.offset >= next {
                        next = record.offset + 1;
                        if !erased.iter().any(|gap| gap.contains(record.offset)) {
                            encoder.push(&record)?;
                        }
                    }
                }
            }
            // Every record erased meanwhile: the erasure's own rewrite removes these segments.
            if encoder.record_count() == 0 {
                return Ok(None);
            }
            encoder.finish().map(Some)
        })
        .await
        .map_err(|error| Error::InvalidRecords(format!("merging task failed: {error}")))??;
        let Some(merged) = merged else {
            return Ok(None);
        };

        let max_record_bytes = merged.max_record_bytes;
        let stored = self
            .keys
            .protect(&partition.backup_id, merged.clone())
            .await?;
        let key = self.layout.segment_key(
            partition,
            stored.header.first_offset,
            stored.header.last_offset,
        );
        let (header, stored_bytes) = put_rewritten_segment(
            self.objects,
            self.keys,
            &partition.backup_id,
            &key,
            &merged,
            stored,
            tags,
            "compaction",
        )
        .await?;
        // Its write time is that of its newest mark (from the header), not the merge's.
        let entry = SegmentEntry {
            max_record_bytes: Some(max_record_bytes),
            ..SegmentEntry::new(key, &header, stored_bytes, now_ms)
        };
        let switched = self
            .index
            .replace_segments(partition, &entry, run, now_ms)
            .await?;
        Ok(switched.then_some(entry))
    }

    /// Deletes the objects of segments retired longer than the grace period ago, then forgets
    /// them. Returns how many were deleted.
    pub async fn delete_retired(&self, partition: &PartitionId, now_ms: i64) -> Result<usize> {
        let retired = self.index.retired_segments(partition).await?;
        if retired.is_empty() {
            return Ok(0);
        }
        // A writer that re-delivered a retired range has indexed its key again: keep the object.
        let indexed: std::collections::HashSet<String> = self
            .index
            .segments(partition)
            .await?
            .into_iter()
            .map(|entry| entry.key)
            .collect();
        let mut deleted = 0;
        for retired in retired {
            if retired.retired_at_ms + self.settings.grace_ms > now_ms {
                continue;
            }
            if !indexed.contains(&retired.key) {
                self.objects.delete(&retired.key).await?;
                deleted += 1;
            }
            self.index.forget_retired(partition, &retired).await?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
