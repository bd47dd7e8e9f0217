//! Decoding an event in one pass, straight into one reused [`Record`] per record.
//!
//! A 6 MB event carries about 3.3 MB of records as base64 text, with header bytes as arrays of
//! decimal numbers. Building the event in memory first (owned strings per record) and then
//! decoding it cost more than compressing the records. Here the JSON is read once, strings are
//! borrowed from the body, base64 is decoded into the record's reused buffers, and each
//! record goes to a [`RecordSink`] as soon as it is read: nothing is allocated per record.
//! The decoder works on any serde deserializer. The writer runs it on plain serde_json over the
//! invocation body, not inside the Lambda runtime's deserializer: that one keeps every map key
//! as an owned string to name the path of an error, which doubled the decoding's time.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{MSK_EVENT_SOURCE, SELF_MANAGED_EVENT_SOURCE};
use crate::error::{Error, Result};
use crate::layout::validate_topic_name;
use crate::segment::{Header, Record, TimestampType};

/// Receives an event's records as they are decoded, group by group.
pub trait RecordSink {
    /// A group's first record was read and its topic-partition checked. Returns whether the
    /// group's records are wanted: unwanted ones are still checked, not handed on.
    fn partition(&mut self, topic: &str, partition: i32) -> Result<bool>;

    /// The next record of the partition last announced, checked (offsets increase, payloads
    /// are valid base64). The buffers are reused for the next record.
    fn record(&mut self, record: &Record) -> Result<()>;
}

/// An event's fields other than its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventEnvelope {
    pub event_source: Option<String>,
    pub event_source_arn: Option<String>,
    pub bootstrap_servers: Option<String>,
}

impl EventEnvelope {
    /// Only MSK and self-managed Kafka events carry what the writer backs up.
    pub fn check_source(&self) -> Result<()> {
        match self.event_source.as_deref() {
            Some(MSK_EVENT_SOURCE | SELF_MANAGED_EVENT_SOURCE) => Ok(()),
            other => Err(Error::InvalidEvent(format!(
                "eventSource is {other:?}; expected {MSK_EVENT_SOURCE:?} or {SELF_MANAGED_EVENT_SOURCE:?}"
            ))),
        }
    }
}

/// Decodes the event JSON in `body`, handing every record to `sink`; checks the event source.
pub fn decode_event(body: &[u8], sink: &mut dyn RecordSink) -> Result<EventEnvelope> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let envelope = decode_event_from(&mut deserializer, sink).map_err(DecodeFailure::into_error)?;
    deserializer
        .end()
        .map_err(|error| Error::InvalidEvent(format!("event: {error}")))?;
    envelope.check_source()?;
    Ok(envelope)
}

/// Why decoding stopped: the JSON itself, or something the decoder or the sink refused.
pub enum DecodeFailure<E> {
    Json(E),
    Refused(Error),
}

impl<E: fmt::Display> DecodeFailure<E> {
    /// A JSON failure is an invalid event; a refusal keeps its own error.
    pub fn into_error(self) -> Error {
        match self {
            DecodeFailure::Json(error) => Error::InvalidEvent(format!("event: {error}")),
            DecodeFailure::Refused(error) => error,
        }
    }
}

/// [`decode_event`] on any deserializer (the event source is not checked here).
pub fn decode_event_from<'de, D: Deserializer<'de>>(
    deserializer: D,
    sink: &mut dyn RecordSink,
) -> std::result::Result<EventEnvelope, DecodeFailure<D::Error>> {
    let mut refused = None;
    let outcome = deserializer.deserialize_map(EventVisitor {
        sink,
        refused: &mut refused,
    });
    match (refused, outcome) {
        (Some(error), _) => Err(DecodeFailure::Refused(error)),
        (None, Ok(envelope)) => Ok(envelope),
        (None, Err(error)) => Err(DecodeFailure::Json(error)),
    }
}

/// A refusal is carried past serde (which only knows its own errors) in `refused`.
fn refuse<E: de::Error>(refused: &mut Option<Error>, error: Error) -> E {
    *refused = Some(error);
    E::custom("refused")
}

struct EventVisitor<'a> {
    sink: &'a mut dyn RecordSink,
    refused: &'a mut Option<Error>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum EventField {
    EventSource,
    EventSourceArn,
    BootstrapServers,
    Records,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for EventVisitor<'_> {
    type Value = EventEnvelope;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a Kafka event object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<EventEnvelope, A::Error> {
        let mut envelope = EventEnvelope::default();
        let mut records = false;
        while let Some(field) = map.next_key::<EventField>()? {
            match field {
                EventField::EventSource => envelope.event_source = map.next_value()?,
                EventField::EventSourceArn => envelope.event_source_arn = map.next_value()?,
                EventField::BootstrapServers => envelope.bootstrap_servers = map.next_value()?,
                EventField::Records => {
                    map.next_value_seed(GroupsSeed {
                        sink: &mut *self.sink,
                        refused: &mut *self.refused,
                    })?;
                    records = true;
                }
                EventField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !records {
            return Err(de::Error::missing_field("records"));
        }
        Ok(envelope)
    }
}

/// The `records` object: group key to that group's array of records.
struct GroupsSeed<'a> {
    sink: &'a mut dyn RecordSink,
    refused: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for GroupsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GroupsSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of topic-partition groups to arrays of records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut record = Record::empty();
        while let Some(group) = map.next_key_seed(Text)? {
            let mut state = GroupState {
                group: &group,
                record: &mut record,
                owner: None,
                wanted: false,
                position: 0,
                sink: &mut *self.sink,
                refused: &mut *self.refused,
            };
            map.next_value_seed(RecordsSeed(&mut state))?;
        }
        Ok(())
    }
}

