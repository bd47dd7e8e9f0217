//! The index and checkpoint store on one DynamoDB table (`pk`, `sk` strings).
//!
//! | item       | pk                            | sk                                  |
//! |------------|-------------------------------|-------------------------------------|
//! | checkpoint | `{backup_id}#{topic}#{p}`      | `checkpoint`                        |
//! | ...of a later generation `g` | `{backup_id}#{topic}#{p}#g{g}` | as for generation 0 |
//! | segment    | `{backup_id}#{topic}#{p}`      | `segment#{first:020}#{last:020}`    |
//! | gap        | `{backup_id}#{topic}#{p}`      | `gap#{start:020}#{end:020}`         |
//! | retired    | `{backup_id}#{topic}#{p}`      | `retired#{first:020}#{last:020}`    |
//! | snapshot   | `{backup_id}#snapshots`        | `{taken_at_ms:020}`                 |
//! | generation | `{backup_id}#{topic}#generations` | `generation#{n:010}`             |
//! | health     | `{backup_id}#health`           | `health`                            |
//! | audit      | `audit#{yyyy}-{mm}`            | `{finished_ms:020}#{operation}#{id}#{outcome}` |
//!
//! `#` cannot occur in backup ids or topic names and partitions are numbers, so keys are
//! unambiguous; zero-padded offsets and times make sort keys sort in order.

mod catalog;
mod operations;
mod shredding;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use futures::StreamExt;

use super::describe_sdk_error;
use crate::checkpoint::{Checkpoint, Gap, GapKind};
use crate::error::{Error, Result};
use crate::index::{CommitOutcome, IndexStore, RetiredSegment, SegmentCommit, SegmentEntry};
use crate::layout::{BackupId, PartitionId};
use crate::segment::WriteMark;

const CHECKPOINT_SK: &str = "checkpoint";
const SEGMENT_SK_PREFIX: &str = "segment#";
const GAP_SK_PREFIX: &str = "gap#";
const RETIRED_SK_PREFIX: &str = "retired#";

pub(super) type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoIndexStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoIndexStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoIndexStore {
            client,
            table: table.into(),
        }
    }

    fn put(&self, item: Item) -> Result<Put> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|error| Error::IndexStore {
                operation: "TransactWriteItems",
                message: error.to_string(),
                retryable: false,
            })
    }

    /// A transaction's deletion of an item that must still exist (else the transaction fails
    /// with ConditionalCheckFailed at its position).
    fn delete_existing(&self, partition: &PartitionId, sk: String) -> Result<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(partition_key(partition)))
            .key("sk", AttributeValue::S(sk))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|error| Error::IndexStore {
                operation: "TransactWriteItems",
                message: error.to_string(),
                retryable: false,
            })?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    async fn query_prefix(&self, partition: &PartitionId, sk_prefix: &str) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(partition_key(partition)))
            .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(index_error("Query"))?;
            items.extend(page.items().iter().cloned());
        }
        Ok(items)
    }
}

/// Generation 0 keeps the keys of indexes made before generations.
fn partition_key(partition: &PartitionId) -> String {
    let key = format!(
        "{}#{}#{}",
        partition.backup_id, partition.topic, partition.partition
    );
    match partition.generation {
        0 => key,
        generation => format!("{key}#g{generation}"),
    }
}

fn base_item(partition: &PartitionId, sk: String) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(partition_key(partition))),
        ("sk".to_owned(), AttributeValue::S(sk)),
        (
            "backup_id".to_owned(),
            AttributeValue::S(partition.backup_id.to_string()),
        ),
        (
            "topic".to_owned(),
            AttributeValue::S(partition.topic.clone()),
        ),
        ("partition".to_owned(), number(partition.partition)),
        ("generation".to_owned(), number(partition.generation)),
    ])
}

/// Maps a failed DynamoDB call to the index store's error.
pub(super) fn index_error<E, R>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_dynamodb::error::SdkError<E, R>) -> Error
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    move |error| {
        let (message, retryable) = describe_sdk_error(&error);
        Error::IndexStore {
            operation,
            message,
            retryable,
        }
    }
}

pub(super) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn read_number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T> {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| Error::IndexStore {
            operation: "decode",
            message: format!(
                "index item {:?} has no numeric attribute {name:?}",
                item.get("sk")
            ),
            retryable: false,
        })
}

