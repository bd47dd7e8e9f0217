//! Typed configuration read once from the environment; a bad value fails fast with its name.

use regex::Regex;

use crate::error::{Error, Result};
use crate::layout::{BackupId, StorageLayout};

/// Reads variables through a lookup function so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_lookup(lookup: F) -> Self {
        Env { lookup }
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String> {
        self.optional(name)
            .ok_or_else(|| Error::Config(format!("{name} is required but not set")))
    }

    pub fn parsed<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
        expected: &str,
    ) -> Result<T> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                Error::Config(format!("{name}={raw:?} is not valid: expected {expected}"))
            }),
        }
    }

    /// `{prefix}_INCLUDE` and `{prefix}_EXCLUDE` as a filter.
    pub fn name_filter(&self, prefix: &str) -> Result<NameFilter> {
        Ok(NameFilter::new(
            self.pattern(&format!("{prefix}_INCLUDE"))?,
            self.pattern(&format!("{prefix}_EXCLUDE"))?,
        ))
    }

    fn pattern(&self, name: &str) -> Result<Option<Regex>> {
        self.optional(name)
            .map(|raw| {
                Regex::new(&format!("^(?:{raw})$")).map_err(|error| {
                    Error::Config(format!(
                        "{name}={raw:?} is not a valid regular expression: {error}"
                    ))
                })
            })
            .transpose()
    }
}

/// Which names (topics, consumer groups) are in scope: a name is when it matches `include` and
/// does not match `exclude`. Patterns are regular expressions matched against the whole name.
#[derive(Debug, Clone)]
pub struct NameFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl NameFilter {
    pub fn new(include: Option<Regex>, exclude: Option<Regex>) -> Self {
        NameFilter { include, exclude }
    }

    pub fn accepts(&self, name: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|include| include.is_match(name))
            && !self
                .exclude
                .as_ref()
                .is_some_and(|exclude| exclude.is_match(name))
    }
}

/// Configuration of the backup writer function. Every variable is listed in
/// `docs/configuration.md` and `example.env`.
#[derive(Debug, Clone)]
pub struct BackupWriterConfig {
    /// Where segments are written and indexed.
    pub store: StoreLocation,
    /// `TIDEMARK_BACKUP_ID`: names this backup lineage.
    pub backup_id: BackupId,
    /// `TIDEMARK_TOPICS_INCLUDE` / `TIDEMARK_TOPICS_EXCLUDE`.
    pub topics: NameFilter,
    /// `TIDEMARK_COMPRESSION_LEVEL`: zstd level 1-19 (default 3).
    pub compression_level: i32,
    /// `TIDEMARK_METRICS_NAMESPACE`: CloudWatch namespace of the EMF metrics (default `Tidemark`).
    pub metrics_namespace: String,
    /// `TIDEMARK_RETENTION_SHORT_TOPICS` / `TIDEMARK_RETENTION_LONG_TOPICS`.
    pub retention: RetentionTiers,
    /// `TIDEMARK_SEGMENT_ENCRYPTION_KEY`: the KMS key (id, ARN or alias) that seals segment
    /// bodies client-side with AES-256-GCM; unset stores them under S3's SSE only.
    pub segment_encryption_key: Option<String>,
    /// `TIDEMARK_KAFKA_BOOTSTRAP_SERVERS` or `TIDEMARK_MSK_CLUSTER_ARN`, with the other
    /// `TIDEMARK_KAFKA_*` settings: the cluster the writer asks for each batch's topic ids, so a
    /// recreated topic's records go to a generation of their own as they arrive. Unset, the
    /// writer follows the generations the offset snapshotter records.
    pub topic_ids_from: Option<crate::kafka::KafkaSettings>,
    /// `TIDEMARK_MASKING_RULES`: a masked backup's rules (JSON, `docs/privacy.md#masked-backups`);
    /// every record is masked before it is framed.
    pub masking: Option<crate::masking::MaskingConfig>,
    /// `TIDEMARK_MASKING_HASH_SECRET_ARN`: the Secrets Manager secret whose value keys the
    /// masking's HMAC (at least 32 bytes); `hash` rules need it.
    pub masking_hash_secret_arn: Option<String>,
    /// `TIDEMARK_SHREDDING_KMS_KEY_ID`: turns crypto-shredding on (`docs/privacy.md#crypto-shredding`):
    /// each keyed record is sealed under its key's own data key, and the backup's root data
    /// key is created under this KMS key. Once on, leave it on: erasure relies on it.
    pub shredding_kms_key: Option<String>,
    /// `TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS` (see [`shredding_commit_lease`]).
    pub shredding_commit_lease: std::time::Duration,
}

