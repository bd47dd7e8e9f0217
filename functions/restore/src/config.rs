//! The restore functions' environment (`docs/configuration.md`).

use std::time::Duration;

use tidemark_core::config::{Env, StoreLocation};
use tidemark_core::{Error, Result};

use crate::partition::Pacing;

#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The backups' bucket, index table and prefix.
    pub store: StoreLocation,
    /// `TIDEMARK_RESTORE_BATCH_RECORDS` (default 5000),
    /// `TIDEMARK_RESTORE_DEADLINE_RESERVE_MS` (default 5000) and
    /// `TIDEMARK_RESTORE_PREFETCH_SEGMENTS` (default 2): see [`Pacing`].
    pub pacing: Pacing,
}

impl RestoreConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        let defaults = Pacing::default();
        let batch_records: usize = env.parsed(
            "TIDEMARK_RESTORE_BATCH_RECORDS",
            defaults.batch_records,
            "a positive integer",
        )?;
        if batch_records == 0 {
            return Err(Error::Config(
                "TIDEMARK_RESTORE_BATCH_RECORDS=0 is not valid: expected a positive integer".into(),
            ));
        }
        let reserve_ms: u64 = env.parsed(
            "TIDEMARK_RESTORE_DEADLINE_RESERVE_MS",
            defaults.deadline_reserve.as_millis() as u64,
            "milliseconds (a non-negative integer)",
        )?;
        let prefetch_segments: usize = env.parsed(
            "TIDEMARK_RESTORE_PREFETCH_SEGMENTS",
            defaults.prefetch_segments,
            "an integer from 0 to 16",
        )?;
        if prefetch_segments > 16 {
            return Err(Error::Config(format!(
                "TIDEMARK_RESTORE_PREFETCH_SEGMENTS={prefetch_segments} is not valid: expected an integer from 0 to 16"
            )));
        }
        Ok(RestoreConfig {
            store: StoreLocation::from_env(env)?,
            pacing: Pacing {
                batch_records,
                deadline_reserve: Duration::from_millis(reserve_ms),
                prefetch_segments,
            },
        })
    }
}
