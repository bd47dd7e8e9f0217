//! Segment decoding, every claim of the header checked. A body of up to [`WHOLE_BODY_MAX`]
//! decompressed bytes (every batch's segment) is decompressed in one call and its records
//! parsed where they lie; a larger one (compaction's) is streamed, one record in memory at a
//! time.

mod streamed;
mod whole;

use std::io::Read;

use super::frame::{self, Framing, Previous};
use super::header::SegmentHeader;
use super::record::Record;
use crate::error::{Error, Result};
use streamed::StreamedBody;
pub use whole::BodyBuffers;
use whole::WholeBody;

/// Largest declared decompressed body read whole: more than a 6 MB event can carry in one
/// partition (its records are at most about 4.5 MB once out of base64), and well inside a
/// 128 MB function beside the segments fetched ahead.
pub(super) const WHOLE_BODY_MAX: u64 = 16 * 1024 * 1024;

enum Frames<R: Read> {
    Whole(WholeBody<R>),
    Streamed(StreamedBody<R>),
}

/// Reads a segment record by record from any byte source (a file, an S3 body, a slice).
///
/// Nothing is trusted until checked: lengths are bounded by the header, the record count,
/// offset range, timestamp range and the CRC32C of the framed records are verified, and bytes
/// after the body are rejected. Every failure is a typed [`Error`], never a panic.
pub struct SegmentReader<R: Read> {
    header: SegmentHeader,
    framing: Framing,
    frames: Frames<R>,
    records_read: u32,
    previous: Option<Previous>,
    done: bool,
}

impl<R: Read> SegmentReader<R> {
    /// Reads and checks the header, and a body read whole; records are decoded lazily by
    /// [`Self::next_record`].
    pub fn open(source: R) -> Result<Self> {
        Self::open_reusing(source, BodyBuffers::default())
    }

    /// [`Self::open`], reading a whole body into `buffers` (those of a segment read before,
    /// handed back by [`Self::into_buffers`]).
    pub fn open_reusing(source: R, buffers: BodyBuffers) -> Result<Self> {
        Self::open_reading_whole_up_to(source, WHOLE_BODY_MAX, buffers)
    }

    /// [`Self::open`], streaming every body: tests read each segment both ways.
    #[cfg(test)]
    pub(super) fn open_streamed(source: R) -> Result<Self> {
        Self::open_reading_whole_up_to(source, 0, BodyBuffers::default())
    }

    /// The buffers a whole body was read into, for the next segment (empty ones if it was
    /// streamed).
    pub fn into_buffers(self) -> BodyBuffers {
        match self.frames {
            Frames::Whole(body) => body.into_buffers(),
            Frames::Streamed(_) => BodyBuffers::default(),
        }
    }

    fn open_reading_whole_up_to(
        mut source: R,
        whole_body_max: u64,
        buffers: BodyBuffers,
    ) -> Result<Self> {
        let header = SegmentHeader::read_from(&mut source)?;
        if header.encryption.is_some() {
            return Err(Error::Encryption(
                "the segment body is sealed: open it with its data key first".into(),
            ));
        }
        let frames = if header.uncompressed_len <= whole_body_max {
            Frames::Whole(WholeBody::open(source, &header, buffers)?)
        } else {
            Frames::Streamed(StreamedBody::open(source, &header)?)
        };
        Ok(SegmentReader {
            framing: Framing::of_version(header.format_version),
            header,
            frames,
            records_read: 0,
            previous: None,
            done: false,
        })
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The streamed body's frame buffer; `None` for a body read whole.
    #[cfg(test)]
    pub(super) fn frame_capacity(&self) -> Option<usize> {
        match &self.frames {
            Frames::Whole(_) => None,
            Frames::Streamed(body) => Some(body.frame_capacity()),
        }
    }

    /// The next record, or `None` after the last one once the whole segment checked out.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let mut record = Record::empty();
        Ok(self.next_record_into(&mut record)?.then_some(record))
    }

