//! A backup's stores as its readers hold them, and what reading a backup needs beyond one
//! store: where each partition's segments are (the index, or the S3 listing when the index is
//! gone: invariant 5), the consistent cut at a time, and the backed-up topics.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::StoreLocation;
use crate::error::{Error, Result};
use crate::index::IndexStore;
use crate::keys::SegmentKeys;
use crate::layout::{BackupId, PartitionId, RestoreId, StorageLayout};
use crate::object_store::{self, ObjectStore};
use crate::operations::OperationsBook;
use crate::segment::WriteMark;
use crate::snapshot::SnapshotCatalog;

/// One backed-up topic: generation → the partitions the backup holds of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedUpTopic {
    pub name: String,
    pub generations: BTreeMap<u32, Vec<i32>>,
}

/// A backup's stores and where its objects live, as everything that reads a backup holds them
/// (restore, drills, the CLI): the one type built from a [`StoreLocation`].
#[derive(Clone)]
pub struct BackupStores {
    pub objects: Arc<dyn ObjectStore>,
    pub index: Arc<dyn IndexStore>,
    pub catalog: Arc<dyn SnapshotCatalog>,
    /// Audit records and the backup's health record.
    pub operations: Arc<dyn OperationsBook>,
    pub layout: StorageLayout,
    pub bucket: String,
    /// Opens sealed segments (client-side encryption); plain ones pass through.
    pub keys: Arc<SegmentKeys>,
}

/// Where a partition's segment list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentSource {
    Index,
    /// The index had nothing (or could not be read): segment keys and S3 write times.
    S3Listing,
}

/// One stored segment as a reader of the backup sees it. Fields the S3 listing cannot tell are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub key: String,
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: Option<u32>,
    pub min_timestamp: Option<i64>,
    pub stored_bytes: u64,
    /// When its last record became durable: the index's write time, or S3's LastModified.
    pub written_at_ms: i64,
    /// A merged segment's write marks, from the index (a listing cannot tell: empty).
    pub write_marks: Vec<WriteMark>,
    /// The largest record's framed length, when the index knows it.
    pub max_record_bytes: Option<u64>,
    pub uncompressed_bytes: Option<u64>,
}

impl BackupStores {
    /// The stores at `location`, through one SDK config; sealed segments are opened with the
    /// keys the index names.
    pub fn for_reading(aws: &aws_config::SdkConfig, location: &StoreLocation) -> Self {
        let (objects, index) = location.connect(aws);
        let index = Arc::new(index);
        BackupStores {
            objects: Arc::new(objects),
            keys: Arc::new(SegmentKeys::for_reading(aws, index.clone())),
            index: index.clone(),
            catalog: index.clone(),
            operations: index,
            layout: location.layout.clone(),
            bucket: location.bucket.clone(),
        }
    }

