//! Which generation of its topic each batch is written to. A topic deleted and recreated under
//! its name restarts its offsets; its records must go to a generation of their own, never on
//! top of the old topic's backup.
//!
//! With a cluster to ask, the writer reads the live topic ids for every batch (one Metadata
//! request for the batch's topics) and maps each id to its generation through the catalog; an
//! id seen for the first time starts the next generation at once. Without one, it follows the
//! generations the offset snapshotter records (read again every minute, and at once after a
//! divergence): a recreated topic's first batches are refused by the overlap check
//! ([`crate::overlap`]) until the snapshotter's next run records the new generation, and the
//! event source mapping's retries then land there.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_core::kafka::ClusterReader;
use tidemark_core::layout::BackupId;
use tidemark_core::snapshot::SnapshotCatalog;
use tidemark_core::snapshot::generations::{generation_of_topic_id, latest_generation};
use tidemark_core::{Error, Result};

pub struct TopicGenerations {
    backup_id: BackupId,
    catalog: Arc<dyn SnapshotCatalog>,
    /// Where live topic ids come from; `None` follows the recorded generations.
    cluster: Option<Arc<dyn ClusterReader>>,
    /// (topic, id) → generation: ids never change generation, so this is never stale.
    by_id: Mutex<HashMap<(String, String), u32>>,
    /// topic → the latest recorded generation and when it was read; read again after
    /// [`LATEST_FOR`], or at once after a divergence.
    latest: Mutex<HashMap<String, (u32, Instant)>>,
}

/// How long a writer without topic ids trusts the latest generation it read: a generation the
/// snapshotter records reaches every writer within this time.
const LATEST_FOR: Duration = Duration::from_secs(60);

impl TopicGenerations {
    pub fn new(
        backup_id: BackupId,
        catalog: Arc<dyn SnapshotCatalog>,
        cluster: Option<Arc<dyn ClusterReader>>,
    ) -> Self {
        TopicGenerations {
            backup_id,
            catalog,
            cluster,
            by_id: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
        }
    }

    /// The generation to write each of `topics` to, now.
    pub async fn current(&self, topics: &[String], now_ms: i64) -> Result<BTreeMap<String, u32>> {
        let mut found = BTreeMap::new();
        let live_ids: HashMap<String, Option<String>> = match &self.cluster {
            Some(cluster) => cluster
                .describe_topics(topics)
                .await?
                .into_iter()
                .map(|topic| (topic.name, topic.topic_id))
                .collect(),
            None => HashMap::new(),
        };
        for topic in topics {
            let generation = match live_ids.get(topic) {
                Some(Some(id)) => self.of_id(topic, id, now_ms).await?,
                // No id reported (Kafka before 2.8), no cluster to ask, or the topic is gone
                // since the batch was fetched (its batch belongs to the latest generation).
                _ => self.latest(topic).await?,
            };
            found.insert(topic.clone(), generation);
        }
        Ok(found)
    }

    /// Forgets what is known of `topic`'s latest generation: called when a batch diverged from
    /// the backup, so the retry reads the catalog again and finds a newly recorded generation.
    pub fn forget(&self, topic: &str) {
        self.latest.lock().expect("lock poisoned").remove(topic);
    }

    async fn of_id(&self, topic: &str, id: &str, now_ms: i64) -> Result<u32> {
        let key = (topic.to_owned(), id.to_owned());
        if let Some(known) = self.by_id.lock().expect("lock poisoned").get(&key) {
            return Ok(*known);
        }
        let generation = generation_of_topic_id(
            self.catalog.as_ref(),
            &self.backup_id,
            topic,
            id,
            now_ms,
            Vec::new(),
        )
        .await?
        .generation;
        self.by_id
            .lock()
            .expect("lock poisoned")
            .insert(key, generation);
        Ok(generation)
    }

    async fn latest(&self, topic: &str) -> Result<u32> {
        if let Some((known, read_at)) = self.latest.lock().expect("lock poisoned").get(topic)
            && read_at.elapsed() < LATEST_FOR
        {
            return Ok(*known);
        }
        let recorded = self
            .catalog
            .topic_generations(&self.backup_id, topic)
            .await?;
        let generation = latest_generation(&recorded);
        self.latest
            .lock()
            .expect("lock poisoned")
            .insert(topic.to_owned(), (generation, Instant::now()));
        Ok(generation)
    }
}

/// Whether `error` says the batch is not the topic the backup holds (so a newer generation
/// may have been recorded since).
pub fn is_divergence(error: &Error) -> bool {
    matches!(
        error,
        Error::Diverged { .. } | Error::OverlapUnverifiable { .. }
    )
}
