//! The offset-reset function's environment (`docs/configuration.md`).

use tidemark_core::config::{Env, StoreLocation};
use tidemark_core::{Error, Result};

#[derive(Debug, Clone)]
pub struct ResetConfig {
    /// Where resets keep their plans and snapshots and backups live; the table is the
    /// snapshot catalog (for the `snapshot` strategy).
    pub store: StoreLocation,
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
            store: StoreLocation::from_env(env)?,
            concurrency,
        })
    }
}
