//! The Kafka event that AWS Lambda event source mappings deliver (MSK: `aws:kafka`,
//! self-managed: `SelfManagedKafka`), in its exact JSON shape, and its decoding into records.
//!
//! We keep our own types rather than `aws_lambda_events::kafka`: that crate parses timestamps
//! through `u64`/`f64` (a `-1` timestamp, which Kafka uses for NO_TIMESTAMP_TYPE, is rejected and
//! a fractional one panics) and serialises timestamps as strings, which AWS does not.
//! A test checks that both read the same events.
//!
//! What the event shape cannot carry (documented in `docs/segment-format.md`): a null header
//! value (headers are byte arrays, so null arrives as empty).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod decode;

pub use decode::{DecodeFailure, EventEnvelope, RecordSink, decode_event, decode_event_from};

use crate::error::{Error, Result};
use crate::segment::{Header, Record, TimestampType};

pub const MSK_EVENT_SOURCE: &str = "aws:kafka";
pub const SELF_MANAGED_EVENT_SOURCE: &str = "SelfManagedKafka";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEvent {
    #[serde(default)]
    pub event_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Records grouped by `"{topic}-{partition}"`, each group in offset order.
    pub records: BTreeMap<String, Vec<KafkaEventRecord>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEventRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    /// Base64; absent or null for a null key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Base64; absent or null for a null value (a tombstone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default)]
    pub headers: Vec<EventHeaders>,
}

/// One element of the `headers` array: an object of header key to value bytes, which AWS
/// sends as signed bytes (`[104, -61, ...]`). Entries keep their order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventHeaders(pub Vec<(String, Vec<i8>)>);

impl Serialize for EventHeaders {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EventHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntriesInOrder;
        impl<'de> Visitor<'de> for EntriesInOrder {
            type Value = EventHeaders;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object of header names to arrays of signed bytes")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<EventHeaders, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(1));
                while let Some(entry) = map.next_entry::<String, Vec<i8>>()? {
                    entries.push(entry);
                }
                Ok(EventHeaders(entries))
            }
        }
        deserializer.deserialize_map(EntriesInOrder)
    }
}

/// Decodes `encoded` into `target`, keeping `target`'s buffer when there is one.
fn decode_base64_into(
    encoded: Option<&str>,
    target: &mut Option<Vec<u8>>,
) -> std::result::Result<(), base64::DecodeError> {
    match encoded {
        None => *target = None,
        Some(encoded) => {
            let buffer = target.get_or_insert_with(Vec::new);
            buffer.clear();
            BASE64.decode_vec(encoded, buffer)?;
        }
    }
    Ok(())
}

impl KafkaEventRecord {
    /// Decodes the record's base64 payloads. `position` only serves error messages.
    pub fn decode(&self, position: usize) -> Result<Record> {
        let mut record = Record::empty();
        self.decode_into(position, &mut record)?;
        Ok(record)
    }

    /// Like [`Self::decode`], but overwrites `record`, reusing its buffers: decoding a batch
    /// into one `Record` allocates almost nothing per record.
    pub fn decode_into(&self, position: usize, record: &mut Record) -> Result<()> {
        let base64_error = |field: &str, error: base64::DecodeError| {
            Error::InvalidEvent(format!(
                "records[\"{}-{}\"][{position}] (offset {}): {field} is not valid base64: {error}",
                self.topic, self.partition, self.offset
            ))
        };
        record.offset = self.offset;
        record.timestamp = self.timestamp;
        record.timestamp_type = self.timestamp_type;
        decode_base64_into(self.key.as_deref(), &mut record.key)
            .map_err(|e| base64_error("key", e))?;
        decode_base64_into(self.value.as_deref(), &mut record.value)
            .map_err(|e| base64_error("value", e))?;

        let entries = self.headers.iter().flat_map(|entries| entries.0.iter());
        let mut count = 0;
        for (key, value) in entries {
            if count == record.headers.len() {
                record.headers.push(Header {
                    key: String::new(),
                    value: None,
                });
            }
            let header = &mut record.headers[count];
            header.key.clear();
            header.key.push_str(key);
            let bytes = header.value.get_or_insert_with(Vec::new);
            bytes.clear();
            bytes.extend(value.iter().map(|&b| b as u8));
            count += 1;
        }
        record.headers.truncate(count);
        Ok(())
    }

