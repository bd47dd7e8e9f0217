//! Erasure: removing every record that matches (a customer's key, say) from a backup, for good.
//!
//! Per partition, in steps that each leave the backup whole and never let an erased record come
//! back (crash-safe like compaction; runbook in `docs/privacy.md`):
//!
//! 1. **Find** (read only): the segments that may hold a match by their key filter, read to the
//!    matching offsets, and the Object Lock retention of each. Compliance retention refuses the
//!    whole erasure before anything changes.
//! 2. **Erase**: first the matching offsets are recorded as gaps of kind `erased`, so the writer
//!    never writes them again and compaction leaves them out; then each segment is rewritten
//!    without them under a new deterministic key, a record of the rewrite is written once, and
//!    the index swaps the entries atomically. A swap lost to compaction or retention re-reads
//!    the index and goes again.
//! 3. **Purge**: every object the index no longer names that holds erased records (rewritten
//!    segments, compaction's retired or orphaned ones) is deleted with all its versions, and
//!    every other object over erased offsets loses its earlier versions only. An unindexed
//!    object that holds no erased record is kept: it may be compaction's merge of the rewrites,
//!    written and about to be switched in.
//! 4. **Verify**: every segment that may still hold a match is read again; any match, any
//!    unindexed object still holding erased records, or any earlier version left of a deleted
//!    one, fails the erasure.

mod matcher;

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use matcher::{Matchers, RecordMatcher};

use crate::checkpoint::{Gap, GapKind};
use crate::error::{Error, Result};
use crate::index::{IndexStore, SegmentEntry};
use crate::keys::SegmentKeys;
use crate::layout::{PartitionId, RunId, SEGMENT_SUFFIX, StorageLayout};
use crate::object_store::{
    ObjectStore, ObjectTags, RetentionMode, get_json, put_json_once, put_rewritten_segment,
};
use crate::segment::{KeyFilter, Record, SegmentEncoder, SegmentHeader, SegmentReader, WriteMark};
use crate::shredding::key_id_hex;

/// Bytes read first to learn a segment's header (most fit; a longer one is read again whole).
const HEADER_PROBE_BYTES: u64 = 4096;
/// How often one partition's erasure re-reads the index after losing a swap before giving up.
const MAX_ROUNDS: usize = 8;

/// A segment that holds matching records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMatch {
    pub key: String,
    pub first_offset: i64,
    pub last_offset: i64,
    pub offsets: Vec<i64>,
}

/// A segment Object Lock holds in compliance mode: nobody can delete it before the date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedSegment {
    pub key: String,
    pub retain_until_ms: i64,
    /// Its records are shredded: destroying the erased keys' data keys erases them in place.
    #[serde(default)]
    pub shredded: bool,
}

/// What an erasure finds in one partition, before it changes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFindings {
    pub topic: String,
    #[serde(default)]
    pub generation: u32,
    pub partition: i32,
    /// Segments starting below this offset (the checkpoint when the erasure began) are in scope.
    pub horizon: i64,
    pub segments_indexed: usize,
    /// Segments read because their key filter could not rule them out.
    pub segments_read: usize,
    pub matches: Vec<SegmentMatch>,
    pub locked: Vec<LockedSegment>,
}

impl PartitionFindings {
    pub fn records(&self) -> usize {
        self.matches.iter().map(|found| found.offsets.len()).sum()
    }
}

/// One segment rewritten without erased records: written once before the index swaps, so a
/// retried step reports it and the purge finds the object to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    pub old_key: String,
    /// `None` when every record of the segment was erased.
    pub new_key: Option<String>,
    pub first_offset: i64,
    pub last_offset: i64,
    pub erased_offsets: Vec<i64>,
}

/// What purging one partition deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    pub objects_deleted: usize,
    /// Object versions and delete markers deleted (with versioning, more than one per object).
    pub versions_deleted: usize,
    /// Objects of a shredded backup that Object Lock keeps: what they hold of the erased keys
    /// is sealed under the versions the erasure destroys.
    #[serde(default)]
    pub objects_kept_locked: usize,
}

/// What the verification of one partition found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub segments_read: usize,
    /// Where a match (or an erased offset) is still stored; empty when the erasure holds.
    pub remaining: Vec<String>,
    /// Objects over erased offsets that Object Lock keeps in a shredded backup (unreadable
    /// once the erased keys' versions are destroyed).
    #[serde(default)]
    pub kept_locked: Vec<String>,
}

