//! The restore functions' error: what failed, where, and the `errorType` the state machine
//! routes on (retry, or roll back and fail).

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The restore request is wrong; nothing was changed.
    #[error("invalid restore request: {0}")]
    InvalidRequest(String),
    /// The request is well formed but the backup or the target cannot take it as asked
    /// (unknown backup, missing topic, active group); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The target no longer looks like the plan expects: someone else wrote to a target
    /// partition, or records this restore produced are gone.
    #[error("target changed under the restore: {0}")]
    TargetChanged(String),
    /// After restoring, the target does not hold what the restore produced.
    #[error("restored counts do not match: {0}")]
    CountMismatch(String),
    /// Another invocation may be restoring the partition right now; retry later.
    #[error("partition busy: {0}")]
    PartitionBusy(String),
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
}

impl RestoreError {
    pub fn error_type(&self) -> &'static str {
        match self {
            RestoreError::InvalidRequest(_) => "Tidemark.InvalidRequest",
            RestoreError::Refused(_) => "Tidemark.Refused",
            RestoreError::TargetChanged(_) => "Tidemark.TargetChanged",
            RestoreError::CountMismatch(_) => "Tidemark.CountMismatch",
            RestoreError::PartitionBusy(_) => "Tidemark.PartitionBusy",
            RestoreError::Core(error) if error.is_retryable() => "Tidemark.Retryable",
            RestoreError::Core(_) => "Tidemark.Failed",
        }
    }
}

impl From<RestoreError> for Diagnostic {
    fn from(error: RestoreError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub type Result<T, E = RestoreError> = std::result::Result<T, E>;
