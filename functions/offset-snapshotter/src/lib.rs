//! The offset snapshotter: on a schedule (and on demand) it records every selected consumer
//! group's committed offsets, the backed-up topics' watermarks, partition counts and configs,
//! and detects recreated topics and partitions the backup stopped following. Restores use the latest snapshot at or before T.

pub mod collect;
pub mod config;
pub mod error;
pub mod handler;
pub mod recreation;
pub mod stall;

pub use config::SnapshotterConfig;
pub use error::SnapshotterError;
pub use handler::{SnapshotRequest, SnapshotResponse, Snapshotter};
pub use stall::StalledPartition;