fn checkpoint_item(partition: &PartitionId, checkpoint: &Checkpoint) -> Item {
    let mut item = base_item(partition, CHECKPOINT_SK.to_owned());
    item.insert("start_offset".into(), number(checkpoint.start_offset));
    item.insert("next_offset".into(), number(checkpoint.next_offset));
    item.insert("max_timestamp".into(), number(checkpoint.max_timestamp));
    item.insert("updated_at_ms".into(), number(checkpoint.updated_at_ms));
    item
}

fn decode_checkpoint(item: &Item) -> Result<Checkpoint> {
    Ok(Checkpoint {
        start_offset: read_number(item, "start_offset")?,
        next_offset: read_number(item, "next_offset")?,
        max_timestamp: read_number(item, "max_timestamp")?,
        updated_at_ms: read_number(item, "updated_at_ms")?,
    })
}

fn segment_item(partition: &PartitionId, segment: &SegmentEntry) -> Item {
    let mut item = base_item(partition, segment_sk(segment));
    item.insert("key".into(), AttributeValue::S(segment.key.clone()));
    item.insert("first_offset".into(), number(segment.first_offset));
    item.insert("last_offset".into(), number(segment.last_offset));
    item.insert("record_count".into(), number(segment.record_count));
    item.insert("min_timestamp".into(), number(segment.min_timestamp));
    item.insert("max_timestamp".into(), number(segment.max_timestamp));
    item.insert("stored_bytes".into(), number(segment.stored_bytes));
    item.insert(
        "uncompressed_bytes".into(),
        number(segment.uncompressed_bytes),
    );
    item.insert("records_crc32c".into(), number(segment.records_crc32c));
    item.insert("written_at_ms".into(), number(segment.written_at_ms));
    if let Some(bytes) = segment.max_record_bytes {
        item.insert("max_record_bytes".into(), number(bytes));
    }
    if !segment.write_marks.is_empty() {
        let mut marks = Vec::with_capacity(segment.write_marks.len() * 16);
        for mark in &segment.write_marks {
            marks.extend_from_slice(&mark.last_offset.to_be_bytes());
            marks.extend_from_slice(&mark.written_at_ms.to_be_bytes());
        }
        item.insert(
            "write_marks".into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(marks)),
        );
    }
    item
}

/// A merged segment's write marks: big-endian (last offset, written at) pairs, as in the header.
fn decode_write_marks(item: &Item) -> Result<Vec<WriteMark>> {
    let Some(value) = item.get("write_marks") else {
        return Ok(Vec::new());
    };
    let bytes = value
        .as_b()
        .ok()
        .map(|blob| blob.as_ref())
        .filter(|bytes| bytes.len() % 16 == 0)
        .ok_or_else(|| Error::IndexStore {
            operation: "decode",
            message: format!(
                "segment item {:?} has malformed write marks",
                item.get("sk")
            ),
            retryable: false,
        })?;
    Ok(bytes
        .chunks_exact(16)
        .map(|pair| WriteMark {
            last_offset: i64::from_be_bytes(pair[..8].try_into().expect("8 bytes")),
            written_at_ms: i64::from_be_bytes(pair[8..].try_into().expect("8 bytes")),
        })
        .collect())
}

fn decode_segment(item: &Item) -> Result<SegmentEntry> {
    let key = item
        .get("key")
        .and_then(|value| value.as_s().ok())
        .cloned()
        .ok_or_else(|| Error::IndexStore {
            operation: "decode",
            message: format!("segment item {:?} has no key", item.get("sk")),
            retryable: false,
        })?;
    Ok(SegmentEntry {
        key,
        first_offset: read_number(item, "first_offset")?,
        last_offset: read_number(item, "last_offset")?,
        record_count: read_number(item, "record_count")?,
        min_timestamp: read_number(item, "min_timestamp")?,
        max_timestamp: read_number(item, "max_timestamp")?,
        stored_bytes: read_number(item, "stored_bytes")?,
        uncompressed_bytes: read_number(item, "uncompressed_bytes")?,
        records_crc32c: read_number(item, "records_crc32c")?,
        written_at_ms: read_number(item, "written_at_ms")?,
        write_marks: decode_write_marks(item)?,
        max_record_bytes: item
            .contains_key("max_record_bytes")
            .then(|| read_number(item, "max_record_bytes"))
            .transpose()?,
    })
}

fn gap_sk(gap: &Gap) -> String {
    format!("{GAP_SK_PREFIX}{:020}#{:020}", gap.start, gap.end)
}