    /// [`Self::next_record`] into `record`, reusing its buffers (a restore decodes millions of
    /// records without allocating for each). `false` after the last one.
    pub fn next_record_into(&mut self, record: &mut Record) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        if self.records_read == self.header.record_count {
            self.finish()?;
            self.done = true;
            return Ok(false);
        }
        self.read_frame_into(record)?;
        self.check_record(record)?;
        self.records_read += 1;
        self.previous = Some(Previous::of(record));
        Ok(true)
    }

    fn read_frame_into(&mut self, record: &mut Record) -> Result<()> {
        let (header, records_read) = (&self.header, self.records_read);
        let frame = match &mut self.frames {
            Frames::Whole(body) => body.next_frame(self.framing, header, records_read)?,
            Frames::Streamed(body) => body.next_frame(self.framing, header, records_read)?,
        };
        let parsed = match self.framing {
            Framing::Fixed => frame::parse_fixed(frame, record),
            Framing::Compact => {
                let previous = self
                    .previous
                    .unwrap_or(Previous::before_first(header.first_offset));
                frame::parse_compact(frame, previous, record)
            }
        };
        parsed.map_err(|reason| {
            Error::CorruptSegment(format!("record {records_read} is malformed: {reason}"))
        })
    }

    fn check_record(&self, record: &Record) -> Result<()> {
        let header = &self.header;
        if record.offset < header.first_offset || record.offset > header.last_offset {
            return Err(Error::CorruptSegment(format!(
                "record offset {} is outside the declared range {}..={}",
                record.offset, header.first_offset, header.last_offset
            )));
        }
        if self.records_read == 0 && record.offset != header.first_offset {
            return Err(Error::CorruptSegment(format!(
                "first record has offset {}, header says {}",
                record.offset, header.first_offset
            )));
        }
        if let Some(previous) = self.previous
            && record.offset <= previous.offset
        {
            return Err(Error::CorruptSegment(format!(
                "offset {} follows offset {}",
                record.offset, previous.offset
            )));
        }
        if record.timestamp < header.min_timestamp || record.timestamp > header.max_timestamp {
            return Err(Error::CorruptSegment(format!(
                "record timestamp {} is outside the declared range {}..={}",
                record.timestamp, header.min_timestamp, header.max_timestamp
            )));
        }
        Ok(())
    }

    /// Called after the last declared record: the body must end exactly here and match its
    /// checksums, and the key filter after it its own.
    fn finish(&mut self) -> Result<()> {
        let last_offset = self.previous.map(|previous| previous.offset);
        if last_offset != Some(self.header.last_offset) {
            return Err(Error::CorruptSegment(format!(
                "last record has offset {last_offset:?}, header says {}",
                self.header.last_offset
            )));
        }
        let source = match &mut self.frames {
            Frames::Whole(body) => body.finish(&self.header)?,
            Frames::Streamed(body) => body.finish(&self.header)?,
        };
        if let Some(filter) = self
            .header
            .key_filter
            .filter(|_| self.header.trailer_len() > 0)
        {
            let mut trailer = vec![0u8; filter.len as usize];
            source
                .read_exact(&mut trailer)
                .map_err(|error| match error.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        Error::TruncatedSegment("the segment ends inside its key filter".into())
                    }
                    _ => Error::Io(error),
                })?;
            check_checksum("key filter", filter.crc32c, crc32c::crc32c(&trailer))?;
        }
        if source.read(&mut [0u8; 1])? != 0 {
            return Err(Error::CorruptSegment(
                "bytes follow the declared end of the segment".into(),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for SegmentReader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(record) => record.map(Ok),
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

/// A CorruptSegment error naming `what` unless its stored and computed CRC32C agree.
fn check_checksum(what: &str, stored: u32, computed: u32) -> Result<()> {
    if stored == computed {
        return Ok(());
    }
    Err(Error::CorruptSegment(format!(
        "{what} checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    )))
}

/// The body ran out before record number `records_read` of the declared ones.
fn body_ends_early(records_read: u32, header: &SegmentHeader) -> Error {
    Error::CorruptSegment(format!(
        "body ends after {records_read} of {} declared records",
        header.record_count
    ))
}

fn map_body_error(error: std::io::Error) -> Error {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::TruncatedSegment("body ends early".into()),
        std::io::ErrorKind::Other
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::InvalidInput => {
            Error::CorruptSegment(format!("body does not decompress: {error}"))
        }
        _ => Error::Io(error),
    }
}

/// Checks a whole stored segment's header, length and body CRC32C without decompressing it:
/// a restore calls this before producing any record of the segment, so a damaged object is
/// refused before it changes anything. Decoding then checks the records themselves.
pub fn verify_stored_segment(stored: &[u8]) -> Result<SegmentHeader> {
    let mut source = stored;
    let header = SegmentHeader::read_from(&mut source)?;
    let expected = header.body_len.saturating_add(header.trailer_len());
    if (source.len() as u64) < expected {
        return Err(Error::TruncatedSegment(format!(
            "body and key filter hold {} of {expected} bytes",
            source.len(),
        )));
    }
    if source.len() as u64 > expected {
        return Err(Error::CorruptSegment(format!(
            "{} bytes follow the body and its key filter",
            source.len() as u64 - expected
        )));
    }
    let (body, trailer) = source.split_at(header.body_len as usize);
    check_checksum("stored body", header.body_crc32c, crc32c::crc32c(body))?;
    if let Some(filter) = header.key_filter.filter(|_| !trailer.is_empty()) {
        check_checksum("key filter", filter.crc32c, crc32c::crc32c(trailer))?;
    }
    Ok(header)
}
