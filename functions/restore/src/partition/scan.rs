//! The source side of a partition restore: the backed-up records a task selects, in offset
//! order, each once. Segments are read one at a time on a blocking thread: the stored object
//! is checked whole (header, length, body CRC32C) before any of its records is let through,
//! then decoded record by record (a batch's segment decompressed whole, a larger one
//! streamed: `tidemark_core::segment::SegmentReader`).

use tidemark_core::layout::BackupId;
use tidemark_core::segment::{BodyBuffers, Record, SegmentReader, verify_stored_segment};
use tokio::sync::mpsc;

use crate::error::{RestoreError, Result};
use crate::plan::PartitionTask;
use crate::request::CutMode;
use tidemark_core::stores::{BackupStores, SegmentRef};

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

/// The selected records from source offset `from` on, delivered through a bounded channel in
/// chunks. Records handed back with [`Scanner::recycle`] are decoded into again: a restore
/// reuses the same key, value and header buffers instead of allocating for every record (a
/// quarter of the restore's CPU was malloc and free).
pub struct Scanner {
    chunks: mpsc::Receiver<Result<Vec<Record>>>,
    current: std::vec::IntoIter<Record>,
    recycled: std::sync::mpsc::Sender<Vec<Record>>,
}

/// Records decoded ahead of the producer: enough to keep it busy, little memory.
const READ_AHEAD: usize = 8192;
/// Records per chunk: one channel hand-over (and, when the producer waits, one wake-up of it)
/// for this many records.
const CHUNK_RECORDS: usize = 1024;

/// Where a scan starts: the source offset, and whether a record was already restored (a
/// resumed task).
#[derive(Debug, Clone, Copy)]
pub struct ScanStart {
    pub from: i64,
    pub started: bool,
    /// Segments fetched ahead of the one being decoded.
    pub prefetch_segments: usize,
}

impl Scanner {
    pub fn start(
        backup: BackupStores,
        backup_id: BackupId,
        task: PartitionTask,
        segments: Vec<SegmentRef>,
        start: ScanStart,
    ) -> Self {
        let (sender, chunks) = mpsc::channel(READ_AHEAD / CHUNK_RECORDS);
        let (recycled, returned) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut output = Output {
                sender: &sender,
                returned,
                spare: Vec::new(),
                chunk: Vec::with_capacity(CHUNK_RECORDS),
            };
            let result = scan(
                &runtime,
                &backup,
                &backup_id,
                &task,
                &segments,
                start,
                &mut output,
            );
            // Records decoded before a failure come from segments checked whole: they go out
            // first, so the reader learns exactly where the backup stops being readable. A
            // reader that has gone away needs no last chunk.
            let _ = output.flush();
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error));
            }
        });
        Scanner {
            chunks,
            current: Vec::new().into_iter(),
            recycled,
        }
    }

    /// The next selected record, or `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(record) = self.current.next() {
                return Ok(Some(record));
            }
            match self.chunks.recv().await {
                None => return Ok(None),
                Some(chunk) => self.current = chunk?.into_iter(),
            }
        }
    }

    /// Hands records the caller is done with back to be decoded into again.
    pub fn recycle(&self, records: Vec<Record>) {
        // The scan may have ended: its records are then simply dropped.
        let _ = self.recycled.send(records);
    }
}

/// The decoding thread's side: records to decode into, and the chunk being filled.
struct Output<'a> {
    sender: &'a mpsc::Sender<Result<Vec<Record>>>,
    returned: std::sync::mpsc::Receiver<Vec<Record>>,
    spare: Vec<Record>,
    chunk: Vec<Record>,
}

impl Output<'_> {
    /// A record to decode into: a recycled one when there is one.
    fn record(&mut self) -> Record {
        if self.spare.is_empty()
            && let Ok(returned) = self.returned.try_recv()
        {
            self.spare = returned;
        }
        self.spare.pop().unwrap_or_else(Record::empty)
    }

    /// Keeps `record` for the next decode.
    fn skip(&mut self, record: Record) {
        self.spare.push(record);
    }

    /// Queues a selected record. False when nobody reads any more (the restore stopped).
    fn send(&mut self, record: Record) -> bool {
        self.chunk.push(record);
        self.chunk.len() < CHUNK_RECORDS || self.flush()
    }

    /// Hands the chunk over. False when nobody reads any more.
    fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_RECORDS));
        self.sender.blocking_send(Ok(chunk)).is_ok()
    }
}

