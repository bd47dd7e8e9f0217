//! Record frames: how one record is laid out in a segment's body (spec:
//! `docs/segment-format.md#framed-records`).
//!
//! Version 2 writes compact frames: LEB128 varints, and each record's offset and timestamp as
//! a difference from the record before, so the bytes that change from record to record are
//! few and zstd finds the rest. Version 1's fixed-width frames (8-byte offset and timestamp,
//! 4-byte lengths) are still read.

use super::record::{Header, Record, TimestampType};
use crate::error::{Error, Result};

/// The framing of a format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Version 1: a u32 length, then fixed-width big-endian fields.
    Fixed,
    /// Version 2: a varint length, then varints relative to the previous record.
    Compact,
}

impl Framing {
    pub(super) fn of_version(version: u16) -> Self {
        if version == 1 {
            Framing::Fixed
        } else {
            Framing::Compact
        }
    }
}

/// The record before the one being framed or parsed: compact frames are relative to it. The
/// first record of a segment is relative to (first offset − 1, timestamp 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Previous {
    pub offset: i64,
    pub timestamp: i64,
}

impl Previous {
    pub(super) fn before_first(first_offset: i64) -> Self {
        Previous {
            offset: first_offset - 1,
            timestamp: 0,
        }
    }

    pub(super) fn of(record: &Record) -> Self {
        Previous {
            offset: record.offset,
            timestamp: record.timestamp,
        }
    }
}

/// Longest LEB128 encoding of a u64.
const MAX_VARINT_LEN: usize = 10;

/// Appends `record`'s compact frame (length prefix included) to `out` and returns its length.
/// `record.offset` must be above `previous.offset` (the encoder checks). On error `out` is
/// left as it was.
pub(super) fn append_compact(
    record: &Record,
    previous: Previous,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let offset_delta = (record.offset - previous.offset - 1) as u64;
    let timestamp_delta = zigzag(record.timestamp.wrapping_sub(previous.timestamp));
    let mut body_len = uvarint_len(offset_delta) + uvarint_len(timestamp_delta) + 1;
    body_len += nullable_len(record.key.as_deref(), "key")?;
    body_len += nullable_len(record.value.as_deref(), "value")?;
    body_len += uvarint_len(record.headers.len() as u64);
    for header in &record.headers {
        body_len += uvarint_len(header.key.len() as u64) + header.key.len();
        body_len += nullable_len(header.value.as_deref(), "header value")?;
    }
    if u32::try_from(body_len).is_err() {
        return Err(Error::InvalidRecords(format!(
            "record at offset {} is too large",
            record.offset
        )));
    }
    let start = out.len();
    out.reserve(uvarint_len(body_len as u64) + body_len);
    put_uvarint(out, body_len as u64);
    put_uvarint(out, offset_delta);
    put_uvarint(out, timestamp_delta);
    out.push(record.timestamp_type.code());
    put_nullable(out, record.key.as_deref());
    put_nullable(out, record.value.as_deref());
    put_uvarint(out, record.headers.len() as u64);
    for header in &record.headers {
        put_uvarint(out, header.key.len() as u64);
        out.extend_from_slice(header.key.as_bytes());
        put_nullable(out, header.value.as_deref());
    }
    Ok(out.len() - start)
}

/// Appends `record`'s version 1 frame: what writers before version 2 wrote. Tests use it to
/// make the segments an upgraded deployment still holds.
#[cfg(test)]
pub(super) fn append_fixed(record: &Record, out: &mut Vec<u8>) -> Result<usize> {
    let start = out.len();
    let fixed_nullable = |out: &mut Vec<u8>, bytes: Option<&[u8]>| match bytes {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(bytes) => {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    };
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&record.offset.to_be_bytes());
    out.extend_from_slice(&record.timestamp.to_be_bytes());
    out.push(record.timestamp_type.code());
    fixed_nullable(out, record.key.as_deref());
    fixed_nullable(out, record.value.as_deref());
    out.extend_from_slice(&(record.headers.len() as u32).to_be_bytes());
    for header in &record.headers {
        out.extend_from_slice(&(header.key.len() as u32).to_be_bytes());
        out.extend_from_slice(header.key.as_bytes());
        fixed_nullable(out, header.value.as_deref());
    }
    let frame_len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&frame_len.to_be_bytes());
    Ok(out.len() - start)
}

