//! Crypto-shredding: each record key's records sealed under a data key of its own, so erasing a
//! key can destroy that data key instead of the bytes (which Object Lock may forbid deleting).
//!
//! - **Key ids.** A record key is stored as its key id, the first 16 bytes of HMAC-SHA256 under
//!   a secret derived from the backup's shredding root: neither the segments, their key
//!   filters nor the index table hold a clear key.
//! - **Data keys.** One random AES-256 key per (key id, version), wrapped under the root and
//!   kept in the index table ([`ShreddingStore`]), outside the locked bucket. A key id has at
//!   most one *current* version, the one writers seal with.
//! - **The root.** One KMS data key per backup, its wrapped form in the index table: one
//!   `GenerateDataKey` per backup, one `Decrypt` per process that reads or writes.
//! - **Erasure** retires the current version, waits [`Shredding::erasure_wait`] (every record a
//!   writer sealed under it is committed by then: writers use a version at most a third of the
//!   [commit lease](DEFAULT_COMMIT_LEASE) after reading it and commit within the lease of the
//!   read), rewrites the indexed segments without the key's records, and then destroys the
//!   retired versions. Copies that remain (locked object versions) can never be opened again.

pub mod record;
mod root;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::RandomizedNonceKey;
use bytes::Bytes;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{EncryptionContext, KeyService};
use crate::layout::{BackupId, PartitionId};
use crate::segment::{EncodedSegment, Record, SegmentEncoder, SegmentReader};
use record::Place;
use root::Root;
pub use store::{ShreddingStore, StoredDataKey, key_id_hex, parse_key_id_hex};

/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 16;
/// What a record key is stored as in a shredded backup.
pub type KeyId = [u8; KEY_ID_LEN];

/// How long after reading the oldest data key it sealed a batch with a writer may still commit
/// the batch; past it the batch is refused (retryable) and its retry seals with fresh keys.
/// Writers and the eraser must agree on it (`TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS`): a
/// writer uses a version at most a third of the lease after reading it, and an erasure waits
/// four thirds of it between retiring versions and finding their records.
pub const DEFAULT_COMMIT_LEASE: Duration = Duration::from_secs(90);

/// The KMS encryption context key naming what a data key is for.
pub const CONTEXT_PURPOSE: &str = "tidemark:purpose";
const ROOT_PURPOSE: &str = "shredding-root";
/// Data keys a reader keeps unwrapped (a restore meets each key id once per segment).
const OPENED_KEYS_KEPT: usize = 65_536;
/// Current versions a writer keeps.
const CURRENT_KEYS_KEPT: usize = 65_536;

/// A shredded segment and when the oldest data key it is sealed with was read: the batch must
/// be committed within [`COMMIT_LEASE`] of that.
pub struct SealedSegment {
    pub segment: EncodedSegment,
    pub keys_read_at: Instant,
}

struct CurrentKey {
    version: u32,
    key: Arc<RandomizedNonceKey>,
    read_at: Instant,
}

/// Seals and opens shredded records of any backup, with the keys of [`ShreddingStore`].
pub struct Shredding {
    store: Arc<dyn ShreddingStore>,
    kms: Arc<dyn KeyService>,
    /// The KMS key a missing root is created under: writers have one; readers find the root.
    root_kms_key: Option<String>,
    commit_lease: Duration,
    roots: tokio::sync::Mutex<HashMap<BackupId, Arc<Root>>>,
    current: tokio::sync::Mutex<HashMap<(BackupId, KeyId), CurrentKey>>,
    opened: Mutex<HashMap<(BackupId, KeyId, u32), Arc<RandomizedNonceKey>>>,
}