fn gap_item(partition: &PartitionId, gap: &Gap) -> Item {
    let mut item = base_item(partition, gap_sk(gap));
    item.insert("start".into(), number(gap.start));
    item.insert("end".into(), number(gap.end));
    item.insert("detected_at_ms".into(), number(gap.detected_at_ms));
    // Absent on gaps written before gaps had kinds: those are all missing offsets.
    if gap.kind != GapKind::Missing {
        item.insert("kind".into(), AttributeValue::S(gap.kind.as_str().into()));
    }
    item
}

fn decode_gap(item: &Item) -> Result<Gap> {
    Ok(Gap {
        start: read_number(item, "start")?,
        end: read_number(item, "end")?,
        detected_at_ms: read_number(item, "detected_at_ms")?,
        kind: match item.get("kind").and_then(|kind| kind.as_s().ok()) {
            None => GapKind::Missing,
            Some(kind) if kind == GapKind::Erased.as_str() => GapKind::Erased,
            Some(kind) => {
                return Err(Error::IndexStore {
                    operation: "decode",
                    message: format!("gap item {:?} has unknown kind {kind:?}", item.get("sk")),
                    retryable: false,
                });
            }
        },
    })
}

fn segment_sk(segment: &SegmentEntry) -> String {
    format!(
        "{SEGMENT_SK_PREFIX}{:020}#{:020}",
        segment.first_offset, segment.last_offset
    )
}

fn retired_item(partition: &PartitionId, segment: &SegmentEntry, retired_at_ms: i64) -> Item {
    let mut item = base_item(
        partition,
        format!(
            "{RETIRED_SK_PREFIX}{:020}#{:020}",
            segment.first_offset, segment.last_offset
        ),
    );
    item.insert("key".into(), AttributeValue::S(segment.key.clone()));
    item.insert("first_offset".into(), number(segment.first_offset));
    item.insert("last_offset".into(), number(segment.last_offset));
    item.insert("retired_at_ms".into(), number(retired_at_ms));
    item
}

