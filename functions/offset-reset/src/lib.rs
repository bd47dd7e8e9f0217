//! The offset-reset state machine's function: move consumer groups all-or-nothing.
//!
//! plan → check groups → snapshot → apply → verify, and on a failure in apply or verify:
//! rollback → verify rollback → fail. Each step is idempotent (Step Functions may run it
//! again) and reads what earlier steps decided from S3, so the state machine passes only
//! small documents around. `docs/offset-reset.md` is the operator's runbook.

pub mod apply;
pub mod config;
pub mod error;
pub mod handler;
pub mod plan;
pub mod records;
pub mod request;
pub mod rollback;

use std::collections::BTreeMap;
use std::future::Future;

use futures::StreamExt;
use tidemark_core::kafka::{ClusterReader, TopicPartition};

use crate::error::Result;

/// Runs `work` on every item, at most `concurrency` at a time, and returns each item's result
/// in the items' order: one failure does not stop the others (a rollback must know them all).
pub async fn run_bounded<I, T, F, W>(items: Vec<I>, concurrency: usize, work: W) -> Vec<T>
where
    F: Future<Output = T>,
    W: Fn(I) -> F,
{
    futures::stream::iter(items.into_iter().map(work))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Each group's committed offsets on its partitions, all groups in one batched read.
pub async fn committed_by_group(
    cluster: &dyn ClusterReader,
    wanted: &[(String, Vec<TopicPartition>)],
) -> Result<BTreeMap<String, BTreeMap<TopicPartition, i64>>> {
    let mut found = BTreeMap::new();
    for ((group, _), read) in wanted
        .iter()
        .zip(cluster.committed_offsets_of_groups(wanted).await)
    {
        let offsets = read?
            .into_iter()
            .map(|offset| {
                (
                    TopicPartition::new(offset.topic, offset.partition),
                    offset.offset,
                )
            })
            .collect();
        found.insert(group.clone(), offsets);
    }
    Ok(found)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
