//! The validator's error: what failed, and whether the state machine's retry can help.

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The request names what the backup does not hold, or is malformed. Nothing was read.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
}

impl ValidatorError {
    pub fn error_type(&self) -> &'static str {
        match self {
            ValidatorError::InvalidRequest(_) => "Tidemark.InvalidRequest",
            ValidatorError::Core(error) if error.is_retryable() => "Tidemark.Retryable",
            ValidatorError::Core(_) => "Tidemark.Failed",
        }
    }
}

impl From<ValidatorError> for Diagnostic {
    fn from(error: ValidatorError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub type Result<T, E = ValidatorError> = std::result::Result<T, E>;