/// `TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS` (default 90): how long after reading a data key a
/// writer may commit records sealed under it. Writers and the eraser must have the same value:
/// an erasure waits four thirds of it after retiring a key's versions.
pub fn shredding_commit_lease<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<std::time::Duration> {
    let seconds: u64 = env.parsed(
        "TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS",
        crate::shredding::DEFAULT_COMMIT_LEASE.as_secs(),
        "a whole number of seconds from 3 to 600",
    )?;
    if !(3..=600).contains(&seconds) {
        return Err(Error::Config(format!(
            "TIDEMARK_SHREDDING_COMMIT_LEASE_SECONDS={seconds} is not valid: expected a whole \
             number of seconds from 3 to 600"
        )));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// The retention tier a segment is tagged with (`tidemark-retention`); the bucket's lifecycle
/// rules expire each tier after its own number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionTier {
    Short,
    Standard,
    Long,
}

impl RetentionTier {
    /// The object tag that carries the tier.
    pub const TAG: &'static str = "tidemark-retention";

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionTier::Short => "short",
            RetentionTier::Standard => "standard",
            RetentionTier::Long => "long",
        }
    }
}

/// Which topics are in the short and long tiers (whole-name regular expressions); the rest are
/// standard.
#[derive(Debug, Clone, Default)]
pub struct RetentionTiers {
    short: Option<Regex>,
    long: Option<Regex>,
}

impl RetentionTiers {
    /// `TIDEMARK_RETENTION_SHORT_TOPICS` and `TIDEMARK_RETENTION_LONG_TOPICS`.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        Ok(RetentionTiers {
            short: env.pattern("TIDEMARK_RETENTION_SHORT_TOPICS")?,
            long: env.pattern("TIDEMARK_RETENTION_LONG_TOPICS")?,
        })
    }

    pub fn tier(&self, topic: &str) -> RetentionTier {
        let matches = |pattern: &Option<Regex>| pattern.as_ref().is_some_and(|p| p.is_match(topic));
        // A topic in both keeps the longer retention: expiring late costs storage, expiring
        // early loses backups.
        if matches(&self.long) {
            RetentionTier::Long
        } else if matches(&self.short) {
            RetentionTier::Short
        } else {
            RetentionTier::Standard
        }
    }
}

impl BackupWriterConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        let compression_level =
            env.parsed("TIDEMARK_COMPRESSION_LEVEL", 3, "an integer from 1 to 19")?;
        if !(1..=19).contains(&compression_level) {
            return Err(Error::Config(format!(
                "TIDEMARK_COMPRESSION_LEVEL={compression_level} is not valid: expected an integer from 1 to 19"
            )));
        }
        let backup_id = BackupId::parse(&env.required("TIDEMARK_BACKUP_ID")?)
            .map_err(|error| Error::Config(format!("TIDEMARK_BACKUP_ID: {error}")))?;
        Ok(BackupWriterConfig {
            store: StoreLocation::from_env(env)?,
            backup_id,
            topics: env.name_filter("TIDEMARK_TOPICS")?,
            compression_level,
            metrics_namespace: env
                .optional("TIDEMARK_METRICS_NAMESPACE")
                .unwrap_or_else(|| "Tidemark".to_owned()),
            retention: RetentionTiers::from_env(env)?,
            segment_encryption_key: env.optional("TIDEMARK_SEGMENT_ENCRYPTION_KEY"),
            topic_ids_from: crate::kafka::KafkaSettings::from_env_if_set(env)?,
            masking: env
                .optional("TIDEMARK_MASKING_RULES")
                .map(|rules| crate::masking::Masking::parse_config(&rules))
                .transpose()?,
            masking_hash_secret_arn: env.optional("TIDEMARK_MASKING_HASH_SECRET_ARN"),
            shredding_kms_key: env.optional("TIDEMARK_SHREDDING_KMS_KEY_ID"),
            shredding_commit_lease: shredding_commit_lease(env)?,
        })
    }
}

/// Where a backup's objects and index are, and how to reach S3: every function finds its
/// stores the same way (`docs/configuration.md`).
#[derive(Debug, Clone)]
pub struct StoreLocation {
    /// `TIDEMARK_BUCKET`: the bucket holding the backups.
    pub bucket: String,
    /// `TIDEMARK_TABLE`: the index, checkpoint and snapshot catalog table.
    pub table: String,
    /// `TIDEMARK_PREFIX`: key prefix inside the bucket (default: none).
    pub layout: StorageLayout,
    pub s3: S3Settings,
}

impl StoreLocation {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        Ok(StoreLocation {
            bucket: env.required("TIDEMARK_BUCKET")?,
            table: env.required("TIDEMARK_TABLE")?,
            layout: StorageLayout::new(&env.optional("TIDEMARK_PREFIX").unwrap_or_default())
                .map_err(|error| Error::Config(format!("TIDEMARK_PREFIX: {error}")))?,
            s3: S3Settings::from_env(env)?,
        })
    }
}

/// S3 client settings that differ between S3 and S3-compatible stores.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `TIDEMARK_S3_FORCE_PATH_STYLE`: address buckets as `endpoint/bucket` instead of
    /// `bucket.endpoint` (needed by most S3-compatible stores; default false).
    pub force_path_style: bool,
}