/// What an erasure of a shredded backup matches in shredded segments, and what it may keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShreddedErasure {
    /// The key ids of the erasure's keys (as hex), each with the versions its first step
    /// retired. `None` before they are retired (a dry run): every version matches.
    pub retired: BTreeMap<String, Option<Vec<u32>>>,
}

impl ShreddedErasure {
    /// Whether a record of a shredded segment is one to erase: sealed under a retired version
    /// of an erased key id. Records sealed under a version created after the retirement are
    /// kept, as a plain erasure keeps records backed up after its find.
    fn matches(&self, record: &Record) -> Result<bool> {
        if record.key.is_none() {
            return Ok(false);
        }
        let (key_id, version) = crate::shredding::record::sealed_under(record)?;
        Ok(match self.retired.get(&key_id_hex(&key_id)) {
            None => false,
            Some(None) => true,
            Some(Some(versions)) => versions.contains(&version),
        })
    }
}

/// Everything an erasure of one backup needs, borrowed.
pub struct Eraser<'a> {
    pub objects: &'a dyn ObjectStore,
    pub index: &'a dyn IndexStore,
    pub keys: &'a SegmentKeys,
    pub layout: &'a StorageLayout,
    pub erasure: &'a RunId,
    /// The matchers; for a shredded backup they also name the key ids (for key filters).
    pub matchers: &'a Matchers,
    /// Set for a shredded backup: matching in shredded segments, and kept locked objects.
    pub shredded: Option<&'a ShreddedErasure>,
    pub compression_level: i32,
}

