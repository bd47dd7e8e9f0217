//! Data keys for client-side segment encryption: KMS generates and unwraps them; the writer
//! reuses one briefly, readers remember the few they unwrapped last. The cipher and the
//! envelope are in [`crate::segment::encryption`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::layout::BackupId;
use crate::segment::EncodedSegment;
use crate::segment::encryption::{self, DATA_KEY_LEN, DataKey};
use crate::shredding::Shredding;

/// The KMS encryption context key every data key is bound to; its value is the backup id, so
/// a key policy can confine a role to one backup and a data key cannot open another's segments.
pub const CONTEXT_BACKUP_ID: &str = "tidemark:backup-id";

/// The writer asks KMS for a new data key after this long with one (the AWS Encryption SDK's
/// caching advice), so a warm function makes about one KMS call per five minutes, not one per
/// batch.
const SEALING_KEY_MAX_AGE: Duration = Duration::from_secs(300);
/// ...or after this many segments, far below the 2^32 random 96-bit nonces NIST allows per key.
const SEALING_KEY_MAX_SEGMENTS: u64 = 1 << 20;
/// Unwrapped keys a reader keeps: segments of one writer batch share a key.
const OPENED_KEYS_KEPT: usize = 16;

/// What a KMS encryption context is.
pub type EncryptionContext = HashMap<String, String>;

/// The key service seam: KMS in production, an in-memory twin in unit tests.
#[async_trait]
pub trait KeyService: Send + Sync {
    /// A new 256-bit data key under `key_id`, bound to `context`: (plaintext, wrapped).
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)>;

    /// Unwraps a data key. The wrapped blob names its KMS key, so none is given.
    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>>;
}

/// [`KeyService`] on AWS KMS.
pub struct KmsKeyService {
    client: aws_sdk_kms::Client,
}

impl KmsKeyService {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        KmsKeyService {
            client: aws_sdk_kms::Client::new(aws),
        }
    }
}

#[async_trait]
impl KeyService for KmsKeyService {
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        let output = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .set_encryption_context(Some(context.clone()))
            .send()
            .await
            .map_err(crate::stores::aws_error(
                "kms:GenerateDataKey",
                format!("key {key_id} (check TIDEMARK_SEGMENT_ENCRYPTION_KEY and the role's kms:GenerateDataKey)"),
            ))?;
        match (output.plaintext, output.ciphertext_blob) {
            (Some(plaintext), Some(wrapped)) => {
                Ok((Zeroizing::new(plaintext.into_inner()), wrapped.into_inner()))
            }
            _ => Err(Error::Encryption(format!(
                "KMS returned no data key for {key_id}"
            ))),
        }
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let output = self
            .client
            .decrypt()
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped))
            .set_encryption_context(Some(context.clone()))
            .send()
            .await
            .map_err(crate::stores::aws_error(
                "kms:Decrypt",
                format!(
                    "the data key of a sealed segment of backup {} (check the role's kms:Decrypt on the key that sealed it)",
                    context.get(CONTEXT_BACKUP_ID).map_or("?", String::as_str)
                ),
            ))?;
        output
            .plaintext
            .map(|plaintext| Zeroizing::new(plaintext.into_inner()))
            .ok_or_else(|| Error::Encryption("KMS returned no plaintext data key".into()))
    }
}

struct SealingKey {
    backup_id: BackupId,
    key: Arc<DataKey>,
    created: Instant,
    segments: u64,
}

pub(crate) fn context(backup_id: &BackupId) -> EncryptionContext {
    EncryptionContext::from([(CONTEXT_BACKUP_ID.to_owned(), backup_id.as_str().to_owned())])
}

/// Seals segments (when a KMS key is configured) and opens sealed ones. Every data key is
/// bound to the backup id of its segments (the KMS encryption context).
pub struct SegmentKeys {
    service: Arc<dyn KeyService>,
    /// The KMS key new segments are sealed under; `None` stores them plain (SSE only).
    seal_with: Option<String>,
    sealing: tokio::sync::Mutex<Option<SealingKey>>,
    opened: Mutex<VecDeque<(BackupId, Arc<DataKey>)>>,
    /// Seals and opens shredded records; `None` in a process that never meets them.
    shredding: Option<Arc<Shredding>>,
}

impl SegmentKeys {
    pub fn new(service: Arc<dyn KeyService>, seal_with: Option<String>) -> Self {
        SegmentKeys {
            service,
            seal_with,
            sealing: tokio::sync::Mutex::new(None),
            opened: Mutex::new(VecDeque::new()),
            shredding: None,
        }
    }

