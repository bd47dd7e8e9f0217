//! Encoding records into a segment: framing, checksum and zstd.

use std::io::Write;

use super::compressor::{BackgroundCompressor, CHUNK_BYTES, CompressedBody};
use super::frame::{self, Previous};
use super::header::{
    Compression, FORMAT_VERSION, KEY_FILTER_SECTION_LEN, KeyFilterSection, MAX_WRITE_MARKS,
    SegmentHeader, WriteMark,
};
use super::key_filter::{KeyFilter, key_hash};
use super::record::Record;
use crate::error::{Error, Result};

/// Framed bytes kept for compressing in one call. zstd compresses a whole buffer about a
/// third faster than a stream fed in pieces (measured: `handler_cpu`); a writer's segment
/// (at most one 6 MB event's records) always fits. Past this, the segment streams, so a large
/// compaction output never holds all its records at once.
const BUFFERED_BYTES: usize = 16 * 1024 * 1024;
/// Framed bytes gathered before they are handed to a zstd stream.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// Where framed records go until the segment is finished.
enum Body {
    /// All records so far, compressed at `finish`.
    Buffered(Vec<u8>),
    /// A zstd stream, fed a chunk at a time; `pending` holds the chunk being filled.
    Streaming {
        encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
        pending: Vec<u8>,
    },
    /// Chunks compressed on a thread of their own as they fill; `pending` is being filled.
    Beside {
        compressor: BackgroundCompressor,
        pending: Vec<u8>,
    },
}

/// A finished segment: its header and the complete object bytes (header, body, key filter).
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    pub header: SegmentHeader,
    /// Shared and cheap to clone, so uploading needs no copy.
    pub bytes: bytes::Bytes,
    /// The largest record's framed length (see the spec): a bound on what producing it takes.
    pub max_record_bytes: u64,
}

/// A segment being finished while its encoder's caller goes on.
pub struct PendingSegment(Pending);

enum Pending {
    /// Checksummed and compressed on a thread started for it.
    Thread(std::thread::JoinHandle<Result<EncodedSegment>>),
    /// Its last chunk handed to the thread compressing beside the framing; what is left
    /// (the key filter and the header) is done when waited for.
    Compressing(Box<SegmentEncoder>),
}

impl PendingSegment {
    pub fn wait(self) -> Result<EncodedSegment> {
        match self.0 {
            Pending::Thread(thread) => thread
                .join()
                .map_err(|_| Error::InvalidRecords("finishing a segment panicked".into()))?,
            Pending::Compressing(encoder) => encoder.finish(),
        }
    }
}

/// Builds one segment from records pushed in offset order.
///
/// Records are framed into a buffer, checksummed and compressed with zstd in one call when the
/// segment is finished; a segment larger than [`BUFFERED_BYTES`] is compressed as a stream
/// instead, and [`SegmentEncoder::compressing_beside`] streams it to a thread of its own as it
/// is framed. Each gives one zstd frame with its checksum.
pub struct SegmentEncoder {
    topic: String,
    partition: i32,
    write_marks: Vec<WriteMark>,
    /// [`FORMAT_VERSION`], except for tests that make the segments of an earlier writer.
    format_version: u16,
    header_len: usize,
    level: i32,
    body: Body,
    records_crc32c: u32,
    uncompressed_len: u64,
    record_count: u32,
    first_offset: i64,
    last_offset: i64,
    last_timestamp: i64,
    min_timestamp: i64,
    max_timestamp: i64,
    max_record_bytes: u64,
    /// Hashes of the records' keys, for the key filter.
    key_hashes: Vec<u64>,
    shredded: bool,
}

impl SegmentEncoder {
    /// Starts a segment for `topic`/`partition`, compressing with zstd at `level` (1–22).
    pub fn new(topic: &str, partition: i32, level: i32) -> Result<Self> {
        Self::with_write_marks(topic, partition, level, Vec::new())
    }

    /// Starts a segment as the version 1 writer framed it, for tests of what an upgraded
    /// deployment finds in its bucket.
    #[cfg(test)]
    pub(crate) fn version_1(topic: &str, partition: i32, level: i32) -> Result<Self> {
        Ok(SegmentEncoder {
            format_version: 1,
            ..Self::new(topic, partition, level)?
        })
    }