/// One group being decoded.
struct GroupState<'a> {
    group: &'a str,
    record: &'a mut Record,
    /// The topic-partition of the group's first record.
    owner: Option<(String, i32)>,
    wanted: bool,
    position: usize,
    sink: &'a mut dyn RecordSink,
    refused: &'a mut Option<Error>,
}

/// One record's scalar fields as read, strings borrowed from the body.
#[derive(Default)]
struct Fields<'de> {
    topic: Option<Cow<'de, str>>,
    partition: Option<i32>,
    offset: Option<i64>,
    timestamp: Option<i64>,
    timestamp_type: Option<TimestampType>,
    key: Option<Cow<'de, [u8]>>,
    value: Option<Cow<'de, [u8]>>,
    /// `keySchemaMetadata` or `valueSchemaMetadata`, when the record carries one.
    schema_metadata: Option<&'static str>,
}

impl GroupState<'_> {
    /// Checks one read record, decodes its payloads and hands it on.
    fn accept(&mut self, fields: Fields<'_>) -> Result<()> {
        let group = self.group;
        let position = self.position;
        let missing = |name: &str| {
            Error::InvalidEvent(format!(
                "records[{group:?}][{position}]: missing field `{name}`"
            ))
        };
        let topic = fields.topic.ok_or_else(|| missing("topic"))?;
        let partition = fields.partition.ok_or_else(|| missing("partition"))?;
        let offset = fields.offset.ok_or_else(|| missing("offset"))?;
        let timestamp = fields.timestamp.ok_or_else(|| missing("timestamp"))?;
        let timestamp_type = fields
            .timestamp_type
            .ok_or_else(|| missing("timestampType"))?;
        let at = || format!("records[{group:?}][{position}] (offset {offset})");
        match &self.owner {
            None => {
                validate_topic_name(&topic).map_err(|_| {
                    Error::InvalidEvent(format!(
                        "records[{group:?}]: {topic:?} is not a valid Kafka topic name"
                    ))
                })?;
                if group != format!("{topic}-{partition}") {
                    return Err(Error::InvalidEvent(format!(
                        "records[{group:?}] holds a record of {topic}-{partition}"
                    )));
                }
                self.wanted = self.sink.partition(&topic, partition)?;
                self.owner = Some((topic.into_owned(), partition));
            }
            Some((owner_topic, owner_partition)) => {
                if topic != owner_topic.as_str() || partition != *owner_partition {
                    return Err(Error::InvalidEvent(format!(
                        "{}: belongs to {topic}-{partition}, not {group}",
                        at()
                    )));
                }
            }
        }
        if offset < 0 {
            return Err(Error::InvalidEvent(format!("{}: offset is negative", at())));
        }
        if position > 0 && offset <= self.record.offset {
            return Err(Error::InvalidEvent(format!(
                "{}: offsets are not increasing",
                at()
            )));
        }
        if let Some(field) = fields.schema_metadata {
            let part = field.trim_end_matches("SchemaMetadata");
            return Err(Error::InvalidEvent(format!(
                "{}: the {part} was decoded by the event source mapping's schema registry \
                 ({field}), so the original bytes are lost: back up through an event source \
                 mapping without SchemaRegistryConfig",
                at()
            )));
        }
        let record = &mut *self.record;
        record.offset = offset;
        record.timestamp = timestamp;
        record.timestamp_type = timestamp_type;
        for (name, text, target) in [
            ("key", fields.key, &mut record.key),
            ("value", fields.value, &mut record.value),
        ] {
            match text {
                None => *target = None,
                Some(text) => {
                    let buffer = target.get_or_insert_with(Vec::new);
                    buffer.clear();
                    // SIMD: scalar base64 decoding was an eighth of the writer's CPU path.
                    base64_simd::STANDARD
                        .decode_append(&text, buffer)
                        .map_err(|error| {
                            Error::InvalidEvent(format!(
                                "{}: {name} is not valid base64: {error}",
                                at()
                            ))
                        })?;
                }
            }
        }
        if self.wanted {
            self.sink.record(self.record)?;
        }
        self.position += 1;
        Ok(())
    }
}

