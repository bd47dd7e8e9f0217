//! The delivery loop: gather a batch, invoke the function until it succeeds, and only then
//! commit the consumer offsets, so nothing is skipped and order holds per partition.
//!
//! Gathering runs on a thread of its own, one batch ahead: the next batch is read and
//! serialised while the previous one is being invoked. Batches are still delivered and
//! committed one at a time, in the order they were read. A delivered batch's payload goes
//! back to the gathering thread to be written into again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::batcher::{Added, Batch, BatchBuilder, EventEnvelope, PendingRecord};
use crate::error::{BridgeError, Result};
use crate::invoker::{FunctionInvoker, InvokeOutcome};
use crate::source::with_event_record;

pub type BridgeConsumer = BaseConsumer<RebalanceTracker>;

/// How long the gathering thread waits for a first record before it looks for a stop.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// While records keep coming, the batching window is checked every this many records.
const CLOCK_READ_EVERY: u32 = 64;

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

/// A gathered batch and the consumer group generation it was read in.
struct Gathered {
    batch: Batch,
    generation: u64,
}

/// Runs until `shutdown` turns true (the batch in flight is then left uncommitted and will be
/// delivered again) or a batch exhausts its retries.
pub async fn run(
    consumer: Arc<BridgeConsumer>,
    invoker: &dyn FunctionInvoker,
    envelope: EventEnvelope,
    settings: &BridgeSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    // Two batches at most: one being delivered, the next being gathered or waiting.
    let (hand_over, mut gathered) = mpsc::channel(1);
    let (give_back, given_back) = std_mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let gatherer = {
        let (consumer, settings, stop) = (consumer.clone(), settings.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            gather_batches(
                &consumer,
                envelope,
                &settings,
                &stop,
                &hand_over,
                &given_back,
            )
        })
    };
    let delivered = deliver_batches(
        &consumer,
        invoker,
        &mut gathered,
        &give_back,
        settings,
        shutdown,
    )
    .await;
    // A gatherer waiting to hand over a batch sees the channel closed; one reading sees `stop`.
    stop.store(true, Ordering::SeqCst);
    drop(gathered);
    let gathering = gatherer.await.expect("the gathering thread does not panic");
    delivered.and(gathering)
}

