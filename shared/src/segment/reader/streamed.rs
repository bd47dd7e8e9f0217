//! A body decompressed as it is read, one record's frame in memory at a time: for segments
//! too large to decompress whole (compaction's).

use std::io::{BufReader, Read, Take};

use super::{body_ends_early, check_checksum, map_body_error};
use crate::error::{Error, Result};
use crate::segment::frame::{self, Framing};
use crate::segment::header::{Compression, SegmentHeader};

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

/// Decompressed bytes read ahead of the frame being parsed.
const DECOMPRESSED_READ_AHEAD: usize = 64 * 1024;

pub(super) struct StreamedBody<R: Read> {
    /// Decompressed in large reads, so the small reads of frame lengths cost little.
    body: BufReader<Body<R>>,
    records_crc32c: u32,
    consumed: u64,
    frame: Vec<u8>,
    length_prefix: Vec<u8>,
}

impl<R: Read> StreamedBody<R> {
    /// `source` is positioned at the body.
    pub(super) fn open(source: R, header: &SegmentHeader) -> Result<Self> {
        let body = ChecksummedBody {
            inner: source.take(header.body_len),
            crc32c: 0,
        };
        let body = match header.compression {
            Compression::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(body).map_err(map_body_error)?;
                Body::Zstd(decoder.single_frame())
            }
            Compression::None => Body::Plain(body),
        };
        Ok(StreamedBody {
            body: BufReader::with_capacity(DECOMPRESSED_READ_AHEAD, body),
            records_crc32c: 0,
            consumed: 0,
            frame: Vec::new(),
            length_prefix: Vec::with_capacity(10),
        })
    }

    #[cfg(test)]
    pub(super) fn frame_capacity(&self) -> usize {
        self.frame.capacity()
    }

    /// The frame of record number `records_read` (its length prefix read and left out).
    pub(super) fn next_frame(
        &mut self,
        framing: Framing,
        header: &SegmentHeader,
        records_read: u32,
    ) -> Result<&[u8]> {
        let remaining = header.uncompressed_len - self.consumed;
        self.length_prefix.clear();
        let frame_len = match framing {
            Framing::Fixed => {
                if remaining < 4 {
                    return Err(body_ends_early(records_read, header));
                }
                let mut length = [0u8; 4];
                self.body.read_exact(&mut length).map_err(map_body_error)?;
                self.length_prefix.extend_from_slice(&length);
                u64::from(u32::from_be_bytes(length))
            }
            Framing::Compact => {
                if remaining == 0 {
                    return Err(body_ends_early(records_read, header));
                }
                frame::read_length_prefix(&mut self.body, &mut self.length_prefix)
                    .map_err(map_body_error)?
                    .ok_or_else(|| {
                        Error::CorruptSegment(format!(
                            "record {records_read} has an invalid length"
                        ))
                    })?
            }
        };
        let prefix_len = self.length_prefix.len() as u64;
        if prefix_len > remaining || frame_len > remaining - prefix_len {
            return Err(Error::CorruptSegment(format!(
                "record {records_read} claims {frame_len} bytes but only {} remain in the body",
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
                "body ends inside record {records_read}"
            )));
        }
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &self.length_prefix);
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &self.frame);
        self.consumed += prefix_len + frame_len;
        Ok(&self.frame)
    }

    /// After the last declared record: the body must end exactly here and match both
    /// checksums. Returns the source after the body.
    pub(super) fn finish(&mut self, header: &SegmentHeader) -> Result<&mut R> {
        if self.consumed != header.uncompressed_len {
            return Err(Error::CorruptSegment(format!(
                "records take {} bytes, header says {}",
                self.consumed, header.uncompressed_len
            )));
        }
        let mut probe = [0u8; 1];
        if self.body.read(&mut probe).map_err(map_body_error)? != 0 {
            return Err(Error::CorruptSegment(
                "body holds bytes after the last record".into(),
            ));
        }
        check_checksum("records", header.records_crc32c, self.records_crc32c)?;
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
        check_checksum("body", header.body_crc32c, stored_body.crc32c)?;
        Ok(stored_body.inner.get_mut())
    }
}
