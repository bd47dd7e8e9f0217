//! The restore-partition function: copies one partition's selected records to the target,
//! resumable at the next record (invariant 9).
//!
//! Durable state is the target partition itself plus a progress object per clean stop
//! (`StorageLayout::progress_key`: its name tells the records produced and whether the
//! partition is done), holding the offset map so far. An invocation starts from the latest
//! progress object, reads the target's end, and treats records past `target_base + produced`
//! as produced by an invocation that died before it could record them: it checks the last one
//! against the source, maps them, and carries on after them. No record is produced twice or
//! skipped.

pub mod lease;
pub mod scan;
pub mod target;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tidemark_core::layout::{BackupId, PartitionId, ProgressKey, RestoreId};
use tidemark_core::offset_map::OffsetMap;
use tidemark_core::segment::Record;

use crate::error::{RestoreError, Result};
use crate::plan::PartitionTask;
use crate::request::TargetSpec;
use scan::Scanner;
use target::TargetWriter;
use tidemark_core::stores::BackupStores;

/// The function's input: one Map item plus what every item shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionRequest {
    pub restore_id: String,
    pub backup_id: String,
    pub target: TargetSpec,
    pub task: PartitionTask,
}

/// What is durably done for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    pub source_topic: String,
    pub partition: i32,
    pub target_topic: String,
    pub target_base: i64,
    /// Records this restore has put on the target partition, from `target_base` on.
    pub produced: u64,
    /// The source offset the scan continues from.
    pub next_source_offset: i64,
    pub done: bool,
    pub offset_map: OffsetMap,
    pub updated_at_ms: i64,
    /// Invocations that recorded progress.
    pub invocations: u32,
    /// Records found on the target that an interrupted invocation had produced without
    /// recording them, adopted instead of produced again.
    pub recovered: u64,
}

impl PartitionProgress {
    fn initial(task: &PartitionTask) -> Self {
        PartitionProgress {
            source_topic: task.source_topic.clone(),
            partition: task.partition,
            target_topic: task.target_topic.clone(),
            target_base: task.target_base,
            produced: 0,
            next_source_offset: task.first_offset,
            done: false,
            offset_map: OffsetMap::new(),
            updated_at_ms: 0,
            invocations: 0,
            recovered: 0,
        }
    }

    /// One past the last record this restore put on the target.
    pub fn target_end(&self) -> i64 {
        self.target_base + self.produced as i64
    }
}

/// The function's answer: the state machine loops while `done` is false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    pub done: bool,
    pub produced: u64,
    /// Records this invocation produced.
    pub produced_now: u64,
    /// Records found on the target that an earlier, interrupted invocation had produced.
    pub recovered: u64,
    pub next_source_offset: i64,
    /// Where this invocation's time went while it produced: waiting for the backup's records
    /// (segment reads and decoding) and for the target's acknowledgements. A slow restore is
    /// the slower side's.
    #[serde(default)]
    pub waited: Waited,
}

/// Milliseconds a partition restore spent waiting on each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waited {
    pub for_backup_ms: u64,
    pub for_target_ms: u64,
}

/// How an invocation paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Records handed to the producer at a time; the deadline is checked between batches.
    pub batch_records: usize,
    /// Stop producing this long before the invocation's deadline, to flush and record.
    /// The first batch is always produced, so each invocation makes progress: the timeout
    /// must leave room for one batch beyond the reserve.
    pub deadline_reserve: Duration,
    /// Segments fetched from S3 ahead of the one being decoded, so that S3's first-byte
    /// latency overlaps decoding and producing (0: one at a time).
    pub prefetch_segments: usize,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            batch_records: 5_000,
            deadline_reserve: Duration::from_secs(5),
            prefetch_segments: 2,
        }
    }
}

/// The latest recorded progress of a partition, if any.
pub async fn latest_progress(
    backup: &BackupStores,
    backup_id: &BackupId,
    restore_id: &RestoreId,
    source_topic: &str,
    partition: i32,
) -> Result<Option<PartitionProgress>> {
    let prefix =
        backup
            .layout
            .partition_progress_prefix(backup_id, restore_id, source_topic, partition);
    match backup.objects.list(&prefix).await?.last() {
        Some(key) => Ok(backup.get_json(key).await?),
        None => Ok(None),
    }
}

/// Each planned partition with its final progress, or `None` if it has not finished.
pub async fn finished_partitions<'a>(
    backup: &BackupStores,
    plan: &'a crate::plan::RestorePlan,
) -> Result<Vec<(&'a PartitionTask, Option<PartitionProgress>)>> {
    let (backup_id, restore_id) = plan.ids()?;
    let mut finished = Vec::with_capacity(plan.partitions.len());
    for task in &plan.partitions {
        let progress = latest_progress(
            backup,
            &backup_id,
            &restore_id,
            &task.source_topic,
            task.partition,
        )
        .await?
        .filter(|progress| progress.done);
        finished.push((task, progress));
    }
    Ok(finished)
}

