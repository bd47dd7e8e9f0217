use std::collections::BTreeMap;

use super::*;
use crate::event::{KafkaEvent, KafkaEventRecord};

/// Collects what the decoder hands on; refuses topics named in `unwanted`.
#[derive(Default)]
struct Collect {
    unwanted: Vec<String>,
    partitions: Vec<(String, i32, Vec<Record>)>,
}

impl RecordSink for Collect {
    fn partition(&mut self, topic: &str, partition: i32) -> Result<bool> {
        let wanted = !self.unwanted.iter().any(|name| name == topic);
        if wanted {
            self.partitions
                .push((topic.to_owned(), partition, Vec::new()));
        }
        Ok(wanted)
    }

    fn record(&mut self, record: &Record) -> Result<()> {
        self.partitions.last_mut().unwrap().2.push(record.clone());
        Ok(())
    }
}

fn decode_all(event: &str) -> Result<Vec<(String, i32, Vec<Record>)>> {
    let mut sink = Collect::default();
    decode_event(event.as_bytes(), &mut sink)?;
    Ok(sink.partitions)
}

#[test]
fn decodes_what_the_owned_event_decodes_record_for_record() {
    let json = std::fs::read_to_string(format!(
        "{}/../tests/fixtures/msk-event.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let owned: KafkaEvent = serde_json::from_str(&json).unwrap();
    let decoded = decode_all(&json).unwrap();
    assert_eq!(decoded.len(), owned.records.len());
    for (topic, partition, records) in decoded {
        let expected: Vec<Record> = owned.records[&format!("{topic}-{partition}")]
            .iter()
            .enumerate()
            .map(|(position, record)| record.decode(position).unwrap())
            .collect();
        assert_eq!(records, expected, "{topic}-{partition}");
    }
}

#[test]
fn header_buffers_are_reused_without_leaking_into_the_next_record() {
    let first = Record {
        offset: 1,
        timestamp: 5,
        timestamp_type: TimestampType::CreateTime,
        key: Some(b"k".to_vec()),
        value: None,
        headers: vec![
            Header {
                key: "a".into(),
                value: Some(vec![1, 2, 3]),
            },
            Header {
                key: "b".into(),
                value: Some(vec![0xff]),
            },
        ],
    };
    let second = Record {
        offset: 2,
        key: None,
        value: Some(vec![]),
        headers: vec![Header {
            key: "c".into(),
            value: Some(vec![]),
        }],
        ..first.clone()
    };
    let event = KafkaEvent {
        event_source: Some(MSK_EVENT_SOURCE.into()),
        event_source_arn: None,
        bootstrap_servers: None,
        records: BTreeMap::from([(
            "t-0".to_owned(),
            vec![
                KafkaEventRecord::encode("t", 0, &first),
                KafkaEventRecord::encode("t", 0, &second),
            ],
        )]),
    };
    let decoded = decode_all(&serde_json::to_string(&event).unwrap()).unwrap();
    assert_eq!(decoded, vec![("t".to_owned(), 0, vec![first, second])]);
}

#[test]
fn escaped_text_unknown_fields_and_unwanted_topics() {
    let event = r#"{"records":{"t-0":[
        {"topic":"t","partition":0,"offset":0,"timestamp":1,"timestampType":"CREATE_TIME",
         "key":"YWI\/","value":null,"headers":[{"h\u0031":[-1]}],"somethingElse":{"x":1}}],
        "skip-1":[{"topic":"skip","partition":1,"offset":0,"timestamp":1,"timestampType":"CREATE_TIME"}]},
        "eventSource":"aws:kafka","somethingNew":[1,2]}"#;
    let mut sink = Collect {
        unwanted: vec!["skip".into()],
        ..Collect::default()
    };
    let envelope = decode_event(event.as_bytes(), &mut sink).unwrap();
    assert_eq!(envelope.event_source.as_deref(), Some("aws:kafka"));
    assert_eq!(
        sink.partitions.len(),
        1,
        "the unwanted topic is not handed on"
    );
    let record = &sink.partitions[0].2[0];
    assert_eq!(record.key.as_deref(), Some(&b"ab?"[..]));
    assert_eq!(record.value, None);
    assert_eq!(
        record.headers,
        vec![Header {
            key: "h1".into(),
            value: Some(vec![0xff])
        }]
    );
}