    /// Every segment of the partition, ordered by first then last offset. Overlapping
    /// segments (re-batched retries) are all listed; readers de-duplicate by offset.
    pub async fn segments(
        &self,
        partition: &PartitionId,
        source: Option<SegmentSource>,
    ) -> Result<(Vec<SegmentRef>, SegmentSource)> {
        if source != Some(SegmentSource::S3Listing) {
            match self.index.segments(partition).await {
                Ok(entries) if !entries.is_empty() || source == Some(SegmentSource::Index) => {
                    let segments = entries
                        .into_iter()
                        .map(|entry| SegmentRef {
                            key: entry.key,
                            first_offset: entry.first_offset,
                            last_offset: entry.last_offset,
                            record_count: Some(entry.record_count),
                            min_timestamp: Some(entry.min_timestamp),
                            stored_bytes: entry.stored_bytes,
                            written_at_ms: entry.written_at_ms,
                            write_marks: entry.write_marks,
                            max_record_bytes: entry.max_record_bytes,
                            uncompressed_bytes: Some(entry.uncompressed_bytes),
                        })
                        .collect();
                    return Ok((segments, SegmentSource::Index));
                }
                Ok(_) => {}
                Err(error) if error.is_retryable() || source == Some(SegmentSource::Index) => {
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(%partition, %error, "index unreadable; listing S3 instead");
                }
            }
        }
        let prefix = self.layout.partition_prefix(partition);
        let mut segments: Vec<SegmentRef> = self
            .objects
            .list_objects(&prefix)
            .await?
            .into_iter()
            .filter_map(|object| {
                let (first, last) = StorageLayout::parse_segment_file_name(&object.key)?;
                Some(SegmentRef {
                    key: object.key,
                    first_offset: first,
                    last_offset: last,
                    record_count: None,
                    min_timestamp: None,
                    stored_bytes: object.size,
                    written_at_ms: object.last_modified_ms,
                    write_marks: Vec::new(),
                    max_record_bytes: None,
                    uncompressed_bytes: None,
                })
            })
            .collect();
        segments.sort_by_key(|segment| (segment.first_offset, segment.last_offset));
        Ok((segments, SegmentSource::S3Listing))
    }

    /// One past the highest offset the backup had reached at `at_ms` in these segments (a
    /// consistent cut), or `None` when it had reached none of them. Exact through compaction:
    /// a merged segment's write marks say when each of its parts was written. A listing shows
    /// only S3's write time, which for a merged object is the merge's: the headers of objects
    /// written after the cut are read (one ranged GET each) for their marks.
    pub async fn consistent_end(
        &self,
        segments: &[SegmentRef],
        source: SegmentSource,
        at_ms: i64,
    ) -> Result<Option<i64>> {
        let mut end = None;
        for segment in segments {
            let reached = if source == SegmentSource::S3Listing && segment.written_at_ms > at_ms {
                let header = object_store::segment_header(self.objects.as_ref(), &segment.key)
                    .await?
                    .ok_or_else(|| Error::ObjectStore {
                        operation: "GetObject",
                        key: segment.key.clone(),
                        message: "the segment was listed but is gone; plan again".into(),
                        retryable: true,
                    })?;
                WriteMark::reached_at(&header.write_marks, at_ms)
            } else {
                crate::index::reached_at(
                    &segment.write_marks,
                    segment.last_offset,
                    segment.written_at_ms,
                    at_ms,
                )
            };
            end = end.max(reached.map(|offset| offset + 1));
        }
        Ok(end)
    }

    /// Backed-up topics, each with the partitions of every generation it holds, from the S3
    /// layout (segments describe themselves, so S3 is the authority on what exists).
    pub async fn topics(&self, backup_id: &BackupId) -> Result<Vec<BackedUpTopic>> {
        let mut topics: Vec<BackedUpTopic> = Vec::new();
        for id in
            crate::validation::backed_up_partitions(self.objects.as_ref(), &self.layout, backup_id)
                .await?
        {
            if topics.last().is_none_or(|topic| topic.name != id.topic) {
                topics.push(BackedUpTopic {
                    name: id.topic.clone(),
                    generations: BTreeMap::new(),
                });
            }
            let topic = topics.last_mut().expect("pushed above");
            topic
                .generations
                .entry(id.generation)
                .or_default()
                .push(id.partition);
        }
        Ok(topics)
    }

    /// `name` under the restore's prefix (its plan, partitions, report).
    pub fn restore_key(&self, backup_id: &BackupId, restore_id: &RestoreId, name: &str) -> String {
        format!(
            "{}{name}",
            self.layout.restore_prefix(backup_id, restore_id)
        )
    }

    /// Writes a restore object once; a retried step gets the first write back.
    pub async fn put_json_once<T: Serialize + DeserializeOwned + Clone>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<T> {
        object_store::put_json_once(self.objects.as_ref(), key, value).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        object_store::get_json(self.objects.as_ref(), key).await
    }
}