/// Restores records of `task` until it is done or `deadline_ms` (epoch ms) draws near, holding
/// the partition's lease meanwhile (see [`lease`]): never two invocations producing at once.
pub async fn restore_partition(
    backup: &BackupStores,
    target: &dyn TargetWriter,
    backup_id: &BackupId,
    restore_id: &RestoreId,
    task: &PartitionTask,
    deadline_ms: i64,
    pacing: Pacing,
) -> Result<PartitionReport> {
    let lease = lease::acquire(
        backup,
        backup_id,
        restore_id,
        &task.source_topic,
        task.partition,
        deadline_ms,
        now_ms(),
    )
    .await?;
    let restored = restore_leased(
        backup,
        target,
        backup_id,
        restore_id,
        task,
        deadline_ms,
        pacing,
    )
    .await;
    let released = lease.release(backup).await;
    let report = restored?;
    released?;
    Ok(report)
}

async fn restore_leased(
    backup: &BackupStores,
    target: &dyn TargetWriter,
    backup_id: &BackupId,
    restore_id: &RestoreId,
    task: &PartitionTask,
    deadline_ms: i64,
    pacing: Pacing,
) -> Result<PartitionReport> {
    let mut progress = latest_progress(
        backup,
        backup_id,
        restore_id,
        &task.source_topic,
        task.partition,
    )
    .await?
    .unwrap_or_else(|| PartitionProgress::initial(task));
    if progress.done {
        return Ok(report(&progress, 0, 0, Waited::default()));
    }
    let topic = &task.target_topic;
    let partition = task.partition;
    let id = PartitionId::new(backup_id.clone(), task.source_topic.clone(), partition)
        .in_generation(task.generation);
    // The target's end and the backup's segments come from different services: asked at
    // once, and the first segments fetched while the target answers. Nothing is produced
    // before both are known.
    let start_scan = async {
        let (segments, _) = backup.segments(&id, Some(task.segment_source)).await?;
        check_not_expired(backup, &id, task, progress.next_source_offset).await?;
        Ok(Scanner::start(
            backup.clone(),
            id.backup_id.clone(),
            task.clone(),
            segments,
            scan::ScanStart {
                from: progress.next_source_offset,
                started: progress.produced > 0,
                prefetch_segments: pacing.prefetch_segments,
            },
        ))
    };
    let (end, mut scanner) = tokio::try_join!(target.end_offset(topic, partition), start_scan)?;
    let expected_end = progress.target_end();
    if end < expected_end {
        return Err(RestoreError::TargetChanged(format!(
            "{topic}/{partition} ends at offset {end}, but this restore had produced up to \
             {expected_end}: records were deleted or the topic was recreated"
        )));
    }

    // Records past what the progress says were produced by an invocation that died first.
    let recovered = (end - expected_end) as u64;
    let mut last_recovered: Option<Record> = None;
    for index in 0..recovered {
        let record = scanner.next().await?.ok_or_else(|| {
            RestoreError::TargetChanged(format!(
                "{topic}/{partition} holds {} records past this restore's progress, more than \
                 the source has left to restore: another producer wrote to it",
                recovered
            ))
        })?;
        progress
            .offset_map
            .record(record.offset, expected_end + index as i64)?;
        progress.next_source_offset = record.offset + 1;
        last_recovered = Some(record);
    }
    if let Some(expected) = &last_recovered {
        let found = target.read_record(topic, partition, end - 1).await?;
        if !found
            .as_ref()
            .is_some_and(|found| same_content(found, expected))
        {
            return Err(RestoreError::TargetChanged(format!(
                "{topic}/{partition} offset {} is not the record this restore would have \
                 written there (source offset {}): another producer wrote to the partition",
                end - 1,
                expected.offset
            )));
        }
        progress.produced += recovered;
        progress.recovered += recovered;
    }

    let mut produced_now = 0u64;
    // Source offsets of records sent but not yet acknowledged, oldest first.
    let mut unacknowledged = std::collections::VecDeque::new();
    let mut batch = Vec::with_capacity(pacing.batch_records);
    let reserve_ms = pacing.deadline_reserve.as_millis() as i64;
    let mut batches = 0u64;
    let (mut for_backup, mut for_target) = (Duration::ZERO, Duration::ZERO);
    let done = loop {
        // At least one batch per invocation, so every invocation makes progress.
        if batches > 0 && now_ms() + reserve_ms >= deadline_ms {
            break false;
        }
        batches += 1;
        batch.clear();
        let mut exhausted = false;
        let reading = Instant::now();
        while batch.len() < pacing.batch_records {
            match scanner.next().await? {
                Some(record) => batch.push(record),
                None => {
                    exhausted = true;
                    break;
                }
            }
        }
        for_backup += reading.elapsed();
        if !batch.is_empty() {
            unacknowledged.extend(batch.iter().map(|record| record.offset));
            let sending = Instant::now();
            let acknowledged = target.send(topic, partition, &batch).await?;
            for_target += sending.elapsed();
            // The producer copied them: their buffers are decoded into again.
            scanner.recycle(std::mem::replace(
                &mut batch,
                Vec::with_capacity(pacing.batch_records),
            ));
            produced_now += acknowledge(
                &mut progress,
                &mut unacknowledged,
                &acknowledged,
                topic,
                partition,
            )?;
        }
        if exhausted {
            break true;
        }
    };
    // Only acknowledged records count: the progress never runs ahead of the target.
    let flushing = Instant::now();
    let acknowledged = target.flush().await?;
    for_target += flushing.elapsed();
    produced_now += acknowledge(
        &mut progress,
        &mut unacknowledged,
        &acknowledged,
        topic,
        partition,
    )?;
    progress.done = done;
    progress.updated_at_ms = now_ms();
    progress.invocations += 1;
    let key = backup.layout.progress_key(
        backup_id,
        restore_id,
        &ProgressKey {
            topic: task.source_topic.clone(),
            partition,
            produced: progress.produced,
            done,
        },
    );
    backup.put_json_once(&key, &progress).await?;
    let waited = Waited {
        for_backup_ms: for_backup.as_millis() as u64,
        for_target_ms: for_target.as_millis() as u64,
    };
    Ok(report(&progress, produced_now, recovered, waited))
}

