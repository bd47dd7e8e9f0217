//! Segment format v1: one immutable object per partition batch. Spec: `docs/segment-format.md`.

pub mod encryption;
mod header;
mod reader;
mod record;
mod writer;

pub use header::{
    Compression, Envelope, FORMAT_VERSION, MAGIC, MAX_WRITE_MARKS, SegmentHeader, WriteMark,
};
pub use reader::{SegmentReader, verify_stored_segment};
pub use record::{Header, Record, TimestampType};
pub use writer::{EncodedSegment, PendingSegment, SegmentEncoder};

#[cfg(test)]
mod tests;
