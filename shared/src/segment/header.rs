//! The segment header: fixed-width big-endian fields, described in `docs/segment-format.md`.

use crate::error::{Error, Result};

/// First four bytes of every segment.
pub const MAGIC: [u8; 4] = *b"TDMK";
/// The format version this build writes. It reads this one and every one before it.
pub const FORMAT_VERSION: u16 = 2;

/// Bytes of the header that depend on neither the topic name nor an envelope.
const FIXED_HEADER_LEN: usize = 80;
/// Header bytes before `uncompressed_len`, less the topic: the part an AES-GCM seal
/// authenticates (see [`SegmentHeader::authenticated_len`]).
const AUTHENTICATED_FIXED_LEN: usize = 52;
/// Flag bit 0: the body is sealed with AES-256-GCM and the header carries an [`Envelope`].
const FLAG_ENCRYPTED: u8 = 0x01;
/// AES-GCM nonce length.
pub(super) const NONCE_LEN: usize = 12;
/// AES-GCM authentication tag length; it follows the ciphertext in a sealed body.
pub(super) const TAG_LEN: usize = 16;
/// Bytes of an envelope besides the wrapped key: the key's u16 length and the nonce.
const ENVELOPE_FIXED_LEN: usize = 2 + NONCE_LEN;
/// Offset of the header-length field, read before the rest of the header.
const PREFIX_LEN: usize = 8;
/// Flag bit 1: the header carries [`WriteMark`]s (a segment compaction merged).
const FLAG_WRITE_MARKS: u8 = 0x02;
/// Bytes of the write-mark section besides the marks: their u16 count.
const WRITE_MARKS_FIXED_LEN: usize = 2;
/// Bytes of one encoded write mark.
const WRITE_MARK_LEN: usize = 16;
/// The most write marks one segment carries. Compaction stops merging before a run would need
/// more, so a header stays well inside its u16 length (32 KiB of marks at most).
pub const MAX_WRITE_MARKS: usize = 2048;
/// Flag bit 2: a key filter follows the body (inside it, when sealed); the header says how long
/// it is and its CRC32C.
const FLAG_KEY_FILTER: u8 = 0x04;
/// Bytes of the key-filter section: the filter's u32 length and its CRC32C.
pub(super) const KEY_FILTER_SECTION_LEN: usize = 8;
/// Flag bit 3: the records are shredded: each keyed record is sealed under its key's own data
/// key (see [`crate::shredding`]). Readers without the keys see key ids and ciphertext.
const FLAG_SHREDDED: u8 = 0x08;

/// When the backup reached an offset: the segment whose last record was `last_offset` became
/// durable (and was indexed) at `written_at_ms`, by the writer's clock. A consistent cut at T
/// takes every record up to the highest `last_offset` written at or before T. A segment the
/// writer wrote has one implicit mark (its last offset, its index entry's write time); one that
/// compaction merged carries the marks of the segments it replaced, so the cut stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteMark {
    pub last_offset: i64,
    pub written_at_ms: i64,
}

impl WriteMark {
    /// `marks` without the ones another mark makes redundant (one that reached as far or
    /// further, no later), in increasing offset order; then also increasing in time.
    pub fn normalize(mut marks: Vec<WriteMark>) -> Vec<WriteMark> {
        marks.sort_by_key(|mark| (std::cmp::Reverse(mark.last_offset), mark.written_at_ms));
        let mut kept: Vec<WriteMark> = Vec::with_capacity(marks.len());
        for mark in marks {
            if kept
                .last()
                .is_none_or(|earliest| mark.written_at_ms < earliest.written_at_ms)
            {
                kept.push(mark);
            }
        }
        kept.reverse();
        kept
    }

    /// The highest offset that `marks` say the backup had reached at `at_ms`, if any.
    pub fn reached_at(marks: &[WriteMark], at_ms: i64) -> Option<i64> {
        marks
            .iter()
            .filter(|mark| mark.written_at_ms <= at_ms)
            .map(|mark| mark.last_offset)
            .max()
    }
}

/// How the segment body is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// How a sealed segment's body was encrypted: AES-256-GCM under a data key that KMS generated.
/// The body is the ciphertext of the plain body followed by the 16-byte tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The data key encrypted by KMS (`CiphertextBlob`); only KMS can unwrap it.
    pub wrapped_key: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
}

impl Envelope {
    fn encoded_len(&self) -> usize {
        ENVELOPE_FIXED_LEN + self.wrapped_key.len()
    }
}

/// Where a segment's key filter is: `len` bytes after the body (at the end of the sealed body's
/// plaintext when sealed), with this CRC32C. An empty filter means no record has a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFilterSection {
    pub len: u32,
    pub crc32c: u32,
}

