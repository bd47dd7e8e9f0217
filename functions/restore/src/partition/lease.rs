//! One partition restore at a time. Step Functions may start a second invocation while the
//! first still runs (a Lambda service error or a timeout seen by the state machine, not by
//! the function): two producers from the same point would write every record twice.
//!
//! Each invocation takes the partition's next lease, `leases/{topic}/{partition}/{seq:010}.json`,
//! by conditional create, before it reads the progress or produces anything, and releases it
//! (`{seq:010}.released`) when it returns, successfully or not. A lease that is neither
//! released nor past its holder's Lambda deadline (plus clock skew) means another invocation
//! may be producing: the newcomer stops with `Tidemark.PartitionBusy`, which the state machine
//! retries for longer than a function can run. A holder that crashed releases nothing; its
//! partition waits until its deadline, when Lambda has certainly stopped it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tidemark_core::layout::{BackupId, RestoreId};
use tidemark_core::object_store::{ObjectMetadata, PutOutcome};

use crate::error::{RestoreError, Result};
use tidemark_core::stores::BackupStores;

/// Clocks of two Lambda invocations agree within this (both NTP-synchronised).
const CLOCK_SKEW_MS: i64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    seq: u64,
    /// The holder's Lambda deadline: past it, Lambda has stopped the holder.
    deadline_ms: i64,
}

/// A lease this invocation holds.
#[derive(Debug)]
pub struct Lease {
    prefix: String,
    seq: u64,
}

fn lease_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:010}.json")
}

fn release_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:010}.released")
}

/// Takes the partition's lease until `deadline_ms`, or fails with
/// [`RestoreError::PartitionBusy`] while another invocation may hold it.
pub async fn acquire(
    backup: &BackupStores,
    backup_id: &BackupId,
    restore_id: &RestoreId,
    source_topic: &str,
    partition: i32,
    deadline_ms: i64,
    now_ms: i64,
) -> Result<Lease> {
    let prefix = backup.restore_key(
        backup_id,
        restore_id,
        &format!("leases/{source_topic}/{partition}/"),
    );
    let keys = backup.objects.list(&prefix).await?;
    let latest = keys
        .iter()
        .filter_map(|key| key.strip_prefix(&prefix)?.strip_suffix(".json"))
        .filter_map(|seq| seq.parse::<u64>().ok())
        .max();
    let seq = match latest {
        None => 0,
        Some(latest) => {
            let released = keys.contains(&release_key(&prefix, latest));
            if !released {
                let holder: Option<LeaseRecord> =
                    backup.get_json(&lease_key(&prefix, latest)).await?;
                if let Some(holder) = holder
                    && now_ms <= holder.deadline_ms + CLOCK_SKEW_MS
                {
                    return Err(RestoreError::PartitionBusy(format!(
                        "{source_topic}/{partition} is being restored by invocation {latest} \
                         until {} ms at the latest; this one produced nothing",
                        holder.deadline_ms + CLOCK_SKEW_MS
                    )));
                }
            }
            latest + 1
        }
    };
    let body = serde_json::to_vec(&LeaseRecord { seq, deadline_ms })
        .map_err(|error| RestoreError::InvalidRequest(error.to_string()))?;
    match backup
        .objects
        .put_if_absent(
            &lease_key(&prefix, seq),
            Bytes::from(body),
            &ObjectMetadata::new(),
        )
        .await?
    {
        PutOutcome::Created => Ok(Lease { prefix, seq }),
        PutOutcome::AlreadyExists(_) => Err(RestoreError::PartitionBusy(format!(
            "{source_topic}/{partition}: another invocation took lease {seq} first; this one \
             produced nothing"
        ))),
    }
}

impl Lease {
    /// Ends the lease: the next invocation may start at once.
    pub async fn release(self, backup: &BackupStores) -> Result<()> {
        backup
            .objects
            .put_if_absent(
                &release_key(&self.prefix, self.seq),
                Bytes::new(),
                &ObjectMetadata::new(),
            )
            .await?;
        Ok(())
    }
}
