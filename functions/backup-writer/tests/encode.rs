//! The writer's CPU phase on whole events: every partition's segment holds exactly its
//! records whatever the order of finishing, and a malformed event is refused whole.

use std::collections::BTreeMap;

use backup_writer::{Encoding, encode_event};
use tidemark_core::config::{BackupWriterConfig, Env};
use tidemark_core::event::{KafkaEvent, KafkaEventRecord};
use tidemark_core::sample::Payments;
use tidemark_core::segment::{Record, SegmentReader};

/// The encoding of a writer that excludes `audit.*` topics.
fn encoding(compress_in_background: bool, open_partitions: usize) -> Encoding {
    let vars = BTreeMap::from([
        ("TIDEMARK_BUCKET", "b"),
        ("TIDEMARK_TABLE", "t"),
        ("TIDEMARK_BACKUP_ID", "prod"),
        ("TIDEMARK_TOPICS_EXCLUDE", "audit\\..*"),
    ]);
    let config = BackupWriterConfig::from_env(&Env::from_lookup(move |name| {
        vars.get(name).map(|value| value.to_string())
    }))
    .unwrap();
    Encoding {
        open_partitions,
        compress_in_background,
        ..Encoding::of(&config)
    }
}

/// An event of `partitions` partitions of payments plus one partition of an excluded topic.
fn event(partitions: i32) -> (Vec<u8>, BTreeMap<i32, Vec<Record>>) {
    let mut payments = Payments::new(11);
    let mut expected: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for n in 0..(partitions as i64 * 300) {
        let partition = (n % i64::from(partitions)) as i32;
        let mut record = payments.record(n);
        record.offset = expected.get(&partition).map_or(0, Vec::len) as i64 + 1000;
        groups
            .entry(format!("payments.captured-{partition}"))
            .or_insert_with(Vec::new)
            .push(KafkaEventRecord::encode(
                "payments.captured",
                partition,
                &record,
            ));
        expected.entry(partition).or_default().push(record);
    }
    groups.insert(
        "audit.log-0".into(),
        vec![KafkaEventRecord::encode(
            "audit.log",
            0,
            &payments.record(0),
        )],
    );
    let event = KafkaEvent {
        event_source: Some("aws:kafka".into()),
        event_source_arn: None,
        bootstrap_servers: None,
        records: groups,
    };
    (serde_json::to_vec(&event).unwrap(), expected)
}

#[test]
fn every_partition_holds_its_records_however_segments_are_finished() {
    let (json, expected) = event(7);
    for (background, open) in [(false, 1), (true, 1), (true, 2), (true, 16)] {
        let encoded = encode_event(&json, &encoding(background, open)).unwrap();
        assert_eq!(encoded.skipped_topics, vec!["audit.log".to_owned()]);
        let partitions: Vec<i32> = encoded.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(partitions, (0..7).collect::<Vec<_>>(), "in partition order");
        for partition in &encoded.partitions {
            let records: Vec<Record> = SegmentReader::open(partition.segment.bytes.as_ref())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                records, expected[&partition.partition],
                "partition {} (background {background}, {open} at once)",
                partition.partition
            );
            let payload: usize = records.iter().map(Record::payload_len).sum();
            assert_eq!(partition.payload_bytes, payload as u64);
        }
    }
}

#[test]
fn a_partition_given_twice_or_a_bad_record_anywhere_refuses_the_whole_event() {
    let (json, _) = event(3);
    let text = String::from_utf8(json).unwrap();
    let twice = text.replacen(
        "\"payments.captured-2\":",
        "\"payments.captured-1\":[],\"payments.captured-2\":",
        1,
    );
    // An empty group is nothing; the same partition given again with records is refused.
    assert!(encode_event(twice.as_bytes(), &encoding(true, 2)).is_ok());
    let repeated = text.replacen("\"payments.captured-2\":", "\"payments.captured-0\":", 1);
    let repeated = repeated.replace("\"partition\":2", "\"partition\":0");
    let error = encode_event(repeated.as_bytes(), &encoding(true, 2))
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("payments.captured-0 twice"),
        "{error}"
    );
    // A bad payload in the last partition, after others were already compressing.
    let last_value = text.rfind("\"value\":\"").unwrap() + "\"value\":\"".len();
    let mut broken = text.clone();
    broken.replace_range(last_value..last_value + 1, "!");
    let error = encode_event(broken.as_bytes(), &encoding(true, 1))
        .err()
        .expect("refused");
    assert!(error.to_string().contains("not valid base64"), "{error}");
}
