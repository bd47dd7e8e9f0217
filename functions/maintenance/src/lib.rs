//! Keeping a backup sound and lean, one resumable step at a time for the state machines:
//! the validator reads it back (validation state machine), the maintainer applies retention and
//! compaction (maintenance state machine), the eraser removes records by key (erasure state
//! machine).

pub mod config;
pub mod erase;
pub mod error;
pub mod maintain;
mod steps;
pub mod validate;

pub use config::{BackupConfig, MaintenanceSettings};
pub use erase::{ErasureReport, ErasureRequest, ErasureResponse, ErasureStep, ErasureSteps};
pub use error::{MaintenanceError, Result};
pub use maintain::{Maintainer, MaintenanceReport, MaintenanceResponse, MaintenanceStep};
pub use steps::Progress;
pub use validate::{
    ValidationReport, ValidationRequest, ValidationResponse, ValidationStep, Validator,
};
