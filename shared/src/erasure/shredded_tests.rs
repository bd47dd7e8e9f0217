//! A shredded backup's erasure under Object Lock (the locked objects stay, the erased keys'
//! data key versions go, records sealed after the retirement are kept), and its compaction.

use std::sync::Arc;

use super::*;
use crate::index::record_segment;
use crate::keys::{KeyService, MemoryKeyService};
use crate::layout::BackupId;
use crate::object_store::{ObjectRetention, segment_metadata};
use crate::shredding::{KeyId, Shredding, ShreddingStore};
use crate::stores::{MemoryIndexStore, MemoryObjectStore};

// The plain erasure tests' backup: every seventh record is the erased customer's.
use super::tests::{NOW, record};
const ERASED_KEY: &[u8] = super::tests::ERASED_KEY.as_bytes();

struct World {
    objects: Arc<MemoryObjectStore>,
    index: Arc<MemoryIndexStore>,
    kms: Arc<MemoryKeyService>,
    layout: StorageLayout,
    partition: PartitionId,
}

impl World {
    /// A process's keys: a writer's shred, a reader's only open.
    fn keys(&self, writer: bool) -> SegmentKeys {
        let kms = self.kms.clone() as Arc<dyn KeyService>;
        let shredding = Shredding::new(
            self.index.clone(),
            kms.clone(),
            writer.then(|| "alias/shredding".to_owned()),
        );
        SegmentKeys::new(kms, None).with_shredding(Arc::new(shredding))
    }

    /// Backs up offsets `first..first + 10` as the writer does: shredded by `writer`'s keys, or
    /// plain (shredding off) without; under compliance retention when `lock`.
    async fn write(&self, writer: Option<&SegmentKeys>, first: i64, lock: bool) {
        let mut encoder = SegmentEncoder::new("payments", 0, 3).unwrap();
        for offset in first..first + 10 {
            encoder.push(&record(offset)).unwrap();
        }
        let plain = encoder.finish().unwrap();
        let segment = match writer {
            Some(keys) => {
                keys.shredding()
                    .unwrap()
                    .seal_segment(&self.partition, &plain, 3)
                    .await
                    .unwrap()
                    .segment
            }
            None => plain,
        };
        let key = self.layout.segment_key(&self.partition, first, first + 9);
        self.objects
            .put_if_absent(
                &key,
                segment.bytes.clone(),
                &segment_metadata(&segment.header),
            )
            .await
            .unwrap();
        if lock {
            self.objects.lock(
                &key,
                ObjectRetention {
                    mode: RetentionMode::Compliance,
                    retain_until_ms: NOW + 365 * 86_400_000,
                },
            );
        }
        let entry = SegmentEntry::new(key, &segment.header, segment.bytes.len() as u64, first);
        let observed = self.index.checkpoint(&self.partition).await.unwrap();
        record_segment(
            self.index.as_ref(),
            &self.partition,
            &entry,
            segment.header.max_timestamp,
            observed,
            first,
        )
        .await
        .unwrap();
    }

    /// Offsets 0..100 in ten shredded segments, every other one under compliance retention.
    async fn write_ten_every_other_locked(&self, writer: &SegmentKeys) {
        for first in (0..100).step_by(10) {
            self.write(Some(writer), first, first % 20 == 0).await;
        }
    }

    /// What an erasure's prepare step does for [`ERASED_KEY`]: retires its current version.
    /// Returns its key id and the retired versions.
    async fn retire_erased_key(&self) -> (KeyId, Vec<u32>) {
        let backup_id = &self.partition.backup_id;
        let key_id = self
            .keys(false)
            .shredding()
            .unwrap()
            .key_ids(backup_id, &[ERASED_KEY.to_vec()])
            .await
            .unwrap()[0];
        let retired = self
            .index
            .retire_data_keys(backup_id, &key_id)
            .await
            .unwrap();
        (key_id, retired)
    }

