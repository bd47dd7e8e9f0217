//! In-memory twins of the stores, for unit tests. They follow the same contract as the AWS
//! adapters (checked by the shared conformance suite).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::checkpoint::{Checkpoint, Gap};
use crate::error::Result;
use crate::index::{CommitOutcome, IndexStore, RetiredSegment, SegmentCommit, SegmentEntry};
use crate::layout::{BackupId, PartitionId};
use crate::object_store::{
    ObjectInfo, ObjectMetadata, ObjectRetention, ObjectStore, ObjectTags, PutOutcome,
};
use crate::operations::{AuditRecord, BackupHealth, HealthAspect, OperationsBook};
use crate::shredding::{KeyId, ShreddingStore, StoredDataKey};
use crate::snapshot::{SnapshotCatalog, SnapshotEntry, TopicGeneration};

#[derive(Debug, Clone)]
struct StoredObject {
    body: Bytes,
    metadata: ObjectMetadata,
    tags: ObjectTags,
    written_at_ms: i64,
}

#[derive(Debug, Default)]
pub struct MemoryObjectStore {
    objects: Mutex<BTreeMap<String, StoredObject>>,
    /// Object Lock retentions set by tests (this twin keeps one version per key).
    retentions: Mutex<BTreeMap<String, ObjectRetention>>,
}

impl MemoryObjectStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces an object's bytes behind the store's contract, as bit rot or a stray writer
    /// would: for tests of what validation detects.
    pub fn overwrite(&self, key: &str, body: Bytes) {
        let mut objects = self.objects.lock().expect("lock poisoned");
        if let Some(object) = objects.get_mut(key) {
            object.body = body;
        }
    }

    /// Deletes an object, as an operator or a lifecycle rule could: for tests.
    pub fn remove(&self, key: &str) -> bool {
        self.objects
            .lock()
            .expect("lock poisoned")
            .remove(key)
            .is_some()
    }

    /// Puts `key` under Object Lock retention: for tests of what erasure refuses.
    pub fn lock(&self, key: &str, retention: ObjectRetention) {
        self.retentions
            .lock()
            .expect("lock poisoned")
            .insert(key.to_owned(), retention);
    }

    /// The tags `key` was written with, if it exists.
    pub fn tags(&self, key: &str) -> Option<ObjectTags> {
        let objects = self.objects.lock().expect("lock poisoned");
        objects.get(key).map(|object| object.tags.clone())
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &ObjectMetadata,
        tags: &ObjectTags,
    ) -> Result<PutOutcome> {
        let mut objects = self.objects.lock().expect("lock poisoned");
        if let Some(existing) = objects.get(key) {
            return Ok(PutOutcome::AlreadyExists(existing.metadata.clone()));
        }
        let written_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let object = StoredObject {
            body,
            metadata: metadata.clone(),
            tags: tags.clone(),
            written_at_ms,
        };
        objects.insert(key.to_owned(), object);
        Ok(PutOutcome::Created)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self
            .objects
            .lock()
            .expect("lock poisoned")
            .get(key)
            .map(|object| object.body.clone()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.remove(key);
        Ok(())
    }

    async fn retention(&self, key: &str) -> Result<Option<ObjectRetention>> {
        if !self
            .objects
            .lock()
            .expect("lock poisoned")
            .contains_key(key)
        {
            return Ok(None);
        }
        Ok(self
            .retentions
            .lock()
            .expect("lock poisoned")
            .get(key)
            .copied())
    }

    async fn delete_all_versions(&self, key: &str) -> Result<usize> {
        Ok(usize::from(self.remove(key)))
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let objects = self.objects.lock().expect("lock poisoned");
        Ok(objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, object)| ObjectInfo {
                key: key.clone(),
                size: object.body.len() as u64,
                last_modified_ms: object.written_at_ms,
            })
            .collect())
    }

    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        let objects = self.objects.lock().expect("lock poisoned");
        let mut prefixes: Vec<String> = objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, _)| {
                let rest = &key[prefix.len()..];
                rest.find('/')
                    .map(|slash| format!("{prefix}{}", &rest[..=slash]))
            })
            .collect();
        prefixes.dedup();
        Ok(prefixes)
    }
}

