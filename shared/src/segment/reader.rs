//! Streaming segment decoding: one record in memory at a time, every claim of the header checked.

use std::io::{BufReader, Read, Take};

use super::frame::{self, Framing, Previous};
use super::header::{Compression, SegmentHeader};
use super::record::Record;
use crate::error::{Error, Result};

/// The stored body bytes, folded into a CRC32C as they are read.
struct ChecksummedBody<R: Read> {
    inner: Take<R>,
    crc32c: u32,
}

impl<R: Read> Read for ChecksummedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.crc32c = crc32c::crc32c_append(self.crc32c, &buf[..read]);
        Ok(read)
    }
}

enum Body<R: Read> {
    Zstd(zstd::stream::read::Decoder<'static, BufReader<ChecksummedBody<R>>>),
    Plain(ChecksummedBody<R>),
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Body::Zstd(decoder) => decoder.read(buf),
            Body::Plain(take) => take.read(buf),
        }
    }
}

/// Reads a segment record by record from any byte source (a file, an S3 body, a slice).
///
/// Nothing is trusted until checked: lengths are bounded by the header, the record count,
/// offset range, timestamp range and the CRC32C of the framed records are verified, and bytes
/// after the body are rejected. Every failure is a typed [`Error`], never a panic.
pub struct SegmentReader<R: Read> {
    header: SegmentHeader,
    framing: Framing,
    /// Decompressed in large reads, so the small reads of frame lengths cost little.
    body: BufReader<Body<R>>,
    records_crc32c: u32,
    consumed: u64,
    records_read: u32,
    previous: Option<Previous>,
    frame: Vec<u8>,
    length_prefix: Vec<u8>,
    done: bool,
}

/// Decompressed bytes read ahead of the frame being parsed.
const DECOMPRESSED_READ_AHEAD: usize = 64 * 1024;