    /// Keys that open whatever a backup holds, through KMS: sealed segments name their wrapped
    /// data key and a shredded backup's root is in `shredding_store` (the index table), so
    /// reading needs no key id. They seal nothing.
    pub fn for_reading(
        aws: &aws_config::SdkConfig,
        shredding_store: Arc<dyn crate::shredding::ShreddingStore>,
    ) -> Self {
        let kms: Arc<dyn KeyService> = Arc::new(KmsKeyService::new(aws));
        let shredding = Shredding::new(shredding_store, kms.clone(), None);
        SegmentKeys::new(kms, None).with_shredding(Arc::new(shredding))
    }

    /// These keys with crypto-shredding's data keys, to open shredded records (and, when
    /// `shredding` has a root KMS key, to shred new ones).
    pub fn with_shredding(self, shredding: Arc<Shredding>) -> Self {
        SegmentKeys {
            shredding: Some(shredding),
            ..self
        }
    }

    pub fn shredding(&self) -> Option<&Arc<Shredding>> {
        self.shredding.as_ref()
    }

    /// The clear records of a stored object: [`Self::plain`], with shredded records opened.
    /// For readers only (a restore, an overlap check); what compaction and erasure copy stays
    /// in its stored form.
    pub async fn clear(&self, backup_id: &BackupId, stored: Bytes) -> Result<Bytes> {
        let plain = self.plain(backup_id, stored).await?;
        match &self.shredding {
            Some(shredding) => shredding.open_segment(backup_id, plain).await,
            None if crate::segment::SegmentHeader::read_from(&mut plain.as_ref())?.shredded => {
                Err(Error::Config(format!(
                    "a segment of backup {backup_id} holds shredded records and this process \
                     has no access to the shredding keys"
                )))
            }
            None => Ok(plain),
        }
    }

    /// Seals `segment` of `backup_id` when a KMS key is configured; returns it unchanged
    /// otherwise.
    pub async fn protect(
        &self,
        backup_id: &BackupId,
        segment: EncodedSegment,
    ) -> Result<EncodedSegment> {
        let Some(key_id) = &self.seal_with else {
            return Ok(segment);
        };
        let key = {
            // Held across the KMS call: partitions written concurrently share one new key.
            let mut sealing = self.sealing.lock().await;
            let fresh = sealing.as_ref().is_some_and(|current| {
                current.backup_id == *backup_id
                    && current.created.elapsed() < SEALING_KEY_MAX_AGE
                    && current.segments < SEALING_KEY_MAX_SEGMENTS
            });
            if !fresh {
                let (plaintext, wrapped) = self
                    .service
                    .generate_data_key(key_id, &context(backup_id))
                    .await?;
                *sealing = Some(SealingKey {
                    backup_id: backup_id.clone(),
                    key: Arc::new(DataKey::new(&plaintext, wrapped)?),
                    created: Instant::now(),
                    segments: 0,
                });
            }
            let current = sealing.as_mut().expect("set above");
            current.segments += 1;
            Arc::clone(&current.key)
        };
        tokio::task::spawn_blocking(move || encryption::seal(&segment, &key))
            .await
            .map_err(|error| Error::Encryption(format!("sealing task failed: {error}")))?
    }

    /// The plain segment a stored object of `backup_id` holds: the object itself when its
    /// body is plain, else the body opened with its data key (unwrapped by KMS, or remembered).
    pub async fn plain(&self, backup_id: &BackupId, stored: Bytes) -> Result<Bytes> {
        let Some(envelope) = encryption::envelope(&stored)? else {
            return Ok(stored);
        };
        let key = match self.remembered(backup_id, &envelope.wrapped_key) {
            Some(key) => key,
            None => {
                let plaintext = self
                    .service
                    .decrypt_data_key(&envelope.wrapped_key, &context(backup_id))
                    .await?;
                let key = Arc::new(DataKey::new(&plaintext, envelope.wrapped_key)?);
                let mut opened = self.opened.lock().expect("key cache poisoned");
                if opened.len() == OPENED_KEYS_KEPT {
                    opened.pop_front();
                }
                opened.push_back((backup_id.clone(), Arc::clone(&key)));
                key
            }
        };
        tokio::task::spawn_blocking(move || encryption::open(&stored, &key))
            .await
            .map_err(|error| Error::Encryption(format!("opening task failed: {error}")))?
    }

    fn remembered(&self, backup_id: &BackupId, wrapped: &[u8]) -> Option<Arc<DataKey>> {
        let opened = self.opened.lock().expect("key cache poisoned");
        opened
            .iter()
            .find(|(backup, key)| backup == backup_id && key.wrapped() == wrapped)
            .map(|(_, key)| Arc::clone(key))
    }
}