    /// The event form of `record`, as an event source mapping would deliver it.
    pub fn encode(topic: &str, partition: i32, record: &Record) -> Self {
        let headers = record
            .headers
            .iter()
            .map(|header| {
                // The event shape has no null header value: AWS delivers it as empty bytes.
                let value = header
                    .value
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|&b| b as i8)
                    .collect();
                EventHeaders(vec![(header.key.clone(), value)])
            })
            .collect();
        KafkaEventRecord {
            topic: topic.to_owned(),
            partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: record.timestamp_type,
            key: record.key.as_deref().map(|key| BASE64.encode(key)),
            value: record.value.as_deref().map(|value| BASE64.encode(value)),
            headers,
        }
    }
}

/// A record in the event source mapping's JSON shape, borrowed from wherever its bytes are
/// (a consumer's message buffer): [`EventRecordRef::write_json`] gives exactly what serialising
/// the [`KafkaEventRecord::encode`] of the same record gives, without building that record first.
#[derive(Debug, Clone, Copy)]
pub struct EventRecordRef<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl EventRecordRef<'_> {
    /// Appends the record's JSON to `out`: byte for byte what serde_json writes for the
    /// [`KafkaEventRecord::encode`] of the same record. Written out here rather than through
    /// serde because the bridge writes every record it consumes: serde's formatter, its escape
    /// scan over base64 text and a byte-at-a-time header loop were a third of the bridge's
    /// CPU (perf, docs/benchmarks.md). Strings that may need escaping still go through
    /// serde_json.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"topic\":");
        write_json_string(out, self.topic);
        let mut numbers = itoa::Buffer::new();
        out.extend_from_slice(b",\"partition\":");
        out.extend_from_slice(numbers.format(self.partition).as_bytes());
        out.extend_from_slice(b",\"offset\":");
        out.extend_from_slice(numbers.format(self.offset).as_bytes());
        out.extend_from_slice(b",\"timestamp\":");
        out.extend_from_slice(numbers.format(self.timestamp).as_bytes());
        out.extend_from_slice(b",\"timestampType\":");
        serde_json::to_writer(&mut *out, &self.timestamp_type)
            .expect("a timestamp type serialises into a Vec");
        // Base64 text never needs JSON escaping.
        for (name, bytes) in [("key", self.key), ("value", self.value)] {
            if let Some(bytes) = bytes {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":\"");
                base64_simd::STANDARD.encode_append(bytes, out);
                out.push(b'"');
            }
        }
        // `[{"name":[signed bytes]}, ...]`: one object per header, as AWS sends them.
        out.extend_from_slice(b",\"headers\":[");
        for (n, (name, value)) in self.headers.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.push(b'{');
            write_json_string(out, name);
            out.extend_from_slice(b":[");
            for (i, &byte) in value.unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(numbers.format(byte as i8).as_bytes());
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b"]}");
    }
}

