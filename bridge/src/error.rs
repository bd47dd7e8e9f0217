#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(
        "record {topic}-{partition} offset {offset} needs a {bytes} byte event, over the {limit} byte payload limit: it can never be delivered"
    )]
    RecordTooLarge {
        topic: String,
        partition: i32,
        offset: i64,
        bytes: usize,
        limit: usize,
    },
    #[error("cannot encode the event: {0}")]
    Encode(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("invoking {function}: {message}")]
    Invoke { function: String, message: String },
    #[error(
        "batch of {records} records still failing after {attempts} attempts; last error: {last_error}"
    )]
    RetriesExhausted {
        records: usize,
        attempts: u32,
        last_error: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
}

pub type Result<T, E = BridgeError> = std::result::Result<T, E>;