    /// Every record a restore reads, opened by a reader process.
    async fn restored(&self) -> Vec<Record> {
        let keys = self.keys(false);
        let mut records: Vec<Record> = Vec::new();
        for entry in self.index.segments(&self.partition).await.unwrap() {
            let stored = self.objects.get(&entry.key).await.unwrap().unwrap();
            let clear = keys.clear(&self.partition.backup_id, stored).await.unwrap();
            let mut reader = SegmentReader::open(clear.as_ref()).unwrap();
            while let Some(record) = reader.next_record().unwrap() {
                if records
                    .last()
                    .is_none_or(|last| record.offset > last.offset)
                {
                    records.push(record);
                }
            }
        }
        records
    }
}

/// An erasure of [`ERASED_KEY`] from a shredded backup, after its prepare step retired
/// `retired` of `key_id`.
struct KeyErasure {
    shredded: ShreddedErasure,
    matchers: Matchers,
    keys: SegmentKeys,
    erasure: RunId,
}

impl KeyErasure {
    fn new(world: &World, key_id: KeyId, retired: Vec<u32>) -> Self {
        KeyErasure {
            shredded: ShreddedErasure {
                retired: [(key_id_hex(&key_id), Some(retired))].into(),
            },
            matchers: Matchers::new(&[RecordMatcher::Key {
                key: String::from_utf8(ERASED_KEY.to_vec()).unwrap(),
            }])
            .unwrap()
            .with_keys([key_id.to_vec()]),
            keys: world.keys(false),
            erasure: RunId::parse("erase-1").unwrap(),
        }
    }

    fn eraser<'a>(&'a self, world: &'a World) -> Eraser<'a> {
        self.eraser_on(world, world.objects.as_ref(), world.index.as_ref())
    }

    /// The eraser on other stores (ones that crash) over `world`'s backup.
    fn eraser_on<'a>(
        &'a self,
        world: &'a World,
        objects: &'a dyn ObjectStore,
        index: &'a dyn IndexStore,
    ) -> Eraser<'a> {
        Eraser {
            objects,
            index,
            keys: &self.keys,
            layout: &world.layout,
            erasure: &self.erasure,
            matchers: &self.matchers,
            shredded: Some(&self.shredded),
            compression_level: 3,
        }
    }
}

fn world() -> World {
    World {
        objects: Arc::new(MemoryObjectStore::new()),
        index: Arc::new(MemoryIndexStore::new()),
        kms: Arc::new(MemoryKeyService::default()),
        layout: StorageLayout::new("t").unwrap(),
        partition: PartitionId::new(BackupId::parse("prod").unwrap(), "payments", 0),
    }
}

