use std::sync::Arc;

use super::*;
use crate::keys::MemoryKeyService;
use crate::segment::{Header, KeyFilter, TimestampType};
use crate::stores::MemoryIndexStore;

fn backup() -> BackupId {
    BackupId::parse("prod").unwrap()
}

fn partition() -> PartitionId {
    PartitionId::new(backup(), "payments", 2)
}

fn records() -> Vec<Record> {
    (0..40)
        .map(|offset| Record {
            offset: 100 + offset,
            timestamp: 1_700_000_000_000 + offset,
            timestamp_type: TimestampType::CreateTime,
            // Every fifth record has no key: it is stored as it is.
            key: (offset % 5 != 0).then(|| format!("customer-{}", offset % 3).into_bytes()),
            value: Some(format!("{{\"card\":\"4111-{offset:04}\"}}").into_bytes()),
            headers: vec![Header {
                key: "trace".into(),
                value: Some(b"span-7".to_vec()),
            }],
        })
        .collect()
}

fn plain_segment() -> EncodedSegment {
    let mut encoder = SegmentEncoder::new("payments", 2, 3).unwrap();
    for record in records() {
        encoder.push(&record).unwrap();
    }
    encoder.finish().unwrap()
}

fn decoded(bytes: &[u8]) -> Vec<Record> {
    let mut reader = SegmentReader::open(bytes).unwrap();
    std::iter::from_fn(|| reader.next_record().unwrap()).collect()
}

struct World {
    store: Arc<MemoryIndexStore>,
    kms: Arc<MemoryKeyService>,
}

impl World {
    fn new() -> Self {
        World {
            store: Arc::new(MemoryIndexStore::new()),
            kms: Arc::new(MemoryKeyService::default()),
        }
    }

    /// A process: a writer (with the KMS key) or a reader; each has caches of its own.
    fn process(&self, writer: bool) -> Shredding {
        Shredding::new(
            self.store.clone(),
            self.kms.clone(),
            writer.then(|| "alias/shredding".to_owned()),
        )
    }
}

#[tokio::test]
async fn a_shredded_segment_holds_no_clear_field_and_opens_to_the_same_records() {
    let world = World::new();
    let sealed = world
        .process(true)
        .seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap()
        .segment;
    assert!(sealed.header.shredded);
    let stored = decoded(&sealed.bytes);
    let framed: Vec<u8> = stored
        .iter()
        .flat_map(|record| {
            [record.key.clone(), record.value.clone()]
                .into_iter()
                .flatten()
                .flatten()
        })
        .collect();
    for clear in [&b"customer-1"[..], b"4111-0001", b"span-7"] {
        assert!(
            !framed.windows(clear.len()).any(|window| window == clear),
            "{:?} is readable in the shredded segment",
            String::from_utf8_lossy(clear)
        );
    }
    // Records without a key stay as they are; keyed ones have no headers.
    assert_eq!(stored[0], records()[0]);
    assert!(stored[1].headers.is_empty());

    let reader = world.process(false);
    let opened = reader
        .open_segment(&backup(), sealed.bytes.clone())
        .await
        .unwrap();
    assert_eq!(decoded(&opened), records());
    assert!(
        !SegmentReader::open(opened.as_ref())
            .unwrap()
            .header()
            .shredded
    );
}

#[tokio::test]
async fn the_key_filter_holds_key_ids_and_not_keys() {
    let world = World::new();
    let writer = world.process(true);
    let sealed = writer
        .seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap()
        .segment;
    let filter_len = sealed.header.key_filter.unwrap().len as usize;
    let filter = KeyFilter::decode(&sealed.bytes[sealed.bytes.len() - filter_len..]).unwrap();
    let key_id = writer
        .key_ids(&backup(), &[b"customer-1".to_vec()])
        .await
        .unwrap()[0];
    assert!(filter.may_contain(&key_id));
    assert!(!filter.may_contain(b"customer-1"));
}

#[tokio::test]
async fn two_writers_of_a_new_key_seal_under_the_same_version_and_kms_is_called_once_per_process() {
    let world = World::new();
    let (one, two) = (world.process(true), world.process(true));
    let first = one
        .seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap();
    let second = two
        .seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap();
    assert!(sealed_under_same_keys(&first.segment.bytes, &second.segment.bytes).unwrap());
    // Another batch of the same process reuses its root and keys.
    one.seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap();
    assert_eq!(world.kms.generated(), 1, "one root per backup");
    assert_eq!(
        world.kms.decrypted(),
        1,
        "the second process unwraps the root once"
    );
}

#[tokio::test]
async fn a_destroyed_version_leaves_its_records_unreadable_and_others_readable() {
    let world = World::new();
    let writer = world.process(true);
    let sealed = writer
        .seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap()
        .segment;
    let erased = writer
        .key_ids(&backup(), &[b"customer-1".to_vec()])
        .await
        .unwrap()[0];
    let retired = world
        .store
        .retire_data_keys(&backup(), &erased)
        .await
        .unwrap();
    assert_eq!(retired.len(), 1);

    // A writer that reads afresh (a new process, or after its cache time) seals later records
    // under a new version, which the destruction leaves alone.
    let later = world
        .process(true)
        .seal_segment(&partition(), &plain_segment(), 3)
        .await
        .unwrap()
        .segment;
    assert!(!sealed_under_same_keys(&sealed.bytes, &later.bytes).unwrap());
    world
        .store
        .destroy_data_keys(&backup(), &erased, &retired)
        .await
        .unwrap();

    let reader = world.process(false);
    let error = reader
        .open_segment(&backup(), sealed.bytes.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&key_id_hex(&erased)) && error.contains("no longer exists"),
        "{error}"
    );
    assert_eq!(
        decoded(&reader.open_segment(&backup(), later.bytes).await.unwrap()),
        records()
    );
}

#[tokio::test]
async fn a_reader_of_a_backup_without_a_root_is_told_so() {
    let world = World::new();
    let error = world
        .process(false)
        .key_ids(&backup(), &[b"customer-1".to_vec()])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no shredding root"), "{error}");
    assert_eq!(world.kms.generated(), 0, "a reader creates no root");
}

#[tokio::test]
async fn a_plain_segment_is_read_as_it_is() {
    let world = World::new();
    let plain = plain_segment();
    let opened = world
        .process(false)
        .open_segment(&backup(), plain.bytes.clone())
        .await
        .unwrap();
    assert_eq!(opened, plain.bytes);
}
