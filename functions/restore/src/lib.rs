//! Point-in-time restore of a Tidemark backup into a Kafka cluster, as the functions of the
//! restore state machine (`statemachines/restore.asl.json`):
//!
//! - `restore-coordinator`: validate and plan, snapshot the target groups' offsets, create
//!   topics, reset offsets, validate counts, write the report, and roll back on failure;
//! - `restore-partition`: copy one partition's selected records, resumably.

pub mod backup;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod partition;
pub mod plan;
pub mod request;
pub mod target;

pub use error::{RestoreError, Result};
