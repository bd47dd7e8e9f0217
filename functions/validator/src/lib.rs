//! The validator: checks a backup for the validation state machine, one step at a time.

pub mod config;
pub mod error;
pub mod run;

pub use config::ValidatorConfig;
pub use error::{Result, ValidatorError};
pub use run::{StepRequest, StepResponse, ValidationReport, ValidationRequest, Validator};
