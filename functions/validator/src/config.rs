//! The validator's settings, from the environment (`docs/configuration.md`).

use tidemark_core::config::Env;
use tidemark_core::layout::{BackupId, StorageLayout};
use tidemark_core::{Error, Result};

#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// `TIDEMARK_BUCKET`, `TIDEMARK_TABLE`: the backup's bucket and index table.
    pub bucket: String,
    pub table: String,
    /// `TIDEMARK_BACKUP_ID`: the backup this function validates.
    pub backup_id: BackupId,
    /// `TIDEMARK_PREFIX`.
    pub layout: StorageLayout,
    /// `TIDEMARK_METRICS_NAMESPACE` (default `Tidemark`).
    pub metrics_namespace: String,
}

impl ValidatorConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        Ok(ValidatorConfig {
            bucket: env.required("TIDEMARK_BUCKET")?,
            table: env.required("TIDEMARK_TABLE")?,
            backup_id: BackupId::parse(&env.required("TIDEMARK_BACKUP_ID")?)
                .map_err(|error| Error::Config(format!("TIDEMARK_BACKUP_ID: {error}")))?,
            layout: StorageLayout::new(&env.optional("TIDEMARK_PREFIX").unwrap_or_default())
                .map_err(|error| Error::Config(format!("TIDEMARK_PREFIX: {error}")))?,
            metrics_namespace: env
                .optional("TIDEMARK_METRICS_NAMESPACE")
                .unwrap_or_else(|| "Tidemark".to_owned()),
        })
    }
}
