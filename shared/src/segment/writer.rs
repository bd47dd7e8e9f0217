//! Encoding records into a segment: framing, checksum and zstd in one streaming pass.

use std::io::Write;

use super::header::{Compression, MAX_WRITE_MARKS, SegmentHeader, WriteMark};
use super::record::Record;
use crate::error::{Error, Result};

/// A finished segment: its header and the complete object bytes (header followed by body).
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    pub header: SegmentHeader,
    /// Shared and cheap to clone, so uploading needs no copy.
    pub bytes: bytes::Bytes,
    /// The largest record's framed length (see the spec): a bound on what producing it takes.
    pub max_record_bytes: u64,
}

/// Builds one segment from records pushed in offset order.
///
/// Each record is framed into a small scratch buffer, folded into the running CRC32C and fed to
/// the zstd encoder at once, so memory holds only the compressed output and one record.
pub struct SegmentEncoder {
    topic: String,
    partition: i32,
    write_marks: Vec<WriteMark>,
    header_len: usize,
    compressor: zstd::stream::write::Encoder<'static, Vec<u8>>,
    scratch: Vec<u8>,
    records_crc32c: u32,
    uncompressed_len: u64,
    record_count: u32,
    first_offset: i64,
    last_offset: i64,
    min_timestamp: i64,
    max_timestamp: i64,
    max_record_bytes: u64,
}

impl SegmentEncoder {
    /// Starts a segment for `topic`/`partition`, compressing with zstd at `level` (1–22).
    pub fn new(topic: &str, partition: i32, level: i32) -> Result<Self> {
        Self::with_write_marks(topic, partition, level, Vec::new())
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
            + SegmentHeader::write_marks_len(write_marks.len());
        // The header is written into the reserved space in front of the body once it is known.
        let output = vec![0u8; header_len];
        let mut compressor = zstd::stream::write::Encoder::new(output, level)?;
        compressor.include_checksum(true)?;
        Ok(SegmentEncoder {
            topic: topic.to_owned(),
            partition,
            write_marks,
            header_len,
            compressor,
            scratch: Vec::with_capacity(4096),
            records_crc32c: 0,
            uncompressed_len: 0,
            record_count: 0,
            first_offset: -1,
            last_offset: -1,
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            max_record_bytes: 0,
        })
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
        frame_record(record, &mut self.scratch)?;
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &self.scratch);
        self.uncompressed_len += self.scratch.len() as u64;
        self.max_record_bytes = self.max_record_bytes.max(self.scratch.len() as u64);
        self.compressor.write_all(&self.scratch)?;

        if self.record_count == 0 {
            self.first_offset = record.offset;
        }
        self.last_offset = record.offset;
        self.record_count += 1;
        self.min_timestamp = self.min_timestamp.min(record.timestamp);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        Ok(())
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Closes the zstd frame and writes the header. A segment must hold at least one record.
    pub fn finish(self) -> Result<EncodedSegment> {
        if self.record_count == 0 {
            return Err(Error::InvalidRecords(
                "a segment needs at least one record".into(),
            ));
        }
        let mut bytes = self.compressor.finish()?;
        let body_crc32c = crc32c::crc32c(&bytes[self.header_len..]);
        let header = SegmentHeader {
            topic: self.topic,
            partition: self.partition,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            record_count: self.record_count,
            min_timestamp: self.min_timestamp,
            max_timestamp: self.max_timestamp,
            compression: Compression::Zstd,
            uncompressed_len: self.uncompressed_len,
            body_len: (bytes.len() - self.header_len) as u64,
            records_crc32c: self.records_crc32c,
            body_crc32c,
            encryption: None,
            write_marks: self.write_marks,
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

/// Writes one record's frame into `out` (cleared first). Layout in `docs/segment-format.md`.
fn frame_record(record: &Record, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.extend_from_slice(&[0u8; 4]); // frame length, filled in below
    out.extend_from_slice(&record.offset.to_be_bytes());
    out.extend_from_slice(&record.timestamp.to_be_bytes());
    out.push(record.timestamp_type.code());
    put_nullable_bytes(out, record.key.as_deref(), "key")?;
    put_nullable_bytes(out, record.value.as_deref(), "value")?;
    let header_count = u32::try_from(record.headers.len())
        .map_err(|_| Error::InvalidRecords("too many headers".into()))?;
    out.extend_from_slice(&header_count.to_be_bytes());
    for header in &record.headers {
        let key_len = u32::try_from(header.key.len())
            .map_err(|_| Error::InvalidRecords("header key too long".into()))?;
        out.extend_from_slice(&key_len.to_be_bytes());
        out.extend_from_slice(header.key.as_bytes());
        put_nullable_bytes(out, header.value.as_deref(), "header value")?;
    }
    let frame_len = u32::try_from(out.len() - 4).map_err(|_| {
        Error::InvalidRecords(format!("record at offset {} is too large", record.offset))
    })?;
    out[..4].copy_from_slice(&frame_len.to_be_bytes());
    Ok(())
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>, what: &str) -> Result<()> {
    match bytes {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(bytes) => {
            let len = i32::try_from(bytes.len()).map_err(|_| {
                Error::InvalidRecords(format!("{what} of {} bytes is too large", bytes.len()))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}
