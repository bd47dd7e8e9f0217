//! The delivery loop: gather a batch, invoke the function until it succeeds, and only then
//! commit the consumer offsets, so nothing is skipped and order holds per partition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::batcher::{Added, Batch, BatchBuilder, EventEnvelope, PendingRecord};
use crate::error::{BridgeError, Result};
use crate::invoker::{FunctionInvoker, InvokeOutcome};
use crate::source::event_record;

#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Records per event (ESM `BatchSize`).
    pub batch_size: usize,
    /// How long to gather records after the first one (ESM `MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    pub max_payload_bytes: usize,
    /// `None` retries a failing batch until it succeeds, like the ESM's default.
    pub max_retry_attempts: Option<u32>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Counts the consumer group's rebalances. After one, the consumer may hold other partitions
/// and re-read records from their committed offsets: a batch gathered across it could repeat
/// offsets, and its commit may name partitions this bridge no longer owns. As an event source
/// mapping's poller does, the bridge then drops the batch and starts again.
#[derive(Debug, Default)]
pub struct RebalanceTracker {
    generation: AtomicU64,
}

impl RebalanceTracker {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

impl ClientContext for RebalanceTracker {}

impl ConsumerContext for RebalanceTracker {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        info!(?rebalance, "consumer group rebalance");
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs until `shutdown` turns true (the batch in flight is then left uncommitted and will be
/// delivered again) or a batch exhausts its retries.
pub async fn run(
    consumer: &StreamConsumer<RebalanceTracker>,
    invoker: &dyn FunctionInvoker,
    envelope: EventEnvelope,
    settings: &BridgeSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut builder = BatchBuilder::new(envelope, settings.batch_size, settings.max_payload_bytes);
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(record) => record,
            None => tokio::select! {
                record = next_record(consumer) => record?,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            },
        };
        let generation = consumer.context().generation();
        if let Added::Full(_) = builder.add(first)? {
            unreachable!("an empty batch accepts any record that fits the payload limit");
        }
        let window_ends = Instant::now() + settings.batching_window;
        let mut rebalanced = false;
        while !builder.is_full() {
            let Ok(record) = tokio::time::timeout_at(window_ends, next_record(consumer)).await
            else {
                break;
            };
            let record = record?;
            if consumer.context().generation() != generation || builder.repeats(&record) {
                rebalanced = true;
                break;
            }
            if let Added::Full(record) = builder.add(record)? {
                carried = Some(record);
                break;
            }
        }
        let batch = builder.take();
        if rebalanced || consumer.context().generation() != generation {
            // Nothing of it was delivered or committed: the partitions' owners read it again
            // from their committed offsets.
            info!(
                records = batch.record_count,
                "consumer group rebalanced while gathering a batch; dropped, to be read again"
            );
            continue;
        }
        if !deliver(invoker, &batch, settings, &mut shutdown).await? {
            return Ok(());
        }
        if let Err(error) = commit(consumer, &batch) {
            if consumer.context().generation() == generation {
                return Err(error);
            }
            // Delivered, but the partitions moved meanwhile: their new owner delivers these
            // records again and the function takes the repeat (its writes are idempotent).
            warn!(%error, records = batch.record_count, "commit after a rebalance failed; the new owner re-delivers");
        }
    }
}

/// The next record. Consumer errors (a broker reconnecting, a rebalance) are not records:
/// librdkafka recovers from them by itself, so they are logged and reading goes on.
async fn next_record(consumer: &StreamConsumer<RebalanceTracker>) -> Result<PendingRecord> {
    loop {
        match consumer.recv().await {
            Ok(message) => return event_record(&message),
            Err(error) => {
                warn!(%error, "consumer error; continuing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Invokes until success. Returns false if shutdown was asked for while retrying.
async fn deliver(
    invoker: &dyn FunctionInvoker,
    batch: &Batch,
    settings: &BridgeSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let mut backoff = settings.initial_backoff;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let error = match invoker.invoke(batch.payload.clone()).await {
            Ok(InvokeOutcome::Success) => {
                info!(
                    records = batch.record_count,
                    partitions = batch.last_offsets.len(),
                    payload_bytes = batch.payload.len(),
                    attempt,
                    "batch delivered"
                );
                return Ok(true);
            }
            Ok(InvokeOutcome::FunctionError(error)) => error,
            Err(error) => error.to_string(),
        };
        warn!(records = batch.record_count, attempt, %error, "batch failed; it will be retried unchanged");
        if settings.max_retry_attempts.is_some_and(|max| attempt > max) {
            return Err(BridgeError::RetriesExhausted {
                records: batch.record_count,
                attempts: attempt,
                last_error: error,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(false),
        }
        backoff = (backoff * 2).min(settings.max_backoff);
    }
}

fn commit(consumer: &StreamConsumer<RebalanceTracker>, batch: &Batch) -> Result<()> {
    let mut offsets = TopicPartitionList::new();
    for (topic, partition, last_offset) in &batch.last_offsets {
        offsets.add_partition_offset(topic, *partition, Offset::Offset(last_offset + 1))?;
    }
    consumer.commit(&offsets, CommitMode::Sync)?;
    Ok(())
}