/// Delivers gathered batches in order until the gatherer stops, a shutdown, or an error.
async fn deliver_batches(
    consumer: &BridgeConsumer,
    invoker: &dyn FunctionInvoker,
    gathered: &mut mpsc::Receiver<Gathered>,
    give_back: &std_mpsc::Sender<Vec<u8>>,
    settings: &BridgeSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let Gathered {
            mut batch,
            generation,
        } = tokio::select! {
            next = gathered.recv() => match next {
                Some(next) => next,
                None => return Ok(()),
            },
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        if consumer.context().generation() != generation {
            // Nothing of it was delivered or committed: the partitions' owners read it again
            // from their committed offsets.
            info!(
                records = batch.record_count,
                "consumer group rebalanced before the batch was delivered; dropped, to be read again"
            );
            let _ = give_back.send(batch.payload);
            continue;
        }
        let payload = Bytes::from(std::mem::take(&mut batch.payload));
        let delivered = deliver(invoker, &payload, &batch, settings, &mut shutdown).await?;
        // Once an invocation has returned, the client holds no more of the payload's handles.
        if let Ok(buffer) = payload.try_into_mut() {
            // The gathering thread may have stopped: the buffer is then simply freed.
            let _ = give_back.send(buffer.into());
        }
        if !delivered {
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

/// The gathering thread: batch after batch, each gathered once the previous one was taken for
/// delivery. Gathering a third while one waits and one is delivered would only hold another
/// 6 MB payload (and keep the allocator's arenas larger): delivery cannot take it sooner.
fn gather_batches(
    consumer: &BridgeConsumer,
    envelope: EventEnvelope,
    settings: &BridgeSettings,
    stop: &AtomicBool,
    hand_over: &mpsc::Sender<Gathered>,
    given_back: &std_mpsc::Receiver<Vec<u8>>,
) -> Result<()> {
    let mut builder = BatchBuilder::new(envelope, settings.batch_size, settings.max_payload_bytes);
    let mut carried = None;
    let runtime = tokio::runtime::Handle::current();
    loop {
        let Ok(slot) = runtime.block_on(hand_over.reserve()) else {
            return Ok(()); // delivery has stopped
        };
        // The batch delivered before the one just taken has given its payload back.
        for payload in given_back.try_iter() {
            builder.recycle(payload);
        }
        let Some(gathered) = gather(consumer, &mut builder, &mut carried, settings, stop)? else {
            return Ok(());
        };
        slot.send(gathered);
    }
}

/// Gathers one batch as the event source mapping does: from its first record until it is full
/// or the batching window closes. `None` when asked to stop while waiting for a first record.
/// `carried` is the record that did not fit the previous batch, with its generation.
fn gather(
    consumer: &BridgeConsumer,
    builder: &mut BatchBuilder,
    carried: &mut Option<(PendingRecord, u64)>,
    settings: &BridgeSettings,
    stop: &AtomicBool,
) -> Result<Option<Gathered>> {
    loop {
        let generation = match carried.take() {
            Some((record, read_in)) if read_in == consumer.context().generation() => {
                builder.add(record)?;
                read_in
            }
            // Read before a rebalance: whoever owns its partition now reads it again.
            Some(_) => continue,
            None => loop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let Some(message) = next_message(consumer, IDLE_POLL) else {
                    continue;
                };
                let generation = consumer.context().generation();
                with_event_record(&message, |record| builder.add_read(record))?;
                break generation;
            },
        };
        let window_ends = Instant::now() + settings.batching_window;
        let mut rebalanced = false;
        let mut added = 0u32;
        while !builder.is_full() {
            // Records already fetched are taken without waiting.
            let message = match next_message(consumer, Duration::ZERO) {
                Some(message) => message,
                None => {
                    let now = Instant::now();
                    if now >= window_ends {
                        break;
                    }
                    match next_message(consumer, window_ends - now) {
                        Some(message) => message,
                        None => continue,
                    }
                }
            };
            if consumer.context().generation() != generation
                || builder.repeats(message.topic(), message.partition(), message.offset())
            {
                rebalanced = true;
                break;
            }
            if let Added::Full(record) =
                with_event_record(&message, |record| builder.add_read(record))?
            {
                *carried = Some((record, generation));
                break;
            }
            // While records keep coming, the window is checked every few of them.
            added += 1;
            if added.is_multiple_of(CLOCK_READ_EVERY) && Instant::now() >= window_ends {
                break;
            }
        }
        let batch = builder.take();
        if rebalanced || consumer.context().generation() != generation {
            info!(
                records = batch.record_count,
                "consumer group rebalanced while gathering a batch; dropped, to be read again"
            );
            builder.recycle(batch.payload);
            continue;
        }
        return Ok(Some(Gathered { batch, generation }));
    }
}

/// The next record within `timeout`. Consumer errors (a broker reconnecting, a rebalance) are
/// not records: librdkafka recovers from them by itself, so they are logged and reading goes on.
fn next_message(consumer: &BridgeConsumer, timeout: Duration) -> Option<BorrowedMessage<'_>> {
    match consumer.poll(timeout)? {
        Ok(message) => Some(message),
        Err(error) => {
            warn!(%error, "consumer error; continuing");
            None
        }
    }
}

/// Invokes until success. Returns false if shutdown was asked for while retrying.
async fn deliver(
    invoker: &dyn FunctionInvoker,
    payload: &Bytes,
    batch: &Batch,
    settings: &BridgeSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let mut backoff = settings.initial_backoff;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let error = match invoker.invoke(payload.clone()).await {
            Ok(InvokeOutcome::Success) => {
                info!(
                    records = batch.record_count,
                    partitions = batch.last_offsets.len(),
                    payload_bytes = payload.len(),
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

fn commit(consumer: &BridgeConsumer, batch: &Batch) -> Result<()> {
    let mut offsets = TopicPartitionList::new();
    for (topic, partition, last_offset) in &batch.last_offsets {
        offsets.add_partition_offset(topic, *partition, Offset::Offset(last_offset + 1))?;
    }
    consumer.commit(&offsets, CommitMode::Sync)?;
    Ok(())
}