struct RecordsSeed<'a, 'b>(&'a mut GroupState<'b>);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(RecordSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct RecordSeed<'a, 'b>(&'a mut GroupState<'b>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum RecordField {
    Topic,
    Partition,
    Offset,
    Timestamp,
    TimestampType,
    Key,
    Value,
    Headers,
    KeySchemaMetadata,
    ValueSchemaMetadata,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let state = self.0;
        let mut fields = Fields::default();
        let mut headers = 0;
        // The field being read, to name where the JSON went wrong.
        let mut reading = "";
        let mut read = || -> std::result::Result<(), A::Error> {
            while let Some(field) = map.next_key::<RecordField>()? {
                match field {
                    RecordField::Topic => {
                        reading = "topic";
                        fields.topic = Some(map.next_value_seed(Text)?);
                    }
                    RecordField::Partition => {
                        reading = "partition";
                        fields.partition = Some(map.next_value()?);
                    }
                    RecordField::Offset => {
                        reading = "offset";
                        fields.offset = Some(map.next_value()?);
                    }
                    RecordField::Timestamp => {
                        reading = "timestamp";
                        fields.timestamp = Some(map.next_value()?);
                    }
                    RecordField::TimestampType => {
                        reading = "timestampType";
                        fields.timestamp_type = Some(map.next_value()?);
                    }
                    RecordField::Key => {
                        reading = "key";
                        fields.key = map.next_value_seed(NullableBase64)?;
                    }
                    RecordField::Value => {
                        reading = "value";
                        fields.value = map.next_value_seed(NullableBase64)?;
                    }
                    RecordField::Headers => {
                        reading = "headers";
                        headers = map.next_value_seed(HeadersInto(&mut state.record.headers))?;
                    }
                    RecordField::KeySchemaMetadata => {
                        reading = "";
                        fields.schema_metadata = Some("keySchemaMetadata");
                        map.next_value::<IgnoredAny>()?;
                    }
                    RecordField::ValueSchemaMetadata => {
                        reading = "";
                        fields.schema_metadata = Some("valueSchemaMetadata");
                        map.next_value::<IgnoredAny>()?;
                    }
                    RecordField::Other => {
                        reading = "";
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        };
        if let Err(error) = read() {
            let (group, position) = (state.group, state.position);
            let place = match reading {
                "" => format!("records[{group:?}][{position}]"),
                field => format!("records[{group:?}][{position}].{field}"),
            };
            return Err(refuse(
                state.refused,
                Error::InvalidEvent(format!("{place}: {error}")),
            ));
        }
        state.record.headers.truncate(headers);
        state
            .accept(fields)
            .map_err(|error| refuse(state.refused, error))
    }
}

/// A string, borrowed from the body unless it holds escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(
        self,
        text: &'de str,
    ) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

/// A base64 string or null, as the bytes of its text: base64 is ASCII, so checking it as UTF-8
/// first (serde's strings) was a twentieth of the writer's CPU path for nothing; a byte that is
/// not base64 is refused by the decoding that follows.
struct NullableBase64;

impl<'de> DeserializeSeed<'de> for NullableBase64 {
    type Value = Option<Cow<'de, [u8]>>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for NullableBase64 {
    type Value = Option<Cow<'de, [u8]>>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a base64 string or null")
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(Base64Text).map(Some)
    }
}

/// The text of a base64 string, borrowed from the body unless it holds escapes.
struct Base64Text;

impl<'de> Visitor<'de> for Base64Text {
    type Value = Cow<'de, [u8]>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a base64 string or null")
    }

    fn visit_borrowed_bytes<E: de::Error>(
        self,
        text: &'de [u8],
    ) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_bytes<E: de::Error>(self, text: &[u8]) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }

    fn visit_borrowed_str<E: de::Error>(
        self,
        text: &'de str,
    ) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(text.as_bytes()))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(text.as_bytes().to_owned()))
    }
}

/// The `headers` array (objects of name to signed bytes), written over the record's header
/// buffers in order. Returns how many headers it wrote.
struct HeadersInto<'a>(&'a mut Vec<Header>);

impl<'de> DeserializeSeed<'de> for HeadersInto<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for HeadersInto<'_> {
    type Value = usize;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of objects of header names to arrays of signed bytes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<usize, A::Error> {
        let mut count = 0;
        while seq
            .next_element_seed(HeaderEntriesInto {
                headers: &mut *self.0,
                count: &mut count,
            })?
            .is_some()
        {}
        Ok(count)
    }
}

struct HeaderEntriesInto<'a> {
    headers: &'a mut Vec<Header>,
    count: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for HeaderEntriesInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderEntriesInto<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of header names to arrays of signed bytes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(name) = map.next_key_seed(Text)? {
            if *self.count == self.headers.len() {
                self.headers.push(Header {
                    key: String::new(),
                    value: None,
                });
            }
            let header = &mut self.headers[*self.count];
            header.key.clear();
            header.key.push_str(&name);
            let bytes = header.value.get_or_insert_with(Vec::new);
            bytes.clear();
            map.next_value_seed(SignedBytesInto(bytes))?;
            *self.count += 1;
        }
        Ok(())
    }
}

/// An array of signed bytes (`[104, -61]`), appended to a buffer.
struct SignedBytesInto<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for SignedBytesInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SignedBytesInto<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of signed bytes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(byte) = seq.next_element::<i8>()? {
            self.0.push(byte as u8);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