fn write_json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("a string serialises into a Vec");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn reads_the_same_events_as_aws_lambda_events() {
        for name in ["msk-event.json"] {
            let json = fixture(name);
            let ours: KafkaEvent = serde_json::from_str(&json).unwrap();
            let theirs: aws_lambda_events::event::kafka::KafkaEvent =
                serde_json::from_str(&json).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(ours.event_source, theirs.event_source, "{name}");
            assert_eq!(ours.records.len(), theirs.records.len(), "{name}");
            for (group, records) in &ours.records {
                let other = &theirs.records[group];
                for (record, other) in records.iter().zip(other) {
                    assert_eq!(record.offset, other.offset);
                    assert_eq!(record.key, other.key);
                    assert_eq!(record.value, other.value);
                    if record.timestamp >= 0 {
                        assert_eq!(record.timestamp, other.timestamp.timestamp_millis());
                    }
                    let their_headers: Vec<(String, Vec<i8>)> = other
                        .headers
                        .iter()
                        .flat_map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())))
                        .collect();
                    let our_headers: Vec<(String, Vec<i8>)> =
                        record.headers.iter().flat_map(|h| h.0.clone()).collect();
                    assert_eq!(our_headers, their_headers);
                }
            }
        }
    }

    #[test]
    fn events_we_send_are_events_aws_lambda_events_reads() {
        let record = Record {
            offset: 5,
            timestamp: 1_700_000_000_123,
            timestamp_type: TimestampType::LogAppendTime,
            key: None,
            value: Some(b"v".to_vec()),
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(vec![0xff, 1]),
                },
                Header {
                    key: "a".into(),
                    value: None,
                },
            ],
        };
        let event = KafkaEvent {
            event_source: Some(MSK_EVENT_SOURCE.into()),
            event_source_arn: Some("arn:aws:kafka:us-east-1:0:cluster/x/y".into()),
            bootstrap_servers: None,
            records: BTreeMap::from([(
                "t-2".to_owned(),
                vec![KafkaEventRecord::encode("t", 2, &record)],
            )]),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.contains(r#""timestamp":1700000000123"#),
            "timestamps are JSON numbers as AWS sends them: {json}"
        );
        assert!(!json.contains(r#""key""#), "a null key is left out: {json}");
        let theirs: aws_lambda_events::event::kafka::KafkaEvent =
            serde_json::from_str(&json).unwrap();
        assert_eq!(
            theirs.records["t-2"][0].timestamp_type.as_deref(),
            Some("LOG_APPEND_TIME")
        );
        assert_eq!(theirs.records["t-2"][0].headers[0]["a"], vec![-1, 1]);

        let decoded = serde_json::from_str::<KafkaEvent>(&json).unwrap().records["t-2"][0]
            .decode(0)
            .unwrap();
        assert_eq!(decoded.headers[0].value, Some(vec![0xff, 1]));
        assert_eq!(
            decoded.headers[1].value,
            Some(vec![]),
            "the event shape turns a null header value into empty"
        );
        assert_eq!(
            Record {
                headers: vec![],
                ..decoded
            },
            Record {
                headers: vec![],
                ..record
            }
        );
    }

    #[test]
    fn a_borrowed_record_serialises_exactly_as_the_encoded_one() {
        let mut payments = crate::sample::Payments::new(3);
        let mut records: Vec<Record> = (0..20).map(|n| payments.record(n)).collect();
        records[1].key = None;
        records[2].value = None;
        records[3].headers.clear();
        records[4].headers[0].value = None;
        records[5].value = Some(vec![0xff, 0x00, b'"', b'\\', 0x80]);
        records[6].timestamp_type = TimestampType::LogAppendTime;
        records[7].headers[1].key = "quote\" newline\n é".into();
        records[8].timestamp = -1;
        records[8].timestamp_type = TimestampType::NoTimestampType;
        records[9].value = Some(vec![]);
        for (n, record) in records.iter().enumerate() {
            let topic = if n % 2 == 0 {
                "payments.captured"
            } else {
                "odd\"topic\\"
            };
            let headers: Vec<(&str, Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|header| (header.key.as_str(), header.value.as_deref()))
                .collect();
            let borrowed = EventRecordRef {
                topic,
                partition: 3,
                offset: record.offset,
                timestamp: record.timestamp,
                timestamp_type: record.timestamp_type,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &headers,
            };
            let mut written = Vec::new();
            borrowed.write_json(&mut written);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&KafkaEventRecord::encode(topic, 3, record)).unwrap(),
                "offset {}",
                record.offset
            );
        }
    }

    #[test]
    fn aws_lambda_events_cannot_read_a_record_without_timestamp_but_we_can() {
        let json = fixture("self-managed-event.json");
        assert!(
            serde_json::from_str::<aws_lambda_events::event::kafka::KafkaEvent>(&json).is_err()
        );
        let ours: KafkaEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(ours.records["audit.log-1"][1].timestamp, -1);
    }

    #[test]
    fn negative_and_fractional_timestamps_are_handled_without_panic() {
        let event = r#"{"eventSource":"SelfManagedKafka","records":{"t-0":[
            {"topic":"t","partition":0,"offset":0,"timestamp":-1,"timestampType":"NO_TIMESTAMP_TYPE","headers":[]}]}}"#;
        let parsed: KafkaEvent = serde_json::from_str(event).unwrap();
        assert_eq!(parsed.records["t-0"][0].timestamp, -1);
        let fractional = event.replace("-1,", "1.5,");
        let error = serde_json::from_str::<KafkaEvent>(&fractional).unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn unknown_timestamp_type_is_named() {
        let event = r#"{"eventSource":"aws:kafka","records":{"t-0":[
            {"topic":"t","partition":0,"offset":0,"timestamp":1,"timestampType":"SOMETIME","headers":[]}]}}"#;
        let error = serde_json::from_str::<KafkaEvent>(event)
            .unwrap_err()
            .to_string();
        assert!(error.contains("SOMETIME"), "{error}");
    }
}
