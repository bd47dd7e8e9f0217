//! The offset-reset function's environment (`docs/configuration.md`).

use tidemark_core::config::Env;
use tidemark_core::layout::StorageLayout;
use tidemark_core::{Error, Result};

#[derive(Debug, Clone)]
pub struct ResetConfig {
    /// `TIDEMARK_BUCKET`: where resets keep their plans and snapshots, and backups live.
    pub bucket: String,
    /// `TIDEMARK_TABLE`: the snapshot catalog (for the `snapshot` strategy).
    pub table: String,
    /// `TIDEMARK_PREFIX`: key prefix inside the bucket (default: none).
    pub layout: StorageLayout,
    /// `TIDEMARK_OFFSET_RESET_CONCURRENCY` (default 32, 1-256): groups committed or read at
    /// once.
    pub concurrency: usize,
}

pub const DEFAULT_CONCURRENCY: usize = 32;

impl ResetConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        let concurrency: usize = env.parsed(
            "TIDEMARK_OFFSET_RESET_CONCURRENCY",
            DEFAULT_CONCURRENCY,
            "an integer from 1 to 256",
        )?;
        if !(1..=256).contains(&concurrency) {
            return Err(Error::Config(format!(
                "TIDEMARK_OFFSET_RESET_CONCURRENCY={concurrency} is not valid: expected an integer from 1 to 256"
            )));
        }
        Ok(ResetConfig {
            bucket: env.required("TIDEMARK_BUCKET")?,
            table: env.required("TIDEMARK_TABLE")?,
            layout: StorageLayout::new(&env.optional("TIDEMARK_PREFIX").unwrap_or_default())
                .map_err(|error| Error::Config(format!("TIDEMARK_PREFIX: {error}")))?,
            concurrency,
        })
    }
}
