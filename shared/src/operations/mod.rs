//! What operators need to trust a backup beyond its data: an audit trail of every operation
//! run on it (who, what, when, outcome) and one health record per backup (how fresh it is,
//! what was last validated, how the last recovery drill went).
//!
//! Both live on the index table beside the catalog (`OperationsBook`); audit records are also
//! written to S3 first, where Object Lock (when the bucket has it) makes them append-only.

pub mod audit;
pub mod health;

use async_trait::async_trait;

pub use audit::{AuditRecord, Caller, Operation, Outcome, record_audit};
pub use health::{
    Assessment, BackupHealth, DrillHealth, Freshness, HealthAspect, HealthPolicy, Level,
    ValidationHealth,
};

use crate::error::Result;
use crate::layout::BackupId;

/// The store of audit records and health records; the conformance suite holds each
/// implementation to this contract.
#[async_trait]
pub trait OperationsBook: Send + Sync {
    /// Indexes an audit record (already durable in S3) by time. Recording it again is
    /// harmless.
    async fn index_audit(&self, record: &AuditRecord) -> Result<()>;

    /// Audit records with `since_ms <= at_ms <= until_ms`, oldest first.
    async fn audit_records(&self, since_ms: i64, until_ms: i64) -> Result<Vec<AuditRecord>>;

    /// Sets one aspect of a backup's health record, leaving the others. An aspect older than
    /// the one recorded (by its own time) is ignored, so a late retry never hides news.
    async fn record_health(&self, backup_id: &BackupId, aspect: &HealthAspect) -> Result<()>;

    /// The backup's health record; every aspect is `None` until first recorded.
    async fn health(&self, backup_id: &BackupId) -> Result<BackupHealth>;
}
