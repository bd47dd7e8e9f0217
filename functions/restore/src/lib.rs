//! Point-in-time restore of a Tidemark backup into a Kafka cluster, as the functions of the
//! restore state machine (`statemachines/restore.asl.json`):
//!
//! - `restore-coordinator`: validate and plan, create topics, validate counts and write the
//!   offset mapping, write the report, and roll back on failure;
//! - `restore-partition`: copy one partition's selected records, resumably;
//! - `drill`: the recovery drill's steps (`statemachines/drill.asl.json`).
//!
//! Consumer groups are moved by the offset-reset state machine (`functions/offset-reset`), which
//! the restore machine runs as a child execution with the plan's request.

pub mod config;
pub mod coordinator;
pub mod drill;
pub mod error;
pub mod partition;
pub mod plan;
pub mod request;
pub mod target;

pub use error::{RestoreError, Result};