/// Everything a reader needs to know about a segment before reading its records. It makes a
/// segment self-describing: S3 alone is enough to restore (invariant 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// 1 (fixed-width frames) or 2 (compact frames); every other field means the same in both.
    pub format_version: u16,
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: u32,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub compression: Compression,
    /// Length of the framed records before compression.
    pub uncompressed_len: u64,
    /// Length of the body as stored, after the header.
    pub body_len: u64,
    /// CRC32C (Castagnoli) of the uncompressed framed records.
    pub records_crc32c: u32,
    /// CRC32C of the body as stored: catches any changed byte, even one that would still
    /// decompress to the same records.
    pub body_crc32c: u32,
    /// Present when the body is sealed (client-side encryption).
    pub encryption: Option<Envelope>,
    /// Empty for a segment the writer wrote; normalized marks (see [`WriteMark::normalize`])
    /// for one that compaction merged.
    pub write_marks: Vec<WriteMark>,
    /// Present when the segment carries a key filter (every segment written since it exists).
    pub key_filter: Option<KeyFilterSection>,
    /// The keyed records are sealed for crypto-shredding ([`crate::shredding`]).
    pub shredded: bool,
}

impl SegmentHeader {
    /// Encoded length of a header for a topic name of this many bytes, without an envelope.
    pub fn encoded_len(topic_len: usize) -> usize {
        FIXED_HEADER_LEN + topic_len
    }

    /// Encoded length of this header.
    pub fn header_len(&self) -> usize {
        Self::encoded_len(self.topic.len())
            + self.encryption.as_ref().map_or(0, Envelope::encoded_len)
            + Self::write_marks_len(self.write_marks.len())
            + if self.key_filter.is_some() {
                KEY_FILTER_SECTION_LEN
            } else {
                0
            }
    }

    /// Bytes stored after the body: the key filter of a plain segment (a sealed one carries it
    /// inside its body).
    pub fn trailer_len(&self) -> u64 {
        match (&self.key_filter, &self.encryption) {
            (Some(filter), None) => u64::from(filter.len),
            _ => 0,
        }
    }

    /// Offset of the first byte after the body: where a plain segment's key filter starts.
    pub fn body_end(&self) -> u64 {
        self.header_len() as u64 + self.body_len
    }

    /// Encoded length of a write-mark section of `count` marks (none when there are none).
    pub(super) fn write_marks_len(count: usize) -> usize {
        if count == 0 {
            0
        } else {
            WRITE_MARKS_FIXED_LEN + count * WRITE_MARK_LEN
        }
    }

    /// How many leading bytes of the encoded header a seal authenticates: magic through
    /// `max_timestamp`. They are fixed before the body is encrypted, and bind the ciphertext to
    /// its topic, partition, offsets and record count.
    pub fn authenticated_len(&self) -> usize {
        AUTHENTICATED_FIXED_LEN + self.topic.len()
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let topic = self.topic.as_bytes();
        let topic_len = u16::try_from(topic.len()).map_err(|_| {
            Error::InvalidRecords(format!("topic name is {} bytes long", topic.len()))
        })?;
        let header_len = u16::try_from(self.header_len()).map_err(|_| {
            Error::InvalidRecords(format!(
                "a header of {} bytes cannot be stored",
                self.header_len()
            ))
        })?;
        let mut out = Vec::with_capacity(usize::from(header_len));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.format_version.to_be_bytes());
        out.extend_from_slice(&header_len.to_be_bytes());
        out.push(self.compression.code());
        let mut flags = 0;
        if self.encryption.is_some() {
            flags |= FLAG_ENCRYPTED;
        }
        if !self.write_marks.is_empty() {
            flags |= FLAG_WRITE_MARKS;
        }
        if self.key_filter.is_some() {
            flags |= FLAG_KEY_FILTER;
        }
        if self.shredded {
            flags |= FLAG_SHREDDED;
        }
        out.push(flags);
        out.extend_from_slice(&topic_len.to_be_bytes());
        out.extend_from_slice(topic);
        out.extend_from_slice(&self.partition.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        out.extend_from_slice(&self.min_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.uncompressed_len.to_be_bytes());
        out.extend_from_slice(&self.body_len.to_be_bytes());
        out.extend_from_slice(&self.records_crc32c.to_be_bytes());
        out.extend_from_slice(&self.body_crc32c.to_be_bytes());
        if let Some(envelope) = &self.encryption {
            let wrapped_len = u16::try_from(envelope.wrapped_key.len()).map_err(|_| {
                Error::InvalidRecords(format!(
                    "a wrapped data key of {} bytes cannot be stored",
                    envelope.wrapped_key.len()
                ))
            })?;
            out.extend_from_slice(&wrapped_len.to_be_bytes());
            out.extend_from_slice(&envelope.wrapped_key);
            out.extend_from_slice(&envelope.nonce);
        }
        if !self.write_marks.is_empty() {
            let count = u16::try_from(self.write_marks.len())
                .ok()
                .filter(|&count| usize::from(count) <= MAX_WRITE_MARKS)
                .ok_or_else(|| {
                    Error::InvalidRecords(format!(
                        "{} write marks exceed the {MAX_WRITE_MARKS} a segment may carry",
                        self.write_marks.len()
                    ))
                })?;
            out.extend_from_slice(&count.to_be_bytes());
            for mark in &self.write_marks {
                out.extend_from_slice(&mark.last_offset.to_be_bytes());
                out.extend_from_slice(&mark.written_at_ms.to_be_bytes());
            }
        }
        if let Some(filter) = &self.key_filter {
            out.extend_from_slice(&filter.len.to_be_bytes());
            out.extend_from_slice(&filter.crc32c.to_be_bytes());
        }
        let header_crc = crc32c::crc32c(&out);
        out.extend_from_slice(&header_crc.to_be_bytes());
        debug_assert_eq!(out.len(), usize::from(header_len));
        Ok(out)
    }