#[tokio::test]
async fn compaction_merges_shredded_segments_sealed_and_never_with_plain_ones() {
    use crate::compaction::{CompactionSettings, Compactor};
    let world = world();
    let writer = world.keys(true);
    for first in (0..40).step_by(10) {
        world.write(Some(&writer), first, false).await;
    }
    let compactor = Compactor {
        objects: world.objects.as_ref(),
        index: world.index.as_ref(),
        keys: &writer,
        layout: &world.layout,
        settings: CompactionSettings {
            target_bytes: 1 << 20,
            grace_ms: 0,
            compression_level: 3,
        },
    };
    let report = compactor
        .compact_partition(&world.partition, &ObjectTags::new(), NOW)
        .await
        .unwrap();
    assert_eq!(report.segments_replaced, 4);
    let merged = world.index.segments(&world.partition).await.unwrap();
    assert_eq!(merged.len(), 1);
    let stored = world.objects.get(&merged[0].key).await.unwrap().unwrap();
    let mut reader = SegmentReader::open(stored.as_ref()).unwrap();
    assert!(
        reader.header().shredded,
        "the merge keeps the records sealed"
    );
    let first = reader.next_record().unwrap().unwrap();
    assert_eq!(
        first.key.as_ref().map(Vec::len),
        Some(16),
        "a key id, not the key"
    );
    assert_eq!(
        world.restored().await,
        (0..40).map(record).collect::<Vec<_>>()
    );

    // A plain segment after the shredded ones (shredding turned off) is not merged with them.
    world.write(None, 40, false).await;
    let report = compactor
        .compact_partition(&world.partition, &ObjectTags::new(), NOW)
        .await
        .unwrap();
    assert_eq!(report.segments_written, 0, "{report:?}");
    assert_eq!(
        world.index.segments(&world.partition).await.unwrap().len(),
        2
    );
    assert_eq!(
        world.restored().await,
        (0..50).map(record).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_shredded_erasure_keeps_locked_objects_destroys_the_keys_and_keeps_later_records() {
    let world = world();
    let writer = world.keys(true);
    world.write_ten_every_other_locked(&writer).await;
    let backup_id = world.partition.backup_id.clone();
    // Prepare: the current version is retired.
    let (key_id, retired) = world.retire_erased_key().await;
    assert_eq!(retired.len(), 1);
    // A writer that reads the keys afresh seals later records under a new version: kept.
    world.write(Some(&world.keys(true)), 100, false).await;
    // One that read them before the retirement seals under the retired version until its cache
    // time (and commits within its lease): those records are indexed before the find, and go.
    world.write(Some(&writer), 110, false).await;

    let erasure = KeyErasure::new(&world, key_id, retired.clone());
    let eraser = erasure.eraser(&world);
    let findings = eraser.find(&world.partition, 120, NOW).await.unwrap();
    let erased = |offset: &i64| !(100..110).contains(offset) && offset % 7 == 3;
    let expected: Vec<i64> = (0..120).filter(erased).collect();
    assert_eq!(
        findings
            .matches
            .iter()
            .flat_map(|m| m.offsets.clone())
            .collect::<Vec<_>>(),
        expected,
        "the records under the retired version, none under the new one"
    );
    assert!(
        !findings.locked.is_empty(),
        "the findings still name locked segments"
    );

    eraser
        .erase(&world.partition, 120, &ObjectTags::new(), NOW)
        .await
        .unwrap();
    let purged = eraser.purge(&world.partition, NOW).await.unwrap();
    assert_eq!(purged.objects_kept_locked, 5, "{purged:?}");
    world
        .index
        .destroy_data_keys(&backup_id, &key_id, &retired)
        .await
        .unwrap();
    let verification = eraser.verify(&world.partition, 120, NOW).await.unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    assert_eq!(verification.kept_locked.len(), 5);

    // The restore holds every other record exactly, the later ones of the key too.
    let restored = world.restored().await;
    let wanted: Vec<Record> = (0..120)
        .filter(|offset| !erased(offset))
        .map(record)
        .collect();
    assert_eq!(restored, wanted);
    // What Object Lock kept of the key cannot be opened by anyone.
    for key in &verification.kept_locked {
        let stored = world.objects.get(key).await.unwrap().unwrap();
        let error = world
            .keys(false)
            .clear(&backup_id, stored)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("no longer exists"), "{key}: {error}");
    }
}

#[tokio::test]
async fn a_locked_segment_written_before_shredding_was_on_is_named_and_never_counted_as_erased() {
    let world = world();
    // Offsets 0..=9 stored plain (shredding off), 10..=19 shredded; both locked.
    world.write(None, 0, true).await;
    let plain_key = world.layout.segment_key(&world.partition, 0, 9);
    let writer = world.keys(true);
    world.write(Some(&writer), 10, true).await;

    let (key_id, retired) = world.retire_erased_key().await;
    let erasure = KeyErasure::new(&world, key_id, retired);
    let eraser = erasure.eraser(&world);
    let findings = eraser.find(&world.partition, 20, NOW).await.unwrap();
    // The clear key matches the plain segment, the key id the shredded one.
    assert_eq!(
        findings
            .matches
            .iter()
            .flat_map(|m| m.offsets.clone())
            .collect::<Vec<_>>(),
        vec![3, 10, 17]
    );
    let locked: Vec<(String, bool)> = findings
        .locked
        .iter()
        .map(|locked| (locked.key.clone(), locked.shredded))
        .collect();
    assert_eq!(
        locked,
        vec![
            (plain_key.clone(), false),
            (world.layout.segment_key(&world.partition, 10, 19), true)
        ],
        "the decision refuses the plain one: its records would stay readable"
    );
    // Were it erased anyway, verification would not count the plain copy as erased.
    eraser
        .erase(&world.partition, 20, &ObjectTags::new(), NOW)
        .await
        .unwrap();
    eraser.purge(&world.partition, NOW).await.unwrap();
    let verification = eraser.verify(&world.partition, 20, NOW).await.unwrap();
    assert_eq!(
        verification.kept_locked,
        vec![world.layout.segment_key(&world.partition, 10, 19)]
    );
    assert!(
        verification
            .remaining
            .iter()
            .any(|left| left.contains(&plain_key)),
        "{verification:?}"
    );
}

#[tokio::test]
async fn a_crash_at_any_change_of_a_shredded_erasure_then_a_retry_loses_nothing_and_leaves_nothing_readable()
 {
    use super::tests::{Crash, Index, Objects};
    let wanted: Vec<Record> = (0..100)
        .filter(|offset| offset % 7 != 3)
        .map(record)
        .collect();
    let mut crash_at = 0;
    loop {
        let world = world();
        let writer = world.keys(true);
        world.write_ten_every_other_locked(&writer).await;
        let backup_id = world.partition.backup_id.clone();
        let (key_id, retired) = world.retire_erased_key().await;
        let erasure = KeyErasure::new(&world, key_id, retired.clone());

        let crash = Crash::at(crash_at);
        let objects = Objects {
            inner: world.objects.clone(),
            crash: crash.clone(),
        };
        let index = Index {
            inner: world.index.clone(),
            crash,
        };
        let crashing = erasure.eraser_on(&world, &objects, &index);
        let crashed = match crashing
            .erase(&world.partition, 100, &ObjectTags::new(), NOW)
            .await
        {
            Ok(_) => crashing.purge(&world.partition, NOW).await.is_err(),
            Err(_) => true,
        };
        // Whatever the crash left, every record that stays is still restorable.
        let restored = world.restored().await;
        assert!(
            wanted.iter().all(|record| restored.contains(record)),
            "crash at change {crash_at}: a record was lost"
        );

        let eraser = erasure.eraser(&world);
        eraser
            .erase(&world.partition, 100, &ObjectTags::new(), NOW)
            .await
            .unwrap();
        eraser.purge(&world.partition, NOW).await.unwrap();
        world
            .index
            .destroy_data_keys(&backup_id, &key_id, &retired)
            .await
            .unwrap();
        let verification = eraser.verify(&world.partition, 100, NOW).await.unwrap();
        assert!(
            verification.remaining.is_empty(),
            "crash at change {crash_at}: {verification:?}"
        );
        assert_eq!(world.restored().await, wanted, "crash at change {crash_at}");
        // No stored object, indexed or kept, lets anyone read a record of the key.
        let reader = world.keys(false);
        for key in world
            .objects
            .list(&world.layout.partition_prefix(&world.partition))
            .await
            .unwrap()
        {
            let stored = world.objects.get(&key).await.unwrap().unwrap();
            match reader.clear(&backup_id, stored).await {
                Ok(clear) => {
                    let mut records = SegmentReader::open(clear.as_ref()).unwrap();
                    while let Some(record) = records.next_record().unwrap() {
                        assert_ne!(
                            record.key.as_deref(),
                            Some(ERASED_KEY),
                            "crash at change {crash_at}: {key} still holds the key readable"
                        );
                    }
                }
                Err(error) => assert!(
                    error.to_string().contains("no longer exists"),
                    "crash at change {crash_at}: {key}: {error}"
                ),
            }
        }
        if !crashed {
            break;
        }
        crash_at += 1;
    }
    assert!(crash_at > 10, "the erasure made {crash_at} changes");
}
