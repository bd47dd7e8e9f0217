//! The key filter: which record keys a segment may hold, answered without reading its records.
//! Erasure asks it of every segment and reads only those that may hold the key (format spec:
//! `docs/segment-format.md#key-filter`).
//!
//! A binary fuse filter with 8-bit fingerprints (Graf and Lemire, 2022) over the XXH3-64 hash of
//! each non-null key: about 9 bits per distinct key, no false negatives, and a false positive
//! for about one absent key in 256.

use xorf::{BinaryFuse8, Descriptor, Filter};

use crate::error::{Error, Result};

/// Bytes of the filter's descriptor: seed (u64), segment length, its mask and the segments'
/// total length (u32 each), all little-endian.
const DESCRIPTOR_LEN: usize = 20;

/// The hash a key filter holds for a record key: XXH3-64 of its bytes, seed 0.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// A segment's key filter. `None` inside means the segment holds no non-null key.
#[derive(Debug, Clone)]
pub struct KeyFilter(Option<BinaryFuse8>);

impl KeyFilter {
    /// The filter of these key hashes (in any order, repeats allowed; sorted in place).
    pub fn build(hashes: &mut Vec<u64>) -> Result<Self> {
        hashes.sort_unstable();
        hashes.dedup();
        if hashes.is_empty() {
            return Ok(KeyFilter(None));
        }
        BinaryFuse8::try_from(hashes.as_slice())
            .map(|filter| KeyFilter(Some(filter)))
            .map_err(|error| {
                Error::InvalidRecords(format!("no key filter over {} keys: {error}", hashes.len()))
            })
    }

    /// False only when the segment holds no record with this key.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.0
            .as_ref()
            .is_some_and(|filter| filter.contains(&key_hash(key)))
    }

    /// Its stored form: empty for no keys, else the descriptor then the fingerprints.
    pub fn encode(&self) -> Vec<u8> {
        let Some(filter) = &self.0 else {
            return Vec::new();
        };
        let descriptor = &filter.descriptor;
        let mut out = Vec::with_capacity(DESCRIPTOR_LEN + filter.fingerprints.len());
        out.extend_from_slice(&descriptor.seed.to_le_bytes());
        out.extend_from_slice(&descriptor.segment_length.to_le_bytes());
        out.extend_from_slice(&descriptor.segment_length_mask.to_le_bytes());
        out.extend_from_slice(&descriptor.segment_count_length.to_le_bytes());
        out.extend_from_slice(&filter.fingerprints);
        out
    }

    /// Reads a stored filter, checking that its descriptor addresses only its fingerprints.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Ok(KeyFilter(None));
        }
        let corrupt = |what: &str| Error::CorruptSegment(format!("key filter: {what}"));
        if bytes.len() < DESCRIPTOR_LEN {
            return Err(corrupt("shorter than its descriptor"));
        }
        let (descriptor, fingerprints) = bytes.split_at(DESCRIPTOR_LEN);
        let u32_at = |at: usize| u32::from_le_bytes(descriptor[at..at + 4].try_into().expect("4"));
        let descriptor = Descriptor {
            seed: u64::from_le_bytes(descriptor[..8].try_into().expect("8 bytes")),
            segment_length: u32_at(8),
            segment_length_mask: u32_at(12),
            segment_count_length: u32_at(16),
        };
        let length = u64::from(descriptor.segment_length);
        // Lookups index below `segment_count_length + 2 * segment_length` only when segments
        // are a power of two long, the mask is theirs and the total is a whole number of them.
        let addressable = u64::from(descriptor.segment_count_length) + 2 * length;
        if !length.is_power_of_two()
            || u64::from(descriptor.segment_length_mask) != length - 1
            || u64::from(descriptor.segment_count_length) % length != 0
            || (fingerprints.len() as u64) < addressable
        {
            return Err(corrupt("its descriptor does not fit its fingerprints"));
        }
        Ok(KeyFilter(Some(BinaryFuse8 {
            descriptor,
            fingerprints: fingerprints.into(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(count: u64) -> Vec<Vec<u8>> {
        (0..count)
            .map(|n| format!("customer-{n}").into_bytes())
            .collect()
    }

    #[test]
    fn every_key_put_in_is_found_after_a_round_trip_and_few_others_are() {
        let keys = keys(5000);
        let mut hashes: Vec<u64> = keys.iter().map(|key| key_hash(key)).collect();
        hashes.extend(hashes.clone()); // a key repeated in a segment
        let stored = KeyFilter::build(&mut hashes).unwrap().encode();
        // 9 to 11 bits per distinct key (small sets need relatively more room).
        assert!(stored.len() < 5000 * 11 / 8, "{} bytes", stored.len());
        let filter = KeyFilter::decode(&stored).unwrap();
        assert!(keys.iter().all(|key| filter.may_contain(key)));
        let false_positives = (5000..105_000)
            .filter(|n| filter.may_contain(format!("customer-{n}").as_bytes()))
            .count();
        assert!(false_positives < 1000, "{false_positives} in 100000");
    }

    #[test]
    fn a_segment_without_keys_contains_none() {
        let filter = KeyFilter::build(&mut Vec::new()).unwrap();
        assert!(filter.encode().is_empty());
        assert!(!KeyFilter::decode(&[]).unwrap().may_contain(b""));
    }

    #[test]
    fn a_descriptor_that_would_index_past_the_fingerprints_is_refused() {
        let mut stored = KeyFilter::build(&mut vec![1, 2, 3, 4, 5]).unwrap().encode();
        stored.truncate(stored.len() - 1);
        assert!(matches!(
            KeyFilter::decode(&stored),
            Err(Error::CorruptSegment(_))
        ));
        assert!(matches!(
            KeyFilter::decode(&[0; 7]),
            Err(Error::CorruptSegment(_))
        ));
    }
}