    /// Reads and checks a header from the start of `source`, consuming exactly its bytes.
    pub fn read_from(source: &mut impl std::io::Read) -> Result<Self> {
        let mut prefix = [0u8; PREFIX_LEN];
        read_exact_or(source, &mut prefix, "header")?;
        if prefix[..4] != MAGIC {
            return Err(Error::NotASegment(format!(
                "expected magic {:?}, found {:?}",
                MAGIC,
                &prefix[..4]
            )));
        }
        let version = u16::from_be_bytes([prefix[4], prefix[5]]);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let header_len = usize::from(u16::from_be_bytes([prefix[6], prefix[7]]));
        if header_len < FIXED_HEADER_LEN {
            return Err(Error::CorruptSegment(format!(
                "header length {header_len} is below the minimum {FIXED_HEADER_LEN}"
            )));
        }
        let mut header = vec![0u8; header_len];
        header[..PREFIX_LEN].copy_from_slice(&prefix);
        read_exact_or(source, &mut header[PREFIX_LEN..], "header")?;

        let (covered, stored_crc) = header.split_at(header_len - 4);
        let stored_crc = u32::from_be_bytes(stored_crc.try_into().expect("4 bytes"));
        let computed_crc = crc32c::crc32c(covered);
        if stored_crc != computed_crc {
            return Err(Error::CorruptSegment(format!(
                "header checksum mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"
            )));
        }

        let mut fields = FieldReader {
            bytes: &header[PREFIX_LEN..],
        };
        let compression_code = fields.u8();
        let compression = Compression::from_code(compression_code).ok_or_else(|| {
            Error::CorruptSegment(format!("unknown compression code {compression_code}"))
        })?;
        let flags = fields.u8();
        if flags & !(FLAG_ENCRYPTED | FLAG_WRITE_MARKS | FLAG_KEY_FILTER | FLAG_SHREDDED) != 0 {
            return Err(Error::CorruptSegment(format!(
                "unknown header flags {flags:#04x}"
            )));
        }
        let encrypted = flags & FLAG_ENCRYPTED != 0;
        let marked = flags & FLAG_WRITE_MARKS != 0;
        let filtered = flags & FLAG_KEY_FILTER != 0;
        let topic_len = usize::from(fields.u16());
        // The key-filter section comes last and has a fixed length: set it aside first.
        let filter_section = if filtered { KEY_FILTER_SECTION_LEN } else { 0 };
        let plain_len = Self::encoded_len(topic_len) + filter_section;
        let optional_min = if encrypted { ENVELOPE_FIXED_LEN } else { 0 }
            + if marked { WRITE_MARKS_FIXED_LEN } else { 0 };
        if (!encrypted && !marked && plain_len != header_len)
            || plain_len + optional_min > header_len
        {
            return Err(Error::CorruptSegment(format!(
                "topic length {topic_len} does not match header length {header_len}"
            )));
        }
        let topic = std::str::from_utf8(fields.take(topic_len))
            .map_err(|_| Error::CorruptSegment("topic name is not valid UTF-8".into()))?
            .to_owned();
        let mut parsed = SegmentHeader {
            format_version: version,
            topic,
            partition: fields.i32(),
            first_offset: fields.i64(),
            last_offset: fields.i64(),
            record_count: fields.u32(),
            min_timestamp: fields.i64(),
            max_timestamp: fields.i64(),
            compression,
            uncompressed_len: fields.u64(),
            body_len: fields.u64(),
            records_crc32c: fields.u32(),
            body_crc32c: fields.u32(),
            encryption: None,
            write_marks: Vec::new(),
            key_filter: None,
            shredded: flags & FLAG_SHREDDED != 0,
        };
        // Bytes left for the optional sections, less the header CRC.
        let mut remaining = header_len - plain_len;
        if encrypted {
            let wrapped_len = usize::from(fields.u16());
            let envelope_len = ENVELOPE_FIXED_LEN + wrapped_len;
            let marks_min = if marked { WRITE_MARKS_FIXED_LEN } else { 0 };
            if envelope_len + marks_min > remaining || (!marked && envelope_len != remaining) {
                return Err(Error::CorruptSegment(format!(
                    "wrapped key length {wrapped_len} does not match header length {header_len}"
                )));
            }
            parsed.encryption = Some(Envelope {
                wrapped_key: fields.take(wrapped_len).to_vec(),
                nonce: fields.take(NONCE_LEN).try_into().expect("12 bytes"),
            });
            remaining -= envelope_len;
        }
        if marked {
            let count = usize::from(fields.u16());
            if count == 0 || Self::write_marks_len(count) != remaining {
                return Err(Error::CorruptSegment(format!(
                    "{count} write marks do not match header length {header_len}"
                )));
            }
            parsed.write_marks = (0..count)
                .map(|_| WriteMark {
                    last_offset: fields.i64(),
                    written_at_ms: fields.i64(),
                })
                .collect();
        }
        if filtered {
            parsed.key_filter = Some(KeyFilterSection {
                len: fields.u32(),
                crc32c: fields.u32(),
            });
        }
        parsed.check_consistency()?;
        Ok(parsed)
    }

