//! The backup writer Lambda: logic lives here, `main.rs` only wires it to AWS.

pub mod encode;
pub mod error;
pub mod generations;
pub mod handler;
pub mod invocation;
pub mod overlap;

pub use encode::{EncodedEvent, EncodedPartition, Encoding, encode_event};
pub use error::{Result, WriterError};
pub use generations::TopicGenerations;
pub use handler::{BackupWriter, BatchReport, PartitionReport};