/// Why DynamoDB cancelled a transaction, one code per item (`None` for items that were fine).
fn cancellation_reasons<R>(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Vec<String> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None").to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn transaction_error<R: std::fmt::Debug>(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
    reasons: &[String],
) -> Error {
    let (message, retryable) = describe_sdk_error(error);
    // A transaction cancelled by a concurrent write or throttling may succeed when tried
    // again; describe_sdk_error only sees the generic cancellation code.
    let transient = reasons.iter().any(|code| {
        matches!(
            code.as_str(),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    });
    Error::IndexStore {
        operation: "TransactWriteItems",
        message: format!("{message} (cancellation reasons: {reasons:?})"),
        retryable: retryable || transient,
    }
}

#[async_trait]
impl IndexStore for DynamoIndexStore {
    async fn checkpoint(&self, partition: &PartitionId) -> Result<Option<Checkpoint>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", AttributeValue::S(partition_key(partition)))
            .key("sk", AttributeValue::S(CHECKPOINT_SK.to_owned()))
            .send()
            .await
            .map_err(index_error("GetItem"))?;
        output.item().map(decode_checkpoint).transpose()
    }

    async fn commit_segment(&self, commit: SegmentCommit<'_>) -> Result<CommitOutcome> {
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.put(segment_item(commit.partition, commit.segment))?)
                .build(),
        ];
        for gap in commit.gap.into_iter().chain(commit.remaining_gaps) {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put(gap_item(commit.partition, gap))?)
                    .build(),
            );
        }
        // Filled gaps go only if still recorded as planned (retention, or another commit
        // filling the same gap, may have changed them): else the whole commit re-plans.
        let filled_positions = items.len()..items.len() + commit.filled_gaps.len();
        for gap in commit.filled_gaps {
            items.push(self.delete_existing(commit.partition, gap_sk(gap))?);
        }
        let checkpoint_position = items.len();
        if let Some(new) = commit.new {
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(checkpoint_item(commit.partition, new)));
            put = match commit.expected {
                None => put.condition_expression("attribute_not_exists(pk)"),
                // The start too: retention may have moved it since this commit was planned.
                Some(expected) => put
                    .condition_expression(
                        "next_offset = :expected_next AND start_offset = :expected_start",
                    )
                    .expression_attribute_values(":expected_next", number(expected.next_offset))
                    .expression_attribute_values(":expected_start", number(expected.start_offset)),
            };
            let put = put.build().map_err(|error| Error::IndexStore {
                operation: "TransactWriteItems",
                message: error.to_string(),
                retryable: false,
            })?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(CommitOutcome::Committed),
            Err(error) => {
                let reasons = cancellation_reasons(&error);
                let failed_condition = |position: usize| {
                    reasons.get(position).map(String::as_str) == Some("ConditionalCheckFailed")
                };
                if failed_condition(checkpoint_position)
                    || filled_positions.clone().any(failed_condition)
                {
                    return Ok(CommitOutcome::CheckpointMoved);
                }
                Err(transaction_error(&error, &reasons))
            }
        }
    }

    async fn replace_segments(
        &self,
        partition: &PartitionId,
        new: &SegmentEntry,
        old: &[SegmentEntry],
        retired_at_ms: i64,
    ) -> Result<bool> {
        if old.len() > crate::index::MAX_SEGMENTS_REPLACED {
            return Err(Error::IndexStore {
                operation: "TransactWriteItems",
                message: format!(
                    "{} segments cannot be replaced in one transaction (at most {})",
                    old.len(),
                    crate::index::MAX_SEGMENTS_REPLACED
                ),
                retryable: false,
            });
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.put(segment_item(partition, new))?)
                .build(),
        ];
        for entry in old {
            items.push(self.delete_existing(partition, segment_sk(entry))?);
            items.push(
                TransactWriteItem::builder()
                    .put(self.put(retired_item(partition, entry, retired_at_ms))?)
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => {
                let reasons = cancellation_reasons(&error);
                if reasons.iter().any(|code| code == "ConditionalCheckFailed") {
                    return Ok(false);
                }
                Err(transaction_error(&error, &reasons))
            }
        }
    }

    async fn swap_segment(
        &self,
        partition: &PartitionId,
        old: &SegmentEntry,
        new: Option<&SegmentEntry>,
    ) -> Result<bool> {
        let build_error = |error: aws_sdk_dynamodb::error::BuildError| Error::IndexStore {
            operation: "TransactWriteItems",
            message: error.to_string(),
            retryable: false,
        };
        let old_key = AttributeValue::S(old.key.clone());
        let mut items = Vec::new();
        match new {
            // Same range, same item: one conditional put replaces it.
            Some(new) if segment_sk(new) == segment_sk(old) => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(segment_item(partition, new)))
                    .condition_expression("#key = :old")
                    .expression_attribute_names("#key", "key")
                    .expression_attribute_values(":old", old_key)
                    .build()
                    .map_err(build_error)?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            new => {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(partition_key(partition)))
                    .key("sk", AttributeValue::S(segment_sk(old)))
                    .condition_expression("#key = :old")
                    .expression_attribute_names("#key", "key")
                    .expression_attribute_values(":old", old_key)
                    .build()
                    .map_err(build_error)?;
                items.push(TransactWriteItem::builder().delete(delete).build());
                if let Some(new) = new {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(segment_item(partition, new)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(build_error)?;
                    items.push(TransactWriteItem::builder().put(put).build());
                }
            }
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => {
                let reasons = cancellation_reasons(&error);
                if reasons.iter().any(|code| code == "ConditionalCheckFailed") {
                    return Ok(false);
                }
                Err(transaction_error(&error, &reasons))
            }
        }
    }

    async fn record_gaps(&self, partition: &PartitionId, gaps: &[Gap]) -> Result<()> {
        let requests: Vec<_> = gaps
            .iter()
            .map(|gap| {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(gap_item(partition, gap)))
            })
            .collect();
        let mut puts = futures::stream::iter(requests)
            .map(|request| request.send())
            .buffer_unordered(8);
        while let Some(put) = puts.next().await {
            put.map_err(index_error("PutItem"))?;
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
        let build_error = |error: aws_sdk_dynamodb::error::BuildError| Error::IndexStore {
            operation: "TransactWriteItems",
            message: error.to_string(),
            retryable: false,
        };
        let delete = |sk: String| -> Result<TransactWriteItem> {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(partition_key(partition)))
                .key("sk", AttributeValue::S(sk))
                .build()
                .map_err(build_error)?;
            Ok(TransactWriteItem::builder().delete(delete).build())
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(partition_key(partition)))
            .key("sk", AttributeValue::S(CHECKPOINT_SK.to_owned()))
            .update_expression("SET start_offset = :new_start")
            .condition_expression("start_offset = :observed_start")
            .expression_attribute_values(":new_start", number(new_start))
            .expression_attribute_values(":observed_start", number(observed_start))
            .build()
            .map_err(build_error)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        for entry in expired {
            items.push(delete(segment_sk(entry))?);
        }
        for gap in gaps {
            items.push(delete(gap_sk(gap))?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => {
                let reasons = cancellation_reasons(&error);
                if reasons.first().map(String::as_str) == Some("ConditionalCheckFailed") {
                    return Ok(false);
                }
                Err(transaction_error(&error, &reasons))
            }
        }
    }

    async fn retired_segments(&self, partition: &PartitionId) -> Result<Vec<RetiredSegment>> {
        self.query_prefix(partition, RETIRED_SK_PREFIX)
            .await?
            .iter()
            .map(|item| {
                Ok(RetiredSegment {
                    key: item
                        .get("key")
                        .and_then(|value| value.as_s().ok())
                        .cloned()
                        .ok_or_else(|| Error::IndexStore {
                            operation: "decode",
                            message: format!("retired item {:?} has no key", item.get("sk")),
                            retryable: false,
                        })?,
                    first_offset: read_number(item, "first_offset")?,
                    last_offset: read_number(item, "last_offset")?,
                    retired_at_ms: read_number(item, "retired_at_ms")?,
                })
            })
            .collect()
    }

    async fn forget_retired(
        &self,
        partition: &PartitionId,
        retired: &RetiredSegment,
    ) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(partition_key(partition)))
            .key(
                "sk",
                AttributeValue::S(format!(
                    "{RETIRED_SK_PREFIX}{:020}#{:020}",
                    retired.first_offset, retired.last_offset
                )),
            )
            .send()
            .await
            .map_err(index_error("DeleteItem"))?;
        Ok(())
    }

    async fn segments(&self, partition: &PartitionId) -> Result<Vec<SegmentEntry>> {
        self.query_prefix(partition, SEGMENT_SK_PREFIX)
            .await?
            .iter()
            .map(decode_segment)
            .collect()
    }

    async fn segments_covering(
        &self,
        partition: &PartitionId,
        first: i64,
        last: i64,
    ) -> Result<Vec<SegmentEntry>> {
        // Newest first from the last segment starting at or before `last`, until one starts
        // at or before `first`: a bounded read however many segments the partition has.
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", AttributeValue::S(partition_key(partition)))
            .expression_attribute_values(":low", AttributeValue::S(SEGMENT_SK_PREFIX.to_owned()))
            .expression_attribute_values(
                ":high",
                AttributeValue::S(format!("{SEGMENT_SK_PREFIX}{last:020}#~")),
            )
            .scan_index_forward(false)
            .into_paginator()
            .send();
        let mut covering = Vec::new();
        'pages: while let Some(page) = pages.next().await {
            for item in page.map_err(index_error("Query"))?.items() {
                let segment = decode_segment(item)?;
                let reached_first = segment.first_offset <= first;
                covering.push(segment);
                if reached_first {
                    break 'pages;
                }
            }
        }
        covering.reverse();
        Ok(covering)
    }

    async fn gaps(&self, partition: &PartitionId) -> Result<Vec<Gap>> {
        self.query_prefix(partition, GAP_SK_PREFIX)
            .await?
            .iter()
            .map(decode_gap)
            .collect()
    }

    async fn partitions(&self, backup_id: &BackupId) -> Result<Vec<PartitionId>> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression("sk = :checkpoint AND backup_id = :backup")
            .expression_attribute_values(":checkpoint", AttributeValue::S(CHECKPOINT_SK.into()))
            .expression_attribute_values(":backup", AttributeValue::S(backup_id.to_string()))
            .projection_expression("topic, #partition, generation")
            .expression_attribute_names("#partition", "partition")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for item in page.map_err(index_error("Scan"))?.items() {
                let topic = item
                    .get("topic")
                    .and_then(|value| value.as_s().ok())
                    .ok_or_else(|| Error::IndexStore {
                        operation: "decode",
                        message: "a checkpoint item has no topic".into(),
                        retryable: false,
                    })?;
                found.push(PartitionId {
                    // Items written before generations have none: generation 0.
                    generation: match item.get("generation") {
                        None => 0,
                        Some(_) => read_number(item, "generation")?,
                    },
                    backup_id: backup_id.clone(),
                    topic: topic.clone(),
                    partition: read_number(item, "partition")?,
                });
            }
        }
        found.sort_by(|a, b| {
            (&a.topic, a.generation, a.partition).cmp(&(&b.topic, b.generation, b.partition))
        });
        Ok(found)
    }
}
