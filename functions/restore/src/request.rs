//! The restore request: what the operator asks for, checked field by field before anything is
//! read or written. Errors name the field and what is wrong with it.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use tidemark_core::kafka::KafkaSettings;
use tidemark_core::layout::{BackupId, validate_topic_name};
pub use tidemark_core::request::{TargetSpec, TimeValue};

use crate::error::{RestoreError, Result};

/// The state machine's input, as documented in `docs/restore.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub backup_id: String,
    pub target: TargetSpec,
    pub topics: TopicSelection,
    pub cut: CutRequest,
    /// Only records from this moment on (time cut), or from the first record at or after it
    /// on (consistent cut).
    #[serde(default)]
    pub start_time: Option<TimeValue>,
    /// Consumer groups to put where they stood at the cut, on the restored topics.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub topic_creation: TopicCreation,
    /// Replication factor of created topics; -1 (default) takes the broker's default.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// On failure, delete the topics this restore created (default: keep them to inspect).
    #[serde(default)]
    pub rollback_deletes_created_topics: bool,
    /// Plan and report only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// `false`: the plan records where the groups stood at the cut, and nothing moves them
    /// (a recovery drill checks where they would land while the real groups keep running).
    #[serde(default = "yes")]
    pub move_groups: bool,
    /// Who asked, for the audit trail (the tidemark CLI fills in its STS identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_replication_factor() -> i32 {
    -1
}

/// Which backed-up topics to restore, and under which names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSelection {
    /// Regular expressions matched against whole topic names.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Restored topics are named `{target_prefix}{source name}` (with `include`).
    #[serde(default)]
    pub target_prefix: String,
    /// Source topic → target topic, instead of `include`.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    /// Source topic → the generation to restore (a topic deleted and recreated under its name
    /// is a new generation), instead of the one alive at the cut.
    #[serde(default)]
    pub generations: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutMode {
    /// Every backed-up record with timestamp <= `at`.
    Time,
    /// Per partition, every record up to the offset the backup had reached at `at`.
    Consistent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutRequest {
    pub mode: CutMode,
    pub at: TimeValue,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicCreation {
    /// Every target topic must exist already.
    #[default]
    Require,
    /// Missing target topics are created with the backed-up partition count and configs.
    Create,
}

/// The cut, resolved to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub mode: CutMode,
    pub at_ms: i64,
}

/// How source topic names become target names.
#[derive(Debug, Clone)]
pub enum TopicNaming {
    Patterns {
        include: Vec<Regex>,
        exclude: Vec<Regex>,
        target_prefix: String,
    },
    Mapping(BTreeMap<String, String>),
}

impl TopicNaming {
    /// The target name of a backed-up topic, or `None` when it is not selected.
    pub fn target_of(&self, source: &str) -> Option<String> {
        match self {
            TopicNaming::Patterns {
                include,
                exclude,
                target_prefix,
            } => (include.iter().any(|re| re.is_match(source))
                && !exclude.iter().any(|re| re.is_match(source)))
            .then(|| format!("{target_prefix}{source}")),
            TopicNaming::Mapping(mapping) => mapping.get(source).cloned(),
        }
    }
}

/// A request that passed every check that needs no I/O.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub backup_id: BackupId,
    pub target: KafkaSettings,
    pub naming: TopicNaming,
    /// Generations named in the request; other topics restore the one alive at the cut.
    pub generations: BTreeMap<String, u32>,
    pub cut: Cut,
    pub start_ms: Option<i64>,
    pub groups: Vec<String>,
    pub topic_creation: TopicCreation,
    pub replication_factor: i32,
    pub rollback_deletes_created_topics: bool,
    pub dry_run: bool,
    pub move_groups: bool,
}

impl RestoreRequest {
    /// Parses the state machine input; a field that does not belong or has the wrong type is
    /// named.
    pub fn from_json(input: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(input.clone())
            .map_err(|error| RestoreError::InvalidRequest(error.to_string()))
    }

