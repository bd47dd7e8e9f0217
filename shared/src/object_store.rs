//! The object store seam: S3 in production, an in-memory twin in unit tests.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bytes::Bytes;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// User metadata stored with an object (S3 `x-amz-meta-*`).
pub type ObjectMetadata = HashMap<String, String>;

/// Tags stored with an object (S3 object tagging); lifecycle rules select objects by them.
pub type ObjectTags = BTreeMap<String, String>;

/// What a listing says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When the object was written (S3 `LastModified`), in milliseconds since the epoch.
    pub last_modified_ms: i64,
}

/// How S3 Object Lock holds an object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    /// Users with `s3:BypassGovernanceRetention` may delete it early.
    Governance,
    /// Nobody, the root user included, can delete it before the date.
    Compliance,
}

/// An object's Object Lock retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectRetention {
    pub mode: RetentionMode,
    pub retain_until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// Something already exists at the key; nothing was written. Carries its metadata so the
    /// caller can tell an identical earlier write from a real conflict.
    AlreadyExists(ObjectMetadata),
}

/// Contract shared by every object store; `conformance` tests hold each implementation to it.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Creates `key` with `tags` only if nothing exists there (a conditional write, never an
    /// overwrite).
    async fn put_tagged_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &ObjectMetadata,
        tags: &ObjectTags,
    ) -> Result<PutOutcome>;

    /// [`Self::put_tagged_if_absent`] without tags.
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &ObjectMetadata,
    ) -> Result<PutOutcome> {
        self.put_tagged_if_absent(key, body, metadata, &ObjectTags::new())
            .await
    }

    /// The whole object, or `None` if there is none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// The first `len` bytes of the object (all of it when shorter), or `None` if there is none.
    async fn get_head(&self, key: &str, len: u64) -> Result<Option<Bytes>> {
        self.get_range(key, 0, len).await
    }

    /// `len` bytes from `start` (fewer when the object ends first), or `None` if there is no
    /// object. At least one byte must be asked for.
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Bytes>> {
        Ok(self.get(key).await?.map(|bytes| {
            let start = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                .min(bytes.len());
            bytes.slice(start..end)
        }))
    }

    /// The Object Lock retention of the object's current version; `None` when it has none or
    /// there is no object.
    async fn retention(&self, key: &str) -> Result<Option<ObjectRetention>>;

    /// Every key under `prefix` that has any version or delete marker, in lexicographic order:
    /// with versioning on, a deleted object's earlier versions stay readable, and only this
    /// listing finds them. A store without versions lists its objects.
    async fn list_version_keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.list(prefix).await
    }

    /// Deletes every version of `key` and every delete marker, so no earlier copy stays
    /// readable (erasure); returns how many were deleted. Deleting what is not there succeeds.
    async fn delete_all_versions(&self, key: &str) -> Result<usize>;

    /// Deletes every earlier version of `key` and every delete marker, keeping its current
    /// version if it has one; returns how many were deleted. A version written meanwhile is
    /// kept. A store without versions has none to delete.
    async fn delete_noncurrent_versions(&self, key: &str) -> Result<usize> {
        let _ = key;
        Ok(0)
    }

    /// Deletes `key`; deleting what is not there succeeds (a retried deletion).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Every object under `prefix`, in lexicographic key order.
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// The distinct "folders" directly under `prefix` (keys cut after the next `/`, which is
    /// kept), in lexicographic order: S3's common prefixes for the delimiter `/`.
    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>>;

    /// Every key under `prefix`, in lexicographic order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list_objects(prefix)
            .await?
            .into_iter()
            .map(|object| object.key)
            .collect())
    }
}

/// Writes a JSON record once. When one exists already (a retried step), the stored one is
/// returned: the first write of a plan or of an offset snapshot is the one that counts.
pub async fn put_json_once<T: Serialize + DeserializeOwned + Clone>(
    objects: &dyn ObjectStore,
    key: &str,
    value: &T,
) -> Result<T> {
    let body = serde_json::to_vec_pretty(value)
        .map_err(|error| Error::InvalidRecords(format!("{key}: {error}")))?;
    match objects
        .put_if_absent(key, Bytes::from(body), &ObjectMetadata::new())
        .await?
    {
        PutOutcome::Created => Ok(value.clone()),
        PutOutcome::AlreadyExists(_) => {
            get_json(objects, key)
                .await?
                .ok_or_else(|| Error::ObjectStore {
                    operation: "GetObject",
                    key: key.to_owned(),
                    message: "the object exists but cannot be read back".into(),
                    retryable: true,
                })
        }
    }
}

/// Reads a JSON record, `None` when there is none.
pub async fn get_json<T: DeserializeOwned>(
    objects: &dyn ObjectStore,
    key: &str,
) -> Result<Option<T>> {
    let Some(bytes) = objects.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| Error::ObjectStore {
            operation: "GetObject",
            key: key.to_owned(),
            message: format!("not the record expected here: {error}"),
            retryable: false,
        })
}

/// The user metadata naming a segment object's format version.
const FORMAT_VERSION_METADATA: &str = "tidemark-format-version";