/// A tombstone reaches functions with `"value": null` or with no `value` at all; an empty
/// string is an empty value, not a tombstone.
#[test]
fn a_tombstone_decodes_the_same_with_a_null_or_an_absent_value() {
    let event = r#"{"eventSource":"aws:kafka","records":{"t-0":[
        {"topic":"t","partition":0,"offset":0,"timestamp":1,"timestampType":"CREATE_TIME","key":"YQ==","value":null,"headers":[]},
        {"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","key":"YQ==","headers":[]},
        {"topic":"t","partition":0,"offset":2,"timestamp":1,"timestampType":"CREATE_TIME","key":"YQ==","value":"","headers":[]}]}}"#;
    let decoded = decode_all(event).unwrap();
    let values: Vec<Option<Vec<u8>>> = decoded[0].2.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, vec![None, None, Some(vec![])]);
}

#[test]
fn every_malformed_shape_is_named_with_its_place() {
    let record = |fields: &str| {
        format!(
            r#"{{"eventSource":"aws:kafka","records":{{"t-0":[{{"topic":"t","partition":0,"offset":3,"timestamp":1,"timestampType":"CREATE_TIME","headers":[]}},{{{fields}}}]}}}}"#
        )
    };
    let cases = [
        (
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME","value":"!!""#,
            ),
            r#"records["t-0"][1] (offset 4): value is not valid base64"#,
        ),
        (
            // Read as bytes, not checked as text first: non-ASCII is refused as base64.
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME","key":"é9A=""#,
            ),
            r#"records["t-0"][1] (offset 4): key is not valid base64"#,
        ),
        (
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME","value":[1,2]"#,
            ),
            r#"records["t-0"][1].value: invalid type: sequence, expected a base64 string or null"#,
        ),
        (
            record(r#""topic":"t","partition":0,"offset":3,"timestamp":1,"timestampType":"CREATE_TIME""#),
            r#"records["t-0"][1] (offset 3): offsets are not increasing"#,
        ),
        (
            // An event source mapping with a schema registry hands on decoded values.
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME","value":"eyJuIjoxfQ==","valueSchemaMetadata":{"dataFormat":"AVRO","schemaId":"7"}"#,
            ),
            r#"records["t-0"][1] (offset 4): the value was decoded by the event source mapping's schema registry (valueSchemaMetadata)"#,
        ),
        (
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME","keySchemaMetadata":{"dataFormat":"JSON","schemaId":"3"},"key":"e30=""#,
            ),
            r#"records["t-0"][1] (offset 4): the key was decoded by the event source mapping's schema registry (keySchemaMetadata)"#,
        ),
        (
            record(r#""topic":"t","partition":1,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME""#),
            r#"records["t-0"][1] (offset 4): belongs to t-1, not t-0"#,
        ),
        (
            record(r#""topic":"t","partition":0,"offset":4,"timestampType":"CREATE_TIME""#),
            r#"records["t-0"][1]: missing field `timestamp`"#,
        ),
        (
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1.5,"timestampType":"CREATE_TIME""#,
            ),
            r#"records["t-0"][1].timestamp: invalid type: floating point `1.5`"#,
        ),
        (
            record(r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"SOMETIME""#),
            "SOMETIME",
        ),
        (
            record(
                r#""topic":"t","partition":0,"offset":4,"timestamp":1,"timestampType":"CREATE_TIME","headers":[{"h":[300]}]"#,
            ),
            r#"records["t-0"][1].headers: invalid value: integer `300`"#,
        ),
        (
            r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"u","partition":0,"offset":0,"timestamp":1,"timestampType":"CREATE_TIME"}]}}"#.to_owned(),
            r#"records["t-0"] holds a record of u-0"#,
        ),
        (
            r#"{"eventSource":"aws:kafka","records":{"b@d-0":[{"topic":"b@d","partition":0,"offset":0,"timestamp":1,"timestampType":"CREATE_TIME"}]}}"#.to_owned(),
            r#"records["b@d-0"]: "b@d" is not a valid Kafka topic name"#,
        ),
        (
            r#"{"eventSource":"aws:kafka"}"#.to_owned(),
            "missing field `records`",
        ),
        (
            r#"{"eventSource":"aws:kafka","records":{}} trailing"#.to_owned(),
            "trailing characters",
        ),
        (
            r#"{"eventSource":"aws:sqs","records":{}}"#.to_owned(),
            r#"eventSource is Some("aws:sqs")"#,
        ),
    ];
    for (event, expected) in cases {
        let error = decode_all(&event).unwrap_err();
        assert!(
            matches!(error, Error::InvalidEvent(_)),
            "{expected}: {error:?}"
        );
        assert!(
            error.to_string().contains(expected),
            "expected {expected:?} in: {error}"
        );
    }
}
