//! Names and places: backup ids, partition identities and the S3 key layout.
//!
//! `{prefix}/{backup_id}/topics/{topic}/partition={p}/{first:020}-{last:020}.seg.zst`
//! Offsets are zero-padded to 20 digits so that keys sort in offset order.

use std::fmt;

use crate::error::{Error, Result};

/// A backup id names one backup lineage (one cluster, one set of settings). It appears in S3
/// keys and DynamoDB keys, so it is restricted to characters safe in both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackupId(String);

impl BackupId {
    pub fn parse(value: &str) -> Result<Self> {
        let valid_chars = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if value.is_empty() || value.len() > 128 || !valid_chars || value.starts_with('.') {
            return Err(Error::Config(format!(
                "backup id {value:?} must be 1-128 characters of letters, digits, '-', '_' or '.', not starting with '.'"
            )));
        }
        if value == OFFSET_RESETS_FOLDER || value == AUDIT_FOLDER {
            return Err(Error::Config(format!(
                "backup id {value:?} is reserved: Tidemark keeps its {value} records under it"
            )));
        }
        Ok(BackupId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A restore id names one restore run (the Step Functions execution name). It appears in S3
/// keys, so it is held to the execution name's safe characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RestoreId(String);

impl RestoreId {
    pub fn parse(value: &str) -> Result<Self> {
        check_execution_name("restore id", value).map(RestoreId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An execution name used as an id: what Step Functions allows, and safe in an S3 key.
fn check_execution_name(kind: &str, value: &str) -> Result<String> {
    let valid_chars = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if value.is_empty() || value.len() > 80 || !valid_chars {
        return Err(Error::Config(format!(
            "{kind} {value:?} must be 1-80 characters of letters, digits, '-' or '_'"
        )));
    }
    Ok(value.to_owned())
}

/// One offset reset (the offset-reset state machine's execution name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResetId(String);

impl ResetId {
    pub fn parse(value: &str) -> Result<Self> {
        check_execution_name("offset reset id", value).map(ResetId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RestoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One run of a scheduled job, validation or maintenance (its state machine's execution name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    pub fn parse(value: &str) -> Result<Self> {
        check_execution_name("run id", value).map(RunId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a Kafka topic name by Kafka's own rule: 1-249 characters of `[a-zA-Z0-9._-]`.
pub fn validate_topic_name(topic: &str) -> Result<()> {
    let valid_chars = topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if topic.is_empty() || topic.len() > 249 || !valid_chars || topic == "." || topic == ".." {
        return Err(Error::InvalidEvent(format!(
            "{topic:?} is not a valid Kafka topic name"
        )));
    }
    Ok(())
}

/// One partition of one generation of a topic within one backup. A topic deleted and
/// recreated under the same name is a new generation: its offsets start again, so each
/// generation is a partition history of its own, under keys of its own. Generation 0 is the
/// topic the backup first saw, and its keys are those of backups made before generations
/// existed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionId {
    pub backup_id: BackupId,
    pub topic: String,
    pub partition: i32,
    pub generation: u32,
}

impl PartitionId {
    /// A partition of generation 0.
    pub fn new(backup_id: BackupId, topic: impl Into<String>, partition: i32) -> Self {
        PartitionId {
            backup_id,
            topic: topic.into(),
            partition,
            generation: 0,
        }
    }

    pub fn in_generation(self, generation: u32) -> Self {
        PartitionId { generation, ..self }
    }

    /// Where a run (validation, maintenance) keeps this partition's result, under the run's
    /// prefix: `partitions/{topic}/{p}.json`, and for a later generation
    /// `partitions/{topic}/generation={g}/{p}.json`, so two generations never share one.
    pub fn run_result_key(&self, run_prefix: &str) -> String {
        match self.generation {
            0 => format!(
                "{run_prefix}partitions/{}/{}.json",
                self.topic, self.partition
            ),
            g => format!(
                "{run_prefix}partitions/{}/generation={g}/{}.json",
                self.topic, self.partition
            ),
        }
    }

    /// `topic-partition`, with the generation after 0: how reports name a partition.
    pub fn place(topic: &str, partition: i32, generation: u32) -> String {
        match generation {
            0 => format!("{topic}-{partition}"),
            g => format!("{topic}-{partition} (generation {g})"),
        }
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.backup_id,
            Self::place(&self.topic, self.partition, self.generation)
        )
    }
}

/// Where a backup's objects live in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageLayout {
    prefix: String,
}

pub const SEGMENT_SUFFIX: &str = ".seg.zst";

const GENERATION_FOLDER: &str = "generation=";

/// `generation={g}/` for a later generation, nothing for generation 0.
fn generation_folder(generation: u32) -> String {
    if generation == 0 {
        String::new()
    } else {
        format!("{GENERATION_FOLDER}{generation}/")
    }
}

/// The folder beside the backups where offset resets keep their plans and snapshots.
const OFFSET_RESETS_FOLDER: &str = "offset-resets";

/// The folder beside the backups where the audit trail lives.
const AUDIT_FOLDER: &str = "audit";

impl StorageLayout {
    /// `prefix` may be empty; surrounding slashes are ignored.
    pub fn new(prefix: &str) -> Result<Self> {
        let prefix = prefix.trim_matches('/');
        if prefix.contains("//") {
            return Err(Error::Config(format!(
                "prefix {prefix:?} contains an empty path segment"
            )));
        }
        Ok(StorageLayout {
            prefix: prefix.to_owned(),
        })
    }

    fn root(&self, backup_id: &BackupId) -> String {
        if self.prefix.is_empty() {
            backup_id.to_string()
        } else {
            format!("{}/{backup_id}", self.prefix)
        }
    }

    /// Prefix under which every segment of one partition lives, ending in `/`. Generation 0
    /// has no generation folder, so backups made before generations read unchanged.
    pub fn partition_prefix(&self, partition: &PartitionId) -> String {
        format!(
            "{}{}partition={}/",
            self.topic_prefix(&partition.backup_id, &partition.topic),
            generation_folder(partition.generation),
            partition.partition
        )
    }

    /// Prefix of everything of one topic, every generation, ending in `/`.
    pub fn topic_prefix(&self, backup_id: &BackupId, topic: &str) -> String {
        format!("{}{topic}/", self.topics_prefix(backup_id))
    }

    /// The deterministic key of the segment holding offsets `first..=last` of `partition`: a
    /// retried batch lands on the same key (invariant 2).
    pub fn segment_key(
        &self,
        partition: &PartitionId,
        first_offset: i64,
        last_offset: i64,
    ) -> String {
        format!(
            "{}{first_offset:020}-{last_offset:020}{SEGMENT_SUFFIX}",
            self.partition_prefix(partition)
        )
    }

    /// Where an erasure writes a segment it rewrote without the erased records: the range's
    /// name tagged with the erasure, so it never collides with the segment it replaces.
    pub fn erased_segment_key(
        &self,
        partition: &PartitionId,
        first_offset: i64,
        last_offset: i64,
        erasure: &RunId,
    ) -> String {
        format!(
            "{}{first_offset:020}-{last_offset:020}.erased-{erasure}{SEGMENT_SUFFIX}",
            self.partition_prefix(partition)
        )
    }

    /// Where a shredded batch goes when an earlier attempt left the same range under its
    /// [`Self::segment_key`] sealed under data keys an erasure has since retired (that object is
    /// never indexed). Tagged with the batch's records checksum, so each sealing has a name of
    /// its own.
    pub fn resealed_segment_key(
        &self,
        partition: &PartitionId,
        first_offset: i64,
        last_offset: i64,
        records_crc32c: u32,
    ) -> String {
        format!(
            "{}{first_offset:020}-{last_offset:020}.resealed-{records_crc32c:08x}{SEGMENT_SUFFIX}",
            self.partition_prefix(partition)
        )
    }

    /// Where every erasure of a backup keeps its records, ending in `/`.
    pub fn erasures_prefix(&self, backup_id: &BackupId) -> String {
        format!("{}/erasures/", self.root(backup_id))
    }

    /// Where one erasure keeps its findings, its rewrite records and its report, ending in `/`.
    pub fn erasure_prefix(&self, backup_id: &BackupId, erasure: &RunId) -> String {
        format!("{}{erasure}/", self.erasures_prefix(backup_id))
    }

    /// Where a backup's cluster snapshots live, ending in `/`.
    pub fn snapshots_prefix(&self, backup_id: &BackupId) -> String {
        format!("{}/snapshots/", self.root(backup_id))
    }

    /// The snapshot taken at `taken_at_ms`; zero padding keeps listing order = time order.
    pub fn snapshot_key(&self, backup_id: &BackupId, taken_at_ms: i64) -> String {
        format!(
            "{}{taken_at_ms:020}.json.zst",
            self.snapshots_prefix(backup_id)
        )
    }

    /// Where every backed-up topic's segments live, ending in `/`: one folder per topic.
    pub fn topics_prefix(&self, backup_id: &BackupId) -> String {
        format!("{}/topics/", self.root(backup_id))
    }

    /// Where one offset reset keeps its plan and the offsets it found, ending in `/`.
    pub fn offset_reset_prefix(&self, reset_id: &ResetId) -> String {
        if self.prefix.is_empty() {
            format!("{OFFSET_RESETS_FOLDER}/{reset_id}/")
        } else {
            format!("{}/{OFFSET_RESETS_FOLDER}/{reset_id}/", self.prefix)
        }
    }

    /// The audit record of one operation's outcome: one object, written once.
    pub fn audit_key(&self, operation: &str, id: &str, outcome: &str) -> String {
        let folder = if self.prefix.is_empty() {
            AUDIT_FOLDER.to_owned()
        } else {
            format!("{}/{AUDIT_FOLDER}", self.prefix)
        };
        format!("{folder}/{operation}/{id}-{outcome}.json")
    }

    /// Where a backup's recovery drills keep their evidence, ending in `/`.
    pub fn drills_prefix(&self, backup_id: &BackupId) -> String {
        format!("{}/drills/", self.root(backup_id))
    }

    /// Where one recovery drill keeps its per-partition evidence and its report, ending in `/`.
    pub fn drill_prefix(&self, backup_id: &BackupId, drill_id: &RestoreId) -> String {
        format!("{}{drill_id}/", self.drills_prefix(backup_id))
    }

    /// The offset mapping a finished restore leaves for the offset reset that follows it.
    pub fn restore_offset_mapping_key(
        &self,
        backup_id: &BackupId,
        restore_id: &RestoreId,
    ) -> String {
        format!(
            "{}offset-mapping.json",
            self.restore_prefix(backup_id, restore_id)
        )
    }

    /// Where one validation run keeps its per-partition results and its report, ending in `/`.
    pub fn validation_prefix(&self, backup_id: &BackupId, run: &RunId) -> String {
        format!("{}/validations/{run}/", self.root(backup_id))
    }

    /// Where one maintenance run keeps its per-partition results, ending in `/`.
    pub fn maintenance_prefix(&self, backup_id: &BackupId, run: &RunId) -> String {
        format!("{}/maintenance/{run}/", self.root(backup_id))
    }

    /// Where one restore keeps its plan, progress, offset maps and report, ending in `/`.
    pub fn restore_prefix(&self, backup_id: &BackupId, restore_id: &RestoreId) -> String {
        format!("{}/restores/{restore_id}/", self.root(backup_id))
    }

    /// A restore's plan: written once by the coordinator, read by its steps and the CLI.
    pub fn restore_plan_key(&self, backup_id: &BackupId, restore_id: &RestoreId) -> String {
        format!("{}plan.json", self.restore_prefix(backup_id, restore_id))
    }

    /// A restore's partition tasks, the input of its distributed map (a drill reads them back).
    pub fn restore_partitions_key(&self, backup_id: &BackupId, restore_id: &RestoreId) -> String {
        format!(
            "{}partitions.json",
            self.restore_prefix(backup_id, restore_id)
        )
    }

    /// Where a restore records how far each partition got, ending in `/`.
    pub fn restore_progress_prefix(&self, backup_id: &BackupId, restore_id: &RestoreId) -> String {
        format!("{}progress/", self.restore_prefix(backup_id, restore_id))
    }

    /// One partition's progress objects under [`Self::restore_progress_prefix`], ending in `/`.
    pub fn partition_progress_prefix(
        &self,
        backup_id: &BackupId,
        restore_id: &RestoreId,
        topic: &str,
        partition: i32,
    ) -> String {
        format!(
            "{}{topic}/{partition}/",
            self.restore_progress_prefix(backup_id, restore_id)
        )
    }

    /// The progress object of `progress`'s partition: `{produced:020}-1-partial.json` or
    /// `{produced:020}-2-done.json`. Names sort by records produced, then partial before done,
    /// so the last one listed is the latest.
    pub fn progress_key(
        &self,
        backup_id: &BackupId,
        restore_id: &RestoreId,
        progress: &ProgressKey,
    ) -> String {
        let state = if progress.done { DONE } else { PARTIAL };
        format!(
            "{}{:020}-{state}{PROGRESS_SUFFIX}",
            self.partition_progress_prefix(
                backup_id,
                restore_id,
                &progress.topic,
                progress.partition
            ),
            progress.produced
        )
    }

    /// Inverse of [`Self::progress_key`]: what a progress object's key says, if it is one.
    pub fn parse_progress_key(key: &str) -> Option<ProgressKey> {
        let mut parts = key.rsplit('/');
        let name = parts.next()?.strip_suffix(PROGRESS_SUFFIX)?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?;
        if parts.next()? != "progress" || validate_topic_name(topic).is_err() {
            return None;
        }
        let (produced, state) = name.split_once('-')?;
        if produced.len() != 20 {
            return None;
        }
        Some(ProgressKey {
            topic: topic.to_owned(),
            partition,
            produced: produced.parse().ok()?,
            done: match state {
                DONE => true,
                PARTIAL => false,
                _ => return None,
            },
        })
    }

    /// The generation a folder directly under a topic's prefix names, if it names one
    /// (`generation=3/`).
    pub fn parse_generation_folder(folder: &str) -> Option<u32> {
        folder
            .trim_end_matches('/')
            .strip_prefix(GENERATION_FOLDER)?
            .parse()
            .ok()
            .filter(|generation| *generation > 0)
    }

    /// Inverse of [`Self::segment_key`]'s file name: the offset range, if `key` names a segment.
    pub fn parse_segment_file_name(key: &str) -> Option<(i64, i64)> {
        let name = key.rsplit('/').next()?.strip_suffix(SEGMENT_SUFFIX)?;
        // An erasure's rewrite carries a tag after the range.
        let range = name.split_once('.').map_or(name, |(range, _tag)| range);
        let (first, last) = range.split_once('-')?;
        if first.len() != 20 || last.len() != 20 {
            return None;
        }
        Some((first.parse().ok()?, last.parse().ok()?))
    }
}

/// What a restore's progress object's key records of one partition (its body holds the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressKey {
    pub topic: String,
    pub partition: i32,
    /// Records the restore has put on the target partition.
    pub produced: u64,
    pub done: bool,
}

const PROGRESS_SUFFIX: &str = ".json";
const PARTIAL: &str = "1-partial";
const DONE: &str = "2-done";

#[cfg(test)]
mod tests {
    use super::*;

    fn partition() -> PartitionId {
        PartitionId::new(BackupId::parse("prod-eu1").unwrap(), "payments.captured", 7)
    }

    #[test]
    fn a_later_generation_has_a_folder_of_its_own_and_generation_0_keeps_the_old_keys() {
        let layout = StorageLayout::new("tidemark").unwrap();
        assert_eq!(
            layout.partition_prefix(&partition()),
            "tidemark/prod-eu1/topics/payments.captured/partition=7/",
            "the keys of backups made before generations"
        );
        let second = partition().in_generation(2);
        assert_eq!(
            layout.segment_key(&second, 0, 9),
            "tidemark/prod-eu1/topics/payments.captured/generation=2/partition=7/00000000000000000000-00000000000000000009.seg.zst"
        );
        assert_eq!(
            second.to_string(),
            "prod-eu1/payments.captured-7 (generation 2)"
        );
        assert_eq!(partition().to_string(), "prod-eu1/payments.captured-7");
        assert_eq!(
            StorageLayout::parse_generation_folder("generation=2/"),
            Some(2)
        );
        assert_eq!(
            StorageLayout::parse_generation_folder("generation=0/"),
            None
        );
        assert_eq!(StorageLayout::parse_generation_folder("partition=2/"), None);
    }

    #[test]
    fn segment_keys_follow_the_documented_layout() {
        let layout = StorageLayout::new("/tidemark/").unwrap();
        assert_eq!(
            layout.segment_key(&partition(), 42, 1041),
            "tidemark/prod-eu1/topics/payments.captured/partition=7/00000000000000000042-00000000000000001041.seg.zst"
        );
        let no_prefix = StorageLayout::new("").unwrap();
        assert!(
            no_prefix
                .segment_key(&partition(), 0, 0)
                .starts_with("prod-eu1/topics/")
        );
    }

    #[test]
    fn snapshot_keys_sit_beside_the_topics_and_sort_by_time() {
        let layout = StorageLayout::new("tidemark").unwrap();
        let backup = BackupId::parse("prod-eu1").unwrap();
        assert_eq!(
            layout.snapshot_key(&backup, 1_767_225_600_000),
            "tidemark/prod-eu1/snapshots/00000001767225600000.json.zst"
        );
        assert!(layout.snapshot_key(&backup, 999) < layout.snapshot_key(&backup, 1_000));
    }

    #[test]
    fn an_erased_rewrite_has_its_own_key_and_parses_to_its_range() {
        let layout = StorageLayout::new("tidemark").unwrap();
        let erasure = RunId::parse("erase-42").unwrap();
        let key = layout.erased_segment_key(&partition(), 42, 1041, &erasure);
        assert_ne!(key, layout.segment_key(&partition(), 42, 1041));
        assert!(key.ends_with(".erased-erase-42.seg.zst"), "{key}");
        assert_eq!(
            StorageLayout::parse_segment_file_name(&key),
            Some((42, 1041))
        );
    }

    #[test]
    fn segment_keys_sort_in_offset_order_and_parse_back() {
        let layout = StorageLayout::new("p").unwrap();
        let keys: Vec<_> = [(0, 9), (10, 99), (100, 100), (101, 5000)]
            .iter()
            .map(|(first, last)| layout.segment_key(&partition(), *first, *last))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(
            StorageLayout::parse_segment_file_name(&keys[3]),
            Some((101, 5000))
        );
        assert_eq!(
            StorageLayout::parse_segment_file_name("p/x/report.json"),
            None
        );
    }

    #[test]
    fn progress_keys_parse_back_and_sort_with_the_latest_last() {
        let layout = StorageLayout::new("tidemark").unwrap();
        let backup = BackupId::parse("prod").unwrap();
        let restore = RestoreId::parse("r-1").unwrap();
        let progress = |produced, done| ProgressKey {
            topic: "payments.captured".into(),
            partition: 3,
            produced,
            done,
        };
        let in_order = [
            progress(0, true),
            progress(9, false),
            progress(10, false),
            progress(10, true),
            progress(u64::MAX, true),
        ];
        let keys: Vec<String> = in_order
            .iter()
            .map(|progress| layout.progress_key(&backup, &restore, progress))
            .collect();
        assert_eq!(
            keys[3],
            "tidemark/prod/restores/r-1/progress/payments.captured/3/00000000000000000010-2-done.json"
        );
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "names sort as (produced, done)");
        for (key, progress) in keys.iter().zip(&in_order) {
            assert!(key.starts_with(&layout.partition_progress_prefix(
                &backup,
                &restore,
                "payments.captured",
                3
            )));
            assert_eq!(
                StorageLayout::parse_progress_key(key).as_ref(),
                Some(progress)
            );
        }
        for other in [
            "tidemark/prod/restores/r-1/plan.json",
            "tidemark/prod/restores/r-1/progress/t/3/10-2-done.json",
            "tidemark/prod/restores/r-1/progress/t/x/00000000000000000010-2-done.json",
            "tidemark/prod/restores/r-1/progress/t/3/00000000000000000010-3-lost.json",
            "tidemark/prod/restores/r-1/lease/t/3/00000000000000000010-2-done.json",
            "tidemark/prod/restores/r-1/progress/t/3/00000000000000000010-2-done.txt",
        ] {
            assert_eq!(StorageLayout::parse_progress_key(other), None, "{other}");
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for bad in ["", "has space", "a/b", ".hidden", &"x".repeat(129)] {
            let error = BackupId::parse(bad).unwrap_err().to_string();
            assert!(error.contains("backup id"), "{error}");
        }
        assert!(validate_topic_name("payments.captured").is_ok());
        for bad in ["", "..", "a b", "a/b", &"t".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(StorageLayout::new("a//b").is_err());
    }
}
