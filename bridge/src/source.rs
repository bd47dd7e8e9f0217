//! Reading records from Kafka and turning them into event records.

use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use tidemark_core::event::KafkaEventRecord;
use tidemark_core::kafka::client::record_from_message;

/// The record as the broker delivered it, in the event source mapping's shape.
pub fn event_record(message: &BorrowedMessage<'_>) -> KafkaEventRecord {
    let record = record_from_message(message);
    KafkaEventRecord::encode(message.topic(), message.partition(), &record)
}
