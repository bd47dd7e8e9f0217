//! The offset-reset function's error: what failed, for which groups, and the `errorType` the
//! state machine routes on (retry with backoff, or roll back and fail).

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The request is wrong; nothing was changed.
    #[error("invalid offset reset request: {0}")]
    InvalidRequest(String),
    /// The request is well formed but the cluster or the backup cannot take it as asked
    /// (active groups, unknown topics, no snapshot); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// Committing failed for some groups; the message names each and why. `retryable` when
    /// every failure was one a later attempt may not meet.
    #[error("offsets were not applied: {message}")]
    ApplyFailed { message: String, retryable: bool },
    /// Reading back found groups that are not where they were put.
    #[error("offsets did not verify: {0}")]
    VerifyFailed(String),
    /// Putting groups back to their snapshot failed; the message names them.
    #[error("rollback incomplete: {message}")]
    RollbackFailed { message: String, retryable: bool },
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
}

impl ResetError {
    pub fn error_type(&self) -> &'static str {
        match self {
            ResetError::InvalidRequest(_) => "Tidemark.InvalidRequest",
            ResetError::Refused(_) => "Tidemark.Refused",
            ResetError::ApplyFailed {
                retryable: true, ..
            }
            | ResetError::RollbackFailed {
                retryable: true, ..
            } => "Tidemark.Retryable",
            ResetError::ApplyFailed { .. } | ResetError::VerifyFailed(_) => {
                "Tidemark.OffsetResetFailed"
            }
            ResetError::RollbackFailed { .. } => "Tidemark.RollbackFailed",
            ResetError::Core(error) if error.is_retryable() => "Tidemark.Retryable",
            ResetError::Core(_) => "Tidemark.Failed",
        }
    }
}

impl From<ResetError> for Diagnostic {
    fn from(error: ResetError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub type Result<T, E = ResetError> = std::result::Result<T, E>;
