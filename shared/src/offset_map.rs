//! Source→target offset mapping of one restored partition, kept as runs so memory grows with
//! the number of breaks (gaps, compaction holes, resumed restores), not with the records.
//!
//! Translation follows invariant 7: a group's committed source offset (the next record it
//! would read) maps to the target offset of the first restored record at or after it; past the
//! restored range it maps to the target's end. The result is never later than where the group
//! stood, so a consumer may see a record again but never misses one.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `length` consecutive source offsets from `source_start` became consecutive target offsets
/// from `target_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRun {
    pub source_start: i64,
    pub target_start: i64,
    pub length: i64,
}

impl OffsetRun {
    fn source_end(&self) -> i64 {
        self.source_start + self.length
    }

    fn target_end(&self) -> i64 {
        self.target_start + self.length
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetMap {
    runs: Vec<OffsetRun>,
}

impl OffsetMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn runs(&self) -> &[OffsetRun] {
        &self.runs
    }

    /// Records that the record at `source` was restored at `target`. Both must be above every
    /// offset recorded before: restores produce in source order.
    pub fn record(&mut self, source: i64, target: i64) -> Result<()> {
        if let Some(last) = self.runs.last_mut() {
            if source < last.source_end() || target < last.target_end() {
                return Err(Error::InvalidRecords(format!(
                    "offset mapping must grow: source {source} -> target {target} after \
                     source {} -> target {}",
                    last.source_end() - 1,
                    last.target_end() - 1
                )));
            }
            if source == last.source_end() && target == last.target_end() {
                last.length += 1;
                return Ok(());
            }
        }
        self.runs.push(OffsetRun {
            source_start: source,
            target_start: target,
            length: 1,
        });
        Ok(())
    }

    /// Where a group committed at source offset `committed` resumes on the target.
    /// `target_end` is the target partition's end offset after the restore.
    pub fn translate(&self, committed: i64, target_end: i64) -> i64 {
        // The first run that still holds a source offset >= committed.
        let index = self
            .runs
            .partition_point(|run| run.source_end() <= committed);
        match self.runs.get(index) {
            None => target_end,
            Some(run) if committed <= run.source_start => run.target_start,
            Some(run) => run.target_start + (committed - run.source_start),
        }
    }
}

/// What a finished restore leaves for the offset reset that follows it: per restored
/// partition, its offset map and the target's end. Written once by the restore's validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOffsetMapping {
    pub restore_id: String,
    pub partitions: Vec<MappedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedPartition {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub offset_map: OffsetMap,
    pub target_end: i64,
}

impl RestoreOffsetMapping {
    /// Where a group committed at `offset` on the source partition resumes: the target topic
    /// and offset, or `None` when the restore did not restore that partition.
    pub fn translate(
        &self,
        source_topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<(&str, i64)> {
        self.partitions
            .iter()
            .find(|mapped| mapped.source_topic == source_topic && mapped.partition == partition)
            .map(|mapped| {
                (
                    mapped.target_topic.as_str(),
                    mapped.offset_map.translate(offset, mapped.target_end),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn consecutive_records_share_one_run_and_breaks_start_new_ones() {
        let mut map = OffsetMap::new();
        for source in [10, 11, 12, 20, 21] {
            // the target is contiguous: holes in the source close up on the target
            let target = 100 + map.runs().iter().map(|run| run.length).sum::<i64>();
            map.record(source, target).unwrap();
        }
        assert_eq!(
            map.runs(),
            [
                OffsetRun {
                    source_start: 10,
                    target_start: 100,
                    length: 3
                },
                OffsetRun {
                    source_start: 20,
                    target_start: 103,
                    length: 2
                },
            ]
        );
        assert_eq!(
            map.translate(0, 105),
            100,
            "before the range: the first restored record"
        );
        assert_eq!(map.translate(11, 105), 101);
        assert_eq!(
            map.translate(13, 105),
            103,
            "in a hole: the next restored record"
        );
        assert_eq!(map.translate(21, 105), 104);
        assert_eq!(
            map.translate(22, 105),
            105,
            "past the range: the target's end"
        );
        assert_eq!(OffsetMap::new().translate(7, 42), 42);
    }

    #[test]
    fn a_mapping_that_goes_back_is_refused() {
        let mut map = OffsetMap::new();
        map.record(5, 0).unwrap();
        assert!(map.record(5, 1).is_err(), "same source twice");
        assert!(map.record(6, 0).is_err(), "same target twice");
        assert_eq!(map.runs().len(), 1, "a refused record changes nothing");
    }

    proptest! {
        /// Against the definition, record by record: the target of the first restored record at
        /// or after the committed offset, else the end; and runs never outnumber the breaks.
        #[test]
        fn translation_is_the_first_restored_record_at_or_after(
            steps in prop::collection::vec((1i64..4, 1i64..3), 1..200),
            target_base in 0i64..1000,
            committed in 0i64..1000,
        ) {
            let mut map = OffsetMap::new();
            let mut pairs = Vec::new();
            let (mut source, mut target) = (0i64, target_base);
            for (source_step, target_step) in steps {
                source += source_step;
                target += target_step;
                map.record(source, target).unwrap();
                pairs.push((source, target));
            }
            let target_end = target + 1;
            let expected = pairs
                .iter()
                .find(|(source, _)| *source >= committed)
                .map_or(target_end, |(_, target)| *target);
            prop_assert_eq!(map.translate(committed, target_end), expected);
            let breaks = 1 + pairs
                .windows(2)
                .filter(|w| w[1].0 != w[0].0 + 1 || w[1].1 != w[0].1 + 1)
                .count();
            prop_assert_eq!(map.runs().len(), breaks);
        }
    }
}
