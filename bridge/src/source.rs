//! Reading records from Kafka as event records.

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use tidemark_core::event::EventRecordRef;
use tidemark_core::kafka::client::timestamp_of;

/// Headers held on the stack; a record with more spills to the heap.
const INLINE_HEADERS: usize = 8;

/// Calls `with` on the record as the broker delivered it, borrowed from the consumer's buffer.
pub fn with_event_record<T>(
    message: &BorrowedMessage<'_>,
    with: impl FnOnce(&EventRecordRef<'_>) -> T,
) -> T {
    let (timestamp, timestamp_type) = timestamp_of(message);
    let headers = message.headers();
    let count = headers.as_ref().map_or(0, |headers| headers.count());
    // Most records have a few headers: no allocation per record for them.
    let mut inline: [(&str, Option<&[u8]>); INLINE_HEADERS] = [("", None); INLINE_HEADERS];
    let spilled: Vec<(&str, Option<&[u8]>)>;
    let headers: &[(&str, Option<&[u8]>)] = match &headers {
        None => &[],
        Some(headers) if count <= INLINE_HEADERS => {
            for (slot, header) in inline.iter_mut().zip(headers.iter()) {
                *slot = (header.key, header.value);
            }
            &inline[..count]
        }
        Some(headers) => {
            spilled = headers
                .iter()
                .map(|header| (header.key, header.value))
                .collect();
            &spilled
        }
    };
    with(&EventRecordRef {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp,
        timestamp_type,
        key: message.key(),
        value: message.payload(),
        headers,
    })
}
