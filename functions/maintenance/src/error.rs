//! The maintenance functions' error: what failed, and whether the state machine's retry can help.

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// The request names what the backup does not hold, or is malformed. Nothing was read.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An erasure's verification found matches still stored.
    #[error("erasure incomplete: {0}")]
    ErasureIncomplete(String),
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
}

impl MaintenanceError {
    pub fn error_type(&self) -> &'static str {
        match self {
            MaintenanceError::InvalidRequest(_) => "Tidemark.InvalidRequest",
            MaintenanceError::ErasureIncomplete(_) => "Tidemark.ErasureIncomplete",
            MaintenanceError::Core(tidemark_core::Error::ErasureRefused(_)) => {
                "Tidemark.ErasureRefused"
            }
            MaintenanceError::Core(error) if error.is_retryable() => "Tidemark.Retryable",
            MaintenanceError::Core(_) => "Tidemark.Failed",
        }
    }
}

impl From<MaintenanceError> for Diagnostic {
    fn from(error: MaintenanceError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub type Result<T, E = MaintenanceError> = std::result::Result<T, E>;
