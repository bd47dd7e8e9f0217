//! The snapshotter's invocation: take the configured number of samples, each written to S3
//! and then indexed (the object is durable before the catalog points at it), with metrics.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tidemark_core::index::IndexStore;
use tidemark_core::kafka::ClusterReader;
use tidemark_core::object_store::{ObjectMetadata, ObjectStore, PutOutcome};
use tidemark_core::operations::{Freshness, HealthAspect, OperationsBook};
use tidemark_core::snapshot::{ClusterSnapshot, SnapshotCatalog, SnapshotEntry, TopicGeneration};
use tidemark_core::telemetry::{MetricsLine, Unit};

use crate::collect::{Collector, now_ms};
use crate::config::SnapshotterConfig;
use crate::error::{Result, SnapshotterError};
use crate::stall::{StalledPartition, following};

/// The invocation payload. A scheduled EventBridge event carries neither field and takes the
/// configured defaults; an on-demand call may ask for another number of samples.
#[derive(Debug, Default, Deserialize)]
pub struct SnapshotRequest {
    #[serde(default)]
    pub samples: Option<u32>,
    #[serde(default)]
    pub interval_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotSummary {
    pub started_at_ms: i64,
    pub taken_at_ms: i64,
    pub key: String,
    pub groups: usize,
    pub topics: usize,
    pub partitions: usize,
}

#[derive(Debug, Serialize)]
pub struct SnapshotResponse {
    pub snapshots: Vec<SnapshotSummary>,
    pub recreations: Vec<TopicGeneration>,
    /// Samples not taken because the next one would not finish before the deadline.
    pub skipped_samples: u32,
    /// Partitions the backup stopped following, as of the last sample.
    pub stalled_partitions: Vec<StalledPartition>,
}

pub struct Snapshotter {
    config: SnapshotterConfig,
    bootstrap_servers: String,
    cluster: Arc<dyn ClusterReader>,
    objects: Arc<dyn ObjectStore>,
    index: Arc<dyn IndexStore>,
    catalog: Arc<dyn SnapshotCatalog>,
    operations: Arc<dyn OperationsBook>,
}

impl Snapshotter {
    pub fn new(
        config: SnapshotterConfig,
        bootstrap_servers: String,
        cluster: Arc<dyn ClusterReader>,
        objects: Arc<dyn ObjectStore>,
        index: Arc<dyn IndexStore>,
        catalog: Arc<dyn SnapshotCatalog>,
        operations: Arc<dyn OperationsBook>,
    ) -> Self {
        Snapshotter {
            config,
            bootstrap_servers,
            cluster,
            objects,
            index,
            catalog,
            operations,
        }
    }

