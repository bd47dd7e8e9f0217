//! Audit records and health records on the index table (key shapes in the parent module).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Datelike, TimeZone, Utc};

use super::{DynamoIndexStore, index_error, number};
use crate::error::{Error, Result};
use crate::layout::BackupId;
use crate::operations::{AuditRecord, BackupHealth, HealthAspect, OperationsBook};

/// Audit records are partitioned by month: a query by time reads the months it spans.
fn audit_month_key(at_ms: i64) -> String {
    let at = Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default();
    format!("audit#{:04}-{:02}", at.year(), at.month())
}

/// No audit record is older than the audit trail (2026-01-01T00:00:00Z).
const AUDIT_TRAIL_BEGAN_MS: i64 = 1_767_225_600_000;

/// The month keys from `since_ms`'s to `until_ms`'s, within the audit trail's life (a query
/// "since the beginning" or "until forever" reads only the months that can hold records).
fn months(since_ms: i64, until_ms: i64) -> Vec<String> {
    let mut keys = Vec::new();
    let until_ms = until_ms.min(Utc::now().timestamp_millis() + 400 * 86_400_000);
    let start = Utc
        .timestamp_millis_opt(since_ms.max(AUDIT_TRAIL_BEGAN_MS))
        .single()
        .unwrap_or_default();
    let (mut year, mut month) = (start.year(), start.month());
    loop {
        let first = Utc
            .with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .expect("the first of a month exists");
        if first.timestamp_millis() > until_ms {
            break;
        }
        keys.push(audit_month_key(first.timestamp_millis()));
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
    }
    keys
}

fn health_key(backup_id: &BackupId) -> String {
    format!("{backup_id}#health")
}

fn decode_error(message: String) -> Error {
    Error::IndexStore {
        operation: "decode",
        message,
        retryable: false,
    }
}

#[async_trait]
impl OperationsBook for DynamoIndexStore {
    async fn index_audit(&self, record: &AuditRecord) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                AttributeValue::S(audit_month_key(record.finished_at_ms)),
            )
            .item("sk", AttributeValue::S(record.sort_key()))
            .item(
                "record",
                AttributeValue::S(serde_json::to_string(record).expect("records serialise")),
            )
            .send()
            .await
            .map_err(index_error("PutItem"))?;
        Ok(())
    }

    async fn audit_records(&self, since_ms: i64, until_ms: i64) -> Result<Vec<AuditRecord>> {
        let mut records = Vec::new();
        for month in months(since_ms, until_ms) {
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
                .expression_attribute_values(":pk", AttributeValue::S(month))
                .expression_attribute_values(
                    ":low",
                    AttributeValue::S(format!("{:020}", since_ms.max(0))),
                )
                .expression_attribute_values(
                    ":high",
                    AttributeValue::S(format!("{:020}$", until_ms.max(0))),
                )
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.map_err(index_error("Query"))?;
                let json = item
                    .get("record")
                    .and_then(|value| value.as_s().ok())
                    .ok_or_else(|| {
                        decode_error(format!("audit item {:?} has no record", item.get("sk")))
                    })?;
                records.push(serde_json::from_str(json).map_err(|error| {
                    decode_error(format!("audit item {:?}: {error}", item.get("sk")))
                })?);
            }
        }
        Ok(records)
    }

    async fn record_health(&self, backup_id: &BackupId, aspect: &HealthAspect) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(health_key(backup_id)))
            .key("sk", AttributeValue::S("health".into()))
            .update_expression("SET #aspect = :json, #at = :at")
            .condition_expression("attribute_not_exists(#at) OR #at <= :at")
            .expression_attribute_names("#aspect", aspect.name())
            .expression_attribute_names("#at", format!("{}_at_ms", aspect.name()))
            .expression_attribute_values(":json", AttributeValue::S(aspect.to_json()))
            .expression_attribute_values(":at", number(aspect.at_ms()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The record holds a later observation of this aspect: it stands.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|service| service.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(index_error("UpdateItem")(error)),
        }
    }

    async fn health(&self, backup_id: &BackupId) -> Result<BackupHealth> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", AttributeValue::S(health_key(backup_id)))
            .key("sk", AttributeValue::S("health".into()))
            .send()
            .await
            .map_err(index_error("GetItem"))?;
        let mut health = BackupHealth::default();
        for (name, value) in output.item().into_iter().flatten() {
            if let Ok(json) = value.as_s() {
                health.set_from_json(name, json).map_err(|error| {
                    decode_error(format!("health of {backup_id}: {name}: {error}"))
                })?;
            }
        }
        Ok(health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_every_month_it_spans_across_a_year_end() {
        let day = 86_400_000;
        let since = Utc
            .with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            months(since, since + 60 * day),
            ["audit#2026-11", "audit#2026-12", "audit#2027-01"]
        );
        assert_eq!(months(since, since), ["audit#2026-11"]);
        let all = months(0, i64::MAX);
        assert_eq!(
            all[0], "audit#2026-01",
            "nothing before the audit trail began"
        );
        assert!(all.len() < 40, "nothing far past now: {}", all.len());
    }
}
