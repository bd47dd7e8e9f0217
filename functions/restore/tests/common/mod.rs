#![allow(dead_code, unreachable_pub)] // shared by several test crates, each using a part
//! A backup on the in-memory twins: segments encoded for real and indexed as the writer does.

use std::sync::Arc;
use tidemark_core::keys::{MemoryKeyService, SegmentKeys};

use bytes::Bytes;
use restore::plan::PartitionTask;
use restore::request::{Cut, CutMode};
use tidemark_core::index::{IndexStore, SegmentCommit, SegmentEntry};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::segment::{Header, Record, SegmentEncoder, TimestampType};
use tidemark_core::stores::BackupStores;
use tidemark_core::stores::{MemoryIndexStore, MemoryObjectStore};

pub const TOPIC: &str = "payments";

pub struct Fixture {
    pub backup: BackupStores,
    pub index: Arc<MemoryIndexStore>,
    pub backup_id: BackupId,
}

pub fn record(offset: i64, timestamp: i64) -> Record {
    Record {
        offset,
        timestamp,
        timestamp_type: TimestampType::CreateTime,
        key: Some(format!("k{offset}").into_bytes()),
        value: (offset % 9 != 4).then(|| format!("v{offset}").into_bytes()),
        headers: vec![Header {
            key: "h".into(),
            value: (offset % 2 == 0).then(|| b"x".to_vec()),
        }],
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let index = Arc::new(MemoryIndexStore::new());
        let backup = BackupStores {
            objects: Arc::new(MemoryObjectStore::new()),
            index: index.clone(),
            catalog: index.clone(),
            operations: index.clone(),
            layout: StorageLayout::new("t").unwrap(),
            bucket: "bucket".into(),
            keys: Arc::new(SegmentKeys::new(
                Arc::new(MemoryKeyService::default()),
                None,
            )),
        };
        Fixture {
            backup,
            index,
            backup_id: BackupId::parse("prod").unwrap(),
        }
    }

    pub fn partition(&self, partition: i32) -> PartitionId {
        PartitionId::new(self.backup_id.clone(), TOPIC, partition)
    }

    /// Stores one segment of `records` and indexes it (written at `written_at_ms`) unless
    /// `indexed` is false.
    pub async fn segment(
        &self,
        partition: i32,
        records: &[Record],
        written_at_ms: i64,
        indexed: bool,
    ) {
        self.segment_damaged(partition, records, written_at_ms, indexed, |_| {})
            .await;
    }

    /// Like [`Self::segment`], with the stored bytes changed by `damage` after encoding (the
    /// index keeps what the writer saw).
    pub async fn segment_damaged(
        &self,
        partition: i32,
        records: &[Record],
        written_at_ms: i64,
        indexed: bool,
        damage: impl FnOnce(&mut Vec<u8>),
    ) -> String {
        self.store_segment(
            self.partition(partition),
            records,
            written_at_ms,
            indexed,
            damage,
        )
        .await
    }

    /// Stores one segment of `records` in the partition (of any generation) `id`.
    pub async fn store_segment(
        &self,
        id: PartitionId,
        records: &[Record],
        written_at_ms: i64,
        indexed: bool,
        damage: impl FnOnce(&mut Vec<u8>),
    ) -> String {
        let mut encoder = SegmentEncoder::new(TOPIC, id.partition, 3).unwrap();
        for record in records {
            encoder.push(record).unwrap();
        }
        let segment = encoder.finish().unwrap();
        let key = self.backup.layout.segment_key(
            &id,
            segment.header.first_offset,
            segment.header.last_offset,
        );
        let mut stored = segment.bytes.to_vec();
        damage(&mut stored);
        let entry =
            SegmentEntry::encoded(key.clone(), &segment, stored.len() as u64, written_at_ms);
        self.backup
            .objects
            .put_if_absent(&key, Bytes::from(stored), &Default::default())
            .await
            .unwrap();
        if indexed {
            self.index
                .commit_segment(SegmentCommit {
                    partition: &id,
                    segment: &entry,
                    gap: None,
                    filled_gaps: &[],
                    remaining_gaps: &[],
                    expected: None,
                    new: None,
                })
                .await
                .unwrap();
        }
        key
    }

    /// A task over the whole partition with the given cut.
    pub fn task(&self, partition: i32, first: i64, end: i64, cut: Cut) -> PartitionTask {
        PartitionTask {
            source_topic: TOPIC.into(),
            generation: 0,
            target_topic: format!("{TOPIC}.restored"),
            partition,
            segment_source: tidemark_core::stores::SegmentSource::Index,
            first_offset: first,
            end_offset: end,
            cut,
            start_ms: None,
            target_base: 0,
            records_to_scan: 0,
            bytes_to_scan: 0,
            max_record_bytes: 0,
        }
    }
}

pub fn time_cut(at_ms: i64) -> Cut {
    Cut {
        mode: CutMode::Time,
        at_ms,
    }
}