#[derive(Debug, Default)]
struct PartitionIndex {
    id: Option<PartitionId>,
    checkpoint: Option<Checkpoint>,
    segments: BTreeMap<(i64, i64), SegmentEntry>,
    gaps: BTreeMap<i64, Gap>,
    retired: BTreeMap<(i64, i64), RetiredSegment>,
}

#[derive(Debug, Default)]
pub struct MemoryIndexStore {
    partitions: Mutex<BTreeMap<String, PartitionIndex>>,
    snapshots: Mutex<BTreeMap<(String, i64), SnapshotEntry>>,
    generations: Mutex<BTreeMap<(String, String, u32), TopicGeneration>>,
    audit: Mutex<BTreeMap<String, AuditRecord>>,
    health: Mutex<BTreeMap<String, BackupHealth>>,
    shredding: Mutex<BTreeMap<String, ShreddingItems>>,
}

/// A backup's shredding root and data keys.
#[derive(Debug, Default)]
struct ShreddingItems {
    root: Option<Vec<u8>>,
    keys: BTreeMap<KeyId, KeyVersions>,
}

/// A key id's current version, and every stored version's wrapped key.
type KeyVersions = (Option<u32>, BTreeMap<u32, Vec<u8>>);

impl MemoryIndexStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IndexStore for MemoryIndexStore {
    async fn checkpoint(&self, partition: &PartitionId) -> Result<Option<Checkpoint>> {
        let partitions = self.partitions.lock().expect("lock poisoned");
        Ok(partitions
            .get(&partition.to_string())
            .and_then(|index| index.checkpoint.clone()))
    }

    async fn commit_segment(&self, commit: SegmentCommit<'_>) -> Result<CommitOutcome> {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        let index = partitions.entry(commit.partition.to_string()).or_default();
        index.id = Some(commit.partition.clone());
        if commit.new.is_some() && index.checkpoint.as_ref() != commit.expected {
            return Ok(CommitOutcome::CheckpointMoved);
        }
        if commit.filled_gaps.iter().any(|gap| {
            index
                .gaps
                .get(&gap.start)
                .is_none_or(|stored| stored.end != gap.end)
        }) {
            return Ok(CommitOutcome::CheckpointMoved);
        }
        for gap in commit.filled_gaps {
            index.gaps.remove(&gap.start);
        }
        for gap in commit.remaining_gaps {
            index.gaps.insert(gap.start, gap.clone());
        }
        let segment = commit.segment;
        index
            .segments
            .insert((segment.first_offset, segment.last_offset), segment.clone());
        if let Some(gap) = commit.gap {
            index.gaps.insert(gap.start, gap.clone());
        }
        if let Some(new) = commit.new {
            index.checkpoint = Some(new.clone());
        }
        Ok(CommitOutcome::Committed)
    }

