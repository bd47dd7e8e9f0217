//! The audit trail: one record per finished operation (who asked, what, when, how it ended,
//! where its report is). The S3 object is written first, once (a retried step finds it and
//! indexes that one); under Object Lock it cannot be changed or deleted. The index table
//! holds a copy of each record by time, for `tidemark audit list`.

use serde::{Deserialize, Serialize};

use super::OperationsBook;
use crate::error::Result;
use crate::layout::StorageLayout;
use crate::object_store::{self, ObjectStore};

/// The operations that change or prove a backup, or change a cluster from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Restore,
    OffsetReset,
    Drill,
    Validation,
    /// A retention and compaction run.
    Maintenance,
    IndexRebuild,
    /// Records removed from a backup by key (privacy erasure).
    Erasure,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Restore,
        Operation::OffsetReset,
        Operation::Drill,
        Operation::Validation,
        Operation::Maintenance,
        Operation::IndexRebuild,
        Operation::Erasure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Restore => "restore",
            Operation::OffsetReset => "offset-reset",
            Operation::Drill => "drill",
            Operation::Validation => "validation",
            Operation::Maintenance => "maintenance",
            Operation::IndexRebuild => "index-rebuild",
            Operation::Erasure => "erasure",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|operation| operation.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// A dry run: planned and reported, nothing changed.
    Planned,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Planned => "planned",
        }
    }
}

/// Who started an operation. Step Functions does not tell a task who started its
/// execution: the tidemark CLI puts its STS identity in the request (`requested_by`), a
/// schedule its own name; otherwise the execution is named, whose `StartExecution` event in
/// CloudTrail names the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The Step Functions execution (ARN) or the run that did the work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
}

impl Caller {
    /// One line: the identity, or where to find it.
    pub fn describe(&self) -> String {
        match (&self.identity, &self.execution) {
            (Some(identity), _) => identity.clone(),
            (None, Some(execution)) => {
                format!("not recorded (CloudTrail StartExecution of {execution})")
            }
            (None, None) => "not recorded".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub operation: Operation,
    /// The execution name or run id: unique per operation.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    pub caller: Caller,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: i64,
    pub outcome: Outcome,
    /// What was asked: the request (target, cut, topics, groups, ...).
    pub what: serde_json::Value,
    /// One line: what was done, or why it failed.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
}

impl AuditRecord {
    /// An operation `id` that ended now, asked for by `request` (a state machine's input): who
    /// asked is its `requested_by`, the backup its `backup_id`, when the request has them.
    pub fn ended(
        operation: Operation,
        id: impl Into<String>,
        request: &serde_json::Value,
        execution: Option<String>,
        outcome: Outcome,
        detail: String,
    ) -> AuditRecord {
        let field = |name: &str| {
            request
                .get(name)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
        };
        AuditRecord {
            operation,
            id: id.into(),
            backup_id: field("backup_id"),
            caller: Caller {
                identity: field("requested_by"),
                execution,
            },
            started_at_ms: None,
            finished_at_ms: chrono::Utc::now().timestamp_millis(),
            outcome,
            what: request.clone(),
            detail,
            report_key: None,
        }
    }

    pub fn with_report_key(mut self, report_key: Option<String>) -> Self {
        self.report_key = report_key;
        self
    }

    pub fn with_backup_id(mut self, backup_id: Option<String>) -> Self {
        self.backup_id = backup_id.or(self.backup_id);
        self
    }

    /// Sorts by time; unique per operation, id and outcome.
    pub fn sort_key(&self) -> String {
        format!(
            "{:020}#{}#{}#{}",
            self.finished_at_ms,
            self.operation.name(),
            self.id,
            self.outcome.name()
        )
    }
}

/// Writes `record` to S3 once and indexes the stored copy: a retried step (which builds the
/// record again, at a later time) leaves the first one, indexed once.
pub async fn record_audit(
    objects: &dyn ObjectStore,
    book: &dyn OperationsBook,
    layout: &StorageLayout,
    record: &AuditRecord,
) -> Result<AuditRecord> {
    let key = layout.audit_key(record.operation.name(), &record.id, record.outcome.name());
    let stored = object_store::put_json_once(objects, &key, record).await?;
    book.index_audit(&stored).await?;
    tracing::info!(operation = stored.operation.name(), id = %stored.id, outcome = stored.outcome.name(), caller = %stored.caller.describe(), %key, "audit record written");
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::{MemoryIndexStore, MemoryObjectStore};

    fn record(finished_at_ms: i64) -> AuditRecord {
        AuditRecord {
            operation: Operation::Restore,
            id: "payments-1429".into(),
            backup_id: Some("prod".into()),
            caller: Caller {
                identity: Some("arn:aws:sts::1:assumed-role/sre/alice".into()),
                execution: None,
            },
            started_at_ms: Some(1),
            finished_at_ms,
            outcome: Outcome::Succeeded,
            what: serde_json::json!({"cut": 5}),
            detail: "restored".into(),
            report_key: None,
        }
    }

    #[tokio::test]
    async fn a_retried_step_keeps_the_first_record_and_indexes_it_once() {
        let objects = MemoryObjectStore::new();
        let book = MemoryIndexStore::new();
        let layout = StorageLayout::new("tm").unwrap();
        let first = record_audit(&objects, &book, &layout, &record(10))
            .await
            .unwrap();
        let again = record_audit(&objects, &book, &layout, &record(20))
            .await
            .unwrap();
        assert_eq!(again, first, "the retry gets the stored record back");
        assert_eq!(book.audit_records(0, 100).await.unwrap(), vec![first]);
        assert_eq!(
            objects.list("tm/audit/").await.unwrap(),
            vec!["tm/audit/restore/payments-1429-succeeded.json"]
        );
    }

    #[test]
    fn operations_parse_by_their_names() {
        for operation in Operation::ALL {
            assert_eq!(Operation::parse(operation.name()), Some(operation));
            assert_eq!(
                serde_json::to_value(operation).unwrap(),
                serde_json::Value::String(operation.name().into())
            );
        }
        assert_eq!(Operation::parse("erase-everything"), None);
    }
}
