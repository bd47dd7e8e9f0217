//! Client-side encryption of segment bodies: AES-256-GCM under a data key from KMS, with the
//! wrapped key and nonce in the header (format spec: `docs/segment-format.md#encryption`).
//!
//! Sealing is a transform of a finished plain segment, and opening returns the very same
//! bytes, so everything that reads records keeps reading plain segments.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use bytes::Bytes;

use super::header::{Envelope, NONCE_LEN, SegmentHeader, TAG_LEN};
use super::reader::verify_stored_segment;
use super::writer::EncodedSegment;
use crate::error::{Error, Result};

/// Length of an AES-256 key.
pub const DATA_KEY_LEN: usize = 32;

/// A data key: the AES-256-GCM key, and the same key as KMS wrapped it for the header.
pub struct DataKey {
    key: RandomizedNonceKey,
    wrapped: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("wrapped_len", &self.wrapped.len())
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// `plaintext` must be 32 bytes; the caller wipes its copy (the key keeps its own).
    pub fn new(plaintext: &[u8], wrapped: Vec<u8>) -> Result<Self> {
        if plaintext.len() != DATA_KEY_LEN {
            return Err(Error::Encryption(format!(
                "a data key must be {DATA_KEY_LEN} bytes, KMS returned {}",
                plaintext.len()
            )));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, plaintext)
            .map_err(|_| Error::Encryption("AES-256-GCM refused the data key".into()))?;
        Ok(DataKey { key, wrapped })
    }

    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }
}

/// Seals a plain segment's body with `key` (a fresh random nonce each time).
pub fn seal(segment: &EncodedSegment, key: &DataKey) -> Result<EncodedSegment> {
    let plain = &segment.header;
    if plain.encryption.is_some() {
        return Err(Error::Encryption("the segment is already sealed".into()));
    }
    // The key filter is sealed with the body: without the data key it tells nothing.
    let plain_body = &segment.bytes[plain.header_len()..];
    let mut header = SegmentHeader {
        body_len: (plain_body.len() + TAG_LEN) as u64,
        encryption: Some(Envelope {
            wrapped_key: key.wrapped.clone(),
            // Placeholder: the nonce is drawn by the seal below, after the authenticated part
            // of the header (which does not include it) is fixed.
            nonce: [0; NONCE_LEN],
        }),
        ..plain.clone()
    };
    let authenticated = header.encode()?[..header.authenticated_len()].to_vec();
    let mut body = Vec::with_capacity(plain_body.len() + TAG_LEN);
    body.extend_from_slice(plain_body);
    let nonce = key
        .key
        .seal_in_place_append_tag(Aad::from(&authenticated), &mut body)
        .map_err(|_| Error::Encryption("AES-256-GCM failed to seal the body".into()))?;
    header.body_crc32c = crc32c::crc32c(&body);
    if let Some(envelope) = &mut header.encryption {
        envelope.nonce = *nonce.as_ref();
    }
    let mut bytes = header.encode()?;
    bytes.extend_from_slice(&body);
    Ok(EncodedSegment {
        header,
        bytes: bytes.into(),
        max_record_bytes: segment.max_record_bytes,
    })
}

/// The envelope of a stored segment, or `None` when its body is plain. Checks the header only.
pub fn envelope(stored: &[u8]) -> Result<Option<Envelope>> {
    let mut source = stored;
    Ok(SegmentHeader::read_from(&mut source)?.encryption)
}