    /// Starts a segment that carries `write_marks` (compaction keeps those of the segments it
    /// merges). They are normalized; at most [`MAX_WRITE_MARKS`] may remain.
    pub fn with_write_marks(
        topic: &str,
        partition: i32,
        level: i32,
        write_marks: Vec<WriteMark>,
    ) -> Result<Self> {
        let write_marks = WriteMark::normalize(write_marks);
        if write_marks.len() > MAX_WRITE_MARKS {
            return Err(Error::InvalidRecords(format!(
                "{} write marks exceed the {MAX_WRITE_MARKS} a segment may carry",
                write_marks.len()
            )));
        }
        if topic.is_empty() || topic.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidRecords(format!(
                "topic name of {} bytes cannot be stored",
                topic.len()
            )));
        }
        let header_len = SegmentHeader::encoded_len(topic.len())
            + SegmentHeader::write_marks_len(write_marks.len())
            + KEY_FILTER_SECTION_LEN;
        if !(1..=22).contains(&level) {
            return Err(Error::Config(format!(
                "zstd compression level {level} is outside 1-22"
            )));
        }
        Ok(SegmentEncoder {
            topic: topic.to_owned(),
            partition,
            write_marks,
            format_version: FORMAT_VERSION,
            header_len,
            level,
            body: Body::Buffered(Vec::new()),
            records_crc32c: 0,
            uncompressed_len: 0,
            record_count: 0,
            first_offset: -1,
            last_offset: -1,
            last_timestamp: 0,
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            max_record_bytes: 0,
            key_hashes: Vec::new(),
            shredded: false,
        })
    }

    /// Compresses the records on a thread of its own while later ones are pushed, instead of
    /// all at [`Self::finish`]: for a caller whose pushing (reading an event) takes as long
    /// as compressing. Call before the first push.
    pub fn compressing_beside(mut self) -> Result<Self> {
        if self.record_count > 0 {
            return Err(Error::InvalidRecords(
                "compression moves beside the framing before the first record".into(),
            ));
        }
        self.body = Body::Beside {
            compressor: BackgroundCompressor::start(self.header_len, self.level)?,
            pending: Vec::with_capacity(CHUNK_BYTES + 4096),
        };
        Ok(self)
    }

    /// Marks the segment as holding shredded records (sealed by [`crate::shredding`]); the
    /// caller pushes them sealed.
    pub fn shredded(self, shredded: bool) -> Self {
        SegmentEncoder { shredded, ..self }
    }

    /// Appends one record. Offsets must be non-negative and strictly increasing.
    pub fn push(&mut self, record: &Record) -> Result<()> {
        if record.offset < 0 {
            return Err(Error::InvalidRecords(format!(
                "negative offset {}",
                record.offset
            )));
        }
        if self.record_count > 0 && record.offset <= self.last_offset {
            return Err(Error::InvalidRecords(format!(
                "offset {} follows offset {} in {}-{}: offsets must increase",
                record.offset, self.last_offset, self.topic, self.partition
            )));
        }
        if self.record_count == u32::MAX {
            return Err(Error::InvalidRecords(
                "too many records for one segment".into(),
            ));
        }
        let previous = if self.record_count == 0 {
            Previous::before_first(record.offset)
        } else {
            Previous {
                offset: self.last_offset,
                timestamp: self.last_timestamp,
            }
        };
        let out = match &mut self.body {
            Body::Buffered(buffer) => buffer,
            Body::Streaming { pending, .. } | Body::Beside { pending, .. } => pending,
        };
        let framed = match self.format_version {
            #[cfg(test)]
            1 => frame::append_fixed(record, out)?,
            _ => frame::append_compact(record, previous, out)?,
        };
        self.max_record_bytes = self.max_record_bytes.max(framed as u64);
        match &mut self.body {
            Body::Buffered(buffer) if buffer.len() > BUFFERED_BYTES => {
                let buffered = std::mem::take(buffer);
                self.start_streaming()?;
                self.stream(buffered)?;
            }
            Body::Streaming { pending, .. } if pending.len() >= STREAM_CHUNK_BYTES => {
                let chunk = std::mem::take(pending);
                self.stream(chunk)?;
            }
            Body::Beside {
                compressor,
                pending,
            } if pending.len() >= CHUNK_BYTES => {
                let chunk = std::mem::take(pending);
                *pending = compressor.send(chunk)?;
            }
            _ => {}
        }

        if let Some(key) = &record.key {
            self.key_hashes.push(key_hash(key));
        }
        if self.record_count == 0 {
            self.first_offset = record.offset;
        }
        self.last_offset = record.offset;
        self.last_timestamp = record.timestamp;
        self.record_count += 1;
        self.min_timestamp = self.min_timestamp.min(record.timestamp);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        Ok(())
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    fn start_streaming(&mut self) -> Result<()> {
        // The header is written into the reserved space in front of the body once it is known.
        let mut encoder =
            zstd::stream::write::Encoder::new(vec![0u8; self.header_len], self.level)?;
        encoder.include_checksum(true)?;
        self.body = Body::Streaming {
            encoder,
            pending: Vec::with_capacity(STREAM_CHUNK_BYTES + 4096),
        };
        Ok(())
    }

    /// Checksums `framed` and feeds it to the stream; gives the buffer back for reuse.
    fn stream(&mut self, mut framed: Vec<u8>) -> Result<()> {
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &framed);
        self.uncompressed_len += framed.len() as u64;
        if let Body::Streaming { encoder, pending } = &mut self.body {
            encoder.write_all(&framed)?;
            framed.clear();
            *pending = framed;
        }
        Ok(())
    }

    /// [`Self::finish`] on a thread of its own, so the caller can go on framing other records
    /// (an event's next partition) while this one is checksummed and compressed.
    ///
    /// An encoder compressing beside the framing needs no other thread: its compressing
    /// thread is told that the records are all pushed.
    pub fn finish_in_background(mut self) -> Result<PendingSegment> {
        if let Body::Beside {
            compressor,
            pending,
        } = &mut self.body
        {
            compressor.close(std::mem::take(pending))?;
            return Ok(PendingSegment(Pending::Compressing(Box::new(self))));
        }
        Ok(PendingSegment(Pending::Thread(std::thread::spawn(
            move || self.finish(),
        ))))
    }

    /// Closes the zstd frame and writes the header. A segment must hold at least one record.
    pub fn finish(mut self) -> Result<EncodedSegment> {
        if self.record_count == 0 {
            return Err(Error::InvalidRecords(
                "a segment needs at least one record".into(),
            ));
        }
        let body = match std::mem::replace(&mut self.body, Body::Buffered(Vec::new())) {
            Body::Buffered(framed) => {
                let mut compressor = zstd::bulk::Compressor::new(self.level)?;
                compressor.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))?;
                let compressed = compressor.compress(&framed)?;
                let mut bytes = Vec::with_capacity(self.header_len + compressed.len());
                bytes.resize(self.header_len, 0);
                bytes.extend_from_slice(&compressed);
                CompressedBody {
                    bytes,
                    records_crc32c: crc32c::crc32c(&framed),
                    uncompressed_len: framed.len() as u64,
                }
            }
            Body::Streaming {
                mut encoder,
                pending,
            } => {
                self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &pending);
                self.uncompressed_len += pending.len() as u64;
                encoder.write_all(&pending)?;
                CompressedBody {
                    bytes: encoder.finish()?,
                    records_crc32c: self.records_crc32c,
                    uncompressed_len: self.uncompressed_len,
                }
            }
            Body::Beside {
                compressor,
                pending,
            } => compressor.finish(pending)?,
        };
        let CompressedBody {
            mut bytes,
            records_crc32c,
            uncompressed_len,
        } = body;
        self.records_crc32c = records_crc32c;
        self.uncompressed_len = uncompressed_len;
        let body_crc32c = crc32c::crc32c(&bytes[self.header_len..]);
        let body_len = (bytes.len() - self.header_len) as u64;
        let filter = KeyFilter::build(&mut self.key_hashes)?.encode();
        let key_filter = KeyFilterSection {
            len: u32::try_from(filter.len()).map_err(|_| {
                Error::InvalidRecords(format!("a key filter of {} bytes", filter.len()))
            })?,
            crc32c: crc32c::crc32c(&filter),
        };
        bytes.extend_from_slice(&filter);
        let header = SegmentHeader {
            format_version: self.format_version,
            topic: self.topic,
            partition: self.partition,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            record_count: self.record_count,
            min_timestamp: self.min_timestamp,
            max_timestamp: self.max_timestamp,
            compression: Compression::Zstd,
            uncompressed_len: self.uncompressed_len,
            body_len,
            records_crc32c: self.records_crc32c,
            body_crc32c,
            encryption: None,
            write_marks: self.write_marks,
            key_filter: Some(key_filter),
            shredded: self.shredded,
        };
        header.check_write_marks()?;
        bytes[..self.header_len].copy_from_slice(&header.encode()?);
        Ok(EncodedSegment {
            header,
            bytes: bytes.into(),
            max_record_bytes: self.max_record_bytes,
        })
    }
}
