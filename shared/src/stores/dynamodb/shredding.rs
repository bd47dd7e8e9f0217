//! Shredding roots and data keys on the index table.
//!
//! | item     | pk                      | sk               | attributes                        |
//! |----------|-------------------------|------------------|-----------------------------------|
//! | root     | `{backup_id}#shredding` | `root`           | `wrapped` (B)                     |
//! | data key | `{backup_id}#shredding` | `key#{key id hex}` | `current` (N, absent once retired), `v{version}` (B) per stored version |

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};

use super::{DynamoIndexStore, Item, index_error, number};
use crate::error::{Error, Result};
use crate::layout::BackupId;
use crate::shredding::{KeyId, ShreddingStore, StoredDataKey, key_id_hex, parse_key_id_hex};

/// Keys one BatchGetItem may name.
const BATCH_GET_LIMIT: usize = 100;
/// Rounds a batch read retries the keys DynamoDB left unprocessed.
const UNPROCESSED_ROUNDS: usize = 8;

fn pk(backup_id: &BackupId) -> AttributeValue {
    AttributeValue::S(format!("{backup_id}#shredding"))
}

fn key_sk(key_id: &KeyId) -> AttributeValue {
    AttributeValue::S(format!("key#{}", key_id_hex(key_id)))
}

fn version_attribute(version: u32) -> String {
    format!("v{version}")
}

fn key_id_of(item: &Item) -> Option<KeyId> {
    parse_key_id_hex(item.get("sk")?.as_s().ok()?.strip_prefix("key#")?)
}

fn current_of(item: &Item) -> Option<u32> {
    item.get("current")?.as_n().ok()?.parse().ok()
}

fn wrapped_of(item: &Item, version: u32) -> Option<Vec<u8>> {
    Some(
        item.get(&version_attribute(version))?
            .as_b()
            .ok()?
            .as_ref()
            .to_vec(),
    )
}

fn versions_of(item: &Item) -> Vec<u32> {
    let mut versions: Vec<u32> = item
        .keys()
        .filter_map(|name| name.strip_prefix('v')?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions
}

fn is_conditional_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

impl DynamoIndexStore {
    /// The data-key items of `key_ids` (strongly consistent), those that exist.
    async fn key_items(&self, backup_id: &BackupId, key_ids: &[KeyId]) -> Result<Vec<Item>> {
        let mut items = Vec::with_capacity(key_ids.len());
        let mut distinct = key_ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for chunk in distinct.chunks(BATCH_GET_LIMIT) {
            let keys = chunk
                .iter()
                .map(|key_id| {
                    HashMap::from([
                        ("pk".to_owned(), pk(backup_id)),
                        ("sk".to_owned(), key_sk(key_id)),
                    ])
                })
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|error| Error::IndexStore {
                    operation: "BatchGetItem",
                    message: error.to_string(),
                    retryable: false,
                })?;
            for _round in 0..UNPROCESSED_ROUNDS {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                    .map_err(index_error("BatchGetItem"))?;
                if let Some(found) = output
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                {
                    items.extend(found);
                }
                match output
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                {
                    Some(unprocessed) if !unprocessed.keys.is_empty() => request = unprocessed,
                    _ => break,
                }
            }
        }
        Ok(items)
    }

    async fn key_item(&self, backup_id: &BackupId, key_id: &KeyId) -> Result<Option<Item>> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(backup_id))
            .key("sk", key_sk(key_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(index_error("GetItem"))?
            .item)
    }
}