impl<R: Read> SegmentReader<R> {
    /// Reads and checks the header; records are decoded lazily by [`Self::next_record`].
    pub fn open(mut source: R) -> Result<Self> {
        let header = SegmentHeader::read_from(&mut source)?;
        if header.encryption.is_some() {
            return Err(Error::Encryption(
                "the segment body is sealed: open it with its data key first".into(),
            ));
        }
        let body = ChecksummedBody {
            inner: source.take(header.body_len),
            crc32c: 0,
        };
        let body = match header.compression {
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::new(body).map_err(map_body_error)?;
                decoder = decoder.single_frame();
                Body::Zstd(decoder)
            }
            Compression::None => Body::Plain(body),
        };
        Ok(SegmentReader {
            framing: Framing::of_version(header.format_version),
            header,
            body: BufReader::with_capacity(DECOMPRESSED_READ_AHEAD, body),
            records_crc32c: 0,
            consumed: 0,
            records_read: 0,
            previous: None,
            frame: Vec::new(),
            length_prefix: Vec::with_capacity(10),
            done: false,
        })
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    #[cfg(test)]
    pub(super) fn frame_capacity(&self) -> usize {
        self.frame.capacity()
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
        let remaining = self.header.uncompressed_len - self.consumed;
        let ends_early = || {
            Error::CorruptSegment(format!(
                "body ends after {} of {} declared records",
                self.records_read, self.header.record_count
            ))
        };
        self.length_prefix.clear();
        let frame_len = match self.framing {
            Framing::Fixed => {
                if remaining < 4 {
                    return Err(ends_early());
                }
                let mut length = [0u8; 4];
                self.body.read_exact(&mut length).map_err(map_body_error)?;
                self.length_prefix.extend_from_slice(&length);
                u64::from(u32::from_be_bytes(length))
            }
            Framing::Compact => {
                if remaining == 0 {
                    return Err(ends_early());
                }
                frame::read_length_prefix(&mut self.body, &mut self.length_prefix)
                    .map_err(map_body_error)?
                    .ok_or_else(|| {
                        Error::CorruptSegment(format!(
                            "record {} has an invalid length",
                            self.records_read
                        ))
                    })?
            }
        };
        let prefix_len = self.length_prefix.len() as u64;
        if prefix_len > remaining || frame_len > remaining - prefix_len {
            return Err(Error::CorruptSegment(format!(
                "record {} claims {frame_len} bytes but only {} remain in the body",
                self.records_read,
                remaining.saturating_sub(prefix_len)
            )));
        }
        self.frame.clear();
        // `take` + `read_to_end` grows the buffer only as bytes arrive, so a lying length
        // cannot make us allocate more than the body really holds.
        let read = (&mut self.body)
            .take(frame_len)
            .read_to_end(&mut self.frame)
            .map_err(map_body_error)?;
        if read as u64 != frame_len {
            return Err(Error::TruncatedSegment(format!(
                "body ends inside record {}",
                self.records_read
            )));
        }
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &self.length_prefix);
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &self.frame);
        self.consumed += prefix_len + frame_len;
        let parsed = match self.framing {
            Framing::Fixed => frame::parse_fixed(&self.frame, record),
            Framing::Compact => {
                let previous = self
                    .previous
                    .unwrap_or(Previous::before_first(self.header.first_offset));
                frame::parse_compact(&self.frame, previous, record)
            }
        };
        parsed.map_err(|reason| {
            Error::CorruptSegment(format!(
                "record {} is malformed: {reason}",
                self.records_read
            ))
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

    /// Called after the last declared record: the body must end exactly here and match its CRC.
    fn finish(&mut self) -> Result<()> {
        let last_offset = self.previous.map(|previous| previous.offset);
        if last_offset != Some(self.header.last_offset) {
            return Err(Error::CorruptSegment(format!(
                "last record has offset {last_offset:?}, header says {}",
                self.header.last_offset
            )));
        }
        if self.consumed != self.header.uncompressed_len {
            return Err(Error::CorruptSegment(format!(
                "records take {} bytes, header says {}",
                self.consumed, self.header.uncompressed_len
            )));
        }
        let mut probe = [0u8; 1];
        if self.body.read(&mut probe).map_err(map_body_error)? != 0 {
            return Err(Error::CorruptSegment(
                "body holds bytes after the last record".into(),
            ));
        }
        if self.records_crc32c != self.header.records_crc32c {
            return Err(Error::CorruptSegment(format!(
                "records checksum mismatch: stored {:#010x}, computed {:#010x}",
                self.header.records_crc32c, self.records_crc32c
            )));
        }
        let stored_body = match self.body.get_mut() {
            Body::Zstd(decoder) => {
                let buffered = decoder.get_mut().buffer().len() as u64;
                let body = decoder.get_mut().get_mut();
                // Stored bytes the decoder has not needed are still part of the body.
                let mut rest = Vec::new();
                body.read_to_end(&mut rest)?;
                if buffered + rest.len() as u64 != 0 {
                    return Err(Error::CorruptSegment(format!(
                        "{} stored body bytes follow the compressed records",
                        buffered + rest.len() as u64
                    )));
                }
                body
            }
            Body::Plain(body) => body,
        };
        if stored_body.inner.limit() != 0 {
            return Err(Error::TruncatedSegment(
                "the body is shorter than its declared length".into(),
            ));
        }
        if stored_body.crc32c != self.header.body_crc32c {
            return Err(Error::CorruptSegment(format!(
                "body checksum mismatch: stored {:#010x}, computed {:#010x}",
                self.header.body_crc32c, stored_body.crc32c
            )));
        }
        let source = stored_body.inner.get_mut();
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
            let computed = crc32c::crc32c(&trailer);
            if computed != filter.crc32c {
                return Err(Error::CorruptSegment(format!(
                    "key filter checksum mismatch: stored {:#010x}, computed {computed:#010x}",
                    filter.crc32c
                )));
            }
        }
        if source.read(&mut probe)? != 0 {
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
    let computed = crc32c::crc32c(body);
    if computed != header.body_crc32c {
        return Err(Error::CorruptSegment(format!(
            "stored body checksum mismatch: stored {:#010x}, computed {computed:#010x}",
            header.body_crc32c
        )));
    }
    if let Some(filter) = header.key_filter.filter(|_| !trailer.is_empty()) {
        let computed = crc32c::crc32c(trailer);
        if computed != filter.crc32c {
            return Err(Error::CorruptSegment(format!(
                "key filter checksum mismatch: stored {:#010x}, computed {computed:#010x}",
                filter.crc32c
            )));
        }
    }
    Ok(header)
}
