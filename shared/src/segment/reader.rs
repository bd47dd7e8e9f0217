//! Streaming segment decoding: one record in memory at a time, every claim of the header checked.

use std::io::{BufReader, Read, Take};

use super::header::{Compression, SegmentHeader};
use super::record::{Header, Record, TimestampType};
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
    body: Body<R>,
    records_crc32c: u32,
    consumed: u64,
    records_read: u32,
    previous_offset: Option<i64>,
    frame: Vec<u8>,
    done: bool,
}

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
            header,
            body,
            records_crc32c: 0,
            consumed: 0,
            records_read: 0,
            previous_offset: None,
            frame: Vec::new(),
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
        self.previous_offset = Some(record.offset);
        Ok(true)
    }

    fn read_frame_into(&mut self, record: &mut Record) -> Result<()> {
        let remaining = self.header.uncompressed_len - self.consumed;
        if remaining < 4 {
            return Err(Error::CorruptSegment(format!(
                "body ends after {} of {} declared records",
                self.records_read, self.header.record_count
            )));
        }
        let mut length = [0u8; 4];
        self.body.read_exact(&mut length).map_err(map_body_error)?;
        let frame_len = u64::from(u32::from_be_bytes(length));
        if frame_len > remaining - 4 {
            return Err(Error::CorruptSegment(format!(
                "record {} claims {frame_len} bytes but only {} remain in the body",
                self.records_read,
                remaining - 4
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
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &length);
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &self.frame);
        self.consumed += 4 + frame_len;
        parse_frame_into(&self.frame, record).map_err(|reason| {
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
        if let Some(previous) = self.previous_offset
            && record.offset <= previous
        {
            return Err(Error::CorruptSegment(format!(
                "offset {} follows offset {previous}",
                record.offset
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
        if self.previous_offset != Some(self.header.last_offset) {
            return Err(Error::CorruptSegment(format!(
                "last record has offset {:?}, header says {}",
                self.previous_offset, self.header.last_offset
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
        let stored_body = match &mut self.body {
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

/// Parses one frame (without its length prefix) into `record`, reusing its buffers. Errors
/// are short reasons for the caller.
fn parse_frame_into(frame: &[u8], record: &mut Record) -> std::result::Result<(), String> {
    let mut cursor = Cursor { bytes: frame };
    record.offset = cursor.i64()?;
    record.timestamp = cursor.i64()?;
    let type_code = cursor.u8()?;
    record.timestamp_type = TimestampType::from_code(type_code)
        .ok_or_else(|| format!("unknown timestamp type {type_code}"))?;
    set_nullable(&mut record.key, cursor.nullable_bytes("key")?);
    set_nullable(&mut record.value, cursor.nullable_bytes("value")?);
    let header_count = cursor.u32()? as usize;
    // Each header takes at least 8 bytes, which bounds the allocation by the frame size.
    if header_count as u64 * 8 > cursor.bytes.len() as u64 {
        return Err(format!("{header_count} headers cannot fit in the frame"));
    }
    record.headers.truncate(header_count);
    for position in 0..header_count {
        let key_len = cursor.u32()? as usize;
        let key = std::str::from_utf8(cursor.take(key_len, "header key")?)
            .map_err(|_| "header key is not valid UTF-8".to_owned())?;
        let value = cursor.nullable_bytes("header value")?;
        match record.headers.get_mut(position) {
            Some(header) => {
                header.key.clear();
                header.key.push_str(key);
                set_nullable(&mut header.value, value);
            }
            None => record.headers.push(Header {
                key: key.to_owned(),
                value: value.map(<[u8]>::to_vec),
            }),
        }
    }
    if !cursor.bytes.is_empty() {
        return Err(format!(
            "{} unexpected bytes at the end of the frame",
            cursor.bytes.len()
        ));
    }
    Ok(())
}

/// Copies `bytes` into `target`, keeping its buffer; `None` is null.
fn set_nullable(target: &mut Option<Vec<u8>>, bytes: Option<&[u8]>) {
    match bytes {
        None => *target = None,
        Some(bytes) => {
            let buffer = target.get_or_insert_with(Vec::new);
            buffer.clear();
            buffer.extend_from_slice(bytes);
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if len > self.bytes.len() {
            return Err(format!("{what} of {len} bytes overruns the frame"));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N, what)?.try_into().expect("length checked"))
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.array::<1>("timestamp type")?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_be_bytes(self.array("length")?))
    }
    fn i64(&mut self) -> std::result::Result<i64, String> {
        Ok(i64::from_be_bytes(self.array("integer")?))
    }
    fn nullable_bytes(&mut self, what: &str) -> std::result::Result<Option<&'a [u8]>, String> {
        let len = i32::from_be_bytes(self.array(what)?);
        match len {
            -1 => Ok(None),
            len if len < 0 => Err(format!("{what} has negative length {len}")),
            len => Ok(Some(self.take(len as usize, what)?)),
        }
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
