//! One conformance suite for every store implementation: the unit tests run it against the
//! in-memory twins, the integration tests against S3 and DynamoDB (emulated locally).
//! Each check panics with a message naming the broken rule.

use std::collections::HashMap;

use bytes::Bytes;

use crate::checkpoint::{Checkpoint, Gap};
use crate::index::{CommitOutcome, IndexStore, SegmentCommit, SegmentEntry};
use crate::layout::{BackupId, PartitionId};
use crate::object_store::{ObjectStore, PutOutcome};
use crate::operations::OperationsBook;
use crate::snapshot::{SnapshotCatalog, SnapshotEntry, TopicGeneration};

/// `prefix` must be unused in the store (tests use a fresh uuid).
pub async fn object_store_contract(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}/a/segment-1");
    let metadata = HashMap::from([("tidemark-records-crc32c".to_owned(), "12345".to_owned())]);

    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "missing object must read as None"
    );
    assert_eq!(
        store
            .put_if_absent(&key, Bytes::from_static(b"first"), &metadata)
            .await
            .unwrap(),
        PutOutcome::Created,
        "first conditional put must create"
    );
    let other = HashMap::from([("tidemark-records-crc32c".to_owned(), "999".to_owned())]);
    assert_eq!(
        store
            .put_if_absent(&key, Bytes::from_static(b"second"), &other)
            .await
            .unwrap(),
        PutOutcome::AlreadyExists(metadata),
        "second conditional put must report the existing object's metadata"
    );
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"first"[..]),
        "a conditional put must never overwrite"
    );
    assert_eq!(
        store.get_head(&key, 3).await.unwrap().as_deref(),
        Some(&b"fir"[..]),
        "a head read returns the object's first bytes"
    );
    assert_eq!(
        store.get_head(&key, 1_000).await.unwrap().as_deref(),
        Some(&b"first"[..]),
        "a head read longer than the object returns all of it"
    );
    assert_eq!(
        store
            .get_head(&format!("{prefix}/absent"), 3)
            .await
            .unwrap(),
        None,
        "a head read of a missing object is None"
    );

    for name in ["a/segment-3", "a/segment-2", "b/other"] {
        store
            .put_if_absent(&format!("{prefix}/{name}"), Bytes::new(), &HashMap::new())
            .await
            .unwrap();
    }
    assert_eq!(
        store.list(&format!("{prefix}/a/")).await.unwrap(),
        vec![
            format!("{prefix}/a/segment-1"),
            format!("{prefix}/a/segment-2"),
            format!("{prefix}/a/segment-3")
        ],
        "list must return only keys under the prefix, sorted"
    );

    let listed = store.list_objects(&format!("{prefix}/a/")).await.unwrap();
    assert_eq!(
        listed[0].size, 5,
        "list_objects must report each object's size"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        listed
            .iter()
            .all(|object| (now_ms - object.last_modified_ms).abs() < 600_000),
        "list_objects must report when each object was written: {listed:?}"
    );
    assert_eq!(
        store.list_prefixes(&format!("{prefix}/")).await.unwrap(),
        vec![format!("{prefix}/a/"), format!("{prefix}/b/")],
        "list_prefixes must return the distinct folders directly under the prefix"
    );

    let ranged = format!("{prefix}/ranged");
    store
        .put_if_absent(&ranged, Bytes::from_static(b"0123456789"), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(
        store.get_range(&ranged, 3, 4).await.unwrap().as_deref(),
        Some(&b"3456"[..]),
        "get_range returns the bytes from start, len of them"
    );
    assert_eq!(
        store.get_range(&ranged, 8, 10).await.unwrap().as_deref(),
        Some(&b"89"[..]),
        "get_range stops at the end of the object"
    );
    assert_eq!(
        store.retention(&ranged).await.unwrap(),
        None,
        "an object without Object Lock has no retention"
    );
    assert_eq!(
        store.delete_noncurrent_versions(&ranged).await.unwrap(),
        0,
        "an object written once has no earlier version to delete"
    );
    assert!(
        store.get(&ranged).await.unwrap().is_some(),
        "delete_noncurrent_versions keeps the current version"
    );
    assert!(
        store.delete_all_versions(&ranged).await.unwrap() >= 1,
        "delete_all_versions counts what it deleted"
    );
    assert_eq!(store.get(&ranged).await.unwrap(), None);
    assert!(
        !store
            .list_version_keys(&format!("{prefix}/"))
            .await
            .unwrap()
            .contains(&ranged),
        "no version of an object deleted with all its versions is left"
    );
    assert_eq!(
        store.delete_all_versions(&ranged).await.unwrap(),
        0,
        "nothing is left to delete, not even a delete marker"
    );
    assert_eq!(store.retention(&ranged).await.unwrap(), None);

    store.delete(&key).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "a deleted object is gone"
    );
    store
        .delete(&key)
        .await
        .expect("deleting what is not there succeeds");
}

