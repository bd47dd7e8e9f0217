//! Tidemark's shared library: the segment format, the storage layout, the index and
//! checkpoint model with its stores, cluster snapshots and their catalog, Kafka connections,
//! the source→target offset map of restores, the Lambda event shape, configuration and
//! telemetry.

pub mod checkpoint;
pub mod compaction;
pub mod config;
pub mod erasure;
pub mod error;
pub mod event;
pub mod index;
pub mod kafka;
pub mod keys;
pub mod layout;
pub mod masking;
pub mod object_store;
pub mod offset_map;
pub mod operations;
pub mod request;
pub mod retention;
pub mod sample;
pub mod segment;
pub mod shredding;
pub mod snapshot;
pub mod stores;
pub mod telemetry;
pub mod validation;

pub use error::{Error, Result};