    /// Takes the samples. `deadline_ms` is the invocation's deadline (Unix ms); a sample is
    /// only started if the previous one's duration still fits before it.
    pub async fn handle(
        &self,
        request: SnapshotRequest,
        deadline_ms: i64,
    ) -> Result<SnapshotResponse> {
        let samples = request.samples.unwrap_or(self.config.samples);
        if !(1..=60).contains(&samples) {
            return Err(SnapshotterError::InvalidRequest(format!(
                "samples={samples} is not valid: expected 1 to 60"
            )));
        }
        let interval = match request.interval_seconds {
            None => self.config.interval,
            Some(seconds @ 1..=900) => Duration::from_secs(seconds),
            Some(seconds) => {
                return Err(SnapshotterError::InvalidRequest(format!(
                    "interval_seconds={seconds} is not valid: expected 1 to 900"
                )));
            }
        };

        let mut previous = self.latest_snapshot().await?;
        let mut last_key: Option<String> = None;
        let mut response = SnapshotResponse {
            snapshots: Vec::new(),
            recreations: Vec::new(),
            skipped_samples: 0,
            stalled_partitions: Vec::new(),
        };
        let mut unreadable = Vec::new();
        let interval_ms = interval.as_millis() as i64;
        // Samples are due an interval apart from the first sample's recorded start.
        let mut first_started_ms: Option<i64> = None;
        let mut last_duration_ms = 0;
        for sample in 0..samples {
            if let Some(first) = first_started_ms {
                let wait_ms = (first + interval_ms * i64::from(sample) - now_ms()).max(0);
                if now_ms() + wait_ms + 2 * last_duration_ms.max(1_000) > deadline_ms {
                    response.skipped_samples = samples - sample;
                    tracing::warn!(
                        skipped = response.skipped_samples,
                        "deadline too close for more samples"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
            }
            let (snapshot, key) = self.take_one(previous.as_ref()).await?;
            last_key = Some(key.clone());
            first_started_ms.get_or_insert(snapshot.started_at_ms);
            last_duration_ms = snapshot.taken_at_ms - snapshot.started_at_ms;
            unreadable.extend(snapshot.groups.iter().filter_map(|group| {
                Some(format!(
                    "{}: {}",
                    group.group.group_id,
                    group.error.as_ref()?
                ))
            }));
            response
                .recreations
                .extend(snapshot.recreations.iter().cloned());
            response.snapshots.push(SnapshotSummary {
                started_at_ms: snapshot.started_at_ms,
                taken_at_ms: snapshot.taken_at_ms,
                key,
                groups: snapshot.groups.len(),
                topics: snapshot.topics.len(),
                partitions: snapshot
                    .topics
                    .iter()
                    .map(|topic| topic.partitions.len())
                    .sum(),
            });
            previous = Some(snapshot);
        }
        if let (Some(after), Some(last), Some(key)) =
            (self.config.stall_after, &previous, &last_key)
        {
            response.stalled_partitions = self.report_following(last, key, after).await?;
        }
        self.report_drill_due().await?;
        if !unreadable.is_empty() {
            unreadable.sort();
            unreadable.dedup();
            return Err(SnapshotterError::GroupsUnreadable {
                count: unreadable.len(),
                detail: unreadable.join("; "),
            });
        }
        Ok(response)
    }

    /// Checks the backup's checkpoints against `snapshot`'s watermarks; logs each stalled
    /// partition, publishes their count (0 included, so that the alarm sees data) and records
    /// the backup's freshness in its health record.
    async fn report_following(
        &self,
        snapshot: &ClusterSnapshot,
        snapshot_key: &str,
        after: Duration,
    ) -> Result<Vec<StalledPartition>> {
        let following = following(
            self.index.as_ref(),
            self.cluster.as_ref(),
            &self.config.backup_id,
            snapshot,
            after.as_millis() as i64,
        )
        .await?;
        let stalled = following.stalled;
        for partition in &stalled {
            tracing::error!(
                topic = %partition.topic,
                partition = partition.partition,
                offset = partition.next_offset,
                high_watermark = partition.high_watermark,
                checkpoint_updated_at_ms = partition.checkpoint_updated_at_ms,
                "the backup stopped at this offset while the topic went on: the record may be \
                 too large for any invocation, or its batch fails for good"
            );
        }
        MetricsLine::new(&self.config.metrics_namespace)
            .dimension("BackupId", &self.config.backup_id)
            .metric("StalledPartitions", Unit::Count, stalled.len() as f64)
            .emit(snapshot.taken_at_ms);
        let freshness = Freshness {
            checked_at_ms: snapshot.taken_at_ms,
            snapshot_key: snapshot_key.to_owned(),
            partitions: following.partitions,
            records_behind: following.records_behind,
            behind_since_ms: following.behind_since_ms,
            stalled_count: stalled.len(),
            stalled: stalled
                .iter()
                .take(20)
                .map(|partition| format!("{}:{}", partition.topic, partition.partition))
                .collect(),
        };
        self.operations
            .record_health(&self.config.backup_id, &HealthAspect::Freshness(freshness))
            .await?;
        Ok(stalled)
    }

    /// Publishes `DrillOverdue` (1 when no recovery drill finished within the configured
    /// interval) from the backup's health record.
    async fn report_drill_due(&self) -> Result<()> {
        let Some(interval) = self.config.drill_interval else {
            return Ok(());
        };
        let health = self.operations.health(&self.config.backup_id).await?;
        let now = now_ms();
        let overdue = health
            .drill
            .as_ref()
            .is_none_or(|drill| now - drill.finished_at_ms > interval.as_millis() as i64);
        if overdue {
            tracing::warn!(last = ?health.drill.map(|drill| drill.drill_id), "no recovery drill finished within the interval: run `tidemark drill start`");
        }
        MetricsLine::new(&self.config.metrics_namespace)
            .dimension("BackupId", &self.config.backup_id)
            .metric("DrillOverdue", Unit::Count, f64::from(u8::from(overdue)))
            .emit(now);
        Ok(())
    }

    /// The latest stored snapshot, the baseline for the first sample. One that cannot be read
    /// is reported and skipped: it must not stop new snapshots.
    async fn latest_snapshot(&self) -> Result<Option<ClusterSnapshot>> {
        let Some(entry) = self
            .catalog
            .snapshot_at_or_before(&self.config.backup_id, i64::MAX)
            .await?
        else {
            return Ok(None);
        };
        match self.objects.get(&entry.key).await? {
            Some(bytes) => match ClusterSnapshot::decode(&bytes, &entry.key) {
                Ok(snapshot) => Ok(Some(snapshot)),
                Err(error) => {
                    tracing::error!(%error, "previous snapshot is unreadable; continuing without it");
                    Ok(None)
                }
            },
            None => {
                tracing::error!(key = %entry.key, "indexed snapshot object is missing; continuing without it");
                Ok(None)
            }
        }
    }

    /// Takes, stores and indexes one snapshot; returns it with its key.
    async fn take_one(
        &self,
        previous: Option<&ClusterSnapshot>,
    ) -> Result<(ClusterSnapshot, String)> {
        let collector = Collector {
            cluster: self.cluster.as_ref(),
            index: self.index.as_ref(),
            catalog: self.catalog.as_ref(),
            backup_id: &self.config.backup_id,
            bootstrap_servers: &self.bootstrap_servers,
            topics: &self.config.topics,
            groups: &self.config.groups,
        };
        let mut snapshot = collector.collect(previous).await?;
        let (key, stored_bytes) = self.store(&mut snapshot).await?;
        for recreation in &snapshot.recreations {
            self.catalog
                .record_topic_generation(&self.config.backup_id, recreation)
                .await?;
        }
        self.catalog
            .record_snapshot(
                &self.config.backup_id,
                &SnapshotEntry {
                    taken_at_ms: snapshot.taken_at_ms,
                    key: key.clone(),
                    group_count: snapshot.groups.len() as u32,
                    topic_count: snapshot.topics.len() as u32,
                    stored_bytes,
                },
            )
            .await?;
        self.emit_metrics(&snapshot, previous, stored_bytes, &key);
        Ok((snapshot, key))
    }

    /// Writes the snapshot under a key no other snapshot has. Another snapshot that finished
    /// in the same millisecond owns that key; this one then moves to the next free millisecond.
    /// A later `taken_at_ms` stays safe: every offset was still read before it.
    async fn store(&self, snapshot: &mut ClusterSnapshot) -> Result<(String, u64)> {
        for _ in 0..1_000 {
            let key = self
                .config
                .store
                .layout
                .snapshot_key(&self.config.backup_id, snapshot.taken_at_ms);
            let body = Bytes::from(snapshot.encode(self.config.compression_level)?);
            let stored_bytes = body.len() as u64;
            let metadata = ObjectMetadata::from([
                (
                    "tidemark-snapshot-version".to_owned(),
                    snapshot.version.to_string(),
                ),
                (
                    "tidemark-taken-at-ms".to_owned(),
                    snapshot.taken_at_ms.to_string(),
                ),
            ]);
            match self.objects.put_if_absent(&key, body, &metadata).await? {
                PutOutcome::Created => return Ok((key, stored_bytes)),
                PutOutcome::AlreadyExists(_) => snapshot.taken_at_ms += 1,
            }
        }
        Err(SnapshotterError::Core(tidemark_core::Error::ObjectStore {
            operation: "PutObject",
            key: self
                .config
                .store
                .layout
                .snapshots_prefix(&self.config.backup_id),
            message: "no free snapshot key within a second of the snapshot time".into(),
            retryable: true,
        }))
    }

    fn emit_metrics(
        &self,
        snapshot: &ClusterSnapshot,
        previous: Option<&ClusterSnapshot>,
        stored_bytes: u64,
        key: &str,
    ) {
        let failed = snapshot
            .groups
            .iter()
            .filter(|group| group.error.is_some())
            .count();
        let mut line = MetricsLine::new(&self.config.metrics_namespace)
            .dimension("BackupId", &self.config.backup_id)
            .metric(
                "GroupsCaptured",
                Unit::Count,
                (snapshot.groups.len() - failed) as f64,
            )
            .metric("GroupsFailed", Unit::Count, failed as f64)
            .metric("TopicsCaptured", Unit::Count, snapshot.topics.len() as f64)
            .metric(
                "SnapshotDuration",
                Unit::Milliseconds,
                (snapshot.taken_at_ms - snapshot.started_at_ms) as f64,
            )
            .metric("SnapshotBytes", Unit::Bytes, stored_bytes as f64)
            .metric(
                "TopicRecreations",
                Unit::Count,
                snapshot.recreations.len() as f64,
            )
            .property("SnapshotKey", key);
        if let Some(previous) = previous {
            line = line.metric(
                "SnapshotStaleness",
                Unit::Milliseconds,
                (snapshot.taken_at_ms - previous.taken_at_ms) as f64,
            );
        }
        line.emit(snapshot.taken_at_ms);
    }
}