fn segment(first: i64, last: i64) -> SegmentEntry {
    SegmentEntry {
        key: format!("segments/{first}-{last}"),
        first_offset: first,
        last_offset: last,
        record_count: (last - first + 1) as u32,
        min_timestamp: first * 10,
        max_timestamp: last * 10,
        stored_bytes: 100,
        uncompressed_bytes: 400,
        records_crc32c: 7,
        written_at_ms: 1_700_000_000_000 + last,
        write_marks: Vec::new(),
        max_record_bytes: None,
    }
}

fn checkpoint(start: i64, next: i64) -> Checkpoint {
    Checkpoint {
        start_offset: start,
        next_offset: next,
        max_timestamp: next * 10,
        updated_at_ms: 1,
    }
}

/// `partition` must have no entries in the store (tests use a fresh backup id).
pub async fn index_store_contract(store: &dyn IndexStore, partition: &PartitionId) {
    assert_eq!(
        store.checkpoint(partition).await.unwrap(),
        None,
        "new partition has no checkpoint"
    );
    assert!(store.segments(partition).await.unwrap().is_empty());

    let first = checkpoint(0, 10);
    let commit = SegmentCommit {
        partition,
        segment: &segment(0, 9),
        gap: None,
        filled_gaps: &[],
        remaining_gaps: &[],
        expected: None,
        new: Some(&first),
    };
    assert_eq!(
        store.commit_segment(commit).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store.checkpoint(partition).await.unwrap(),
        Some(first.clone())
    );

    // A second writer that planned against "no checkpoint" must be refused, writing nothing.
    let stale = checkpoint(0, 30);
    let stale_commit = SegmentCommit {
        partition,
        segment: &segment(20, 29),
        gap: None,
        filled_gaps: &[],
        remaining_gaps: &[],
        expected: None,
        new: Some(&stale),
    };
    assert_eq!(
        store.commit_segment(stale_commit).await.unwrap(),
        CommitOutcome::CheckpointMoved
    );
    assert_eq!(
        store.checkpoint(partition).await.unwrap(),
        Some(first.clone()),
        "refused commit moved the checkpoint"
    );
    assert_eq!(
        store.segments(partition).await.unwrap(),
        vec![segment(0, 9)],
        "refused commit wrote its segment"
    );

    // A commit that reveals a gap records it together with the segment and the checkpoint.
    let gap = Gap::missing(10, 14, 5);
    let after_gap = checkpoint(0, 20);
    let gap_commit = SegmentCommit {
        partition,
        segment: &segment(15, 19),
        gap: Some(&gap),
        filled_gaps: &[],
        remaining_gaps: &[],
        expected: Some(&first),
        new: Some(&after_gap),
    };
    assert_eq!(
        store.commit_segment(gap_commit).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(store.gaps(partition).await.unwrap(), vec![gap]);
    assert_eq!(
        store.checkpoint(partition).await.unwrap(),
        Some(after_gap.clone())
    );

    // Re-committing an already covered segment (planned against the current checkpoint, which
    // it leaves alone) is harmless and leaves one entry.
    let covered = SegmentCommit {
        partition,
        segment: &segment(0, 9),
        gap: None,
        filled_gaps: &[],
        remaining_gaps: &[],
        expected: Some(&after_gap),
        new: None,
    };
    assert_eq!(
        store.commit_segment(covered).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store.segments(partition).await.unwrap(),
        vec![segment(0, 9), segment(15, 19)],
        "segments must be unique and ordered by offset"
    );
    assert_eq!(
        store.checkpoint(partition).await.unwrap(),
        Some(after_gap),
        "covered segment moved the checkpoint"
    );

    let covering = |first: i64, last: i64| async move {
        store
            .segments_covering(partition, first, last)
            .await
            .unwrap()
            .iter()
            .map(|s| (s.first_offset, s.last_offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(covering(3, 5).await, [(0, 9)], "a range inside one segment");
    assert_eq!(
        covering(5, 16).await,
        [(0, 9), (15, 19)],
        "a range across two"
    );
    assert_eq!(
        covering(15, 30).await,
        [(15, 19)],
        "a range starting at a segment"
    );
    assert_eq!(
        covering(11, 12).await,
        [(0, 9)],
        "a range in a gap: the segment before it"
    );

    // Compaction's switch: (0, 9) and (15, 19) become one entry, the old ones retired, at once.
    let merged = SegmentEntry {
        key: "merged".into(),
        ..segment(0, 19)
    };
    let old = store.segments(partition).await.unwrap();
    assert!(
        store
            .replace_segments(partition, &merged, &old, 77)
            .await
            .unwrap()
    );
    assert_eq!(
        store.segments(partition).await.unwrap(),
        vec![merged.clone()]
    );
    let retired = store.retired_segments(partition).await.unwrap();
    assert_eq!(
        retired
            .iter()
            .map(|r| (
                r.key.as_str(),
                r.first_offset,
                r.last_offset,
                r.retired_at_ms
            ))
            .collect::<Vec<_>>(),
        old.iter()
            .map(|e| (e.key.as_str(), e.first_offset, e.last_offset, 77))
            .collect::<Vec<_>>()
    );
    // A second compaction of the same segments (they are gone) changes nothing.
    let other = SegmentEntry {
        key: "other".into(),
        ..segment(0, 19)
    };
    assert!(
        !store
            .replace_segments(partition, &other, &old, 78)
            .await
            .unwrap()
    );
    assert_eq!(store.segments(partition).await.unwrap(), vec![merged]);
    for entry in &retired {
        store.forget_retired(partition, entry).await.unwrap();
        store.forget_retired(partition, entry).await.unwrap();
    }
    assert!(store.retired_segments(partition).await.unwrap().is_empty());

    // Retention: the merged entry and every gap below 20 expire, and the start moves, at once.
    let observed = store.checkpoint(partition).await.unwrap().unwrap();
    let remaining = store.segments(partition).await.unwrap();
    let gaps = store.gaps(partition).await.unwrap();
    assert!(
        store
            .expire_segments(partition, &remaining, &gaps, observed.start_offset, 20)
            .await
            .unwrap()
    );
    assert!(store.segments(partition).await.unwrap().is_empty());
    assert!(store.gaps(partition).await.unwrap().is_empty());
    let moved = store.checkpoint(partition).await.unwrap().unwrap();
    assert_eq!(
        (moved.start_offset, moved.next_offset),
        (20, observed.next_offset)
    );
    assert!(
        !store
            .expire_segments(partition, &[], &[], observed.start_offset, 30)
            .await
            .unwrap(),
        "a start that moved meanwhile refuses the change"
    );
    // A writer's commit planned before retention moved the start must not put it back.
    let planned_before = Checkpoint {
        next_offset: observed.next_offset + 10,
        ..observed.clone()
    };
    let late = segment(observed.next_offset, observed.next_offset + 9);
    let stale = SegmentCommit {
        partition,
        segment: &late,
        gap: None,
        filled_gaps: &[],
        remaining_gaps: &[],
        expected: Some(&observed),
        new: Some(&planned_before),
    };
    assert_eq!(
        store.commit_segment(stale).await.unwrap(),
        CommitOutcome::CheckpointMoved
    );
    assert_eq!(store.checkpoint(partition).await.unwrap().unwrap(), moved);

    // The partition is listed under its backup, and only there.
    assert_eq!(
        store.partitions(&partition.backup_id).await.unwrap(),
        vec![partition.clone()]
    );
    let other = crate::layout::BackupId::parse(&format!("{}-other", partition.backup_id)).unwrap();
    assert!(store.partitions(&other).await.unwrap().is_empty());

    // A later generation of the same partition is a history of its own: it starts empty,
    // its commits leave generation 0 as it was, and both are listed.
    let recreated = partition.clone().in_generation(1);
    assert_eq!(store.checkpoint(&recreated).await.unwrap(), None);
    assert!(store.segments(&recreated).await.unwrap().is_empty());
    assert!(store.gaps(&recreated).await.unwrap().is_empty());
    let restarted = checkpoint(0, 5);
    let commit = SegmentCommit {
        partition: &recreated,
        segment: &segment(0, 4),
        gap: None,
        filled_gaps: &[],
        remaining_gaps: &[],
        expected: None,
        new: Some(&restarted),
    };
    assert_eq!(
        store.commit_segment(commit).await.unwrap(),
        CommitOutcome::Committed,
        "generation 1 has no checkpoint yet, whatever generation 0 has"
    );
    assert_eq!(store.checkpoint(&recreated).await.unwrap(), Some(restarted));
    assert_eq!(
        store.segments(&recreated).await.unwrap(),
        vec![segment(0, 4)]
    );
    assert_eq!(store.checkpoint(partition).await.unwrap().unwrap(), moved);
    assert_eq!(
        store.partitions(&partition.backup_id).await.unwrap(),
        vec![partition.clone(), recreated],
        "every generation is listed, generation 0 first"
    );
}

/// `backup_id` must be unused in the catalog.
pub async fn snapshot_catalog_contract(catalog: &dyn SnapshotCatalog, backup_id: &BackupId) {
    let entry = |taken_at_ms: i64| SnapshotEntry {
        taken_at_ms,
        key: format!("{backup_id}/snapshots/{taken_at_ms:020}.json.zst"),
        group_count: 3,
        topic_count: 2,
        stored_bytes: 512,
    };
    assert_eq!(
        catalog
            .snapshot_at_or_before(backup_id, i64::MAX)
            .await
            .unwrap(),
        None,
        "an empty catalog has no snapshot"
    );
    // Recorded out of order, and one twice: neither may matter.
    for taken_at_ms in [2_000, 1_000, 3_000, 2_000] {
        catalog
            .record_snapshot(backup_id, &entry(taken_at_ms))
            .await
            .unwrap();
    }
    let other = BackupId::parse(&format!("{backup_id}-other")).unwrap();
    catalog
        .record_snapshot(&other, &entry(1_500))
        .await
        .unwrap();

    let at = |at_ms: i64| async move {
        catalog
            .snapshot_at_or_before(backup_id, at_ms)
            .await
            .unwrap()
            .map(|found| found.taken_at_ms)
    };
    assert_eq!(
        at(999).await,
        None,
        "before the first snapshot there is none"
    );
    assert_eq!(
        at(1_000).await,
        Some(1_000),
        "T equal to a snapshot time finds that snapshot"
    );
    assert_eq!(
        at(1_999).await,
        Some(1_000),
        "between two snapshots, the earlier one"
    );
    assert_eq!(at(2_000).await, Some(2_000));
    assert_eq!(at(10_000).await, Some(3_000), "after the last, the last");
    assert_eq!(
        catalog
            .snapshot_at_or_before(backup_id, 3_000)
            .await
            .unwrap(),
        Some(entry(3_000)),
        "the entry reads back whole"
    );
    assert_eq!(at(-1).await, None, "negative times find nothing");

    let generation = |number: u32, detected_at_ms: i64| TopicGeneration {
        topic: "payments".into(),
        generation: number,
        detected_at_ms,
        evidence: vec![format!(
            "partition 0 high watermark went back (seen at {detected_at_ms})"
        )],
        topic_id: Some(format!("00000000-0000-0000-0000-{number:012}")),
    };
    assert!(
        catalog
            .topic_generations(backup_id, "payments")
            .await
            .unwrap()
            .is_empty()
    );
    catalog
        .record_topic_generation(backup_id, &generation(2, 9_000))
        .await
        .unwrap();
    catalog
        .record_topic_generation(backup_id, &generation(1, 5_000))
        .await
        .unwrap();
    catalog
        .record_topic_generation(backup_id, &generation(1, 7_000))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .topic_generations(backup_id, "payments")
            .await
            .unwrap(),
        vec![generation(1, 5_000), generation(2, 9_000)],
        "generations read oldest first, and a repeated record keeps the first"
    );
    assert!(
        catalog
            .topic_generations(backup_id, "orders")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A segment committed after a later one fills the gap that one recorded; a fill planned
/// against a gap that changed meanwhile is refused whole. `partition` must be unused.
pub async fn index_store_gap_filling_contract(store: &dyn IndexStore, partition: &PartitionId) {
    let recorded = |start: i64, end: i64| Gap::missing(start, end, 5);
    let commit = |segment: SegmentEntry, filled: Vec<Gap>, remaining: Vec<Gap>| async move {
        store
            .commit_segment(SegmentCommit {
                partition,
                segment: &segment,
                gap: None,
                filled_gaps: &filled,
                remaining_gaps: &remaining,
                expected: None,
                new: None,
            })
            .await
            .unwrap()
    };
    let start = checkpoint(0, 10);
    store
        .commit_segment(SegmentCommit {
            partition,
            segment: &segment(0, 9),
            gap: None,
            filled_gaps: &[],
            remaining_gaps: &[],
            expected: None,
            new: Some(&start),
        })
        .await
        .unwrap();
    // 20..=29 committed first and recorded 10..=19 as a gap.
    store
        .commit_segment(SegmentCommit {
            partition,
            segment: &segment(20, 29),
            gap: Some(&recorded(10, 19)),
            filled_gaps: &[],
            remaining_gaps: &[],
            expected: Some(&start),
            new: Some(&checkpoint(0, 30)),
        })
        .await
        .unwrap();

    // 12..=14 arrives: the gap shrinks to what no segment holds.
    assert_eq!(
        commit(
            segment(12, 14),
            vec![recorded(10, 19)],
            vec![recorded(10, 11), recorded(15, 19)]
        )
        .await,
        CommitOutcome::Committed
    );
    assert_eq!(
        store.gaps(partition).await.unwrap(),
        vec![recorded(10, 11), recorded(15, 19)]
    );
    // A fill planned against the old gap (another writer's) changes nothing.
    assert_eq!(
        commit(segment(10, 19), vec![recorded(10, 19)], vec![]).await,
        CommitOutcome::CheckpointMoved,
        "a fill of a gap that is no longer recorded so must re-plan"
    );
    assert_eq!(
        store
            .segments(partition)
            .await
            .unwrap()
            .iter()
            .map(|s| (s.first_offset, s.last_offset))
            .collect::<Vec<_>>(),
        [(0, 9), (12, 14), (20, 29)],
        "a refused fill wrote its segment"
    );
    assert_eq!(
        commit(
            segment(10, 19),
            vec![recorded(10, 11), recorded(15, 19)],
            vec![]
        )
        .await,
        CommitOutcome::Committed
    );
    assert_eq!(store.gaps(partition).await.unwrap(), vec![]);
    assert_eq!(
        store.checkpoint(partition).await.unwrap(),
        Some(checkpoint(0, 30)),
        "filling moves no checkpoint"
    );
}

/// `book` must hold no audit records and no health record for `backup_id`.
pub async fn operations_book_contract(book: &dyn OperationsBook, backup_id: &BackupId) {
    use crate::operations::{
        AuditRecord, BackupHealth, Caller, DrillHealth, Freshness, HealthAspect, Operation, Outcome,
    };
    let record = |operation: Operation, finished_at_ms: i64| AuditRecord {
        operation,
        id: format!("run-{finished_at_ms}"),
        backup_id: Some(backup_id.to_string()),
        caller: Caller {
            identity: Some("arn:aws:iam::123456789012:user/alice".into()),
            execution: None,
        },
        started_at_ms: None,
        finished_at_ms,
        outcome: Outcome::Succeeded,
        what: serde_json::json!({"topics": ["payments"]}),
        detail: "done".into(),
        report_key: None,
    };
    // 2026-11-30 and 2026-12-01: a query must read both months.
    let november = record(Operation::Restore, 1_795_996_800_000);
    let december = record(Operation::Drill, 1_796_083_200_000);
    for audit in [&december, &november, &december] {
        book.index_audit(audit).await.unwrap();
    }
    assert_eq!(
        book.audit_records(november.finished_at_ms, december.finished_at_ms)
            .await
            .unwrap(),
        vec![november.clone(), december.clone()],
        "audit records come back once each, oldest first, across months"
    );
    assert_eq!(
        book.audit_records(november.finished_at_ms + 1, i64::MAX / 2)
            .await
            .unwrap(),
        vec![december.clone()],
        "a query by time leaves out records before it"
    );

    assert_eq!(
        book.health(backup_id).await.unwrap(),
        BackupHealth::default(),
        "a backup with no health record reads as empty"
    );
    let freshness = Freshness {
        checked_at_ms: 1_000,
        snapshot_key: "s".into(),
        partitions: 2,
        records_behind: 0,
        behind_since_ms: None,
        stalled_count: 0,
        stalled: vec![],
    };
    let drill = |finished_at_ms: i64, passed: bool| DrillHealth {
        drill_id: format!("d{finished_at_ms}"),
        finished_at_ms,
        passed,
        tier: None,
        rto_ms: Some(5),
        rto_target_ms: None,
        rpo_ms: None,
        rpo_target_ms: None,
        cause: String::new(),
        report_key: "r".into(),
    };
    book.record_health(backup_id, &HealthAspect::Freshness(freshness.clone()))
        .await
        .unwrap();
    book.record_health(backup_id, &HealthAspect::Drill(drill(2_000, true)))
        .await
        .unwrap();
    book.record_health(backup_id, &HealthAspect::Drill(drill(1_500, false)))
        .await
        .unwrap();
    assert_eq!(
        book.health(backup_id).await.unwrap(),
        BackupHealth {
            freshness: Some(freshness),
            validation: None,
            drill: Some(drill(2_000, true)),
        },
        "each aspect is set alone, and an older one never replaces a newer one"
    );
}

/// Erasure's index operations: erased gaps are recorded as facts of their kind and never filled
/// by a segment committed over them; a segment is swapped for its rewrite (same range or a
/// narrower one) or dropped, only while it is still indexed as it was. `partition` must be
/// unused.
pub async fn index_store_erasure_contract(store: &dyn IndexStore, partition: &PartitionId) {
    let original = segment(0, 9);
    store
        .commit_segment(SegmentCommit {
            partition,
            segment: &original,
            gap: None,
            filled_gaps: &[],
            remaining_gaps: &[],
            expected: None,
            new: Some(&checkpoint(0, 10)),
        })
        .await
        .unwrap();
    let erased = [Gap::erased(3, 3, 7), Gap::erased(9, 9, 7)];
    store.record_gaps(partition, &erased).await.unwrap();
    store.record_gaps(partition, &erased).await.unwrap();
    assert_eq!(
        store.gaps(partition).await.unwrap(),
        erased.to_vec(),
        "erased gaps are recorded once, with their kind"
    );

    // The same range, rewritten under another key.
    let rewritten = SegmentEntry {
        key: "segments/0-9.erased".into(),
        record_count: 9,
        ..segment(0, 9)
    };
    assert!(
        store
            .swap_segment(partition, &original, Some(&rewritten))
            .await
            .unwrap()
    );
    assert_eq!(
        store.segments(partition).await.unwrap(),
        vec![rewritten.clone()]
    );
    assert!(
        !store
            .swap_segment(partition, &original, Some(&rewritten))
            .await
            .unwrap(),
        "a swap of an entry no longer indexed as it was changes nothing"
    );
    // A narrower range: the old item goes, the new one comes.
    let narrower = SegmentEntry {
        key: "segments/0-8.erased".into(),
        record_count: 8,
        ..segment(0, 8)
    };
    assert!(
        store
            .swap_segment(partition, &rewritten, Some(&narrower))
            .await
            .unwrap()
    );
    assert_eq!(
        store.segments(partition).await.unwrap(),
        vec![narrower.clone()]
    );
    // Nothing left: dropped.
    assert!(
        store
            .swap_segment(partition, &narrower, None)
            .await
            .unwrap()
    );
    assert!(store.segments(partition).await.unwrap().is_empty());
    assert_eq!(
        store.gaps(partition).await.unwrap(),
        erased.to_vec(),
        "swaps leave the recorded gaps alone"
    );
}

/// The shredding store: one root per backup, at most one current version per key id,
/// retirement in one step, and destroyed versions gone for every reader.
pub async fn shredding_store_contract(
    store: &dyn crate::shredding::ShreddingStore,
    backup_id: &BackupId,
) {
    use crate::shredding::StoredDataKey;

    assert_eq!(store.shredding_root(backup_id).await.unwrap(), None);
    assert_eq!(
        store
            .create_shredding_root(backup_id, b"first root")
            .await
            .unwrap(),
        b"first root".to_vec(),
        "the first root stands"
    );
    assert_eq!(
        store
            .create_shredding_root(backup_id, b"second root")
            .await
            .unwrap(),
        b"first root".to_vec(),
        "a second root loses to the first"
    );
    assert_eq!(
        store.shredding_root(backup_id).await.unwrap().as_deref(),
        Some(&b"first root"[..])
    );

    let alice = [1u8; 16];
    let bob = [2u8; 16];
    let key = |key_id, version, wrapped: &[u8]| StoredDataKey {
        key_id,
        version,
        wrapped: wrapped.to_vec(),
    };
    assert!(
        store
            .current_data_keys(backup_id, &[alice, bob])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .create_data_key(backup_id, &key(alice, 7, b"alice v7"))
            .await
            .unwrap(),
        key(alice, 7, b"alice v7")
    );
    assert_eq!(
        store
            .create_data_key(backup_id, &key(alice, 8, b"alice v8"))
            .await
            .unwrap(),
        key(alice, 7, b"alice v7"),
        "a second version while one is current loses to it"
    );
    store
        .create_data_key(backup_id, &key(bob, 3, b"bob v3"))
        .await
        .unwrap();
    let mut current = store
        .current_data_keys(backup_id, &[alice, bob, [3u8; 16]])
        .await
        .unwrap();
    current.sort_by_key(|stored| stored.key_id);
    assert_eq!(
        current,
        vec![key(alice, 7, b"alice v7"), key(bob, 3, b"bob v3")]
    );

    assert_eq!(
        store.retire_data_keys(backup_id, &alice).await.unwrap(),
        vec![7]
    );
    assert!(
        store
            .current_data_keys(backup_id, &[alice])
            .await
            .unwrap()
            .is_empty(),
        "a retired key id has no current version"
    );
    assert_eq!(
        store.data_keys(backup_id, &[(alice, 7)]).await.unwrap(),
        vec![key(alice, 7, b"alice v7")],
        "a retired version is still readable until destroyed"
    );
    assert_eq!(
        store
            .create_data_key(backup_id, &key(alice, 9, b"alice v9"))
            .await
            .unwrap(),
        key(alice, 9, b"alice v9"),
        "after retirement a new version becomes current"
    );
    store
        .destroy_data_keys(backup_id, &alice, &[7])
        .await
        .unwrap();
    let mut left = store
        .data_keys(backup_id, &[(alice, 7), (alice, 9), (bob, 3), (bob, 4)])
        .await
        .unwrap();
    left.sort_by_key(|stored| (stored.key_id, stored.version));
    assert_eq!(
        left,
        vec![key(alice, 9, b"alice v9"), key(bob, 3, b"bob v3")],
        "a destroyed version is gone, the others stay"
    );
    assert_eq!(
        store.retire_data_keys(backup_id, &[4u8; 16]).await.unwrap(),
        Vec::<u32>::new(),
        "retiring an unknown key id retires nothing"
    );
}
