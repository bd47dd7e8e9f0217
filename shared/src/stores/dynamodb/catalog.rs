//! The snapshot catalog on the index table (key shapes in the parent module's table).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoIndexStore, Item, index_error, number, read_number};
use crate::error::{Error, Result};
use crate::layout::BackupId;
use crate::snapshot::{SnapshotCatalog, SnapshotEntry, TopicGeneration};

fn snapshots_key(backup_id: &BackupId) -> String {
    format!("{backup_id}#snapshots")
}

fn generations_key(backup_id: &BackupId, topic: &str) -> String {
    format!("{backup_id}#{topic}#generations")
}

fn read_string(item: &Item, name: &str) -> Result<String> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .cloned()
        .ok_or_else(|| Error::IndexStore {
            operation: "decode",
            message: format!(
                "catalog item {:?} has no string attribute {name:?}",
                item.get("sk")
            ),
            retryable: false,
        })
}

fn decode_snapshot(item: &Item) -> Result<SnapshotEntry> {
    Ok(SnapshotEntry {
        taken_at_ms: read_number(item, "taken_at_ms")?,
        key: read_string(item, "key")?,
        group_count: read_number(item, "group_count")?,
        topic_count: read_number(item, "topic_count")?,
        stored_bytes: read_number(item, "stored_bytes")?,
    })
}

fn decode_generation(item: &Item) -> Result<TopicGeneration> {
    let evidence = item
        .get("evidence")
        .and_then(|value| value.as_l().ok())
        .map(|lines| {
            lines
                .iter()
                .filter_map(|line| line.as_s().ok().cloned())
                .collect()
        })
        .unwrap_or_default();
    Ok(TopicGeneration {
        topic: read_string(item, "topic")?,
        generation: read_number(item, "generation")?,
        detected_at_ms: read_number(item, "detected_at_ms")?,
        evidence,
        topic_id: item
            .get("topic_id")
            .and_then(|value| value.as_s().ok())
            .cloned(),
    })
}

#[async_trait]
impl SnapshotCatalog for DynamoIndexStore {
    async fn record_snapshot(&self, backup_id: &BackupId, entry: &SnapshotEntry) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(snapshots_key(backup_id)))
            .item(
                "sk",
                AttributeValue::S(format!("{:020}", entry.taken_at_ms)),
            )
            .item("backup_id", AttributeValue::S(backup_id.to_string()))
            .item("taken_at_ms", number(entry.taken_at_ms))
            .item("key", AttributeValue::S(entry.key.clone()))
            .item("group_count", number(entry.group_count))
            .item("topic_count", number(entry.topic_count))
            .item("stored_bytes", number(entry.stored_bytes))
            .send()
            .await
            .map_err(index_error("PutItem"))?;
        Ok(())
    }

    async fn snapshot_at_or_before(
        &self,
        backup_id: &BackupId,
        at_ms: i64,
    ) -> Result<Option<SnapshotEntry>> {
        if at_ms < 0 {
            return Ok(None);
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk <= :at")
            .expression_attribute_values(":pk", AttributeValue::S(snapshots_key(backup_id)))
            .expression_attribute_values(":at", AttributeValue::S(format!("{at_ms:020}")))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(index_error("Query"))?;
        output.items().first().map(decode_snapshot).transpose()
    }

    async fn record_topic_generation(
        &self,
        backup_id: &BackupId,
        generation: &TopicGeneration,
    ) -> Result<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                AttributeValue::S(generations_key(backup_id, &generation.topic)),
            )
            .item(
                "sk",
                AttributeValue::S(format!("generation#{:010}", generation.generation)),
            )
            .item("backup_id", AttributeValue::S(backup_id.to_string()))
            .item("topic", AttributeValue::S(generation.topic.clone()))
            .item("generation", number(generation.generation))
            .item("detected_at_ms", number(generation.detected_at_ms))
            .item(
                "evidence",
                AttributeValue::L(
                    generation
                        .evidence
                        .iter()
                        .map(|line| AttributeValue::S(line.clone()))
                        .collect(),
                ),
            )
            .condition_expression("attribute_not_exists(pk)");
        if let Some(topic_id) = &generation.topic_id {
            put = put.item("topic_id", AttributeValue::S(topic_id.clone()));
        }
        let result = put.send().await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|service| service.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(index_error("PutItem")(error)),
        }
    }

    async fn topic_generations(
        &self,
        backup_id: &BackupId,
        topic: &str,
    ) -> Result<Vec<TopicGeneration>> {
        let mut generations = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(generations_key(backup_id, topic)),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(index_error("Query"))?;
            for item in page.items() {
                generations.push(decode_generation(item)?);
            }
        }
        Ok(generations)
    }
}
