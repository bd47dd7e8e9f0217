//! The snapshotter's error: what failed, and whether the scheduler's retry can help.

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotterError {
    /// The invocation payload is not a snapshot request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Snapshots were written, but some groups' offsets could not be read; they are marked
    /// unknown in the snapshot. Fails the invocation so alarms on errors fire.
    #[error("offsets of {count} group(s) could not be read: {detail}")]
    GroupsUnreadable { count: usize, detail: String },
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
}

impl SnapshotterError {
    pub fn error_type(&self) -> &'static str {
        match self {
            SnapshotterError::InvalidRequest(_) => "Tidemark.InvalidRequest",
            SnapshotterError::GroupsUnreadable { .. } => "Tidemark.GroupsUnreadable",
            SnapshotterError::Core(error) if error.is_retryable() => "Tidemark.Retryable",
            SnapshotterError::Core(_) => "Tidemark.Failed",
        }
    }
}

impl From<SnapshotterError> for Diagnostic {
    fn from(error: SnapshotterError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub type Result<T, E = SnapshotterError> = std::result::Result<T, E>;
