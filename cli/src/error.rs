//! The CLI's error and the exit codes scripts rely on.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command names something that is not there, or is missing a setting.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Core(#[from] tidemark_core::Error),
    /// An AWS call that could not complete.
    #[error("{0}")]
    Failed(String),
    #[error("cannot print the result: {0}")]
    Output(String),
}

/// The backup has errors (validate).
pub const EXIT_FINDINGS: u8 = 1;
/// Bad usage or input (clap uses 2 for usage errors too).
pub const EXIT_INPUT: u8 = 2;
/// Could not complete: AWS, network, a store.
pub const EXIT_FAILED: u8 = 3;

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Input(_) | CliError::Core(tidemark_core::Error::Config(_)) => EXIT_INPUT,
            _ => EXIT_FAILED,
        })
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
