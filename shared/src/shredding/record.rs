//! One keyed record sealed under its key's data key, and opened again (format spec:
//! `docs/segment-format.md#shredded-records`).
//!
//! The stored record keeps its offset, timestamp and timestamp type in the clear (the index,
//! time cuts, validation and compaction need them). Its key is the key id, its value the data
//! key's version, a nonce and the AES-256-GCM ciphertext of the clear key, value and headers;
//! it has no headers. The seal is bound to the backup, topic, partition and offset, so a sealed
//! record cannot be moved to another place and still open.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey};

use super::{KEY_ID_LEN, KeyId};
use crate::error::{Error, Result};
use crate::segment::{Header, Record};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const VERSION_LEN: usize = 4;
/// Bytes a sealed value holds besides the ciphertext of the clear fields.
pub const SEALED_VALUE_OVERHEAD: usize = VERSION_LEN + NONCE_LEN + TAG_LEN;

/// Where a sealed record belongs: what its seal authenticates besides itself.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub backup_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
}

impl Place<'_> {
    fn aad(&self, offset: i64) -> Vec<u8> {
        let mut aad = Vec::with_capacity(48 + self.backup_id.len() + self.topic.len());
        aad.extend_from_slice(b"tidemark shredded record v1\0");
        aad.extend_from_slice(self.backup_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.topic.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&self.partition.to_be_bytes());
        aad.extend_from_slice(&offset.to_be_bytes());
        aad
    }
}

/// A key id and data key version, as a sealed record names them.
pub fn sealed_under(record: &Record) -> Result<(KeyId, u32)> {
    let key_id = record
        .key
        .as_deref()
        .and_then(|key| KeyId::try_from(key).ok())
        .ok_or_else(|| {
            Error::CorruptSegment(format!(
                "the shredded record at offset {} has no {KEY_ID_LEN}-byte key id",
                record.offset
            ))
        })?;
    let version = record
        .value
        .as_deref()
        .filter(|value| value.len() >= SEALED_VALUE_OVERHEAD)
        .map(|value| u32::from_be_bytes(value[..VERSION_LEN].try_into().expect("4 bytes")))
        .ok_or_else(|| {
            Error::CorruptSegment(format!(
                "the shredded record at offset {} has no sealed value",
                record.offset
            ))
        })?;
    Ok((key_id, version))
}

/// Seals `record` (which has a key) under `key`, version `version` of `key_id`.
pub fn seal(
    record: &Record,
    place: &Place<'_>,
    key_id: &KeyId,
    version: u32,
    key: &RandomizedNonceKey,
) -> Result<Record> {
    let mut sealed = Vec::with_capacity(SEALED_VALUE_OVERHEAD + clear_len(record));
    sealed.extend_from_slice(&version.to_be_bytes());
    sealed.extend_from_slice(&[0; NONCE_LEN]);
    let mut body = Vec::with_capacity(clear_len(record) + TAG_LEN);
    write_clear(record, &mut body)?;
    let nonce = key
        .seal_in_place_append_tag(Aad::from(place.aad(record.offset).as_slice()), &mut body)
        .map_err(|_| Error::Encryption("AES-256-GCM failed to seal a record".into()))?;
    sealed[VERSION_LEN..VERSION_LEN + NONCE_LEN].copy_from_slice(nonce.as_ref());
    sealed.extend_from_slice(&body);
    Ok(Record {
        offset: record.offset,
        timestamp: record.timestamp,
        timestamp_type: record.timestamp_type,
        key: Some(key_id.to_vec()),
        value: Some(sealed),
        headers: Vec::new(),
    })
}

/// Opens a record [`seal`] sealed, with the data key it names.
pub fn open(sealed: &Record, place: &Place<'_>, key: &RandomizedNonceKey) -> Result<Record> {
    let value = sealed
        .value
        .as_deref()
        .filter(|value| value.len() >= SEALED_VALUE_OVERHEAD)
        .ok_or_else(|| {
            Error::CorruptSegment(format!(
                "the shredded record at offset {} has no sealed value",
                sealed.offset
            ))
        })?;
    let nonce: [u8; NONCE_LEN] = value[VERSION_LEN..VERSION_LEN + NONCE_LEN]
        .try_into()
        .expect("12 bytes");
    let mut body = value[VERSION_LEN + NONCE_LEN..].to_vec();
    let clear_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(place.aad(sealed.offset).as_slice()),
            &mut body,
        )
        .map_err(|_| {
            Error::Encryption(format!(
                "the shredded record at offset {} failed authentication: altered, moved, or \
                 opened with another key",
                sealed.offset
            ))
        })?
        .len();
    body.truncate(clear_len);
    let mut clear = Record {
        offset: sealed.offset,
        timestamp: sealed.timestamp,
        timestamp_type: sealed.timestamp_type,
        ..Record::empty()
    };
    read_clear(&body, &mut clear).map_err(|detail| {
        Error::CorruptSegment(format!(
            "the shredded record at offset {} opened to malformed fields: {detail}",
            sealed.offset
        ))
    })?;
    Ok(clear)
}

fn clear_len(record: &Record) -> usize {
    4 + record.payload_len() + 5 + 4 + record.headers.len() * 9
}