fn scan(
    runtime: &tokio::runtime::Handle,
    backup: &BackupStores,
    backup_id: &BackupId,
    task: &PartitionTask,
    segments: &[SegmentRef],
    start: ScanStart,
    output: &mut Output<'_>,
) -> Result<()> {
    let mut filter = CutFilter::new(task, start.started);
    // Overlapping segments (re-batched retries) hold some offsets twice: each is taken once.
    let mut next_offset = start.from.max(task.first_offset);
    let to_read: Vec<&SegmentRef> = segments
        .iter()
        .filter(|segment| segment.last_offset >= next_offset)
        .take_while(|segment| segment.first_offset < task.end_offset)
        .filter(|segment| {
            task.cut.mode != CutMode::Time
                || segment
                    .min_timestamp
                    .is_none_or(|min| min <= task.cut.at_ms)
        })
        .collect();
    let mut fetches = Prefetch::new(
        runtime,
        backup,
        backup_id,
        &to_read,
        start.prefetch_segments,
    );
    let mut buffers = BodyBuffers::default();
    for segment in &to_read {
        let stored = fetches.next()?;
        if segment.last_offset < next_offset {
            continue;
        }
        let stored = stored.ok_or_else(|| {
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
        let mut reader = SegmentReader::open_reusing(&stored[..], std::mem::take(&mut buffers))
            .map_err(|error| in_segment(&segment.key, error))?;
        loop {
            let mut record = output.record();
            if !reader
                .next_record_into(&mut record)
                .map_err(|error| in_segment(&segment.key, error))?
            {
                output.skip(record);
                break;
            }
            if record.offset < next_offset {
                output.skip(record);
                continue;
            }
            if record.offset >= task.end_offset {
                return Ok(());
            }
            next_offset = record.offset + 1;
            if !filter.accepts(&record) {
                output.skip(record);
            } else if !output.send(record) {
                // The restore stopped (deadline); nobody reads further.
                return Ok(());
            }
        }
        buffers = reader.into_buffers();
    }
    Ok(())
}

/// Segments fetched ahead of the one being decoded: S3's first-byte latency overlaps the
/// decoding and producing of the previous segment instead of adding to it.
struct Prefetch<'a> {
    runtime: &'a tokio::runtime::Handle,
    objects: std::sync::Arc<dyn tidemark_core::object_store::ObjectStore>,
    segment_keys: std::sync::Arc<tidemark_core::keys::SegmentKeys>,
    backup_id: BackupId,
    keys: std::collections::VecDeque<String>,
    depth: usize,
    in_flight: std::collections::VecDeque<(
        String,
        tokio::task::JoinHandle<tidemark_core::Result<Option<bytes::Bytes>>>,
    )>,
}

impl<'a> Prefetch<'a> {
    fn new(
        runtime: &'a tokio::runtime::Handle,
        backup: &BackupStores,
        backup_id: &BackupId,
        segments: &[&SegmentRef],
        depth: usize,
    ) -> Self {
        Prefetch {
            runtime,
            objects: backup.objects.clone(),
            segment_keys: backup.keys.clone(),
            backup_id: backup_id.clone(),
            keys: segments.iter().map(|segment| segment.key.clone()).collect(),
            depth,
            in_flight: std::collections::VecDeque::new(),
        }
    }

    /// The next segment in list order, as a plain segment of clear records (a sealed one
    /// opened, shredded records too).
    fn next(&mut self) -> Result<Option<bytes::Bytes>> {
        while self.in_flight.len() <= self.depth {
            let Some(key) = self.keys.pop_front() else {
                break;
            };
            let objects = self.objects.clone();
            let segment_keys = self.segment_keys.clone();
            let backup_id = self.backup_id.clone();
            let fetch_key = key.clone();
            let fetch = self.runtime.spawn(async move {
                match objects.get(&fetch_key).await? {
                    Some(stored) => Ok(Some(segment_keys.clear(&backup_id, stored).await?)),
                    None => Ok(None),
                }
            });
            self.in_flight.push_back((key, fetch));
        }
        let (key, fetch) = self
            .in_flight
            .pop_front()
            .expect("next is called once per listed segment");
        let fetched = self.runtime.block_on(fetch).map_err(|error| {
            RestoreError::Core(tidemark_core::Error::ObjectStore {
                operation: "GetObject",
                key: String::new(),
                message: format!("segment fetch task failed: {error}"),
                retryable: true,
            })
        })?;
        fetched.map_err(|error| in_segment(&key, error))
    }
}

impl Drop for Prefetch<'_> {
    /// A scan that ends early (the cut, the deadline) stops fetching what it will not read.
    fn drop(&mut self) {
        for (_, fetch) in &self.in_flight {
            fetch.abort();
        }
    }
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
        tidemark_core::Error::Encryption(detail) => {
            tidemark_core::Error::Encryption(format!("{key}: {detail}"))
        }
        tidemark_core::Error::Aws {
            operation,
            message,
            retryable,
        } => tidemark_core::Error::Aws {
            operation,
            message: format!("{key}: {message}"),
            retryable,
        },
        other => other,
    })
}
