//! A body decompressed in one call and checked whole before its first record is read: for
//! the segments a batch writes (a few MB), where streaming cost more than the decompression
//! itself (a copy into a read-ahead buffer and another into a frame buffer per record).

use std::io::Read;

use super::{body_ends_early, check_checksum, map_body_error};
use crate::error::{Error, Result};
use crate::segment::frame::{self, Framing};
use crate::segment::header::{Compression, SegmentHeader};

/// Buffers a body is read into, kept from one segment to the next: a restore reads thousands
/// of segments, and a fresh multi-megabyte buffer for each cost its page faults and, once
/// freed, the allocator's consolidation (together a quarter of the decoding thread's time).
#[derive(Debug, Default)]
pub struct BodyBuffers {
    /// The stored (compressed) body.
    stored: Vec<u8>,
    /// Every record's frame, length prefixes included.
    frames: Vec<u8>,
}

pub(super) struct WholeBody<R> {
    buffers: BodyBuffers,
    consumed: usize,
    /// The source after the body.
    rest: R,
}

impl<R: Read> WholeBody<R> {
    /// `source` is positioned at the body; the header declares at most
    /// [`super::WHOLE_BODY_MAX`] decompressed bytes, which bounds what this allocates.
    pub(super) fn open(
        mut source: R,
        header: &SegmentHeader,
        mut buffers: BodyBuffers,
    ) -> Result<Self> {
        let BodyBuffers { stored, frames } = &mut buffers;
        stored.clear();
        frames.clear();
        // Grows only as bytes arrive: a lying body length allocates no more than is there.
        (&mut source)
            .take(header.body_len)
            .read_to_end(stored)
            .map_err(map_body_error)?;
        if stored.len() as u64 != header.body_len {
            return Err(Error::TruncatedSegment(
                "the body is shorter than its declared length".into(),
            ));
        }
        check_checksum("body", header.body_crc32c, crc32c::crc32c(stored))?;
        match header.compression {
            Compression::Zstd => decompress(stored, header.uncompressed_len as usize, frames)?,
            Compression::None => std::mem::swap(stored, frames),
        }
        if frames.len() as u64 != header.uncompressed_len {
            return Err(Error::CorruptSegment(format!(
                "the body holds {} bytes of records, header says {}",
                frames.len(),
                header.uncompressed_len
            )));
        }
        check_checksum("records", header.records_crc32c, crc32c::crc32c(frames))?;
        Ok(WholeBody {
            buffers,
            consumed: 0,
            rest: source,
        })
    }

    pub(super) fn into_buffers(self) -> BodyBuffers {
        self.buffers
    }

    /// The frame of record number `records_read`, where it lies in the body.
    pub(super) fn next_frame(
        &mut self,
        framing: Framing,
        header: &SegmentHeader,
        records_read: u32,
    ) -> Result<&[u8]> {
        let remaining = &self.buffers.frames[self.consumed..];
        if remaining.is_empty() {
            return Err(body_ends_early(records_read, header));
        }
        let invalid_length =
            || Error::CorruptSegment(format!("record {records_read} has an invalid length"));
        let (frame_len, prefix_len) = match framing {
            Framing::Fixed => {
                let length = remaining.first_chunk::<4>().ok_or_else(invalid_length)?;
                (u64::from(u32::from_be_bytes(*length)), 4)
            }
            Framing::Compact => frame::split_length_prefix(remaining).ok_or_else(invalid_length)?,
        };
        let available = remaining.len() - prefix_len;
        if frame_len > available as u64 {
            return Err(Error::CorruptSegment(format!(
                "record {records_read} claims {frame_len} bytes but only {available} remain in \
                 the body"
            )));
        }
        let start = self.consumed + prefix_len;
        self.consumed = start + frame_len as usize;
        Ok(&self.buffers.frames[start..self.consumed])
    }

    /// After the last declared record: the records must fill the body exactly (its checksums
    /// were checked on opening). Returns the source after the body.
    pub(super) fn finish(&mut self, header: &SegmentHeader) -> Result<&mut R> {
        if self.consumed != self.buffers.frames.len() {
            return Err(Error::CorruptSegment(format!(
                "records take {} bytes, header says {}",
                self.consumed, header.uncompressed_len
            )));
        }
        Ok(&mut self.rest)
    }
}

/// One zstd frame, exactly `stored`, into the empty `frames`, up to the declared size: a body
/// that decompresses to more is refused, as are bytes after the frame (a second frame, a
/// skippable one) that a streaming reader would never have looked at.
fn decompress(stored: &[u8], declared_len: usize, frames: &mut Vec<u8>) -> Result<()> {
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(stored).map_err(|code| {
        Error::CorruptSegment(format!(
            "body does not decompress: {}",
            zstd::zstd_safe::get_error_name(code)
        ))
    })?;
    if frame_len != stored.len() {
        return Err(Error::CorruptSegment(format!(
            "{} stored body bytes follow the compressed records",
            stored.len() - frame_len
        )));
    }
    // At least the declared size; a reused buffer may hold more, and a body that fills more
    // than declared is then refused by the caller's length check.
    frames.reserve(declared_len);
    zstd::bulk::Decompressor::new()
        .and_then(|mut decompressor| decompressor.decompress_to_buffer(stored, frames))
        .map_err(map_body_error)?;
    Ok(())
}
