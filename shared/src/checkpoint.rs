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

/// Offsets `start..=end` that the source did not deliver (retention or compaction removed
/// them before the backup read them). Reported by validation, tolerated by restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub start: i64,
    pub end: i64,
    pub detected_at_ms: i64,
}

/// What committing one segment does to the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    pub gap: Option<Gap>,
    /// `None` when the segment is already covered (a retried or overlapping batch).
    pub new_checkpoint: Option<Checkpoint>,
}

/// Plans the commit of a segment holding offsets `first..=last`.
///
/// The checkpoint only moves forward. A segment that starts after the checkpoint reveals a
/// gap between the two; one that starts at or before it (a retry, a re-batched retry) adds
/// nothing new below the checkpoint and only moves it if it reaches further.
pub fn plan_commit(
    observed: Option<&Checkpoint>,
    first: i64,
    last: i64,
    max_timestamp: i64,
    now_ms: i64,
) -> CommitPlan {
    debug_assert!(first <= last);
    let Some(observed) = observed else {
        return CommitPlan {
            gap: None,
            new_checkpoint: Some(Checkpoint {
                start_offset: first,
                next_offset: last + 1,
                max_timestamp,
                updated_at_ms: now_ms,
            }),
        };
    };
    if last < observed.next_offset {
        return CommitPlan {
            gap: None,
            new_checkpoint: None,
        };
    }
    let gap = (first > observed.next_offset).then(|| Gap {
        start: observed.next_offset,
        end: first - 1,
        detected_at_ms: now_ms,
    });
    CommitPlan {
        gap,
        new_checkpoint: Some(Checkpoint {
            start_offset: observed.start_offset,
            next_offset: last + 1,
            max_timestamp: observed.max_timestamp.max(max_timestamp),
            updated_at_ms: now_ms,
        }),
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
        let plan = plan_commit(None, 500, 599, 7, 9);
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
        let plan = plan_commit(Some(&checkpoint(100)), 100, 149, 200, 9);
        assert_eq!(plan.gap, None);
        let next = plan.new_checkpoint.unwrap();
        assert_eq!(
            (next.start_offset, next.next_offset, next.max_timestamp),
            (0, 150, 200)
        );
    }

    #[test]
    fn skipped_offsets_become_a_gap() {
        let plan = plan_commit(Some(&checkpoint(100)), 120, 130, 50, 9);
        assert_eq!(
            plan.gap,
            Some(Gap {
                start: 100,
                end: 119,
                detected_at_ms: 9
            })
        );
        let next = plan.new_checkpoint.unwrap();
        assert_eq!(next.next_offset, 131);
        assert_eq!(next.max_timestamp, 100, "max timestamp never goes back");
    }

    #[test]
    fn retried_batch_changes_nothing() {
        let plan = plan_commit(Some(&checkpoint(150)), 100, 149, 200, 9);
        assert_eq!(
            plan,
            CommitPlan {
                gap: None,
                new_checkpoint: None
            }
        );
    }

    #[test]
    fn rebatched_retry_that_reaches_further_advances_without_gap() {
        let plan = plan_commit(Some(&checkpoint(150)), 100, 199, 200, 9);
        assert_eq!(plan.gap, None);
        assert_eq!(plan.new_checkpoint.unwrap().next_offset, 200);
    }
}
