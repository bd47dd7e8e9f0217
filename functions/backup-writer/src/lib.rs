//! The backup writer Lambda: logic lives here, `main.rs` only wires it to AWS.

pub mod error;
pub mod handler;
pub mod overlap;

pub use error::{Result, WriterError};
pub use handler::{BackupWriter, BatchReport, PartitionReport, encode_event, encode_partition};
