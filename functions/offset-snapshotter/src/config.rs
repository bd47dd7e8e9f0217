//! The snapshotter's configuration, read once from the environment.

use std::time::Duration;

use tidemark_core::config::{Env, NameFilter, StoreLocation};
use tidemark_core::kafka::KafkaSettings;
use tidemark_core::layout::BackupId;
use tidemark_core::{Error, Result};

/// Every variable is listed in `docs/configuration.md` and `example.env`.
#[derive(Debug, Clone)]
pub struct SnapshotterConfig {
    /// The store and `TIDEMARK_BACKUP_ID`: as for the backup writer; snapshots live under the
    /// same backup id.
    pub store: StoreLocation,
    pub backup_id: BackupId,
    /// `TIDEMARK_TOPICS_INCLUDE` / `_EXCLUDE`: the backed-up topics (the writer's filter).
    pub topics: NameFilter,
    /// `TIDEMARK_GROUPS_INCLUDE` / `_EXCLUDE`: which consumer groups to capture.
    pub groups: NameFilter,
    /// `TIDEMARK_SNAPSHOT_SAMPLES`: snapshots per invocation (default 1). With a one-minute
    /// schedule, 4 samples 15 s apart give 15 s granularity without a second schedule.
    pub samples: u32,
    /// `TIDEMARK_SNAPSHOT_INTERVAL_SECONDS`: time between samples (default 15).
    pub interval: Duration,
    /// `TIDEMARK_COMPRESSION_LEVEL`: zstd level of the stored snapshot (default 3).
    pub compression_level: i32,
    /// `TIDEMARK_METRICS_NAMESPACE` (default `Tidemark`).
    pub metrics_namespace: String,
    /// `TIDEMARK_STALL_AFTER_SECONDS`: a partition whose checkpoint has not moved for this long
    /// while records wait past it is reported stalled (default 1800; 0 turns the check off).
    pub stall_after: Option<Duration>,
    /// `TIDEMARK_DRILL_INTERVAL_HOURS` (default 0, off): a drill is overdue (metric
    /// `DrillOverdue`) when the backup's last one finished longer ago.
    pub drill_interval: Option<Duration>,
    pub kafka: KafkaSettings,
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    low: T,
    high: T,
    expected: &str,
) -> Result<T> {
    if value < low || value > high {
        return Err(Error::Config(format!(
            "{name}={value} is not valid: expected {expected}"
        )));
    }
    Ok(value)
}

impl SnapshotterConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        const SAMPLES: &str = "an integer from 1 to 60";
        const INTERVAL: &str = "seconds, 1 to 900";
        const LEVEL: &str = "an integer from 1 to 19";
        const STALL: &str = "seconds, 0 (off) to 604800";
        let samples = env.parsed("TIDEMARK_SNAPSHOT_SAMPLES", 1, SAMPLES)?;
        let interval = env.parsed("TIDEMARK_SNAPSHOT_INTERVAL_SECONDS", 15, INTERVAL)?;
        let level = env.parsed("TIDEMARK_COMPRESSION_LEVEL", 3, LEVEL)?;
        let stall_after = env.parsed("TIDEMARK_STALL_AFTER_SECONDS", 1800u64, STALL)?;
        let drill_hours: u64 =
            env.parsed("TIDEMARK_DRILL_INTERVAL_HOURS", 0, "hours, 0 (off) or more")?;
        Ok(SnapshotterConfig {
            store: StoreLocation::from_env(env)?,
            backup_id: BackupId::parse(&env.required("TIDEMARK_BACKUP_ID")?)
                .map_err(|error| Error::Config(format!("TIDEMARK_BACKUP_ID: {error}")))?,
            topics: env.name_filter("TIDEMARK_TOPICS")?,
            groups: env.name_filter("TIDEMARK_GROUPS")?,
            samples: in_range("TIDEMARK_SNAPSHOT_SAMPLES", samples, 1, 60, SAMPLES)?,
            interval: Duration::from_secs(in_range(
                "TIDEMARK_SNAPSHOT_INTERVAL_SECONDS",
                interval,
                1,
                900,
                INTERVAL,
            )?),
            compression_level: in_range("TIDEMARK_COMPRESSION_LEVEL", level, 1, 19, LEVEL)?,
            metrics_namespace: env
                .optional("TIDEMARK_METRICS_NAMESPACE")
                .unwrap_or_else(|| "Tidemark".to_owned()),
            stall_after: match in_range(
                "TIDEMARK_STALL_AFTER_SECONDS",
                stall_after,
                0,
                604_800,
                STALL,
            )? {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            drill_interval: (drill_hours > 0).then(|| Duration::from_secs(drill_hours * 3600)),
            kafka: KafkaSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SnapshotterConfig> {
        let mut map: HashMap<String, String> = [
            ("TIDEMARK_BUCKET", "b"),
            ("TIDEMARK_TABLE", "t"),
            ("TIDEMARK_BACKUP_ID", "prod"),
            ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("TIDEMARK_KAFKA_AUTH", "plaintext"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        SnapshotterConfig::from_env(&Env::from_lookup(move |name| map.get(name).cloned()))
    }

    #[test]
    fn defaults_take_one_sample_every_fifteen_seconds() {
        let config = config(&[]).unwrap();
        assert_eq!(config.samples, 1);
        assert_eq!(config.interval, Duration::from_secs(15));
        assert!(config.groups.accepts("any-group"));
    }

    #[test]
    fn each_bad_value_is_named() {
        for (name, value) in [
            ("TIDEMARK_SNAPSHOT_SAMPLES", "0"),
            ("TIDEMARK_SNAPSHOT_SAMPLES", "many"),
            ("TIDEMARK_SNAPSHOT_INTERVAL_SECONDS", "0"),
            ("TIDEMARK_STALL_AFTER_SECONDS", "-5"),
            ("TIDEMARK_GROUPS_INCLUDE", "("),
            ("TIDEMARK_KAFKA_AUTH", "none"),
        ] {
            let error = config(&[(name, value)]).unwrap_err().to_string();
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }
}
