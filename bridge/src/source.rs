//! Reading records from Kafka and turning them into event records.

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use tidemark_core::event::EventRecordRef;
use tidemark_core::kafka::client::timestamp_of;

use crate::batcher::PendingRecord;
use crate::error::Result;

/// The record as the broker delivered it, in the event source mapping's JSON shape, written
/// straight from the consumer's buffer.
pub fn event_record(message: &BorrowedMessage<'_>) -> Result<PendingRecord> {
    let (timestamp, timestamp_type) = timestamp_of(message);
    let headers: Vec<(&str, Option<&[u8]>)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| (header.key, header.value))
                .collect()
        })
        .unwrap_or_default();
    PendingRecord::new(&EventRecordRef {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp,
        timestamp_type,
        key: message.key(),
        value: message.payload(),
        headers: &headers,
    })
}