impl Shredding {
    pub fn new(
        store: Arc<dyn ShreddingStore>,
        kms: Arc<dyn KeyService>,
        root_kms_key: Option<String>,
    ) -> Self {
        Shredding {
            store,
            kms,
            root_kms_key,
            commit_lease: DEFAULT_COMMIT_LEASE,
            roots: tokio::sync::Mutex::new(HashMap::new()),
            current: tokio::sync::Mutex::new(HashMap::new()),
            opened: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &dyn ShreddingStore {
        self.store.as_ref()
    }

    /// This process with another commit lease (the one writers and eraser are configured with).
    pub fn with_commit_lease(self, commit_lease: Duration) -> Self {
        Shredding {
            commit_lease,
            ..self
        }
    }

    /// How long after reading its oldest data key a writer may commit a shredded batch.
    pub fn commit_lease(&self) -> Duration {
        self.commit_lease
    }

    /// How long a writer seals with a current version it read.
    fn key_cache_max_age(&self) -> Duration {
        self.commit_lease / 3
    }

    /// What an erasure waits between retiring versions and finding their records: every
    /// record sealed under them is committed by then.
    pub fn erasure_wait(&self) -> Duration {
        self.commit_lease * 4 / 3
    }

    /// Whether this process shreds what it writes (it has a root KMS key).
    pub fn shreds(&self) -> bool {
        self.root_kms_key.is_some()
    }

    /// Whether the backup has a shredding root: every segment of it may hold shredded records.
    pub async fn is_shredded(&self, backup_id: &BackupId) -> Result<bool> {
        Ok(self.roots.lock().await.contains_key(backup_id)
            || self.store.shredding_root(backup_id).await?.is_some())
    }

    async fn root(&self, backup_id: &BackupId) -> Result<Arc<Root>> {
        // Held across the calls: concurrent partitions of a new backup create one root.
        let mut roots = self.roots.lock().await;
        if let Some(root) = roots.get(backup_id) {
            return Ok(Arc::clone(root));
        }
        let context = EncryptionContext::from([
            (
                crate::keys::CONTEXT_BACKUP_ID.to_owned(),
                backup_id.as_str().to_owned(),
            ),
            (CONTEXT_PURPOSE.to_owned(), ROOT_PURPOSE.to_owned()),
        ]);
        let plaintext = match (
            self.store.shredding_root(backup_id).await?,
            &self.root_kms_key,
        ) {
            (Some(wrapped), _) => self.kms.decrypt_data_key(&wrapped, &context).await?,
            (None, Some(kms_key)) => {
                let (plaintext, ours) = self.kms.generate_data_key(kms_key, &context).await?;
                let standing = self.store.create_shredding_root(backup_id, &ours).await?;
                if standing == ours {
                    plaintext
                } else {
                    // Another writer created the root first.
                    self.kms.decrypt_data_key(&standing, &context).await?
                }
            }
            (None, None) => {
                return Err(Error::Config(format!(
                    "backup {backup_id} has no shredding root: no writer with \
                     TIDEMARK_SHREDDING_KMS_KEY_ID has written to it"
                )));
            }
        };
        let root = Arc::new(Root::new(&plaintext)?);
        roots.insert(backup_id.clone(), Arc::clone(&root));
        Ok(root)
    }

    /// The key ids of record keys, for finding their records.
    pub async fn key_ids(&self, backup_id: &BackupId, keys: &[Vec<u8>]) -> Result<Vec<KeyId>> {
        let root = self.root(backup_id).await?;
        Ok(keys.iter().map(|key| root.key_id(key)).collect())
    }

    /// `plain` (a segment the writer encoded) with each keyed record sealed under the current
    /// version of its key id's data key, creating the versions that do not exist yet.
    pub async fn seal_segment(
        &self,
        partition: &PartitionId,
        plain: &EncodedSegment,
        level: i32,
    ) -> Result<SealedSegment> {
        if plain.header.shredded {
            return Err(Error::Encryption("the segment is shredded already".into()));
        }
        let backup_id = &partition.backup_id;
        let root = self.root(backup_id).await?;
        let records = read_records(plain.bytes.clone()).await?;
        let mut key_ids = HashMap::new();
        for record in &records {
            if let Some(key) = &record.key {
                key_ids
                    .entry(key.clone())
                    .or_insert_with(|| root.key_id(key));
            }
        }
        let distinct: Vec<KeyId> = key_ids
            .values()
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let (keys, keys_read_at) = self.current_keys(backup_id, &root, &distinct).await?;
        let segment = reencode(
            backup_id,
            plain.header.clone(),
            level,
            true,
            records,
            move |record, place| {
                let Some(key) = &record.key else {
                    return Ok(None);
                };
                let key_id = key_ids[key];
                let (version, data_key) = &keys[&key_id];
                record::seal(record, place, &key_id, *version, data_key).map(Some)
            },
        )
        .await?;
        Ok(SealedSegment {
            segment,
            keys_read_at,
        })
    }

    /// The current version of each key id, from the cache while fresh, else read (and created
    /// where none is current); with the time the oldest of them was read.
    async fn current_keys(
        &self,
        backup_id: &BackupId,
        root: &Root,
        key_ids: &[KeyId],
    ) -> Result<(HashMap<KeyId, (u32, Arc<RandomizedNonceKey>)>, Instant)> {
        // Held across the store calls: concurrent partitions with the same new key create one
        // version, not a race the store has to settle.
        let mut cache = self.current.lock().await;
        let stale: Vec<KeyId> = key_ids
            .iter()
            .filter(|key_id| {
                cache
                    .get(&(backup_id.clone(), **key_id))
                    .is_none_or(|current| current.read_at.elapsed() >= self.key_cache_max_age())
            })
            .copied()
            .collect();
        if !stale.is_empty() {
            if cache.len() + stale.len() > CURRENT_KEYS_KEPT {
                let max_age = self.key_cache_max_age();
                cache.retain(|_, current| current.read_at.elapsed() < max_age);
            }
            let read_at = Instant::now();
            let mut found: HashMap<KeyId, StoredDataKey> = self
                .store
                .current_data_keys(backup_id, &stale)
                .await?
                .into_iter()
                .map(|stored| (stored.key_id, stored))
                .collect();
            for key_id in &stale {
                if !found.contains_key(key_id) {
                    let created = self.create_version(backup_id, root, key_id).await?;
                    found.insert(*key_id, created);
                }
            }
            for (key_id, stored) in found {
                let key = root.unwrap(backup_id, &stored)?;
                cache.insert(
                    (backup_id.clone(), key_id),
                    CurrentKey {
                        version: stored.version,
                        key,
                        read_at,
                    },
                );
            }
        }
        let mut oldest = Instant::now();
        let mut keys = HashMap::with_capacity(key_ids.len());
        for key_id in key_ids {
            let current = &cache[&(backup_id.clone(), *key_id)];
            oldest = oldest.min(current.read_at);
            keys.insert(*key_id, (current.version, Arc::clone(&current.key)));
        }
        Ok((keys, oldest))
    }

    async fn create_version(
        &self,
        backup_id: &BackupId,
        root: &Root,
        key_id: &KeyId,
    ) -> Result<StoredDataKey> {
        let mut plaintext = Zeroizing::new([0u8; 32]);
        let mut version = [0u8; 4];
        aws_lc_rs::rand::fill(plaintext.as_mut())
            .and_then(|()| aws_lc_rs::rand::fill(&mut version))
            .map_err(|_| Error::Encryption("no random bytes for a data key".into()))?;
        // Random versions: a retired and destroyed version's number is never used again
        // (in effect), so nothing destroys a later key by its number.
        let version = u32::from_be_bytes(version).max(1);
        let wrapped = root.wrap(backup_id, key_id, version, plaintext.as_ref())?;
        self.store
            .create_data_key(
                backup_id,
                &StoredDataKey {
                    key_id: *key_id,
                    version,
                    wrapped,
                },
            )
            .await
    }

    /// `plain` with its shredded records opened: a segment of clear records for readers (a
    /// restore, an overlap check), never stored. Returns an unshredded segment as it is. Fails
    /// on a record whose data key is gone, naming it.
    pub async fn open_segment(&self, backup_id: &BackupId, plain: Bytes) -> Result<Bytes> {
        let header = crate::segment::SegmentHeader::read_from(&mut plain.as_ref())?;
        if !header.shredded {
            return Ok(plain);
        }
        let root = self.root(backup_id).await?;
        let records = read_records(plain).await?;
        let mut wanted = HashSet::new();
        for record in records.iter().filter(|record| record.key.is_some()) {
            wanted.insert(record::sealed_under(record)?);
        }
        let keys = self
            .data_keys(backup_id, &root, wanted.into_iter().collect())
            .await?;
        let (topic, partition) = (header.topic.clone(), header.partition);
        let segment = reencode(
            backup_id,
            header,
            1,
            false,
            records,
            move |sealed, place| {
                if sealed.key.is_none() {
                    return Ok(None);
                }
                let (key_id, version) = record::sealed_under(sealed)?;
                let key = keys.get(&(key_id, version)).ok_or_else(|| {
                    Error::Encryption(format!(
                        "the record at offset {} of {topic}-{partition} is sealed under version \
                     {version} of key id {}, which no longer exists: its key was erased",
                        sealed.offset,
                        key_id_hex(&key_id)
                    ))
                })?;
                record::open(sealed, place, key).map(Some)
            },
        )
        .await?;
        Ok(segment.bytes)
    }

    /// The `wanted` versions that exist, unwrapped (remembered, else read).
    async fn data_keys(
        &self,
        backup_id: &BackupId,
        root: &Root,
        wanted: Vec<(KeyId, u32)>,
    ) -> Result<HashMap<(KeyId, u32), Arc<RandomizedNonceKey>>> {
        let mut keys = HashMap::with_capacity(wanted.len());
        let mut missing = Vec::new();
        {
            let opened = self.opened.lock().expect("key cache poisoned");
            for (key_id, version) in wanted {
                match opened.get(&(backup_id.clone(), key_id, version)) {
                    Some(key) => {
                        keys.insert((key_id, version), Arc::clone(key));
                    }
                    None => missing.push((key_id, version)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(keys);
        }
        let stored = self.store.data_keys(backup_id, &missing).await?;
        let mut opened = self.opened.lock().expect("key cache poisoned");
        if opened.len() + stored.len() > OPENED_KEYS_KEPT {
            opened.clear();
        }
        for stored in stored {
            let key = root.unwrap(backup_id, &stored)?;
            opened.insert(
                (backup_id.clone(), stored.key_id, stored.version),
                Arc::clone(&key),
            );
            keys.insert((stored.key_id, stored.version), key);
        }
        Ok(keys)
    }
}

/// Whether every shredded record of `ours` has a record at its offset in `stored` sealed
/// under the same key id and version: the condition for a retried batch to keep an earlier
/// write (sealed with other nonces) instead of writing its own.
pub fn sealed_under_same_keys(stored: &[u8], ours: &[u8]) -> Result<bool> {
    let versions = |bytes: &[u8]| -> Result<BTreeMap<i64, (KeyId, u32)>> {
        let mut reader = SegmentReader::open(bytes)?;
        let mut versions = BTreeMap::new();
        while let Some(record) = reader.next_record()? {
            if record.key.is_some() {
                versions.insert(record.offset, record::sealed_under(&record)?);
            }
        }
        Ok(versions)
    };
    let stored = versions(stored)?;
    Ok(versions(ours)?
        .iter()
        .all(|(offset, keys)| stored.get(offset) == Some(keys)))
}

/// `records` of the segment `header` describes, each replaced by what `transform` makes of it
/// (`None`: kept as it is), as a new segment, shredded or not, encoded on a blocking thread.
async fn reencode(
    backup_id: &BackupId,
    header: crate::segment::SegmentHeader,
    level: i32,
    shredded: bool,
    records: Vec<Record>,
    transform: impl Fn(&Record, &Place<'_>) -> Result<Option<Record>> + Send + 'static,
) -> Result<EncodedSegment> {
    let backup = backup_id.as_str().to_owned();
    tokio::task::spawn_blocking(move || {
        let place = Place {
            backup_id: &backup,
            topic: &header.topic,
            partition: header.partition,
        };
        let mut encoder = SegmentEncoder::with_write_marks(
            &header.topic,
            header.partition,
            level,
            header.write_marks.clone(),
        )?
        .shredded(shredded);
        for record in &records {
            match transform(record, &place)? {
                Some(replaced) => encoder.push(&replaced)?,
                None => encoder.push(record)?,
            }
        }
        encoder.finish()
    })
    .await
    .map_err(|error| Error::Encryption(format!("re-encoding task failed: {error}")))?
}

async fn read_records(plain: Bytes) -> Result<Vec<Record>> {
    tokio::task::spawn_blocking(move || {
        let mut reader = SegmentReader::open(plain.as_ref())?;
        let mut records = Vec::with_capacity(reader.header().record_count as usize);
        while let Some(record) = reader.next_record()? {
            records.push(record);
        }
        Ok(records)
    })
    .await
    .map_err(|error| Error::Encryption(format!("reading task failed: {error}")))?
}

#[cfg(test)]
mod tests;