/// Opens a sealed stored segment with the data key its envelope names, returning the plain
/// segment exactly as it was before sealing. The stored bytes are checked first (header, length,
/// body CRC32C), then the tag authenticates the body and the header's identity fields.
pub fn open(stored: &[u8], key: &DataKey) -> Result<Bytes> {
    let header = verify_stored_segment(stored)?;
    let Some(envelope) = &header.encryption else {
        return Err(Error::Encryption("the segment is not sealed".into()));
    };
    if envelope.wrapped_key != key.wrapped {
        return Err(Error::Encryption(
            "the data key given is not the one the segment names".into(),
        ));
    }
    let authenticated = &stored[..header.authenticated_len()];
    let mut body = stored[header.header_len()..].to_vec();
    let plain_len = key
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(envelope.nonce),
            Aad::from(authenticated),
            &mut body,
        )
        .map_err(|_| {
            Error::Encryption(
                "the body failed authentication: it was altered, or sealed for another segment"
                    .into(),
            )
        })?
        .len();
    body.truncate(plain_len);
    // The plaintext is the plain body followed by the key filter, which goes back after it.
    let filter_len = header.key_filter.map_or(0, |filter| filter.len as usize);
    let body_len = plain_len.checked_sub(filter_len).ok_or_else(|| {
        Error::CorruptSegment(format!(
            "a sealed body of {plain_len} plain bytes cannot hold a key filter of {filter_len}"
        ))
    })?;
    let plain = SegmentHeader {
        body_len: body_len as u64,
        body_crc32c: crc32c::crc32c(&body[..body_len]),
        encryption: None,
        ..header
    };
    let mut bytes = plain.encode()?;
    bytes.extend_from_slice(&body);
    Ok(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Record, SegmentEncoder, SegmentReader, TimestampType};

    /// Bytes zstd cannot compress, so a plain segment holds them verbatim.
    fn incompressible(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect()
    }

    fn plain_segment(topic: &str, partition: i32, secret: &[u8]) -> EncodedSegment {
        let mut encoder = SegmentEncoder::new(topic, partition, 3).unwrap();
        for offset in 0..5 {
            encoder
                .push(&Record {
                    offset,
                    timestamp: 1_700_000_000_000 + offset,
                    timestamp_type: TimestampType::CreateTime,
                    key: Some(format!("card-{offset}").into_bytes()),
                    value: Some(secret.to_vec()),
                    headers: vec![],
                })
                .unwrap();
        }
        encoder.finish().unwrap()
    }

    fn key(seed: u8) -> DataKey {
        DataKey::new(
            &[seed; DATA_KEY_LEN],
            format!("wrapped-{seed}").into_bytes(),
        )
        .unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn sealing_hides_the_records_and_opening_restores_the_plain_segment_exactly() {
        let secret = incompressible(7, 48);
        let plain = plain_segment("payments", 2, &secret);
        assert!(
            contains(&plain.bytes, &secret),
            "precondition: zstd kept the value verbatim"
        );

        let sealed = seal(&plain, &key(1)).unwrap();
        assert!(!contains(&sealed.bytes, &secret));
        let envelope = sealed.header.encryption.as_ref().unwrap();
        assert_eq!(envelope.wrapped_key, b"wrapped-1");
        // The key filter is sealed with the body.
        assert_eq!(
            sealed.header.body_len,
            plain.header.body_len + plain.header.trailer_len() + TAG_LEN as u64
        );
        assert_eq!(sealed.header.trailer_len(), 0);
        assert_eq!(verify_stored_segment(&sealed.bytes).unwrap(), sealed.header);
        assert_eq!(envelope_of(&sealed.bytes), Some(envelope.clone()));
        assert_eq!(envelope_of(&plain.bytes), None);

        let opened = open(&sealed.bytes, &key(1)).unwrap();
        assert_eq!(opened, plain.bytes);

        let again = seal(&plain, &key(1)).unwrap();
        assert_ne!(
            again.header.encryption.as_ref().unwrap().nonce,
            envelope.nonce,
            "every seal draws a fresh nonce"
        );
        assert_eq!(open(&again.bytes, &key(1)).unwrap(), plain.bytes);
    }

    fn envelope_of(stored: &[u8]) -> Option<Envelope> {
        envelope(stored).unwrap()
    }

    #[test]
    fn a_sealed_segment_is_not_read_as_records_without_its_key() {
        let sealed = seal(&plain_segment("payments", 0, b"v"), &key(1)).unwrap();
        assert!(matches!(
            SegmentReader::open(sealed.bytes.as_ref()),
            Err(Error::Encryption(_))
        ));
        assert!(matches!(
            open(&sealed.bytes, &key(2)),
            Err(Error::Encryption(_))
        ));
        let same_name_other_key = DataKey::new(&[9; DATA_KEY_LEN], b"wrapped-1".to_vec()).unwrap();
        assert!(matches!(
            open(&sealed.bytes, &same_name_other_key),
            Err(Error::Encryption(_))
        ));
    }

    #[test]
    fn every_flipped_byte_of_a_sealed_segment_is_refused() {
        let sealed = seal(&plain_segment("payments", 0, b"value"), &key(1)).unwrap();
        for position in 0..sealed.bytes.len() {
            let mut flipped = sealed.bytes.to_vec();
            flipped[position] ^= 0x10;
            assert!(
                open(&flipped, &key(1)).is_err(),
                "flip at byte {position} went unnoticed"
            );
        }
    }

    /// An attacker who can rewrite objects and recompute the CRCs still cannot change the
    /// records or move a body under another segment's identity: the tag covers both.
    #[test]
    fn forged_checksums_do_not_get_past_the_tag() {
        let sealed = seal(&plain_segment("payments", 0, b"value"), &key(1)).unwrap();
        let header_len = sealed.header.header_len();

        let mut body = sealed.bytes[header_len..].to_vec();
        body[3] ^= 0x01;
        let altered_body = SegmentHeader {
            body_crc32c: crc32c::crc32c(&body),
            ..sealed.header.clone()
        };
        let mut forged = altered_body.encode().unwrap();
        forged.extend_from_slice(&body);
        assert!(matches!(open(&forged, &key(1)), Err(Error::Encryption(_))));

        let moved = SegmentHeader {
            partition: 1,
            ..sealed.header.clone()
        };
        let mut forged = moved.encode().unwrap();
        forged.extend_from_slice(&sealed.bytes[header_len..]);
        assert!(matches!(open(&forged, &key(1)), Err(Error::Encryption(_))));
    }

    #[test]
    fn unknown_flags_are_refused() {
        let plain = plain_segment("payments", 0, b"value");
        let mut bytes = plain.bytes.to_vec();
        bytes[9] = 0x10;
        let crc_at = plain.header.header_len() - 4;
        let crc = crc32c::crc32c(&bytes[..crc_at]);
        bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            verify_stored_segment(&bytes),
            Err(Error::CorruptSegment(message)) if message.contains("flags")
        ));
    }
}
