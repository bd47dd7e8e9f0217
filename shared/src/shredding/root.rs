//! A backup's shredding root, unwrapped: what derives key ids and wraps data keys.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::{KEY_ID_LEN, KeyId, StoredDataKey, key_id_hex};
use crate::error::{Error, Result};
use crate::layout::BackupId;

/// The backup's root, unwrapped: the key-id secret and the data-key wrapping key.
pub(super) struct Root {
    key_ids: hmac::Key,
    wrapping: RandomizedNonceKey,
}

impl Root {
    pub(super) fn new(plaintext: &[u8]) -> Result<Self> {
        let derive = |label: &[u8]| {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, plaintext), label)
                .as_ref()
                .to_vec()
        };
        let wrapping = Zeroizing::new(derive(b"tidemark shredding: data key wrapping"));
        let key_ids = Zeroizing::new(derive(b"tidemark shredding: key ids"));
        Ok(Root {
            key_ids: hmac::Key::new(hmac::HMAC_SHA256, &key_ids),
            wrapping: RandomizedNonceKey::new(&AES_256_GCM, &wrapping)
                .map_err(|_| Error::Encryption("AES-256-GCM refused the wrapping key".into()))?,
        })
    }

    pub(super) fn key_id(&self, key: &[u8]) -> KeyId {
        hmac::sign(&self.key_ids, key).as_ref()[..KEY_ID_LEN]
            .try_into()
            .expect("16 of 32 bytes")
    }

    fn aad(backup_id: &BackupId, key_id: &KeyId, version: u32) -> Vec<u8> {
        let mut aad = b"tidemark data key\0".to_vec();
        aad.extend_from_slice(backup_id.as_str().as_bytes());
        aad.push(0);
        aad.extend_from_slice(key_id);
        aad.extend_from_slice(&version.to_be_bytes());
        aad
    }

    pub(super) fn wrap(
        &self,
        backup_id: &BackupId,
        key_id: &KeyId,
        version: u32,
        key: &[u8],
    ) -> Result<Vec<u8>> {
        let mut body = key.to_vec();
        let nonce = self
            .wrapping
            .seal_in_place_append_tag(
                Aad::from(Self::aad(backup_id, key_id, version).as_slice()),
                &mut body,
            )
            .map_err(|_| Error::Encryption("failed to wrap a data key".into()))?;
        let mut wrapped = nonce.as_ref().to_vec();
        wrapped.extend_from_slice(&body);
        Ok(wrapped)
    }

    pub(super) fn unwrap(
        &self,
        backup_id: &BackupId,
        stored: &StoredDataKey,
    ) -> Result<Arc<RandomizedNonceKey>> {
        let refused = || {
            Error::Encryption(format!(
                "version {} of key id {} does not unwrap under backup {backup_id}'s root",
                stored.version,
                key_id_hex(&stored.key_id)
            ))
        };
        if stored.wrapped.len() < 12 {
            return Err(refused());
        }
        let (nonce, sealed) = stored.wrapped.split_at(12);
        let mut body = Zeroizing::new(sealed.to_vec());
        let plain = self
            .wrapping
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?,
                Aad::from(Self::aad(backup_id, &stored.key_id, stored.version).as_slice()),
                &mut body,
            )
            .map_err(|_| refused())?;
        RandomizedNonceKey::new(&AES_256_GCM, plain)
            .map(Arc::new)
            .map_err(|_| refused())
    }
}