/// User metadata of a segment object: which format, how many records and their CRC32C. When a
/// conditional create finds the key taken, comparing it tells an identical earlier write (a
/// retry) from different records under the same key.
pub fn segment_metadata(header: &crate::segment::SegmentHeader) -> ObjectMetadata {
    HashMap::from([
        (
            FORMAT_VERSION_METADATA.to_owned(),
            header.format_version.to_string(),
        ),
        (
            "tidemark-record-count".to_owned(),
            header.record_count.to_string(),
        ),
        (
            "tidemark-records-crc32c".to_owned(),
            header.records_crc32c.to_string(),
        ),
    ])
}

/// Whether an existing segment object's metadata says it holds the records `ours` describes.
pub fn holds_same_records(existing: &ObjectMetadata, ours: &ObjectMetadata) -> bool {
    ["tidemark-record-count", "tidemark-records-crc32c"]
        .iter()
        .all(|name| existing.get(*name) == ours.get(*name))
}

/// Writes a segment that compaction or erasure rewrote (`plain`, stored as `stored`) under its
/// deterministic `key`, once. A retried step finds its own earlier write there and keeps it,
/// compared by records when the release before framed it. Returns the header and size of the
/// object now under `key`, for its index entry; other records there are a conflict, named for
/// `step`.
#[allow(clippy::too_many_arguments)]
pub async fn put_rewritten_segment(
    objects: &dyn ObjectStore,
    keys: &crate::keys::SegmentKeys,
    backup_id: &crate::layout::BackupId,
    key: &str,
    plain: &crate::segment::EncodedSegment,
    stored: crate::segment::EncodedSegment,
    tags: &ObjectTags,
    step: &str,
) -> Result<(crate::segment::SegmentHeader, u64)> {
    let metadata = segment_metadata(&plain.header);
    let stored_bytes = stored.bytes.len() as u64;
    let existing = match objects
        .put_tagged_if_absent(key, stored.bytes, &metadata, tags)
        .await?
    {
        PutOutcome::Created => return Ok((stored.header, stored_bytes)),
        PutOutcome::AlreadyExists(existing) => existing,
    };
    match compare_existing_segment(objects, keys, backup_id, key, &existing, plain).await? {
        ExistingSegment::Same => Ok((stored.header, stored_bytes)),
        ExistingSegment::SameRecords {
            header,
            stored_bytes,
        } => Ok((header, stored_bytes)),
        ExistingSegment::Different => Err(Error::SegmentConflict {
            key: key.to_owned(),
            detail: format!("{step} would write {metadata:?} where {existing:?} already is"),
        }),
    }
}

/// What a conditional create of a segment found under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ExistingSegment {
    /// The same records framed alike (an earlier write of this very segment).
    Same,
    /// The same records in another format version (a retry that straddles an upgrade found
    /// its earlier write in the older framing): the stored object's header and size, which an
    /// index entry for it must carry.
    SameRecords {
        header: crate::segment::SegmentHeader,
        stored_bytes: u64,
    },
    /// Other records under the same key.
    Different,
}

/// What the segment object under `key`, whose metadata is `existing`, holds against the
/// records of `ours` (a plain segment). The metadata decides between segments framed alike;
/// between format versions, whose checksums cover differently framed bytes, the records
/// themselves are compared.
async fn compare_existing_segment(
    objects: &dyn ObjectStore,
    keys: &crate::keys::SegmentKeys,
    backup_id: &crate::layout::BackupId,
    key: &str,
    existing: &ObjectMetadata,
    ours: &crate::segment::EncodedSegment,
) -> Result<ExistingSegment> {
    let our_metadata = segment_metadata(&ours.header);
    if holds_same_records(existing, &our_metadata) {
        return Ok(ExistingSegment::Same);
    }
    if existing.get(FORMAT_VERSION_METADATA) == our_metadata.get(FORMAT_VERSION_METADATA) {
        return Ok(ExistingSegment::Different);
    }
    let Some(stored) = objects.get(key).await? else {
        return Err(Error::ObjectStore {
            operation: "GetObject",
            key: key.to_owned(),
            message: "the segment existed a moment ago and is gone; retry".into(),
            retryable: true,
        });
    };
    let stored_bytes = stored.len() as u64;
    let header = crate::segment::verify_stored_segment(&stored)?;
    let plain = keys.plain(backup_id, stored).await?;
    let theirs = crate::segment::SegmentReader::open(plain.as_ref())?;
    let mut ours = crate::segment::SegmentReader::open(ours.bytes.as_ref())?;
    for record in theirs {
        if ours.next_record()?.as_ref() != Some(&record?) {
            return Ok(ExistingSegment::Different);
        }
    }
    Ok(if ours.next_record()?.is_none() {
        ExistingSegment::SameRecords {
            header,
            stored_bytes,
        }
    } else {
        ExistingSegment::Different
    })
}

/// The header of a stored segment, read with one ranged GET (a header is at most 64 KiB);
/// `None` when the object is gone.
pub async fn segment_header(
    objects: &dyn ObjectStore,
    key: &str,
) -> Result<Option<crate::segment::SegmentHeader>> {
    let Some(head) = objects.get_head(key, u64::from(u16::MAX)).await? else {
        return Ok(None);
    };
    crate::segment::SegmentHeader::read_from(&mut head.as_ref())
        .map(Some)
        .map_err(|error| Error::ObjectStore {
            operation: "GetObject",
            key: key.to_owned(),
            message: format!("not a readable segment header: {error}"),
            retryable: false,
        })
}