    async fn segments(&self, partition: &PartitionId) -> Result<Vec<SegmentEntry>> {
        let partitions = self.partitions.lock().expect("lock poisoned");
        Ok(partitions
            .get(&partition.to_string())
            .map(|index| index.segments.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn segments_covering(
        &self,
        partition: &PartitionId,
        first: i64,
        last: i64,
    ) -> Result<Vec<SegmentEntry>> {
        let partitions = self.partitions.lock().expect("lock poisoned");
        let Some(index) = partitions.get(&partition.to_string()) else {
            return Ok(Vec::new());
        };
        let mut covering = Vec::new();
        for segment in index
            .segments
            .range(..=(last, i64::MAX))
            .rev()
            .map(|(_, s)| s)
        {
            covering.push(segment.clone());
            if segment.first_offset <= first {
                break;
            }
        }
        covering.reverse();
        Ok(covering)
    }

    async fn gaps(&self, partition: &PartitionId) -> Result<Vec<Gap>> {
        let partitions = self.partitions.lock().expect("lock poisoned");
        Ok(partitions
            .get(&partition.to_string())
            .map(|index| index.gaps.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn replace_segments(
        &self,
        partition: &PartitionId,
        new: &SegmentEntry,
        old: &[SegmentEntry],
        retired_at_ms: i64,
    ) -> Result<bool> {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        let index = partitions.entry(partition.to_string()).or_default();
        let range = |entry: &SegmentEntry| (entry.first_offset, entry.last_offset);
        if !old
            .iter()
            .all(|entry| index.segments.contains_key(&range(entry)))
        {
            return Ok(false);
        }
        for entry in old {
            index.segments.remove(&range(entry));
            index.retired.insert(
                range(entry),
                RetiredSegment {
                    key: entry.key.clone(),
                    first_offset: entry.first_offset,
                    last_offset: entry.last_offset,
                    retired_at_ms,
                },
            );
        }
        index.segments.insert(range(new), new.clone());
        Ok(true)
    }

    async fn swap_segment(
        &self,
        partition: &PartitionId,
        old: &SegmentEntry,
        new: Option<&SegmentEntry>,
    ) -> Result<bool> {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        let index = partitions.entry(partition.to_string()).or_default();
        let range = |entry: &SegmentEntry| (entry.first_offset, entry.last_offset);
        let still_indexed = index
            .segments
            .get(&range(old))
            .is_some_and(|entry| entry.key == old.key);
        let new_range_free = new.is_none_or(|new| {
            range(new) == range(old) || !index.segments.contains_key(&range(new))
        });
        if !still_indexed || !new_range_free {
            return Ok(false);
        }
        index.segments.remove(&range(old));
        if let Some(new) = new {
            index.segments.insert(range(new), new.clone());
        }
        Ok(true)
    }

    async fn record_gaps(&self, partition: &PartitionId, gaps: &[Gap]) -> Result<()> {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        let index = partitions.entry(partition.to_string()).or_default();
        for gap in gaps {
            index.gaps.insert(gap.start, gap.clone());
        }
        Ok(())
    }

    async fn expire_segments(
        &self,
        partition: &PartitionId,
        expired: &[SegmentEntry],
        gaps: &[Gap],
        observed_start: i64,
        new_start: i64,
    ) -> Result<bool> {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        let Some(index) = partitions.get_mut(&partition.to_string()) else {
            return Ok(false);
        };
        let Some(checkpoint) = index.checkpoint.as_mut() else {
            return Ok(false);
        };
        if checkpoint.start_offset != observed_start {
            return Ok(false);
        }
        checkpoint.start_offset = new_start;
        for entry in expired {
            index
                .segments
                .remove(&(entry.first_offset, entry.last_offset));
        }
        for gap in gaps {
            index.gaps.remove(&gap.start);
        }
        Ok(true)
    }

    async fn retired_segments(&self, partition: &PartitionId) -> Result<Vec<RetiredSegment>> {
        let partitions = self.partitions.lock().expect("lock poisoned");
        Ok(partitions
            .get(&partition.to_string())
            .map(|index| index.retired.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn forget_retired(
        &self,
        partition: &PartitionId,
        retired: &RetiredSegment,
    ) -> Result<()> {
        let mut partitions = self.partitions.lock().expect("lock poisoned");
        if let Some(index) = partitions.get_mut(&partition.to_string()) {
            index
                .retired
                .remove(&(retired.first_offset, retired.last_offset));
        }
        Ok(())
    }

    async fn partitions(&self, backup_id: &BackupId) -> Result<Vec<PartitionId>> {
        let partitions = self.partitions.lock().expect("lock poisoned");
        let mut found: Vec<PartitionId> = partitions
            .values()
            .filter(|index| index.checkpoint.is_some())
            .filter_map(|index| index.id.clone())
            .filter(|id| &id.backup_id == backup_id)
            .collect();
        found.sort_by(|a, b| {
            (&a.topic, a.generation, a.partition).cmp(&(&b.topic, b.generation, b.partition))
        });
        Ok(found)
    }
}

#[async_trait]
impl SnapshotCatalog for MemoryIndexStore {
    async fn record_snapshot(&self, backup_id: &BackupId, entry: &SnapshotEntry) -> Result<()> {
        self.snapshots
            .lock()
            .expect("lock poisoned")
            .insert((backup_id.to_string(), entry.taken_at_ms), entry.clone());
        Ok(())
    }

    async fn snapshot_at_or_before(
        &self,
        backup_id: &BackupId,
        at_ms: i64,
    ) -> Result<Option<SnapshotEntry>> {
        let backup = backup_id.to_string();
        Ok(self
            .snapshots
            .lock()
            .expect("lock poisoned")
            .range((backup.clone(), i64::MIN)..=(backup, at_ms))
            .next_back()
            .map(|(_, entry)| entry.clone()))
    }

    async fn record_topic_generation(
        &self,
        backup_id: &BackupId,
        generation: &TopicGeneration,
    ) -> Result<()> {
        self.generations
            .lock()
            .expect("lock poisoned")
            .entry((
                backup_id.to_string(),
                generation.topic.clone(),
                generation.generation,
            ))
            .or_insert_with(|| generation.clone());
        Ok(())
    }

    async fn topic_generations(
        &self,
        backup_id: &BackupId,
        topic: &str,
    ) -> Result<Vec<TopicGeneration>> {
        Ok(self
            .generations
            .lock()
            .expect("lock poisoned")
            .iter()
            .filter(|((backup, name, _), _)| backup == backup_id.as_str() && name == topic)
            .map(|(_, generation)| generation.clone())
            .collect())
    }
}

#[async_trait]
impl OperationsBook for MemoryIndexStore {
    async fn index_audit(&self, record: &AuditRecord) -> Result<()> {
        self.audit
            .lock()
            .expect("lock poisoned")
            .insert(record.sort_key(), record.clone());
        Ok(())
    }

    async fn audit_records(&self, since_ms: i64, until_ms: i64) -> Result<Vec<AuditRecord>> {
        Ok(self
            .audit
            .lock()
            .expect("lock poisoned")
            .values()
            .filter(|record| (since_ms..=until_ms).contains(&record.finished_at_ms))
            .cloned()
            .collect())
    }

    async fn record_health(&self, backup_id: &BackupId, aspect: &HealthAspect) -> Result<()> {
        self.health
            .lock()
            .expect("lock poisoned")
            .entry(backup_id.to_string())
            .or_default()
            .apply(aspect.clone());
        Ok(())
    }

    async fn health(&self, backup_id: &BackupId) -> Result<BackupHealth> {
        Ok(self
            .health
            .lock()
            .expect("lock poisoned")
            .get(backup_id.as_str())
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl ShreddingStore for MemoryIndexStore {
    async fn shredding_root(&self, backup_id: &BackupId) -> Result<Option<Vec<u8>>> {
        let shredding = self.shredding.lock().expect("lock poisoned");
        Ok(shredding
            .get(backup_id.as_str())
            .and_then(|items| items.root.clone()))
    }

    async fn create_shredding_root(&self, backup_id: &BackupId, wrapped: &[u8]) -> Result<Vec<u8>> {
        let mut shredding = self.shredding.lock().expect("lock poisoned");
        let items = shredding.entry(backup_id.to_string()).or_default();
        Ok(items.root.get_or_insert_with(|| wrapped.to_vec()).clone())
    }

    async fn current_data_keys(
        &self,
        backup_id: &BackupId,
        key_ids: &[KeyId],
    ) -> Result<Vec<StoredDataKey>> {
        let shredding = self.shredding.lock().expect("lock poisoned");
        let Some(items) = shredding.get(backup_id.as_str()) else {
            return Ok(Vec::new());
        };
        Ok(key_ids
            .iter()
            .filter_map(|key_id| {
                let (current, versions) = items.keys.get(key_id)?;
                let version = (*current)?;
                Some(StoredDataKey {
                    key_id: *key_id,
                    version,
                    wrapped: versions.get(&version)?.clone(),
                })
            })
            .collect())
    }

    async fn create_data_key(
        &self,
        backup_id: &BackupId,
        key: &StoredDataKey,
    ) -> Result<StoredDataKey> {
        let mut shredding = self.shredding.lock().expect("lock poisoned");
        let items = shredding.entry(backup_id.to_string()).or_default();
        let (current, versions) = items.keys.entry(key.key_id).or_default();
        if current.is_none() && !versions.contains_key(&key.version) {
            *current = Some(key.version);
            versions.insert(key.version, key.wrapped.clone());
            return Ok(key.clone());
        }
        let version = current.ok_or_else(|| crate::error::Error::IndexStore {
            operation: "create_data_key",
            message: format!("version {} exists and is retired", key.version),
            retryable: true,
        })?;
        Ok(StoredDataKey {
            key_id: key.key_id,
            version,
            wrapped: versions[&version].clone(),
        })
    }

    async fn data_keys(
        &self,
        backup_id: &BackupId,
        wanted: &[(KeyId, u32)],
    ) -> Result<Vec<StoredDataKey>> {
        let shredding = self.shredding.lock().expect("lock poisoned");
        let Some(items) = shredding.get(backup_id.as_str()) else {
            return Ok(Vec::new());
        };
        Ok(wanted
            .iter()
            .filter_map(|(key_id, version)| {
                Some(StoredDataKey {
                    key_id: *key_id,
                    version: *version,
                    wrapped: items.keys.get(key_id)?.1.get(version)?.clone(),
                })
            })
            .collect())
    }

    async fn retire_data_keys(&self, backup_id: &BackupId, key_id: &KeyId) -> Result<Vec<u32>> {
        let mut shredding = self.shredding.lock().expect("lock poisoned");
        let Some((current, versions)) = shredding
            .get_mut(backup_id.as_str())
            .and_then(|items| items.keys.get_mut(key_id))
        else {
            return Ok(Vec::new());
        };
        *current = None;
        Ok(versions.keys().copied().collect())
    }

    async fn destroy_data_keys(
        &self,
        backup_id: &BackupId,
        key_id: &KeyId,
        versions: &[u32],
    ) -> Result<()> {
        let mut shredding = self.shredding.lock().expect("lock poisoned");
        if let Some((current, stored)) = shredding
            .get_mut(backup_id.as_str())
            .and_then(|items| items.keys.get_mut(key_id))
        {
            for version in versions
                .iter()
                .filter(|version| Some(**version) != *current)
            {
                stored.remove(version);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::conformance;

    #[tokio::test]
    async fn memory_shredding_store_meets_the_contract() {
        conformance::shredding_store_contract(
            &MemoryIndexStore::new(),
            &BackupId::parse("b").unwrap(),
        )
        .await;
    }

    #[tokio::test]
    async fn memory_object_store_meets_the_contract() {
        conformance::object_store_contract(&MemoryObjectStore::new(), "prefix").await;
    }

    #[tokio::test]
    async fn memory_object_store_keeps_the_first_writes_tags() {
        let store = MemoryObjectStore::new();
        let first = ObjectTags::from([("tier".to_owned(), "short".to_owned())]);
        let second = ObjectTags::from([("tier".to_owned(), "long".to_owned())]);
        for tags in [&first, &second] {
            store
                .put_tagged_if_absent("k", Bytes::new(), &ObjectMetadata::new(), tags)
                .await
                .unwrap();
        }
        assert_eq!(store.tags("k"), Some(first));
        assert_eq!(store.tags("missing"), None);
    }

    #[tokio::test]
    async fn memory_index_store_meets_the_contract() {
        let partition = PartitionId::new(BackupId::parse("b").unwrap(), "t", 0);
        conformance::index_store_contract(&MemoryIndexStore::new(), &partition).await;
        conformance::index_store_gap_filling_contract(&MemoryIndexStore::new(), &partition).await;
        conformance::index_store_erasure_contract(&MemoryIndexStore::new(), &partition).await;
    }

    #[tokio::test]
    async fn memory_snapshot_catalog_meets_the_contract() {
        conformance::snapshot_catalog_contract(
            &MemoryIndexStore::new(),
            &BackupId::parse("b").unwrap(),
        )
        .await;
    }

    #[tokio::test]
    async fn memory_operations_book_meets_the_contract() {
        conformance::operations_book_contract(
            &MemoryIndexStore::new(),
            &BackupId::parse("b").unwrap(),
        )
        .await;
    }
}