impl Eraser<'_> {
    /// Step 1, read only: which segments of `partition` below `horizon` hold matches, and
    /// which of them Object Lock holds until after `now_ms`.
    pub async fn find(
        &self,
        partition: &PartitionId,
        horizon: i64,
        now_ms: i64,
    ) -> Result<PartitionFindings> {
        let entries = self.index.segments(partition).await?;
        let erased = self.erased_gaps(partition).await?;
        let mut findings = PartitionFindings {
            topic: partition.topic.clone(),
            generation: partition.generation,
            partition: partition.partition,
            horizon,
            segments_indexed: entries.len(),
            segments_read: 0,
            matches: Vec::new(),
            locked: Vec::new(),
        };
        for entry in entries.iter().filter(|entry| entry.first_offset < horizon) {
            if !self.may_match(&entry.key).await? {
                continue;
            }
            findings.segments_read += 1;
            let (plain, offsets) = self.matching_offsets(partition, entry, &erased).await?;
            if offsets.is_empty() {
                continue;
            }
            if let Some(retention) = self.objects.retention(&entry.key).await?
                && retention.mode == RetentionMode::Compliance
                && retention.retain_until_ms > now_ms
            {
                findings.locked.push(LockedSegment {
                    key: entry.key.clone(),
                    retain_until_ms: retention.retain_until_ms,
                    shredded: SegmentHeader::read_from(&mut plain.as_ref())?.shredded,
                });
            }
            findings.matches.push(SegmentMatch {
                key: entry.key.clone(),
                first_offset: entry.first_offset,
                last_offset: entry.last_offset,
                offsets,
            });
        }
        Ok(findings)
    }

    /// Step 2: marks the matching offsets erased, rewrites each segment that holds them and
    /// swaps the index to the rewrite, until no indexed segment below `horizon` holds a match.
    /// `tags` go on the rewritten segments (the partition's retention tier). Returns every
    /// rewrite this erasure made of the partition, this call's and earlier attempts'.
    pub async fn erase(
        &self,
        partition: &PartitionId,
        horizon: i64,
        tags: &ObjectTags,
        now_ms: i64,
    ) -> Result<Vec<Rewrite>> {
        for _round in 0..MAX_ROUNDS {
            let erased = self.erased_gaps(partition).await?;
            let mut lost_a_swap = false;
            for entry in self.index.segments(partition).await? {
                if entry.first_offset >= horizon || !self.may_match(&entry.key).await? {
                    continue;
                }
                let (plain, offsets) = self.matching_offsets(partition, &entry, &erased).await?;
                if offsets.is_empty() {
                    continue;
                }
                // Marked first: from here on no writer, compaction or reader brings them back.
                self.index
                    .record_gaps(partition, &erased_runs(&offsets, now_ms))
                    .await?;
                let rewrite = self
                    .rewrite(partition, &entry, plain, &offsets, tags, now_ms)
                    .await?;
                if !self
                    .index
                    .swap_segment(partition, &entry, rewrite.as_ref())
                    .await?
                {
                    lost_a_swap = true;
                }
            }
            if !lost_a_swap {
                return self.rewrites(partition).await;
            }
        }
        Err(Error::IndexStore {
            operation: "erase",
            message: format!(
                "the index of {partition} kept changing during {MAX_ROUNDS} rounds; retry"
            ),
            retryable: true,
        })
    }

    /// Step 3: deletes, with every version, each object of `partition` that the index no longer
    /// names and that holds erased records, and the earlier versions of every other object over
    /// erased offsets. Refuses objects under compliance retention.
    pub async fn purge(&self, partition: &PartitionId, now_ms: i64) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        for stored in self.stored_over_erased(partition).await? {
            if self.shredded.is_some() && self.locked(&stored.key, now_ms).await? {
                // Its records of the erased keys are sealed under versions the erasure destroys
                // next: kept, and unreadable.
                report.objects_kept_locked += 1;
                continue;
            }
            let versions = match stored.disposal {
                Disposal::EveryVersion => {
                    if let Some(retention) = self.objects.retention(&stored.key).await?
                        && retention.mode == RetentionMode::Compliance
                        && retention.retain_until_ms > now_ms
                    {
                        return Err(Error::ErasureRefused(format!(
                            "{} is under Object Lock compliance retention until {}",
                            stored.key,
                            format_ms(retention.retain_until_ms)
                        )));
                    }
                    self.objects.delete_all_versions(&stored.key).await?
                }
                Disposal::EarlierVersions => {
                    self.objects.delete_noncurrent_versions(&stored.key).await?
                }
            };
            if versions > 0 && (stored.disposal == Disposal::EveryVersion || !stored.live) {
                report.objects_deleted += 1;
            }
            report.versions_deleted += versions;
        }
        Ok(report)
    }

    /// Whether Object Lock in compliance mode holds `key`'s current version after `now_ms`.
    async fn locked(&self, key: &str, now_ms: i64) -> Result<bool> {
        Ok(self.objects.retention(key).await?.is_some_and(|retention| {
            retention.mode == RetentionMode::Compliance && retention.retain_until_ms > now_ms
        }))
    }

    /// Whether the current version of `key` is a shredded segment.
    async fn is_shredded(&self, key: &str) -> Result<bool> {
        Ok(read_stored_header(self.objects, key)
            .await?
            .is_some_and(|header| header.shredded))
    }

    /// Step 4: reads every indexed segment below `horizon` that may hold a match, and lists
    /// what is still stored over erased offsets outside the index (in a shredded backup,
    /// objects Object Lock keeps are left to the destroyed keys).
    pub async fn verify(
        &self,
        partition: &PartitionId,
        horizon: i64,
        now_ms: i64,
    ) -> Result<Verification> {
        let erased = self.erased_gaps(partition).await?;
        let mut verification = Verification::default();
        for entry in self.index.segments(partition).await? {
            if entry.first_offset >= horizon || !self.may_match(&entry.key).await? {
                continue;
            }
            verification.segments_read += 1;
            let offsets = self.matching_offsets(partition, &entry, &erased).await?.1;
            if let Some(first) = offsets.first() {
                verification.remaining.push(format!(
                    "{} holds {} matching record(s), the first at offset {first}",
                    entry.key,
                    offsets.len()
                ));
            }
        }
        for stored in self.stored_over_erased(partition).await? {
            if self.shredded.is_some()
                && self.locked(&stored.key, now_ms).await?
                && self.is_shredded(&stored.key).await?
            {
                verification.kept_locked.push(stored.key);
            } else if stored.disposal == Disposal::EveryVersion {
                verification.remaining.push(format!(
                    "{} (not indexed) still holds erased records",
                    stored.key
                ));
            } else if !stored.live {
                verification.remaining.push(format!(
                    "earlier versions of {} are still stored",
                    stored.key
                ));
            }
        }
        Ok(verification)
    }

    /// Every rewrite this erasure recorded for `partition`, in offset order.
    pub async fn rewrites(&self, partition: &PartitionId) -> Result<Vec<Rewrite>> {
        let mut rewrites = Vec::new();
        for key in self.objects.list(&self.rewrites_prefix(partition)).await? {
            if let Some(rewrite) = get_json::<Rewrite>(self.objects, &key).await? {
                rewrites.push(rewrite);
            }
        }
        rewrites.sort_by_key(|rewrite| (rewrite.first_offset, rewrite.last_offset));
        Ok(rewrites)
    }

    /// Where this erasure records its rewrites of `partition` (as [`kept_by_object_lock`]
    /// reads them).
    fn rewrites_prefix(&self, partition: &PartitionId) -> String {
        format!(
            "{}rewrites/{}/{}/{}/",
            self.layout
                .erasure_prefix(&partition.backup_id, self.erasure),
            partition.topic,
            partition.generation,
            partition.partition
        )
    }

    async fn erased_gaps(&self, partition: &PartitionId) -> Result<Vec<Gap>> {
        Ok(self
            .index
            .gaps(partition)
            .await?
            .into_iter()
            .filter(|gap| gap.kind == GapKind::Erased)
            .collect())
    }

    /// False only when the segment's key filter rules out every matcher.
    async fn may_match(&self, key: &str) -> Result<bool> {
        if !self.matchers.by_key_only() {
            return Ok(true);
        }
        Ok(self
            .matchers
            .may_match(read_key_filter(self.objects, key).await?.as_ref()))
    }

    /// The segment's plain bytes and the offsets in it that match, or that an erasure marked
    /// (one that stopped before its rewrite).
    async fn matching_offsets(
        &self,
        partition: &PartitionId,
        entry: &SegmentEntry,
        erased: &[Gap],
    ) -> Result<(Bytes, Vec<i64>)> {
        let stored = self
            .objects
            .get(&entry.key)
            .await?
            .ok_or_else(|| Error::ObjectStore {
                operation: "GetObject",
                key: entry.key.clone(),
                message: "the segment was replaced while it was read; retry".into(),
                retryable: true,
            })?;
        let plain = self.keys.plain(&partition.backup_id, stored).await?;
        let mut reader = SegmentReader::open(plain.as_ref())?;
        let shredded = match self.shredded {
            Some(shredded) if reader.header().shredded => Some(shredded),
            _ => None,
        };
        let mut offsets = Vec::new();
        let mut record = Record::empty();
        while reader.next_record_into(&mut record)? {
            let matches = match shredded {
                Some(shredded) => shredded.matches(&record)?,
                None => self.matchers.matches(&record),
            };
            if matches || erased.iter().any(|gap| gap.contains(record.offset)) {
                offsets.push(record.offset);
            }
        }
        Ok((plain, offsets))
    }

    /// Writes `entry`'s segment again without `erased` offsets, records the rewrite, and returns
    /// the new entry (`None` when nothing is left).
    async fn rewrite(
        &self,
        partition: &PartitionId,
        entry: &SegmentEntry,
        plain: Bytes,
        erased: &[i64],
        tags: &ObjectTags,
        now_ms: i64,
    ) -> Result<Option<SegmentEntry>> {
        let marks = entry.marks();
        let level = self.compression_level;
        let erased_set: std::collections::HashSet<i64> = erased.iter().copied().collect();
        let rewritten = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut kept = Vec::new();
            let mut reader = SegmentReader::open(plain.as_ref())?;
            let header: SegmentHeader = reader.header().clone();
            while let Some(record) = reader.next_record()? {
                if !erased_set.contains(&record.offset) {
                    kept.push(record.offset);
                }
            }
            if kept.is_empty() {
                return Ok(None);
            }
            let marks = remap_marks(&marks, &kept);
            let mut encoder =
                SegmentEncoder::with_write_marks(&header.topic, header.partition, level, marks)?
                    .shredded(header.shredded);
            let mut reader = SegmentReader::open(plain.as_ref())?;
            while let Some(record) = reader.next_record()? {
                if !erased_set.contains(&record.offset) {
                    encoder.push(&record)?;
                }
            }
            encoder.finish().map(Some)
        })
        .await
        .map_err(|error| Error::InvalidRecords(format!("rewriting task failed: {error}")))??;

        let new_entry = match rewritten {
            None => None,
            Some(segment) => {
                let max_record_bytes = segment.max_record_bytes;
                let stored = self
                    .keys
                    .protect(&partition.backup_id, segment.clone())
                    .await?;
                let key = self.layout.erased_segment_key(
                    partition,
                    stored.header.first_offset,
                    stored.header.last_offset,
                    self.erasure,
                );
                // A retried step finds its own earlier write (same records) and keeps it.
                let (header, stored_bytes) = put_rewritten_segment(
                    self.objects,
                    self.keys,
                    &partition.backup_id,
                    &key,
                    &segment,
                    stored,
                    tags,
                    "erasure",
                )
                .await?;
                Some(SegmentEntry {
                    max_record_bytes: Some(max_record_bytes),
                    ..SegmentEntry::new(key, &header, stored_bytes, now_ms)
                })
            }
        };
        let file_name = entry.key.rsplit('/').next().unwrap_or(&entry.key);
        put_json_once(
            self.objects,
            &format!("{}{file_name}.json", self.rewrites_prefix(partition)),
            &Rewrite {
                old_key: entry.key.clone(),
                new_key: new_entry.as_ref().map(|new| new.key.clone()),
                first_offset: entry.first_offset,
                last_offset: entry.last_offset,
                erased_offsets: erased.to_vec(),
            },
        )
        .await?;
        Ok(new_entry)
    }

    /// Every segment object of `partition` (any version) over erased offsets, or replaced by
    /// this erasure's rewrites, and what the purge does with it.
    async fn stored_over_erased(&self, partition: &PartitionId) -> Result<Vec<StoredOverErased>> {
        let erased = self.erased_gaps(partition).await?;
        let indexed: HashSet<String> = self
            .index
            .segments(partition)
            .await?
            .into_iter()
            .map(|entry| entry.key)
            .collect();
        let rewritten: HashSet<String> = self
            .rewrites(partition)
            .await?
            .into_iter()
            .map(|rewrite| rewrite.old_key)
            .collect();
        let prefix = self.layout.partition_prefix(partition);
        let live: HashSet<String> = self.objects.list(&prefix).await?.into_iter().collect();
        let mut found = Vec::new();
        for key in self.objects.list_version_keys(&prefix).await? {
            let over_erased = key.ends_with(SEGMENT_SUFFIX)
                && (rewritten.contains(&key)
                    || StorageLayout::parse_segment_file_name(&key).is_some_and(
                        |(first, last)| {
                            erased
                                .iter()
                                .any(|gap| gap.start <= last && gap.end >= first)
                        },
                    ));
            if !over_erased {
                continue;
            }
            let live = live.contains(&key);
            // An object that holds erased records can never be switched into the index: every
            // switch is conditional on segments the erasure has switched out. One that holds
            // none may be compaction's merge, about to be.
            let disposal = if live
                && !indexed.contains(&key)
                && (rewritten.contains(&key) || self.holds_erased(partition, &key, &erased).await?)
            {
                Disposal::EveryVersion
            } else {
                Disposal::EarlierVersions
            };
            found.push(StoredOverErased {
                key,
                live,
                disposal,
            });
        }
        Ok(found)
    }

    /// Whether the current version of `key` holds a record at an erased offset.
    async fn holds_erased(
        &self,
        partition: &PartitionId,
        key: &str,
        erased: &[Gap],
    ) -> Result<bool> {
        let Some(stored) = self.objects.get(key).await? else {
            return Ok(false);
        };
        let plain = self.keys.plain(&partition.backup_id, stored).await?;
        let mut reader = SegmentReader::open(plain.as_ref())?;
        let mut record = Record::empty();
        while reader.next_record_into(&mut record)? {
            if erased.iter().any(|gap| gap.contains(record.offset)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A stored segment object over erased offsets.
struct StoredOverErased {
    key: String,
    /// It has a current version (not only earlier ones or a delete marker).
    live: bool,
    disposal: Disposal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposal {
    /// Not indexed and holds erased records: every version goes.
    EveryVersion,
    /// Indexed, deleted already, or holding no erased record: its current version stays, its
    /// earlier versions (which may hold erased records) go.
    EarlierVersions,
}

/// The segments of `partition` that Object Lock keeps after an erasure rewrote them (in a
/// shredded backup: what they hold of the erased keys is sealed under destroyed versions).
/// Validation expects them, unindexed.
pub async fn kept_by_object_lock(
    objects: &dyn ObjectStore,
    layout: &StorageLayout,
    partition: &PartitionId,
    unindexed: &[String],
    now_ms: i64,
) -> Result<HashSet<String>> {
    let mut kept = HashSet::new();
    if unindexed.is_empty() {
        return Ok(kept);
    }
    let rewrites_of_partition = format!(
        "/rewrites/{}/{}/{}/",
        partition.topic, partition.generation, partition.partition
    );
    let mut rewritten = HashSet::new();
    for key in objects
        .list(&layout.erasures_prefix(&partition.backup_id))
        .await?
        .into_iter()
        .filter(|key| key.contains(&rewrites_of_partition))
    {
        if let Some(rewrite) = get_json::<Rewrite>(objects, &key).await? {
            rewritten.insert(rewrite.old_key);
        }
    }
    for key in unindexed.iter().filter(|key| rewritten.contains(*key)) {
        if objects.retention(key).await?.is_some_and(|retention| {
            retention.mode == RetentionMode::Compliance && retention.retain_until_ms > now_ms
        }) {
            kept.insert(key.clone());
        }
    }
    Ok(kept)
}

/// A stored segment's header, read with one small ranged GET (two for a header longer than the
/// probe); `None` when the object is gone.
async fn read_stored_header(objects: &dyn ObjectStore, key: &str) -> Result<Option<SegmentHeader>> {
    let Some(head) = objects.get_head(key, HEADER_PROBE_BYTES).await? else {
        return Ok(None);
    };
    let header_len = head
        .get(6..8)
        .map_or(0, |len| u64::from(u16::from_be_bytes([len[0], len[1]])));
    let head = if header_len > head.len() as u64 {
        match objects.get_head(key, header_len).await? {
            Some(head) => head,
            None => return Ok(None),
        }
    } else {
        head
    };
    SegmentHeader::read_from(&mut head.as_ref()).map(Some)
}

/// A stored segment's key filter, read with two small ranged GETs (header, then filter);
/// `None` when the segment has none to offer (written before filters, or sealed: its filter is
/// inside the encrypted body) or is gone.
pub async fn read_key_filter(objects: &dyn ObjectStore, key: &str) -> Result<Option<KeyFilter>> {
    let Some(header) = read_stored_header(objects, key).await? else {
        return Ok(None);
    };
    let Some(section) = header.key_filter.filter(|_| header.encryption.is_none()) else {
        return Ok(None);
    };
    if section.len == 0 {
        return KeyFilter::decode(&[]).map(Some);
    }
    let Some(bytes) = objects
        .get_range(key, header.body_end(), u64::from(section.len))
        .await?
    else {
        return Ok(None);
    };
    if crc32c::crc32c(&bytes) != section.crc32c {
        return Err(Error::CorruptSegment(format!(
            "{key}: key filter checksum mismatch"
        )));
    }
    KeyFilter::decode(&bytes).map(Some)
}

/// A time for people: RFC 3339, UTC.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |time| time.to_rfc3339())
}

/// `offsets` (ascending) as gaps of kind erased, one per run of consecutive offsets.
pub fn erased_runs(offsets: &[i64], now_ms: i64) -> Vec<Gap> {
    let mut gaps: Vec<Gap> = Vec::new();
    for &offset in offsets {
        match gaps.last_mut() {
            Some(gap) if gap.end + 1 == offset => gap.end = offset,
            _ => gaps.push(Gap::erased(offset, offset, now_ms)),
        }
    }
    gaps
}

/// A segment's write marks once some of its records are gone: each mark now reaches the
/// highest kept offset at or below it (marks below every kept offset go), so a consistent cut
/// still ends where the backup had reached.
fn remap_marks(marks: &[WriteMark], kept: &[i64]) -> Vec<WriteMark> {
    marks
        .iter()
        .filter_map(|mark| {
            let reached = kept.partition_point(|&offset| offset <= mark.last_offset);
            (reached > 0).then(|| WriteMark {
                last_offset: kept[reached - 1],
                written_at_ms: mark.written_at_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod shredded_tests;
#[cfg(test)]
mod tests;
