//! The maintenance functions' settings, from the environment (`docs/configuration.md`).

use tidemark_core::config::{Env, RetentionTier, RetentionTiers, StoreLocation};
use tidemark_core::layout::BackupId;
use tidemark_core::{Error, Result};

#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The backup's bucket, index table and prefix.
    pub store: StoreLocation,
    /// `TIDEMARK_BACKUP_ID`: the backup this function looks after.
    pub backup_id: BackupId,
    /// `TIDEMARK_METRICS_NAMESPACE` (default `Tidemark`).
    pub metrics_namespace: String,
}

impl BackupConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        Ok(BackupConfig {
            store: StoreLocation::from_env(env)?,
            backup_id: BackupId::parse(&env.required("TIDEMARK_BACKUP_ID")?)
                .map_err(|error| Error::Config(format!("TIDEMARK_BACKUP_ID: {error}")))?,
            metrics_namespace: env
                .optional("TIDEMARK_METRICS_NAMESPACE")
                .unwrap_or_else(|| "Tidemark".to_owned()),
        })
    }
}

/// What the maintainer keeps and how it compacts (`docs/configuration.md#maintainer`).
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    /// `TIDEMARK_RETENTION_SHORT_TOPICS` / `_LONG_TOPICS`: which tier each topic is in.
    pub tiers: RetentionTiers,
    /// `TIDEMARK_RETENTION_SHORT_DAYS` / `_STANDARD_DAYS` / `_LONG_DAYS` (35, 365, 2557).
    pub short_days: i64,
    pub standard_days: i64,
    pub long_days: i64,
    /// `TIDEMARK_MIN_PITR_WINDOW_DAYS` (default 7): never expire what a restore to any moment
    /// in this window needs, whatever the tier says.
    pub min_pitr_window_days: i64,
    /// `TIDEMARK_COMPACTION_TARGET_MB` (default 64; 0 turns compaction off).
    pub compaction_target_mb: u64,
    /// `TIDEMARK_COMPACTION_GRACE_HOURS` (default 24): how long replaced segments stay readable.
    pub compaction_grace_hours: i64,
    /// `TIDEMARK_COMPRESSION_LEVEL` (default 3).
    pub compression_level: i32,
    /// `TIDEMARK_SEGMENT_ENCRYPTION_KEY`: compacted segments are sealed as the writer seals.
    pub segment_encryption_key: Option<String>,
    /// `TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS` (default 90): the writers' commit lease; an
    /// erasure of a shredded backup waits four thirds of it after retiring the keys' versions.
    pub shredding_commit_lease: std::time::Duration,
}

impl MaintenanceSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        let whole = |name: &str, default: i64, unit: &str| -> Result<i64> {
            let expected = format!("a whole number of {unit}, 0 or more");
            let value: i64 = env.parsed(name, default, &expected)?;
            if value < 0 {
                return Err(Error::Config(format!(
                    "{name}={value} is not valid: expected {expected}"
                )));
            }
            Ok(value)
        };
        let days = |name: &str, default: i64| whole(name, default, "days");
        let compression_level =
            env.parsed("TIDEMARK_COMPRESSION_LEVEL", 3, "an integer from 1 to 19")?;
        if !(1..=19).contains(&compression_level) {
            return Err(Error::Config(format!(
                "TIDEMARK_COMPRESSION_LEVEL={compression_level} is not valid: expected an integer from 1 to 19"
            )));
        }
        Ok(MaintenanceSettings {
            tiers: RetentionTiers::from_env(env)?,
            short_days: days("TIDEMARK_RETENTION_SHORT_DAYS", 35)?,
            standard_days: days("TIDEMARK_RETENTION_STANDARD_DAYS", 365)?,
            long_days: days("TIDEMARK_RETENTION_LONG_DAYS", 2557)?,
            min_pitr_window_days: days("TIDEMARK_MIN_PITR_WINDOW_DAYS", 7)?,
            compaction_target_mb: env.parsed(
                "TIDEMARK_COMPACTION_TARGET_MB",
                64,
                "a whole number of MB (0 turns compaction off)",
            )?,
            compaction_grace_hours: whole("TIDEMARK_COMPACTION_GRACE_HOURS", 24, "hours")?,
            compression_level,
            segment_encryption_key: env.optional("TIDEMARK_SEGMENT_ENCRYPTION_KEY"),
            shredding_commit_lease: tidemark_core::config::shredding_commit_lease(env)?,
        })
    }

    /// How many days `topic`'s segments are kept.
    pub fn keep_days(&self, topic: &str) -> i64 {
        match self.tiers.tier(topic) {
            RetentionTier::Short => self.short_days,
            RetentionTier::Standard => self.standard_days,
            RetentionTier::Long => self.long_days,
        }
    }
}
