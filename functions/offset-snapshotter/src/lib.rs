//! The offset snapshotter: on a schedule (and on demand) it records every selected consumer
//! group's committed offsets, the backed-up topics' watermarks, partition counts and configs,
//! and detects recreated topics. Restores use the latest snapshot at or before T.

pub mod collect;
pub mod config;
pub mod error;
pub mod handler;
pub mod recreation;

pub use config::SnapshotterConfig;
pub use error::SnapshotterError;
pub use handler::{SnapshotRequest, SnapshotResponse, Snapshotter};
