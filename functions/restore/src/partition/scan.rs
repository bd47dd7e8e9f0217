//! The source side of a partition restore: the backed-up records a task selects, in offset
//! order, each once. Segments are read one at a time on a blocking thread: the stored object
//! is checked whole (header, length, body CRC32C) before any of its records is let through,
//! then decoded record by record, never the whole decompressed segment at once.

use tidemark_core::segment::{Record, SegmentReader, verify_stored_segment};
use tokio::sync::mpsc;

use crate::backup::{Backup, SegmentRef};
use crate::error::{RestoreError, Result};
use crate::plan::PartitionTask;
use crate::request::CutMode;

/// Which records of the scanned offset range a task restores (invariant 6).
#[derive(Debug, Clone)]
pub struct CutFilter {
    mode: CutMode,
    at_ms: i64,
    start_ms: Option<i64>,
    /// Consistent cut with a start time: every record from the first one at or after the
    /// start is restored, whatever its timestamp, so the restored range has no holes.
    started: bool,
}

impl CutFilter {
    /// `started`: a record was already restored (a resumed task).
    pub fn new(task: &PartitionTask, started: bool) -> Self {
        CutFilter {
            mode: task.cut.mode,
            at_ms: task.cut.at_ms,
            start_ms: task.start_ms,
            started,
        }
    }

    pub fn accepts(&mut self, record: &Record) -> bool {
        let after_start = self.start_ms.is_none_or(|start| record.timestamp >= start);
        match self.mode {
            CutMode::Time => record.timestamp <= self.at_ms && after_start,
            CutMode::Consistent => {
                self.started |= after_start;
                self.started
            }
        }
    }

    /// Whether a segment whose records' timestamps span `min..=max` can hold a selected record.
    fn may_select(&self, min: i64, max: i64) -> bool {
        match self.mode {
            CutMode::Time => min <= self.at_ms && self.start_ms.is_none_or(|start| max >= start),
            CutMode::Consistent => self.started || self.start_ms.is_none_or(|start| max >= start),
        }
    }
}

/// The selected records from source offset `from` on, delivered through a bounded channel.
pub struct Scanner {
    records: mpsc::Receiver<Result<Record>>,
}

/// Records decoded ahead of the producer: enough to keep it busy, little memory.
const READ_AHEAD: usize = 4096;

impl Scanner {
    pub fn start(
        backup: Backup,
        task: PartitionTask,
        segments: Vec<SegmentRef>,
        from: i64,
        started: bool,
    ) -> Self {
        let (sender, records) = mpsc::channel(READ_AHEAD);
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let result = scan(&runtime, &backup, &task, &segments, from, started, &sender);
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error));
            }
        });
        Scanner { records }
    }

    /// The next selected record, or `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Record>> {
        self.records.recv().await.transpose()
    }
}

fn scan(
    runtime: &tokio::runtime::Handle,
    backup: &Backup,
    task: &PartitionTask,
    segments: &[SegmentRef],
    from: i64,
    started: bool,
    sender: &mpsc::Sender<Result<Record>>,
) -> Result<()> {
    let mut filter = CutFilter::new(task, started);
    // Overlapping segments (re-batched retries) hold some offsets twice: each is taken once.
    let mut next_offset = from.max(task.first_offset);
    for segment in segments {
        if segment.last_offset < next_offset {
            continue;
        }
        if segment.first_offset >= task.end_offset {
            break;
        }
        if task.cut.mode == CutMode::Time
            && segment
                .min_timestamp
                .is_some_and(|min| min > task.cut.at_ms)
        {
            continue;
        }
        let stored = runtime
            .block_on(backup.objects.get(&segment.key))?
            .ok_or_else(|| {
                RestoreError::Core(tidemark_core::Error::ObjectStore {
                    operation: "GetObject",
                    key: segment.key.clone(),
                    message: "the segment is listed but its object is missing".into(),
                    retryable: false,
                })
            })?;
        let header =
            verify_stored_segment(&stored).map_err(|error| in_segment(&segment.key, error))?;
        if header.topic != task.source_topic
            || header.partition != task.partition
            || header.first_offset != segment.first_offset
            || header.last_offset != segment.last_offset
        {
            return Err(in_segment(
                &segment.key,
                tidemark_core::Error::CorruptSegment(format!(
                    "header says {}/{} offsets {}..={}, the key says {}/{} offsets {}..={}",
                    header.topic,
                    header.partition,
                    header.first_offset,
                    header.last_offset,
                    task.source_topic,
                    task.partition,
                    segment.first_offset,
                    segment.last_offset
                )),
            ));
        }
        if !filter.may_select(header.min_timestamp, header.max_timestamp) {
            continue;
        }
        let mut reader =
            SegmentReader::open(&stored[..]).map_err(|error| in_segment(&segment.key, error))?;
        while let Some(record) = reader
            .next_record()
            .map_err(|error| in_segment(&segment.key, error))?
        {
            if record.offset < next_offset {
                continue;
            }
            if record.offset >= task.end_offset {
                return Ok(());
            }
            next_offset = record.offset + 1;
            if filter.accepts(&record) && sender.blocking_send(Ok(record)).is_err() {
                // The restore stopped (deadline); nobody reads further.
                return Ok(());
            }
        }
    }
    Ok(())
}

fn in_segment(key: &str, error: tidemark_core::Error) -> RestoreError {
    RestoreError::Core(match error {
        tidemark_core::Error::CorruptSegment(detail) => {
            tidemark_core::Error::CorruptSegment(format!("{key}: {detail}"))
        }
        tidemark_core::Error::TruncatedSegment(detail) => {
            tidemark_core::Error::TruncatedSegment(format!("{key}: {detail}"))
        }
        tidemark_core::Error::NotASegment(detail) => {
            tidemark_core::Error::NotASegment(format!("{key}: {detail}"))
        }
        other => other,
    })
}
