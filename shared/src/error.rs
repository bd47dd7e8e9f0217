//! The one error type of the shared crate.

/// Errors raised by the shared crate. Variants say whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes do not start with the segment magic: not a Tidemark segment at all.
    #[error("not a tidemark segment: {0}")]
    NotASegment(String),
    /// A segment written by a newer format version than this build reads.
    #[error(
        "unsupported segment format version {found} (this build reads versions 1 to {supported})"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    /// The segment ends before its header or body says it should.
    #[error("segment is truncated: {0}")]
    TruncatedSegment(String),
    /// The segment's bytes contradict themselves (checksum, counts, framing).
    #[error("segment is corrupt: {0}")]
    CorruptSegment(String),
    /// A sealed segment that cannot be opened: its data key was refused or the body failed
    /// authentication (tampered with, or sealed for another backup). Permanent.
    #[error("segment encryption: {0}")]
    Encryption(String),
    /// Records handed to the segment encoder break its contract (e.g. offsets not increasing).
    #[error("invalid records: {0}")]
    InvalidRecords(String),
    /// An event source mapping event that cannot be backed up as it is; permanent.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// A configuration value that is missing or malformed; permanent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An erasure cannot remove what it must (Object Lock in compliance mode holds the
    /// objects); permanent until the retention ends.
    #[error("erasure refused: {0}")]
    ErasureRefused(String),
    /// A segment object already exists under the same key with different records. Permanent:
    /// it means two different batches claim the same offsets, which must be investigated.
    #[error("segment conflict at {key}: {detail}")]
    SegmentConflict { key: String, detail: String },
    /// The source now holds a different record at an offset the backup already has: the topic
    /// was deleted and recreated, or lost data in an unclean leader election. Permanent:
    /// writing would mix two histories under one offset.
    #[error(
        "{partition} offset {offset} differs from the backed-up record in {key}: the topic was \
         recreated or lost data; nothing was written. A recreated topic is backed up as a new \
         generation once it is known: at once where the writer reads topic ids from the \
         cluster, else from the offset snapshotter's next run on"
    )]
    Diverged {
        partition: String,
        offset: i64,
        key: String,
    },
    /// The source delivered a record below the checkpoint that the backup cannot compare: the
    /// segments there expired or are gone, and no recorded gap explains the offset. It may be a
    /// recreated topic, so it is refused like [`Error::Diverged`] rather than trusted.
    #[error(
        "{partition} offset {offset} is below the checkpoint but {reason}: the batch cannot be \
         checked against the backup, so nothing was written. A recreated topic is backed up \
         as a new generation once it is known (topic ids, or the offset snapshotter's next run)"
    )]
    OverlapUnverifiable {
        partition: String,
        offset: i64,
        reason: String,
    },
    /// The object store (S3) failed.
    #[error("object store failed on {operation} {key}: {message}")]
    ObjectStore {
        operation: &'static str,
        key: String,
        message: String,
        retryable: bool,
    },
    /// The index and checkpoint store (DynamoDB) failed.
    #[error("index store failed on {operation}: {message}")]
    IndexStore {
        operation: &'static str,
        message: String,
        retryable: bool,
    },
    /// A stored snapshot that cannot be read back.
    #[error("snapshot is corrupt: {0}")]
    CorruptSnapshot(String),
    /// A Kafka cluster request failed; the message says what to check.
    #[error("kafka: {message}")]
    Kafka {
        operation: &'static str,
        message: String,
        retryable: bool,
    },
    /// An AWS control-plane call (MSK, Secrets Manager) failed.
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
        retryable: bool,
    },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the same call may succeed if tried again unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ObjectStore { retryable, .. }
            | Error::IndexStore { retryable, .. }
            | Error::Kafka { retryable, .. }
            | Error::Aws { retryable, .. } => *retryable,
            Error::Io(_) => true,
            _ => false,
        }
    }

    /// The same failure for another caller (one broker error answers every group that
    /// shared its request): a Kafka error keeps its kind; others keep their words.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Kafka {
                operation,
                message,
                retryable,
            } => Error::Kafka {
                operation,
                message: message.clone(),
                retryable: *retryable,
            },
            other => Error::Kafka {
                operation: "cluster request",
                message: other.to_string(),
                retryable: other.is_retryable(),
            },
        }
    }

    /// Puts what a cluster error was about (a topic, a group) at the front of its message.
    pub fn with_subject(self, subject: &str) -> Self {
        match self {
            Error::Kafka {
                operation,
                message,
                retryable,
            } => Error::Kafka {
                operation,
                message: format!("{subject}: {message}"),
                retryable,
            },
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
