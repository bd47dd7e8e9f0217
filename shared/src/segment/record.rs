//! A Kafka record as Tidemark stores it: everything needed to reproduce it byte for byte.

/// How the broker interpreted a record's timestamp. Codes match the segment format spec; the
/// serde names match the Lambda event source mapping's `timestampType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
    NoTimestampType,
}

impl TimestampType {
    pub(crate) fn code(self) -> u8 {
        match self {
            TimestampType::CreateTime => 0,
            TimestampType::LogAppendTime => 1,
            TimestampType::NoTimestampType => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(TimestampType::CreateTime),
            1 => Some(TimestampType::LogAppendTime),
            2 => Some(TimestampType::NoTimestampType),
            _ => None,
        }
    }
}

/// One record header. Kafka header keys are strings; values are nullable bytes, and a null
/// value is different from an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// One Kafka record. `None` key or value is Kafka's null, distinct from an empty byte string.
/// Headers keep their order and may repeat a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    pub offset: i64,
    /// Milliseconds since the Unix epoch, as the broker reported it.
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

impl Record {
    /// A record with no key, value or headers: the starting point for decoding into a reused
    /// buffer.
    pub fn empty() -> Self {
        Record {
            offset: 0,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    /// Bytes of key, value and headers (names and values), before framing: what "record
    /// bytes" means in metrics and throughput figures.
    pub fn payload_len(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|header| header.key.len() + header.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}
