//! Where a shredded backup's root and data keys are kept: the index table (DynamoDB), an
//! in-memory twin in tests. Both follow `stores::conformance::shredding_store_contract`.

use async_trait::async_trait;

use super::{KEY_ID_LEN, KeyId};
use crate::error::Result;
use crate::layout::BackupId;

/// One version of a key id's data key, wrapped under the backup's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub key_id: KeyId,
    pub version: u32,
    pub wrapped: Vec<u8>,
}

/// Where roots and data keys live: the index table (DynamoDB), an in-memory twin in tests.
#[async_trait]
pub trait ShreddingStore: Send + Sync {
    /// The backup's wrapped root, once created.
    async fn shredding_root(&self, backup_id: &BackupId) -> Result<Option<Vec<u8>>>;
    /// Stores `wrapped` as the backup's root unless one exists; returns the root that stands.
    async fn create_shredding_root(&self, backup_id: &BackupId, wrapped: &[u8]) -> Result<Vec<u8>>;
    /// The current version of each of `key_ids` that has one.
    async fn current_data_keys(
        &self,
        backup_id: &BackupId,
        key_ids: &[KeyId],
    ) -> Result<Vec<StoredDataKey>>;
    /// Makes `key` the current version of its key id unless one is current (or the version
    /// exists); returns the current version that stands.
    async fn create_data_key(
        &self,
        backup_id: &BackupId,
        key: &StoredDataKey,
    ) -> Result<StoredDataKey>;
    /// Those of the `wanted` versions that still exist, current or retired.
    async fn data_keys(
        &self,
        backup_id: &BackupId,
        wanted: &[(KeyId, u32)],
    ) -> Result<Vec<StoredDataKey>>;
    /// Takes away the key id's current version in one step and returns every version stored
    /// at that moment (all retired now). Writers create a new version for later records.
    async fn retire_data_keys(&self, backup_id: &BackupId, key_id: &KeyId) -> Result<Vec<u32>>;
    /// Deletes these versions of the key id (none of them current).
    async fn destroy_data_keys(
        &self,
        backup_id: &BackupId,
        key_id: &KeyId,
        versions: &[u32],
    ) -> Result<()>;
}

/// A key id as text: lower-case hex.
pub fn key_id_hex(key_id: &KeyId) -> String {
    key_id.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Parses [`key_id_hex`]'s text.
pub fn parse_key_id_hex(text: &str) -> Option<KeyId> {
    if text.len() != 2 * KEY_ID_LEN || !text.is_ascii() {
        return None;
    }
    let mut key_id = [0u8; KEY_ID_LEN];
    for (index, byte) in key_id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(key_id)
}
