use std::sync::Arc;

use bytes::Bytes;

use super::partition::uncovered_ranges;
use super::*;
use crate::checkpoint::Checkpoint;
use crate::index::{IndexStore, SegmentCommit, SegmentEntry, record_segment};
use crate::keys::{KeyService, MemoryKeyService, SegmentKeys};
use crate::layout::PartitionId;
use crate::object_store::ObjectMetadata;
use crate::segment::{Record, SegmentEncoder, TimestampType};
use crate::stores::{MemoryIndexStore, MemoryObjectStore};

struct Backup {
    objects: MemoryObjectStore,
    index: MemoryIndexStore,
    layout: StorageLayout,
    keys: SegmentKeys,
    partition: PartitionId,
}

fn partition() -> PartitionId {
    PartitionId::new(BackupId::parse("prod").unwrap(), "payments", 1)
}

impl Backup {
    fn new(seal: bool) -> Backup {
        let service: Arc<dyn KeyService> = Arc::new(MemoryKeyService::default());
        Backup {
            objects: MemoryObjectStore::new(),
            index: MemoryIndexStore::new(),
            layout: StorageLayout::new("t").unwrap(),
            keys: SegmentKeys::new(service, seal.then(|| "alias/tidemark".to_owned())),
            partition: partition(),
        }
    }

    /// Writes and commits a segment of offsets `first..=last` as the writer does.
    async fn write(&self, first: i64, last: i64) -> String {
        let mut encoder = SegmentEncoder::new("payments", 1, 3).unwrap();
        for offset in first..=last {
            encoder
                .push(&Record {
                    offset,
                    timestamp: 1_000 + offset,
                    timestamp_type: TimestampType::CreateTime,
                    key: Some(format!("k{offset}").into_bytes()),
                    value: Some(vec![b'v'; 40]),
                    headers: vec![],
                })
                .unwrap();
        }
        let plain = encoder.finish().unwrap();
        let segment = self
            .keys
            .protect(&self.partition.backup_id, plain)
            .await
            .unwrap();
        let key = self.layout.segment_key(&self.partition, first, last);
        self.objects
            .put_if_absent(&key, segment.bytes.clone(), &ObjectMetadata::new())
            .await
            .unwrap();
        let entry = SegmentEntry::new(key.clone(), &segment.header, segment.bytes.len() as u64, 7);
        let observed = self.index.checkpoint(&self.partition).await.unwrap();
        record_segment(
            &self.index,
            &self.partition,
            &entry,
            segment.header.max_timestamp,
            observed,
            7,
        )
        .await
        .unwrap();
        key
    }

    async fn check(&self, depth: Depth) -> PartitionCheck {
        validate_partition(
            &self.objects,
            &self.index,
            &self.keys,
            &self.layout,
            &self.partition,
            depth,
        )
        .await
        .unwrap()
    }
}

async fn three_segments_with_a_gap(seal: bool) -> (Backup, Vec<String>) {
    let backup = Backup::new(seal);
    let keys = vec![
        backup.write(0, 9).await,
        backup.write(10, 19).await,
        // Offsets 20..=24 were removed by retention before the backup read them.
        backup.write(25, 29).await,
    ];
    (backup, keys)
}

#[tokio::test]
async fn a_sound_backup_has_no_findings_and_lists_its_gaps() {
    for seal in [false, true] {
        let (backup, _) = three_segments_with_a_gap(seal).await;
        let check = backup.check(Depth::Deep).await;
        assert_eq!(check.findings, vec![], "sealed: {seal}");
        assert_eq!(check.gaps, vec![(20, 24)]);
        assert_eq!(
            (check.segments, check.records, check.records_read),
            (3, 25, 25)
        );
        assert_eq!((check.start_offset, check.next_offset), (Some(0), Some(30)));
        assert_eq!(check.bytes_read, check.stored_bytes);
    }
}

#[tokio::test]
async fn a_flipped_byte_is_found_by_the_deep_check_only() {
    for seal in [false, true] {
        let (backup, keys) = three_segments_with_a_gap(seal).await;
        let stored = backup.objects.get(&keys[1]).await.unwrap().unwrap();
        let mut damaged = stored.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x04;
        backup.objects.overwrite(&keys[1], Bytes::from(damaged));

        assert_eq!(backup.check(Depth::Listing).await.findings, vec![]);
        let findings = backup.check(Depth::Deep).await.findings;
        assert!(
            matches!(&findings[..], [Finding::CorruptSegment { key, reason }]
                if key == &keys[1] && reason.contains("checksum")),
            "sealed: {seal}: {findings:?}"
        );
        assert_eq!(findings[0].severity(), Severity::Error);
    }
}

#[tokio::test]
async fn a_missing_segment_is_an_orphan_index_entry() {
    let (backup, keys) = three_segments_with_a_gap(false).await;
    assert!(backup.objects.remove(&keys[0]));
    let check = backup.check(Depth::Deep).await;
    assert_eq!(
        check.findings,
        vec![Finding::MissingSegment {
            key: keys[0].clone()
        }]
    );
    assert_eq!(check.records_read, 15, "the other segments are still read");
}

#[tokio::test]
async fn an_unindexed_segment_is_a_warning() {
    let (backup, _) = three_segments_with_a_gap(false).await;
    // A re-batched retry's first attempt: written, never committed.
    let stray = backup.layout.segment_key(&backup.partition, 10, 14);
    let bytes = backup
        .objects
        .get(&backup.layout.segment_key(&backup.partition, 0, 9))
        .await;
    backup
        .objects
        .put_if_absent(&stray, bytes.unwrap().unwrap(), &ObjectMetadata::new())
        .await
        .unwrap();
    let findings = backup.check(Depth::Listing).await.findings;
    assert_eq!(
        findings,
        vec![Finding::UnindexedSegment {
            key: stray,
            first_offset: 10,
            last_offset: 14
        }]
    );
    assert_eq!(findings[0].severity(), Severity::Warning);
}

