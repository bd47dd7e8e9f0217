use lambda_runtime::Diagnostic;

/// Errors of the backup writer. The Lambda `errorType` tells operators whether the event
/// source mapping's retry can help.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
    /// Some partitions of the batch failed; the others are durable and a retry is idempotent.
    #[error("{failed} of {total} partitions failed: {summary}")]
    Partitions {
        failed: usize,
        total: usize,
        summary: String,
        /// Every failure was transient.
        retryable: bool,
        /// Some partition's segment key already holds different records.
        conflict: bool,
        /// Some partition's source holds different records than the backup (recreated topic).
        diverged: bool,
    },
}

pub type Result<T, E = WriterError> = std::result::Result<T, E>;

impl WriterError {
    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        use tidemark_core::Error as Core;
        match self {
            WriterError::Core(Core::InvalidEvent(_) | Core::InvalidRecords(_)) => {
                "Tidemark.InvalidEvent"
            }
            WriterError::Core(Core::Diverged { .. } | Core::OverlapUnverifiable { .. })
            | WriterError::Partitions { diverged: true, .. } => "Tidemark.TopicRecreated",
            WriterError::Core(Core::SegmentConflict { .. })
            | WriterError::Partitions { conflict: true, .. } => "Tidemark.SegmentConflict",
            WriterError::Core(core) if core.is_retryable() => "Tidemark.Retryable",
            WriterError::Partitions {
                retryable: true, ..
            } => "Tidemark.Retryable",
            _ => "Tidemark.Failed",
        }
    }
}

impl From<WriterError> for Diagnostic {
    fn from(error: WriterError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}
