//! Segment format (version 2; version 1 still read): one immutable object per partition batch. Spec: `docs/segment-format.md`.

mod compressor;
pub mod encryption;
mod frame;
mod header;
mod key_filter;
mod reader;
mod record;
mod writer;

pub use header::{
    Compression, Envelope, FORMAT_VERSION, KeyFilterSection, MAGIC, MAX_WRITE_MARKS, SegmentHeader,
    WriteMark,
};
pub use key_filter::{KeyFilter, key_hash};
pub use reader::{BodyBuffers, SegmentReader, verify_stored_segment};
pub use record::{Header, Record, TimestampType};
pub use writer::{EncodedSegment, PendingSegment, SegmentEncoder};

#[cfg(test)]
mod tests;
