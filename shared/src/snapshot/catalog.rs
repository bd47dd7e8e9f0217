//! The snapshot catalog: which snapshots exist for a backup, found by time in one query, and
//! the recorded generations of each topic (a topic deleted and recreated under its name).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layout::BackupId;

/// An index entry: a durable snapshot object and a summary of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub taken_at_ms: i64,
    pub key: String,
    pub group_count: u32,
    pub topic_count: u32,
    pub stored_bytes: u64,
}

/// A topic generation began: the topic was found deleted and recreated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicGeneration {
    pub topic: String,
    /// The new generation (the first topic the backup saw is generation 0).
    pub generation: u32,
    pub detected_at_ms: i64,
    /// What showed it, one line per observation.
    pub evidence: Vec<String>,
    /// The new topic's id, where the cluster reports ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
}

/// Contract shared by every catalog; the conformance suite holds each implementation to it.
#[async_trait]
pub trait SnapshotCatalog: Send + Sync {
    /// Records a snapshot whose object is already durable. Recording it again is harmless.
    async fn record_snapshot(&self, backup_id: &BackupId, entry: &SnapshotEntry) -> Result<()>;

    /// The latest snapshot taken at or before `at_ms`, if any.
    async fn snapshot_at_or_before(
        &self,
        backup_id: &BackupId,
        at_ms: i64,
    ) -> Result<Option<SnapshotEntry>>;

    /// Records the start of a topic generation. Recording the same generation twice keeps
    /// the first record.
    async fn record_topic_generation(
        &self,
        backup_id: &BackupId,
        generation: &TopicGeneration,
    ) -> Result<()>;

    /// Every recorded generation of `topic`, oldest first.
    async fn topic_generations(
        &self,
        backup_id: &BackupId,
        topic: &str,
    ) -> Result<Vec<TopicGeneration>>;
}
