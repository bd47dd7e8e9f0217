//! Reading records from Kafka and turning them into event records.

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use tidemark_core::event::KafkaEventRecord;
use tidemark_core::segment::{Header, Record, TimestampType};

/// The record as the broker delivered it, in the event source mapping's shape.
pub fn event_record(message: &BorrowedMessage<'_>) -> KafkaEventRecord {
    let (timestamp, timestamp_type) = match message.timestamp() {
        rdkafka::Timestamp::CreateTime(ms) => (ms, TimestampType::CreateTime),
        rdkafka::Timestamp::LogAppendTime(ms) => (ms, TimestampType::LogAppendTime),
        rdkafka::Timestamp::NotAvailable => (-1, TimestampType::NoTimestampType),
    };
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| Header {
                    key: header.key.to_owned(),
                    value: header.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    let record = Record {
        offset: message.offset(),
        timestamp,
        timestamp_type,
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    };
    KafkaEventRecord::encode(message.topic(), message.partition(), &record)
}