    pub fn validate(&self) -> Result<ValidRequest> {
        let invalid = |message: String| RestoreError::InvalidRequest(message);
        let backup_id = BackupId::parse(&self.backup_id)
            .map_err(|error| invalid(format!("backup_id: {error}")))?;
        let target = self.target.settings().map_err(invalid)?;
        let naming = self.topics.naming()?;
        let cut = Cut {
            mode: self.cut.mode,
            at_ms: self.cut.at.to_millis("cut.at").map_err(invalid)?,
        };
        let start_ms = self
            .start_time
            .as_ref()
            .map(|start| start.to_millis("start_time"))
            .transpose()
            .map_err(invalid)?;
        if let Some(start_ms) = start_ms
            && start_ms > cut.at_ms
        {
            return Err(invalid(format!(
                "start_time ({start_ms}) is after cut.at ({})",
                cut.at_ms
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for group in &self.groups {
            if group.is_empty() || group.len() > 255 {
                return Err(invalid(format!(
                    "groups: {group:?} is not a valid consumer group id (1-255 characters)"
                )));
            }
            if !seen.insert(group) {
                return Err(invalid(format!("groups: {group:?} is listed twice")));
            }
        }
        if self.replication_factor == 0 || self.replication_factor < -1 {
            return Err(invalid(format!(
                "replication_factor: {} must be -1 (broker default) or at least 1",
                self.replication_factor
            )));
        }
        Ok(ValidRequest {
            backup_id,
            target,
            naming,
            generations: self.topics.generations.clone(),
            cut,
            start_ms,
            groups: self.groups.clone(),
            topic_creation: self.topic_creation,
            replication_factor: self.replication_factor,
            rollback_deletes_created_topics: self.rollback_deletes_created_topics,
            move_groups: self.move_groups,
            dry_run: self.dry_run,
        })
    }
}

impl TopicSelection {
    fn naming(&self) -> Result<TopicNaming> {
        let invalid = |message: String| RestoreError::InvalidRequest(message);
        match (self.include.is_empty(), self.mapping.is_empty()) {
            (false, false) => Err(invalid(
                "topics: give either include (patterns) or mapping (source -> target), not both"
                    .into(),
            )),
            (true, true) => Err(invalid(
                "topics: give include (patterns) or mapping (source -> target)".into(),
            )),
            (false, true) => {
                let compile = |field: &str, patterns: &[String]| -> Result<Vec<Regex>> {
                    patterns
                        .iter()
                        .map(|pattern| {
                            Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
                                invalid(format!("topics.{field}: {pattern:?} is not a valid regular expression: {error}"))
                            })
                        })
                        .collect()
                };
                if !self.target_prefix.is_empty() {
                    validate_topic_name(&format!("{}x", self.target_prefix)).map_err(|_| {
                        invalid(format!(
                            "topics.target_prefix: {:?} may only hold letters, digits, '.', '_' and '-'",
                            self.target_prefix
                        ))
                    })?;
                }
                Ok(TopicNaming::Patterns {
                    include: compile("include", &self.include)?,
                    exclude: compile("exclude", &self.exclude)?,
                    target_prefix: self.target_prefix.clone(),
                })
            }
            (true, false) => {
                if !self.exclude.is_empty() || !self.target_prefix.is_empty() {
                    return Err(invalid(
                        "topics: exclude and target_prefix go with include, not with mapping"
                            .into(),
                    ));
                }
                let mut targets = std::collections::BTreeSet::new();
                for (source, target) in &self.mapping {
                    validate_topic_name(target)
                        .map_err(|error| invalid(format!("topics.mapping[{source:?}]: {error}")))?;
                    if !targets.insert(target) {
                        return Err(invalid(format!(
                            "topics.mapping: two source topics map to {target:?}"
                        )));
                    }
                }
                Ok(TopicNaming::Mapping(self.mapping.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(overrides: serde_json::Value) -> serde_json::Value {
        let mut base = json!({
            "backup_id": "prod",
            "target": {"bootstrap_servers": "127.0.0.1:9092", "auth": "plaintext"},
            "topics": {"mapping": {"payments": "payments.restored"}},
            "cut": {"mode": "time", "at": "2026-11-22T14:29:00Z"},
        });
        for (key, value) in overrides.as_object().unwrap() {
            base[key] = value.clone();
        }
        base
    }

    fn error_of(input: serde_json::Value) -> String {
        RestoreRequest::from_json(&input)
            .and_then(|request| request.validate())
            .expect_err("request must be refused")
            .to_string()
    }

    #[test]
    fn a_good_request_resolves_times_and_names() {
        let valid = RestoreRequest::from_json(&request(json!({"start_time": 1_000})))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(valid.cut.at_ms, 1_795_357_740_000);
        assert_eq!(valid.cut.mode, CutMode::Time);
        assert_eq!(valid.start_ms, Some(1_000));
        assert_eq!(
            valid.naming.target_of("payments").as_deref(),
            Some("payments.restored")
        );
        assert_eq!(valid.naming.target_of("orders"), None);
        assert_eq!(valid.topic_creation, TopicCreation::Require);
    }

    #[test]
    fn patterns_match_whole_names_and_prefix_targets() {
        let valid = RestoreRequest::from_json(&request(json!({"topics": {
            "include": ["payments\\..*"], "exclude": [".*\\.dlq"], "target_prefix": "restored."
        }})))
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            valid.naming.target_of("payments.captured").as_deref(),
            Some("restored.payments.captured")
        );
        assert_eq!(valid.naming.target_of("payments.captured.dlq"), None);
        assert_eq!(valid.naming.target_of("old.payments.captured"), None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"backup_id": "../etc"}), "backup_id"),
            (
                json!({"cut": {"mode": "time", "at": "yesterday"}}),
                "cut.at",
            ),
            (json!({"cut": {"mode": "sometime", "at": 5}}), "sometime"),
            (json!({"start_time": "2026-11-23T00:00:00Z"}), "start_time"),
            (json!({"topics": {}}), "topics"),
            (json!({"topics": {"include": ["("]}}), "topics.include"),
            (
                json!({"topics": {"mapping": {"a": "b c"}}}),
                "topics.mapping",
            ),
            (
                json!({"topics": {"mapping": {"a": "x", "b": "x"}}}),
                "two source topics",
            ),
            (json!({"groups": ["g", "g"]}), "groups"),
            (json!({"replication_factor": 0}), "replication_factor"),
            (
                json!({"target": {"auth": "plaintext"}}),
                "target.bootstrap_servers",
            ),
            (
                json!({"target": {"bootstrap_servers": "b:9092", "auth": "kerberos"}}),
                "target.auth",
            ),
            (
                json!({"target": {"bootstrap_servers": "b:9092", "auth": "sasl-scram-sha-512"}}),
                "target.sasl_scram_secret_arn",
            ),
            (json!({"dry_runn": true}), "dry_runn"),
        ];
        for (overrides, expected) in cases {
            let message = error_of(request(overrides.clone()));
            assert!(
                message.contains(expected),
                "{overrides}: {message:?} does not name {expected:?}"
            );
            assert!(
                !message.contains("TIDEMARK_"),
                "{message:?} names an env variable"
            );
        }
    }
}
