//! Compressing a segment's framed records on a thread of its own while more are framed.
//!
//! The writer reads an event's JSON on one core; compressing each partition only once its
//! records were all read left the second core idle for the first partition and the reading
//! idle for the last one. Here framed records go to the compressing thread in chunks as they
//! are framed, so reading and compressing overlap from the first chunk. That thread also
//! finishes the frame once the records are all pushed, so a partition being finished holds
//! one thread, not two.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// Framed bytes handed over at a time: two zstd blocks, so little waits at the end.
pub(super) const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks queued for the thread: beyond this the framing waits (and leaves it the core).
const QUEUED_CHUNKS: usize = 8;

/// The body as the compressing thread leaves it.
pub(super) struct CompressedBody {
    /// `header_len` reserved bytes, then one zstd frame with its checksum.
    pub(super) bytes: Vec<u8>,
    pub(super) records_crc32c: u32,
    pub(super) uncompressed_len: u64,
}

pub(super) struct BackgroundCompressor {
    /// `None` once closed: the thread then finishes the frame.
    chunks: Option<SyncSender<Vec<u8>>>,
    /// Emptied chunks coming back, so framing reuses their memory.
    spent: Receiver<Vec<u8>>,
    /// Taken when the thread is joined.
    thread: Option<JoinHandle<Result<CompressedBody>>>,
}

impl BackgroundCompressor {
    pub(super) fn start(header_len: usize, level: i32) -> Result<Self> {
        let mut encoder = zstd::stream::write::Encoder::new(vec![0u8; header_len], level)?;
        encoder.include_checksum(true)?;
        let (chunks, queued) = sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let (give_back, spent) = sync_channel(QUEUED_CHUNKS + 1);
        let thread = std::thread::Builder::new()
            .name("segment-zstd".into())
            .spawn(move || {
                let mut records_crc32c = 0;
                let mut uncompressed_len = 0;
                for mut chunk in queued {
                    records_crc32c = crc32c::crc32c_append(records_crc32c, &chunk);
                    uncompressed_len += chunk.len() as u64;
                    encoder.write_all(&chunk)?;
                    chunk.clear();
                    // The framing side may have stopped taking chunks back; then it is dropped.
                    let _ = give_back.try_send(chunk);
                }
                Ok(CompressedBody {
                    bytes: encoder.finish()?,
                    records_crc32c,
                    uncompressed_len,
                })
            })?;
        Ok(BackgroundCompressor {
            chunks: Some(chunks),
            spent,
            thread: Some(thread),
        })
    }

    /// Hands `chunk` over and returns an empty buffer to frame the next one into.
    pub(super) fn send(&mut self, chunk: Vec<u8>) -> Result<Vec<u8>> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(chunk).is_ok(),
            None => false,
        };
        if !sent {
            // Only an error stops the thread early: joining it gives the reason.
            return Err(self.stopped());
        }
        Ok(self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES + 4096)))
    }

    /// Hands the last chunk over: the thread finishes the frame while the caller goes on.
    pub(super) fn close(&mut self, last: Vec<u8>) -> Result<()> {
        if !last.is_empty() {
            self.send(last)?;
        }
        self.chunks = None;
        Ok(())
    }

    /// Hands the last chunk over (if not closed already) and waits for the body.
    pub(super) fn finish(mut self, last: Vec<u8>) -> Result<CompressedBody> {
        self.close(last)?;
        self.join()
    }

    fn stopped(&mut self) -> Error {
        self.chunks = None;
        self.join().err().unwrap_or_else(|| {
            Error::InvalidRecords("the segment's compressing thread stopped".into())
        })
    }

    fn join(&mut self) -> Result<CompressedBody> {
        self.thread
            .take()
            .ok_or_else(|| {
                Error::InvalidRecords("the segment's compressing thread was already joined".into())
            })?
            .join()
            .map_err(|_| Error::InvalidRecords("compressing a segment panicked".into()))?
    }
}