/// Key, value and headers as length-prefixed fields (u32, big-endian); a nullable one is
/// preceded by a presence byte, so null and empty stay apart.
fn write_clear(record: &Record, out: &mut Vec<u8>) -> Result<()> {
    fn bytes(out: &mut Vec<u8>, value: &[u8]) -> Result<()> {
        let len = u32::try_from(value.len())
            .map_err(|_| Error::InvalidRecords(format!("a field of {} bytes", value.len())))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(value);
        Ok(())
    }
    fn nullable(out: &mut Vec<u8>, value: Option<&[u8]>) -> Result<()> {
        match value {
            None => {
                out.push(0);
                Ok(())
            }
            Some(value) => {
                out.push(1);
                bytes(out, value)
            }
        }
    }
    bytes(out, record.key.as_deref().unwrap_or_default())?;
    nullable(out, record.value.as_deref())?;
    out.extend_from_slice(&(record.headers.len() as u32).to_be_bytes());
    for header in &record.headers {
        bytes(out, header.key.as_bytes())?;
        nullable(out, header.value.as_deref())?;
    }
    Ok(())
}

fn read_clear(mut input: &[u8], record: &mut Record) -> std::result::Result<(), String> {
    fn take<'a>(input: &mut &'a [u8], len: usize) -> std::result::Result<&'a [u8], String> {
        if input.len() < len {
            return Err(format!("{len} bytes wanted, {} left", input.len()));
        }
        let (head, rest) = input.split_at(len);
        *input = rest;
        Ok(head)
    }
    fn u32_field(input: &mut &[u8]) -> std::result::Result<usize, String> {
        Ok(u32::from_be_bytes(take(input, 4)?.try_into().expect("4 bytes")) as usize)
    }
    fn bytes(input: &mut &[u8]) -> std::result::Result<Vec<u8>, String> {
        let len = u32_field(input)?;
        Ok(take(input, len)?.to_vec())
    }
    fn nullable(input: &mut &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        match take(input, 1)?[0] {
            0 => Ok(None),
            1 => bytes(input).map(Some),
            other => Err(format!("presence byte {other}")),
        }
    }
    record.key = Some(bytes(&mut input)?);
    record.value = nullable(&mut input)?;
    let count = u32_field(&mut input)?;
    record.headers = Vec::with_capacity(count.min(input.len()));
    for _ in 0..count {
        let key = String::from_utf8(bytes(&mut input)?)
            .map_err(|_| "a header name is not UTF-8".to_owned())?;
        let value = nullable(&mut input)?;
        record.headers.push(Header { key, value });
    }
    if !input.is_empty() {
        return Err(format!("{} bytes after the last header", input.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::TimestampType;
    use aws_lc_rs::aead::AES_256_GCM;

    fn key() -> RandomizedNonceKey {
        RandomizedNonceKey::new(&AES_256_GCM, &[7u8; 32]).unwrap()
    }

    fn place() -> Place<'static> {
        Place {
            backup_id: "prod",
            topic: "payments",
            partition: 3,
        }
    }

    fn record() -> Record {
        Record {
            offset: 42,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::LogAppendTime,
            key: Some(b"merchant-7".to_vec()),
            value: Some(b"{\"amount\":12}".to_vec()),
            headers: vec![
                Header {
                    key: "trace".into(),
                    value: None,
                },
                Header {
                    key: "empty".into(),
                    value: Some(Vec::new()),
                },
            ],
        }
    }

    #[test]
    fn a_sealed_record_hides_its_fields_and_opens_to_the_same_record() {
        let id = [9u8; KEY_ID_LEN];
        let sealed = seal(&record(), &place(), &id, 5, &key()).unwrap();
        assert_eq!(sealed.key.as_deref(), Some(&id[..]));
        assert!(sealed.headers.is_empty());
        let value = sealed.value.as_deref().unwrap();
        for clear in [&b"merchant-7"[..], b"amount", b"trace"] {
            assert!(
                !value.windows(clear.len()).any(|window| window == clear),
                "{clear:?} is readable in the sealed value"
            );
        }
        assert_eq!(sealed_under(&sealed).unwrap(), (id, 5));
        assert_eq!(open(&sealed, &place(), &key()).unwrap(), record());
    }

    #[test]
    fn a_null_value_stays_null_and_an_empty_one_empty() {
        let id = [1u8; KEY_ID_LEN];
        for value in [None, Some(Vec::new())] {
            let clear = Record {
                value: value.clone(),
                headers: Vec::new(),
                ..record()
            };
            let sealed = seal(&clear, &place(), &id, 1, &key()).unwrap();
            assert_eq!(open(&sealed, &place(), &key()).unwrap().value, value);
        }
    }

    #[test]
    fn a_sealed_record_moved_or_opened_with_another_key_does_not_open() {
        let id = [9u8; KEY_ID_LEN];
        let sealed = seal(&record(), &place(), &id, 5, &key()).unwrap();
        let moved = Record {
            offset: 43,
            ..sealed.clone()
        };
        assert!(matches!(
            open(&moved, &place(), &key()),
            Err(Error::Encryption(_))
        ));
        let elsewhere = Place {
            partition: 4,
            ..place()
        };
        assert!(matches!(
            open(&sealed, &elsewhere, &key()),
            Err(Error::Encryption(_))
        ));
        let other = RandomizedNonceKey::new(&AES_256_GCM, &[8u8; 32]).unwrap();
        assert!(matches!(
            open(&sealed, &place(), &other),
            Err(Error::Encryption(_))
        ));
    }
}
