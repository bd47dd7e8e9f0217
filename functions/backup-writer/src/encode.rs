//! The writer's CPU phase: an event's JSON in, one encoded segment per partition out.
//!
//! Records go from the JSON straight into their partition's segment encoder in one pass over
//! the invocation body. Each partition's framed records are checksummed and compressed on a
//! thread of its own as they are read, and its segment is finished there while the next
//! partition is read. In the Lambda runtime this pass runs on the invocation body as it comes
//! ([`crate::invocation`]): the body is read once.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use tidemark_core::config::{BackupWriterConfig, NameFilter};
use tidemark_core::event::{RecordSink, decode_event};
use tidemark_core::masking::Masking;
use tidemark_core::segment::{EncodedSegment, PendingSegment, Record, SegmentEncoder};
use tidemark_core::{Error, Result};

/// How events are encoded: fixed for a writer.
#[derive(Debug, Clone)]
pub struct Encoding {
    pub topics: NameFilter,
    pub compression_level: i32,
    /// Segments finished in the background at once (each holds its compressing thread and
    /// the chunks queued for it): the bound on memory and threads of an event with many
    /// partitions.
    pub open_partitions: usize,
    /// Compress each partition's records on a thread of its own while they are read, and
    /// finish its segment there while the next is read.
    pub compress_in_background: bool,
    /// A masked backup's masking, applied to every record before it is framed.
    pub masking: Option<Arc<Masking>>,
}

impl Encoding {
    pub fn of(config: &BackupWriterConfig) -> Self {
        Encoding {
            topics: config.topics.clone(),
            compression_level: config.compression_level,
            open_partitions: std::thread::available_parallelism().map_or(1, usize::from) + 1,
            compress_in_background: true,
            masking: None,
        }
    }
}

/// One partition after the CPU phase.
pub struct EncodedPartition {
    pub topic: String,
    pub partition: i32,
    pub segment: EncodedSegment,
    /// Bytes of keys, values and headers as delivered (before framing and compression).
    pub payload_bytes: u64,
}

/// An event after the CPU phase: every accepted partition encoded, in topic-partition order.
pub struct EncodedEvent {
    pub partitions: Vec<EncodedPartition>,
    /// Topics in the event that the include/exclude patterns leave out.
    pub skipped_topics: Vec<String>,
}

/// Decodes and encodes the event JSON in `body`. Pure CPU work, no I/O; a malformed event is
/// refused whole.
pub fn encode_event(body: &[u8], encoding: &Encoding) -> Result<EncodedEvent> {
    let mut sink = EncodingSink::new(encoding);
    decode_event(body, &mut sink)?;
    sink.finish()
}

/// The partition whose records are being read.
struct OpenPartition {
    topic: String,
    partition: i32,
    encoder: SegmentEncoder,
    payload_bytes: u64,
}

/// A partition whose records are all read, its segment being finished.
struct FinishingPartition {
    topic: String,
    partition: i32,
    segment: PendingSegment,
    payload_bytes: u64,
}

impl FinishingPartition {
    fn wait(self) -> Result<EncodedPartition> {
        Ok(EncodedPartition {
            topic: self.topic,
            partition: self.partition,
            segment: self.segment.wait()?,
            payload_bytes: self.payload_bytes,
        })
    }
}

struct EncodingSink<'a> {
    encoding: &'a Encoding,
    open: Option<OpenPartition>,
    /// Oldest first.
    finishing: VecDeque<FinishingPartition>,
    done: Vec<EncodedPartition>,
    seen: BTreeSet<(String, i32)>,
    skipped_topics: BTreeSet<String>,
}

impl<'a> EncodingSink<'a> {
    fn new(encoding: &'a Encoding) -> Self {
        EncodingSink {
            encoding,
            open: None,
            finishing: VecDeque::new(),
            done: Vec::new(),
            seen: BTreeSet::new(),
            skipped_topics: BTreeSet::new(),
        }
    }

    /// The open partition's records are all read: its segment is finished beside the reading
    /// of the next one (or here, without background compression).
    fn close_open(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        if !self.encoding.compress_in_background {
            self.done.push(EncodedPartition {
                topic: open.topic,
                partition: open.partition,
                segment: open.encoder.finish()?,
                payload_bytes: open.payload_bytes,
            });
            return Ok(());
        }
        // Bound what is held at once: the oldest has had the longest to finish.
        while self.finishing.len() >= self.encoding.open_partitions.max(1) {
            let oldest = self.finishing.pop_front().expect("not empty");
            self.done.push(oldest.wait()?);
        }
        self.finishing.push_back(FinishingPartition {
            topic: open.topic,
            partition: open.partition,
            segment: open.encoder.finish_in_background()?,
            payload_bytes: open.payload_bytes,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<EncodedEvent> {
        self.close_open()?;
        for finishing in std::mem::take(&mut self.finishing) {
            self.done.push(finishing.wait()?);
        }
        self.done
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(EncodedEvent {
            partitions: self.done,
            skipped_topics: self.skipped_topics.into_iter().collect(),
        })
    }
}

impl RecordSink for EncodingSink<'_> {
    fn partition(&mut self, topic: &str, partition: i32) -> Result<bool> {
        if !self.seen.insert((topic.to_owned(), partition)) {
            return Err(Error::InvalidEvent(format!(
                "records holds {topic}-{partition} twice"
            )));
        }
        self.close_open()?;
        if !self.encoding.topics.accepts(topic) {
            self.skipped_topics.insert(topic.to_owned());
            return Ok(false);
        }
        let mut encoder = SegmentEncoder::new(topic, partition, self.encoding.compression_level)?;
        if self.encoding.compress_in_background {
            encoder = encoder.compressing_beside()?;
        }
        self.open = Some(OpenPartition {
            topic: topic.to_owned(),
            partition,
            encoder,
            payload_bytes: 0,
        });
        Ok(true)
    }

    fn record(&mut self, record: &Record) -> Result<()> {
        let open = self
            .open
            .as_mut()
            .expect("records come after their partition");
        open.payload_bytes += record.payload_len() as u64;
        match &self.encoding.masking {
            Some(masking) => {
                open.encoder
                    .push(&masking.mask(record, &open.topic, open.partition)?)
            }
            None => open.encoder.push(record),
        }
    }
}