#[async_trait]
impl ShreddingStore for DynamoIndexStore {
    async fn shredding_root(&self, backup_id: &BackupId) -> Result<Option<Vec<u8>>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(backup_id))
            .key("sk", AttributeValue::S("root".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(index_error("GetItem"))?
            .item;
        Ok(item.and_then(|item| Some(item.get("wrapped")?.as_b().ok()?.as_ref().to_vec())))
    }

    async fn create_shredding_root(&self, backup_id: &BackupId, wrapped: &[u8]) -> Result<Vec<u8>> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(backup_id))
            .item("sk", AttributeValue::S("root".into()))
            .item("wrapped", AttributeValue::B(Blob::new(wrapped)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(wrapped.to_vec()),
            Err(error) if error.as_service_error().is_some_and(is_conditional_failure) => self
                .shredding_root(backup_id)
                .await?
                .ok_or_else(|| Error::IndexStore {
                    operation: "PutItem",
                    message: format!(
                        "backup {backup_id}'s shredding root exists and cannot be read"
                    ),
                    retryable: true,
                }),
            Err(error) => Err(index_error("PutItem")(error)),
        }
    }

    async fn current_data_keys(
        &self,
        backup_id: &BackupId,
        key_ids: &[KeyId],
    ) -> Result<Vec<StoredDataKey>> {
        Ok(self
            .key_items(backup_id, key_ids)
            .await?
            .iter()
            .filter_map(|item| {
                let version = current_of(item)?;
                Some(StoredDataKey {
                    key_id: key_id_of(item)?,
                    version,
                    wrapped: wrapped_of(item, version)?,
                })
            })
            .collect())
    }

    async fn create_data_key(
        &self,
        backup_id: &BackupId,
        key: &StoredDataKey,
    ) -> Result<StoredDataKey> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(backup_id))
            .key("sk", key_sk(&key.key_id))
            .update_expression("SET #current = :version, #wrapped = :wrapped")
            .condition_expression(
                "attribute_not_exists(#current) AND attribute_not_exists(#wrapped)",
            )
            .expression_attribute_names("#current", "current")
            .expression_attribute_names("#wrapped", version_attribute(key.version))
            .expression_attribute_values(":version", number(key.version))
            .expression_attribute_values(
                ":wrapped",
                AttributeValue::B(Blob::new(key.wrapped.clone())),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(key.clone()),
            Err(error) if error.as_service_error().is_some_and(is_conditional_failure) => {
                // Another writer made its version current first: that one stands.
                let item = self.key_item(backup_id, &key.key_id).await?;
                item.as_ref()
                    .and_then(|item| {
                        let version = current_of(item)?;
                        Some(StoredDataKey {
                            key_id: key.key_id,
                            version,
                            wrapped: wrapped_of(item, version)?,
                        })
                    })
                    .ok_or_else(|| Error::IndexStore {
                        operation: "UpdateItem",
                        message: format!(
                            "key id {} changed while its data key was created; retry",
                            key_id_hex(&key.key_id)
                        ),
                        retryable: true,
                    })
            }
            Err(error) => Err(index_error("UpdateItem")(error)),
        }
    }

    async fn data_keys(
        &self,
        backup_id: &BackupId,
        wanted: &[(KeyId, u32)],
    ) -> Result<Vec<StoredDataKey>> {
        let key_ids: Vec<KeyId> = wanted.iter().map(|(key_id, _)| *key_id).collect();
        let items: HashMap<KeyId, Item> = self
            .key_items(backup_id, &key_ids)
            .await?
            .into_iter()
            .filter_map(|item| Some((key_id_of(&item)?, item)))
            .collect();
        Ok(wanted
            .iter()
            .filter_map(|(key_id, version)| {
                Some(StoredDataKey {
                    key_id: *key_id,
                    version: *version,
                    wrapped: wrapped_of(items.get(key_id)?, *version)?,
                })
            })
            .collect())
    }

    async fn retire_data_keys(&self, backup_id: &BackupId, key_id: &KeyId) -> Result<Vec<u32>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(backup_id))
            .key("sk", key_sk(key_id))
            .update_expression("REMOVE #current")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#current", "current")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output
                .attributes
                .as_ref()
                .map(versions_of)
                .unwrap_or_default()),
            Err(error) if error.as_service_error().is_some_and(is_conditional_failure) => {
                Ok(Vec::new())
            }
            Err(error) => Err(index_error("UpdateItem")(error)),
        }
    }

    async fn destroy_data_keys(
        &self,
        backup_id: &BackupId,
        key_id: &KeyId,
        versions: &[u32],
    ) -> Result<()> {
        for version in versions {
            // One version at a time, each only while it is not current.
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk(backup_id))
                .key("sk", key_sk(key_id))
                .update_expression("REMOVE #wrapped")
                .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#current) OR #current <> :version)")
                .expression_attribute_names("#wrapped", version_attribute(*version))
                .expression_attribute_names("#current", "current")
                .expression_attribute_values(":version", number(*version))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(error) if error.as_service_error().is_some_and(is_conditional_failure) => {}
                Err(error) => return Err(index_error("UpdateItem")(error)),
            }
        }
        Ok(())
    }
}