/// Maps acknowledged records to their target offsets, in order, checking each landed right
/// after the previous one. Returns how many were acknowledged.
fn acknowledge(
    progress: &mut PartitionProgress,
    unacknowledged: &mut std::collections::VecDeque<i64>,
    acknowledged: &[i64],
    topic: &str,
    partition: i32,
) -> Result<u64> {
    for &offset in acknowledged {
        let source = unacknowledged
            .pop_front()
            .expect("the target acknowledges only records that were sent");
        let expected = progress.target_end();
        if offset != expected {
            return Err(RestoreError::TargetChanged(format!(
                "{topic}/{partition}: a restored record landed at offset {offset}, not \
                 {expected}: another producer is writing to the partition"
            )));
        }
        progress.offset_map.record(source, offset)?;
        progress.next_source_offset = source + 1;
        progress.produced += 1;
    }
    Ok(acknowledged.len() as u64)
}

fn report(
    progress: &PartitionProgress,
    produced_now: u64,
    recovered: u64,
    waited: Waited,
) -> PartitionReport {
    PartitionReport {
        done: progress.done,
        produced: progress.produced,
        produced_now,
        recovered,
        next_source_offset: progress.next_source_offset,
        waited,
    }
}

/// The record as a target holds it: everything but the offset, which the target assigns.
fn same_content(found: &Record, expected: &Record) -> bool {
    found.key == expected.key
        && found.value == expected.value
        && found.headers == expected.headers
        && found.timestamp == expected.timestamp
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Retention may expire segments after the plan was made: the listing then simply starts
/// later, and reading on would skip their records without a word. The index's checkpoint says
/// where the backup starts now; a restore that still needs offsets below it fails loudly.
/// (Planned from the S3 listing there is no checkpoint to ask.)
async fn check_not_expired(
    backup: &BackupStores,
    id: &PartitionId,
    task: &PartitionTask,
    next_source_offset: i64,
) -> Result<()> {
    if task.segment_source != tidemark_core::stores::SegmentSource::Index
        || next_source_offset >= task.end_offset
    {
        return Ok(());
    }
    if let Some(checkpoint) = backup.index.checkpoint(id).await?
        && checkpoint.start_offset > next_source_offset
    {
        return Err(RestoreError::Refused(format!(
            "{id}: offsets {next_source_offset}..{} expired from the backup after this restore \
             was planned (retention moved its start to {}); nothing of them was restored. Plan \
             the restore again",
            checkpoint.start_offset, checkpoint.start_offset
        )));
    }
    Ok(())
}

/// The function's entry: checks the request, connects to the target, restores.
pub async fn handle(
    backup: &BackupStores,
    connector: &dyn crate::target::TargetConnector,
    request: PartitionRequest,
    deadline_ms: i64,
    pacing: Pacing,
) -> Result<PartitionReport> {
    let invalid = |error: tidemark_core::Error| RestoreError::InvalidRequest(error.to_string());
    let backup_id = BackupId::parse(&request.backup_id).map_err(invalid)?;
    let restore_id = RestoreId::parse(&request.restore_id).map_err(invalid)?;
    let settings = request
        .target
        .settings()
        .map_err(RestoreError::InvalidRequest)?;
    let writer = connector
        .writer(&settings, request.task.max_record_bytes)
        .await?;
    let report = restore_partition(
        backup,
        writer.as_ref(),
        &backup_id,
        &restore_id,
        &request.task,
        deadline_ms,
        pacing,
    )
    .await?;
    tracing::info!(
        topic = %request.task.source_topic,
        partition = request.task.partition,
        produced = report.produced,
        produced_now = report.produced_now,
        recovered = report.recovered,
        done = report.done,
        waited_for_backup_ms = report.waited.for_backup_ms,
        waited_for_target_ms = report.waited.for_target_ms,
        "partition restore step"
    );
    Ok(report)
}