#[tokio::test]
async fn offsets_neither_backed_up_nor_recorded_as_a_gap_are_an_error() {
    let backup = Backup::new(false);
    backup.write(0, 9).await;
    // An index that claims 0..30 with nothing for 10..=29: a checkpoint moved without a gap.
    let moved = Checkpoint {
        start_offset: 0,
        next_offset: 30,
        max_timestamp: 1_009,
        updated_at_ms: 8,
    };
    let observed = backup.index.checkpoint(&backup.partition).await.unwrap();
    let entry = backup.index.segments(&backup.partition).await.unwrap()[0].clone();
    backup
        .index
        .commit_segment(SegmentCommit {
            partition: &backup.partition,
            segment: &entry,
            gap: None,
            filled_gaps: &[],
            remaining_gaps: &[],
            expected: observed.as_ref(),
            new: Some(&moved),
        })
        .await
        .unwrap();
    assert_eq!(
        backup.check(Depth::Listing).await.findings,
        vec![Finding::UnrecordedGap { start: 10, end: 29 }]
    );
}

#[tokio::test]
async fn an_index_entry_that_disagrees_with_its_segment_is_named() {
    let backup = Backup::new(false);
    let key = backup.write(0, 9).await;
    let mut entry = backup.index.segments(&backup.partition).await.unwrap()[0].clone();
    entry.record_count = 9;
    let lying = MemoryIndexStore::new();
    record_segment(&lying, &backup.partition, &entry, 1_009, None, 7)
        .await
        .unwrap();
    let check = validate_partition(
        &backup.objects,
        &lying,
        &backup.keys,
        &backup.layout,
        &backup.partition,
        Depth::Deep,
    )
    .await
    .unwrap();
    assert_eq!(
        check.findings,
        vec![Finding::IndexMismatch {
            key,
            field: "record_count".into(),
            index: "9".into(),
            stored: "10".into()
        }]
    );
}

#[tokio::test]
async fn an_index_rebuilt_from_s3_alone_matches_the_original() {
    for seal in [false, true] {
        let (backup, _) = three_segments_with_a_gap(seal).await;
        let rebuilt = MemoryIndexStore::new();
        let report = rebuild_partition(
            &backup.objects,
            &rebuilt,
            &backup.layout,
            &backup.partition,
            9,
        )
        .await
        .unwrap();
        assert_eq!(
            (report.segments, report.gaps.clone(), report.next_offset),
            (3, vec![(20, 24)], Some(30))
        );

        let id = &backup.partition;
        let strip = |entries: Vec<SegmentEntry>| {
            entries
                .into_iter()
                .map(|entry| SegmentEntry {
                    written_at_ms: 0,
                    write_marks: Vec::new(),
                    max_record_bytes: None,
                    ..entry
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(rebuilt.segments(id).await.unwrap()),
            strip(backup.index.segments(id).await.unwrap())
        );
        let gaps = |gaps: Vec<crate::checkpoint::Gap>| {
            gaps.into_iter()
                .map(|gap| (gap.start, gap.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            gaps(rebuilt.gaps(id).await.unwrap()),
            gaps(backup.index.gaps(id).await.unwrap())
        );
        let checkpoint =
            |c: Option<Checkpoint>| c.map(|c| (c.start_offset, c.next_offset, c.max_timestamp));
        assert_eq!(
            checkpoint(rebuilt.checkpoint(id).await.unwrap()),
            checkpoint(backup.index.checkpoint(id).await.unwrap())
        );
        // Rebuilding again into the same index changes nothing.
        rebuild_partition(&backup.objects, &rebuilt, &backup.layout, id, 10)
            .await
            .unwrap();
        assert_eq!(rebuilt.segments(id).await.unwrap().len(), 3);
        assert_eq!(rebuilt.gaps(id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn partitions_are_discovered_from_s3() {
    let (backup, _) = three_segments_with_a_gap(false).await;
    assert_eq!(
        backed_up_partitions(&backup.objects, &backup.layout, &backup.partition.backup_id)
            .await
            .unwrap(),
        vec![backup.partition.clone()]
    );

    // A later generation of the topic sits in a folder of its own, and is listed after 0.
    let recreated = backup.partition.clone().in_generation(1);
    let key = backup.layout.segment_key(&recreated, 0, 0);
    backup
        .objects
        .put_if_absent(&key, bytes::Bytes::from_static(b"x"), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        backed_up_partitions(&backup.objects, &backup.layout, &backup.partition.backup_id)
            .await
            .unwrap(),
        vec![backup.partition.clone(), recreated]
    );
}

#[test]
fn uncovered_ranges_are_the_holes_below_the_checkpoint() {
    let holes = |covered: &[(i64, i64)]| uncovered_ranges(0, 30, covered.iter().copied());
    assert_eq!(holes(&[(0, 9), (10, 29)]), vec![]);
    assert_eq!(holes(&[(0, 9), (20, 29)]), vec![(10, 19)]);
    assert_eq!(holes(&[(5, 9), (0, 3)]), vec![(4, 4), (10, 29)]);
    assert_eq!(
        holes(&[(0, 12), (5, 40)]),
        vec![],
        "overlaps and ranges past the end"
    );
    assert_eq!(holes(&[]), vec![(0, 29)]);
    assert_eq!(uncovered_ranges(10, 10, std::iter::empty()), vec![]);
}