/// Bytes a nullable field takes: a varint of 0 for null, of length + 1 otherwise, then the
/// bytes. Kafka bounds keys, values and header values by an i32 length, and so does the format.
fn nullable_len(bytes: Option<&[u8]>, what: &str) -> Result<usize> {
    match bytes {
        None => Ok(1),
        Some(bytes) if i32::try_from(bytes.len()).is_err() => Err(Error::InvalidRecords(format!(
            "{what} of {} bytes is too large",
            bytes.len()
        ))),
        Some(bytes) => Ok(uvarint_len(bytes.len() as u64 + 1) + bytes.len()),
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(bytes) => {
            put_uvarint(out, bytes.len() as u64 + 1);
            out.extend_from_slice(bytes);
        }
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn uvarint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// Reads a compact frame's length prefix from `source`, byte by byte, into the empty `prefix` (part
/// of the checksummed bytes). `Ok(None)` when the varint is invalid.
pub(super) fn read_length_prefix(
    source: &mut impl std::io::Read,
    prefix: &mut Vec<u8>,
) -> std::io::Result<Option<u64>> {
    loop {
        let mut byte = [0u8; 1];
        source.read_exact(&mut byte)?;
        prefix.push(byte[0]);
        if byte[0] & 0x80 == 0 || prefix.len() == MAX_VARINT_LEN {
            break;
        }
    }
    Ok(Cursor { bytes: prefix }.uvarint("length").ok())
}

/// A compact frame's length prefix at the start of `bytes`: the frame's length and the
/// prefix's. `None` when the varint is invalid or cut short.
pub(super) fn split_length_prefix(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut cursor = Cursor { bytes };
    let frame_len = cursor.uvarint("length").ok()?;
    Some((frame_len, bytes.len() - cursor.bytes.len()))
}

/// Parses one version 1 frame (without its length prefix) into `record`, reusing its buffers.
/// Errors are short reasons for the caller.
pub(super) fn parse_fixed(frame: &[u8], record: &mut Record) -> std::result::Result<(), String> {
    let mut cursor = Cursor { bytes: frame };
    record.offset = i64::from_be_bytes(cursor.array("offset")?);
    record.timestamp = i64::from_be_bytes(cursor.array("timestamp")?);
    record.timestamp_type = cursor.timestamp_type()?;
    set_nullable(&mut record.key, cursor.fixed_nullable("key")?);
    set_nullable(&mut record.value, cursor.fixed_nullable("value")?);
    let header_count = u64::from(u32::from_be_bytes(cursor.array("header count")?));
    // Each header takes at least 8 bytes, which bounds the allocation by the frame size.
    cursor.headers_fit(header_count, 8)?;
    for position in 0..header_count as usize {
        let key_len = u32::from_be_bytes(cursor.array("header key length")?) as usize;
        let key = cursor.take(key_len, "header key")?;
        let value = cursor.fixed_nullable("header value")?;
        set_header(record, position, key, value)?;
    }
    record.headers.truncate(header_count as usize);
    cursor.end()
}

/// Parses one version 2 frame (without its length prefix) into `record`, reusing its buffers.
pub(super) fn parse_compact(
    frame: &[u8],
    previous: Previous,
    record: &mut Record,
) -> std::result::Result<(), String> {
    let mut cursor = Cursor { bytes: frame };
    let offset_delta = cursor.uvarint("offset")?;
    record.offset = i64::try_from(offset_delta)
        .ok()
        .and_then(|delta| previous.offset.checked_add(1)?.checked_add(delta))
        .ok_or_else(|| format!("offset delta {offset_delta} overflows"))?;
    record.timestamp = previous
        .timestamp
        .wrapping_add(unzigzag(cursor.uvarint("timestamp")?));
    record.timestamp_type = cursor.timestamp_type()?;
    set_nullable(&mut record.key, cursor.compact_nullable("key")?);
    set_nullable(&mut record.value, cursor.compact_nullable("value")?);
    let header_count = cursor.uvarint("header count")?;
    // Each header takes at least 2 bytes, which bounds the allocation by the frame size.
    cursor.headers_fit(header_count, 2)?;
    for position in 0..header_count as usize {
        let key_len = cursor.uvarint("header key length")?;
        let key = cursor.take(usize::try_from(key_len).unwrap_or(usize::MAX), "header key")?;
        let value = cursor.compact_nullable("header value")?;
        set_header(record, position, key, value)?;
    }
    record.headers.truncate(header_count as usize);
    cursor.end()
}

/// Header key `key` (checked to be UTF-8) and `value` into the record's header at `position`.
/// A record mostly carries the keys of the record decoded before into the same buffers: an
/// equal key is already known to be UTF-8 and is neither checked nor copied again.
fn set_header(
    record: &mut Record,
    position: usize,
    key: &[u8],
    value: Option<&[u8]>,
) -> std::result::Result<(), String> {
    match record.headers.get_mut(position) {
        Some(header) => {
            if header.key.as_bytes() != key {
                header.key.clear();
                header.key.push_str(utf8_key(key)?);
            }
            set_nullable(&mut header.value, value);
        }
        None => record.headers.push(Header {
            key: utf8_key(key)?.to_owned(),
            value: value.map(<[u8]>::to_vec),
        }),
    }
    Ok(())
}

fn utf8_key(key: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(key).map_err(|_| "header key is not valid UTF-8".to_owned())
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

    fn timestamp_type(&mut self) -> std::result::Result<TimestampType, String> {
        let [code] = self.array("timestamp type")?;
        TimestampType::from_code(code).ok_or_else(|| format!("unknown timestamp type {code}"))
    }

    fn headers_fit(&self, count: u64, min_len: u64) -> std::result::Result<(), String> {
        if count.saturating_mul(min_len) > self.bytes.len() as u64 {
            return Err(format!("{count} headers cannot fit in the frame"));
        }
        Ok(())
    }

    fn fixed_nullable(&mut self, what: &str) -> std::result::Result<Option<&'a [u8]>, String> {
        match i32::from_be_bytes(self.array(what)?) {
            -1 => Ok(None),
            len if len < 0 => Err(format!("{what} has negative length {len}")),
            len => Ok(Some(self.take(len as usize, what)?)),
        }
    }

    fn compact_nullable(&mut self, what: &str) -> std::result::Result<Option<&'a [u8]>, String> {
        match self.uvarint(what)? {
            0 => Ok(None),
            len_plus_one => {
                let len = usize::try_from(len_plus_one - 1).unwrap_or(usize::MAX);
                Ok(Some(self.take(len, what)?))
            }
        }
    }

    fn uvarint(&mut self, what: &str) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for position in 0..MAX_VARINT_LEN {
            let [byte] = self.array(what)?;
            if position == MAX_VARINT_LEN - 1 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * position);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("{what} is not a valid varint"))
    }

    fn end(&self) -> std::result::Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} unexpected bytes at the end of the frame",
                self.bytes.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length_boundary() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, value);
            assert_eq!(out.len(), uvarint_len(value), "{value}");
            assert_eq!(Cursor { bytes: &out }.uvarint("v"), Ok(value));
            let mut prefix = Vec::new();
            assert_eq!(
                read_length_prefix(&mut out.as_slice(), &mut prefix).unwrap(),
                Some(value)
            );
            assert_eq!(prefix, out);
        }
        for value in [0, 1, -1, i64::MIN, i64::MAX, -1_700_000_000_000] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
    }

    #[test]
    fn a_varint_longer_than_ten_bytes_or_past_64_bits_is_refused() {
        let too_long = [0x80u8; 11];
        assert!(Cursor { bytes: &too_long }.uvarint("v").is_err());
        let overflowing = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(
            Cursor {
                bytes: &overflowing
            }
            .uvarint("v")
            .is_err()
        );
        assert_eq!(
            read_length_prefix(&mut overflowing.as_slice(), &mut Vec::new()).unwrap(),
            None
        );
    }

    #[test]
    fn an_offset_delta_past_i64_is_refused() {
        let mut frame = Vec::new();
        put_uvarint(&mut frame, u64::MAX);
        frame.extend_from_slice(&[0, 0, 0, 0, 0]);
        let error = parse_compact(&frame, Previous::before_first(0), &mut Record::empty());
        assert!(error.unwrap_err().contains("overflows"));
    }
}