impl S3Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        Ok(S3Settings {
            force_path_style: env.parsed("TIDEMARK_S3_FORCE_PATH_STYLE", false, "true or false")?,
        })
    }

    pub fn apply(&self, builder: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
        builder.force_path_style(self.force_path_style)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(move |name| map.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("TIDEMARK_BUCKET", "b"),
        ("TIDEMARK_TABLE", "t"),
        ("TIDEMARK_BACKUP_ID", "prod"),
    ];

    #[test]
    fn defaults_apply_when_only_required_values_are_set() {
        let config = BackupWriterConfig::from_env(&env(&BASE)).unwrap();
        assert_eq!(config.compression_level, 3);
        assert_eq!(config.metrics_namespace, "Tidemark");
        assert!(config.topics.accepts("anything"));
    }

    #[test]
    fn each_bad_value_is_named_in_the_error() {
        let cases: [(&str, &str, &str); 6] = [
            (
                "TIDEMARK_COMPRESSION_LEVEL",
                "fast",
                "TIDEMARK_COMPRESSION_LEVEL=\"fast\"",
            ),
            (
                "TIDEMARK_COMPRESSION_LEVEL",
                "40",
                "TIDEMARK_COMPRESSION_LEVEL=40",
            ),
            ("TIDEMARK_TOPICS_INCLUDE", "(", "TIDEMARK_TOPICS_INCLUDE"),
            ("TIDEMARK_BACKUP_ID", "no spaces", "TIDEMARK_BACKUP_ID"),
            ("TIDEMARK_PREFIX", "a//b", "TIDEMARK_PREFIX"),
            (
                "TIDEMARK_RETENTION_SHORT_TOPICS",
                "[",
                "TIDEMARK_RETENTION_SHORT_TOPICS",
            ),
        ];
        for (name, value, expected) in cases {
            let mut pairs = BASE.to_vec();
            pairs.retain(|(k, _)| *k != name);
            pairs.push((name, value));
            let error = BackupWriterConfig::from_env(&env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{name}={value}: {error}");
        }
        let error = BackupWriterConfig::from_env(&env(&BASE[..2]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("TIDEMARK_BACKUP_ID is required"), "{error}");
    }

    #[test]
    fn the_store_location_reads_its_four_variables_and_names_a_missing_one() {
        let location = StoreLocation::from_env(&env(&[
            BASE[0],
            BASE[1],
            ("TIDEMARK_PREFIX", "tidemark"),
            ("TIDEMARK_S3_FORCE_PATH_STYLE", "true"),
        ]))
        .unwrap();
        assert_eq!(
            (location.bucket.as_str(), location.table.as_str()),
            ("b", "t")
        );
        assert_eq!(location.layout, StorageLayout::new("tidemark").unwrap());
        assert!(location.s3.force_path_style);
        for missing in ["TIDEMARK_BUCKET", "TIDEMARK_TABLE"] {
            let pairs: Vec<_> = BASE
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let error = StoreLocation::from_env(&env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("{missing} is required")), "{error}");
        }
    }

    #[test]
    fn topic_patterns_match_whole_names() {
        let config = BackupWriterConfig::from_env(&env(&[
            BASE[0],
            BASE[1],
            BASE[2],
            ("TIDEMARK_TOPICS_INCLUDE", "payments\\..*|orders"),
            ("TIDEMARK_TOPICS_EXCLUDE", ".*\\.dlq"),
        ]))
        .unwrap();
        assert!(config.topics.accepts("payments.captured"));
        assert!(config.topics.accepts("orders"));
        assert!(
            !config.topics.accepts("orders-v2"),
            "include must match the whole name"
        );
        assert!(!config.topics.accepts("payments.captured.dlq"));
        assert!(!config.topics.accepts("audit"));
    }

    #[test]
    fn retention_tiers_match_whole_names_and_the_longer_tier_wins() {
        let config = BackupWriterConfig::from_env(&env(&[
            BASE[0],
            BASE[1],
            BASE[2],
            ("TIDEMARK_RETENTION_SHORT_TOPICS", "payments\\..*"),
            ("TIDEMARK_RETENTION_LONG_TOPICS", "payments\\.ledger"),
        ]))
        .unwrap();
        let tier = |topic| config.retention.tier(topic);
        assert_eq!(tier("payments.captured"), RetentionTier::Short);
        assert_eq!(tier("payments.ledger"), RetentionTier::Long);
        assert_eq!(tier("payments.ledger.v2"), RetentionTier::Short);
        assert_eq!(tier("orders"), RetentionTier::Standard);
        let unset = BackupWriterConfig::from_env(&env(&BASE)).unwrap();
        assert_eq!(
            unset.retention.tier("payments.ledger"),
            RetentionTier::Standard
        );
    }
}