type MemoryDataKey = (Vec<u8>, EncryptionContext);

/// An in-memory [`KeyService`] for unit tests: "wraps" a key by remembering it under a
/// random-looking id, checks the context like KMS does, and counts its calls.
#[derive(Default)]
pub struct MemoryKeyService {
    /// Wrapped key → (plaintext, the context it is bound to).
    keys: Mutex<HashMap<Vec<u8>, MemoryDataKey>>,
    generated: std::sync::atomic::AtomicUsize,
    decrypted: std::sync::atomic::AtomicUsize,
}

impl MemoryKeyService {
    pub fn generated(&self) -> usize {
        self.generated.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn decrypted(&self) -> usize {
        self.decrypted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyService for MemoryKeyService {
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        let serial = self
            .generated
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let plaintext: Vec<u8> = (0..DATA_KEY_LEN)
            .map(|i| (serial as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect();
        let wrapped = format!("{key_id}/data-key-{serial}").into_bytes();
        self.keys
            .lock()
            .expect("poisoned")
            .insert(wrapped.clone(), (plaintext.clone(), context.clone()));
        Ok((Zeroizing::new(plaintext), wrapped))
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self.keys.lock().expect("poisoned").get(wrapped) {
            Some((plaintext, bound)) if bound == context => Ok(Zeroizing::new(plaintext.clone())),
            _ => Err(Error::Aws {
                operation: "kms:Decrypt",
                message: "InvalidCiphertextException".into(),
                retryable: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Record, SegmentEncoder, TimestampType};

    fn segment(partition: i32) -> EncodedSegment {
        let mut encoder = SegmentEncoder::new("payments", partition, 3).unwrap();
        encoder
            .push(&Record {
                offset: 0,
                timestamp: 1,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(b"pan=4111111111111111".to_vec()),
                headers: vec![],
            })
            .unwrap();
        encoder.finish().unwrap()
    }

    fn keys(service: &Arc<MemoryKeyService>, seal_with: Option<&str>) -> SegmentKeys {
        SegmentKeys::new(
            Arc::clone(service) as Arc<dyn KeyService>,
            seal_with.map(str::to_owned),
        )
    }

    fn backup(id: &str) -> BackupId {
        BackupId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn without_a_key_segments_stay_plain_and_kms_is_never_called() {
        let service = Arc::new(MemoryKeyService::default());
        let keys = keys(&service, None);
        let plain = segment(0);
        let protected = keys.protect(&backup("prod"), plain.clone()).await.unwrap();
        assert_eq!(protected.bytes, plain.bytes);
        let read = keys
            .plain(&backup("prod"), plain.bytes.clone())
            .await
            .unwrap();
        assert_eq!(read, plain.bytes);
        assert_eq!((service.generated(), service.decrypted()), (0, 0));
    }

    #[tokio::test]
    async fn one_data_key_seals_many_segments_and_one_unwrap_opens_them() {
        let service = Arc::new(MemoryKeyService::default());
        let writer = keys(&service, Some("alias/tidemark"));
        let plains: Vec<_> = (0..3).map(segment).collect();
        let mut sealed = Vec::new();
        for plain in &plains {
            sealed.push(
                writer
                    .protect(&backup("prod"), plain.clone())
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(service.generated(), 1);
        assert!(sealed.iter().all(|s| s.header.encryption.is_some()));

        let reader = keys(&service, None);
        for (plain, sealed) in plains.iter().zip(&sealed) {
            let read = reader
                .plain(&backup("prod"), sealed.bytes.clone())
                .await
                .unwrap();
            assert_eq!(read, plain.bytes);
        }
        assert_eq!(
            service.decrypted(),
            1,
            "segments sharing a data key unwrap it once"
        );
    }

    #[tokio::test]
    async fn a_segment_sealed_for_one_backup_does_not_open_as_another() {
        let service = Arc::new(MemoryKeyService::default());
        let keys = keys(&service, Some("alias/tidemark"));
        let sealed = keys.protect(&backup("prod"), segment(0)).await.unwrap();
        keys.plain(&backup("prod"), sealed.bytes.clone())
            .await
            .unwrap();
        // Even with the data key remembered, another backup's reader asks KMS, which refuses.
        let error = keys
            .plain(&backup("staging"), sealed.bytes)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Aws {
                    operation: "kms:Decrypt",
                    retryable: false,
                    ..
                }
            ),
            "{error}"
        );
    }
}