    /// Write marks must rise in offset and time, lie within the segment's offsets, and reach
    /// its last offset (the merged segment's last record was written at some time).
    pub(super) fn check_write_marks(&self) -> Result<()> {
        if self.write_marks.is_empty() {
            return Ok(());
        }
        let normalized = WriteMark::normalize(self.write_marks.clone());
        let in_range = self
            .write_marks
            .iter()
            .all(|mark| (self.first_offset..=self.last_offset).contains(&mark.last_offset));
        let reaches_last =
            self.write_marks.last().map(|mark| mark.last_offset) == Some(self.last_offset);
        if normalized != self.write_marks || !in_range || !reaches_last {
            return Err(Error::CorruptSegment(
                "write marks must rise in offset and time, within the segment's offsets, \
                     up to its last offset"
                    .into(),
            ));
        }
        Ok(())
    }

    fn check_consistency(&self) -> Result<()> {
        if self.record_count == 0 {
            return Err(Error::CorruptSegment("header declares zero records".into()));
        }
        if self.first_offset < 0 || self.last_offset < self.first_offset {
            return Err(Error::CorruptSegment(format!(
                "offset range {}..={} is not valid",
                self.first_offset, self.last_offset
            )));
        }
        let span = (self.last_offset - self.first_offset) as u64 + 1;
        if u64::from(self.record_count) > span {
            return Err(Error::CorruptSegment(format!(
                "{} records cannot fit offsets {}..={}",
                self.record_count, self.first_offset, self.last_offset
            )));
        }
        self.check_write_marks()?;
        if self.min_timestamp > self.max_timestamp {
            return Err(Error::CorruptSegment(
                "minimum timestamp is after maximum timestamp".into(),
            ));
        }
        let tag_len = if self.encryption.is_some() {
            TAG_LEN
        } else {
            0
        } as u64;
        if self.encryption.is_some() && self.body_len < tag_len {
            return Err(Error::CorruptSegment(format!(
                "a sealed body of {} bytes cannot hold its authentication tag",
                self.body_len
            )));
        }
        if self.compression == Compression::None && self.body_len != self.uncompressed_len + tag_len
        {
            return Err(Error::CorruptSegment(
                "uncompressed body length differs from stored length".into(),
            ));
        }
        Ok(())
    }
}

fn read_exact_or(source: &mut impl std::io::Read, buf: &mut [u8], what: &str) -> Result<()> {
    source.read_exact(buf).map_err(|error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::TruncatedSegment(format!("ends inside the {what}"))
        }
        _ => Error::Io(error),
    })
}

/// Cursor over header bytes whose total length was already checked.
struct FieldReader<'a> {
    bytes: &'a [u8],
}

impl<'a> FieldReader<'a> {
    fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().expect("2 bytes"))
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }
}
