//! Checkpoint rules: how one durable segment moves a partition's checkpoint, and which offsets
//! it reveals as gaps. Pure functions; the stores apply the plan atomically.

/// How far a partition has been backed up without holes (gaps are recorded facts, not holes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first offset this backup saw for the partition.
    pub start_offset: i64,
    /// One past the last offset backed up: every offset in `start_offset..next_offset` is in a
    /// durable segment or in a recorded gap.
    pub next_offset: i64,
    /// Newest record timestamp seen so far (milliseconds since the epoch).
    pub max_timestamp: i64,
    pub updated_at_ms: i64,
}

/// Offsets `start..=end` the backup holds no record of, as a recorded fact. Reported by
/// validation, tolerated by restore and offset translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub start: i64,
    pub end: i64,
    pub detected_at_ms: i64,
    pub kind: GapKind,
}

/// Why a gap's offsets hold no record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// The source did not deliver them: retention or compaction removed them before the backup
    /// read them, or a transaction marker took the offset. No segment spans them.
    #[default]
    Missing,
    /// An erasure removed their records from the backup. They lie inside segments' offset
    /// ranges; a re-delivered batch never brings them back.
    Erased,
}

impl GapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::Missing => "missing",
            GapKind::Erased => "erased",
        }
    }
}

impl Gap {
    /// A gap of offsets the source did not deliver.
    pub fn missing(start: i64, end: i64, detected_at_ms: i64) -> Self {
        Gap {
            start,
            end,
            detected_at_ms,
            kind: GapKind::Missing,
        }
    }

    /// A gap of offsets an erasure removed.
    pub fn erased(start: i64, end: i64, detected_at_ms: i64) -> Self {
        Gap {
            kind: GapKind::Erased,
            ..Gap::missing(start, end, detected_at_ms)
        }
    }

    pub fn contains(&self, offset: i64) -> bool {
        (self.start..=self.end).contains(&offset)
    }
}

/// What committing one segment does to the checkpoint and the recorded gaps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitPlan {
    pub gap: Option<Gap>,
    /// `None` when the segment is already covered (a retried or overlapping batch).
    pub new_checkpoint: Option<Checkpoint>,
    /// Recorded gaps the segment holds offsets of (it was committed after a later one, which
    /// recorded them): removed, so that gaps stay exactly the offsets no segment holds.
    pub filled_gaps: Vec<Gap>,
    /// What is left of the filled gaps outside the segment's offsets: recorded again.
    pub remaining_gaps: Vec<Gap>,
}

/// The most recorded gaps one commit fills; a segment that fills more commits again for the
/// rest (a DynamoDB transaction takes at most 100 items).
pub const MAX_GAPS_FILLED: usize = 32;

/// Plans the commit of a segment holding offsets `first..=last`, given the partition's
/// recorded `gaps` (only those overlapping the segment matter).
///
/// The checkpoint only moves forward. A segment that starts after the checkpoint reveals a
/// gap between the two; one that starts at or before it (a retry, a re-batched retry, or a
/// batch committed after a later one) only moves it if it reaches further, and fills whatever
/// recorded gaps it holds offsets of (at most [`MAX_GAPS_FILLED`] at once).
pub fn plan_commit(
    observed: Option<&Checkpoint>,
    gaps: &[Gap],
    first: i64,
    last: i64,
    max_timestamp: i64,
    now_ms: i64,
) -> CommitPlan {
    debug_assert!(first <= last);
    let Some(observed) = observed else {
        return CommitPlan {
            new_checkpoint: Some(Checkpoint {
                start_offset: first,
                next_offset: last + 1,
                max_timestamp,
                updated_at_ms: now_ms,
            }),
            ..CommitPlan::default()
        };
    };
    let filled_gaps: Vec<Gap> = gaps
        .iter()
        .filter(|gap| gap.start <= last && gap.end >= first)
        .take(MAX_GAPS_FILLED)
        .cloned()
        .collect();
    let remaining_gaps = filled_gaps
        .iter()
        .flat_map(|gap| {
            let before = (gap.start < first).then(|| Gap {
                end: first - 1,
                ..gap.clone()
            });
            let after = (gap.end > last).then(|| Gap {
                start: last + 1,
                ..gap.clone()
            });
            before.into_iter().chain(after)
        })
        .collect();
    if last < observed.next_offset {
        return CommitPlan {
            filled_gaps,
            remaining_gaps,
            ..CommitPlan::default()
        };
    }
    let gap = (first > observed.next_offset)
        .then(|| Gap::missing(observed.next_offset, first - 1, now_ms));
    CommitPlan {
        gap,
        new_checkpoint: Some(Checkpoint {
            start_offset: observed.start_offset,
            next_offset: last + 1,
            max_timestamp: observed.max_timestamp.max(max_timestamp),
            updated_at_ms: now_ms,
        }),
        filled_gaps,
        remaining_gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(next_offset: i64) -> Checkpoint {
        Checkpoint {
            start_offset: 0,
            next_offset,
            max_timestamp: 100,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn first_segment_starts_the_checkpoint_where_the_backup_began() {
        let plan = plan_commit(None, &[], 500, 599, 7, 9);
        assert_eq!(plan.gap, None);
        assert_eq!(
            plan.new_checkpoint,
            Some(Checkpoint {
                start_offset: 500,
                next_offset: 600,
                max_timestamp: 7,
                updated_at_ms: 9
            })
        );
    }

    #[test]
    fn adjacent_segment_advances_without_gap() {
        let plan = plan_commit(Some(&checkpoint(100)), &[], 100, 149, 200, 9);
        assert_eq!(plan.gap, None);
        let next = plan.new_checkpoint.unwrap();
        assert_eq!(
            (next.start_offset, next.next_offset, next.max_timestamp),
            (0, 150, 200)
        );
    }

    #[test]
    fn skipped_offsets_become_a_gap() {
        let plan = plan_commit(Some(&checkpoint(100)), &[], 120, 130, 50, 9);
        assert_eq!(plan.gap, Some(Gap::missing(100, 119, 9)));
        let next = plan.new_checkpoint.unwrap();
        assert_eq!(next.next_offset, 131);
        assert_eq!(next.max_timestamp, 100, "max timestamp never goes back");
    }

    #[test]
    fn retried_batch_changes_nothing() {
        let plan = plan_commit(Some(&checkpoint(150)), &[], 100, 149, 200, 9);
        assert_eq!(plan, CommitPlan::default());
    }

    #[test]
    fn a_segment_committed_after_a_later_one_fills_the_gap_that_one_recorded() {
        let recorded = |start, end| Gap::missing(start, end, 5);
        // 100..=149 was committed after 150..=199, which recorded 100..=149 as a gap.
        let plan = plan_commit(
            Some(&checkpoint(200)),
            &[recorded(100, 149), recorded(300, 310)],
            100,
            149,
            7,
            9,
        );
        assert_eq!(plan.filled_gaps, vec![recorded(100, 149)]);
        assert_eq!(plan.remaining_gaps, vec![]);
        assert_eq!(plan.new_checkpoint, None);

        // A segment inside a wider gap leaves both ends of it recorded.
        let plan = plan_commit(Some(&checkpoint(200)), &[recorded(90, 160)], 100, 149, 7, 9);
        assert_eq!(plan.filled_gaps, vec![recorded(90, 160)]);
        assert_eq!(
            plan.remaining_gaps,
            vec![recorded(90, 99), recorded(150, 160)]
        );

        // One reaching past the checkpoint fills and advances in the same commit.
        let plan = plan_commit(
            Some(&checkpoint(200)),
            &[recorded(150, 199)],
            150,
            249,
            7,
            9,
        );
        assert_eq!(plan.filled_gaps, vec![recorded(150, 199)]);
        assert_eq!(plan.new_checkpoint.unwrap().next_offset, 250);
    }

    #[test]
    fn rebatched_retry_that_reaches_further_advances_without_gap() {
        let plan = plan_commit(Some(&checkpoint(150)), &[], 100, 199, 200, 9);
        assert_eq!(plan.gap, None);
        assert_eq!(plan.new_checkpoint.unwrap().next_offset, 200);
    }
}
