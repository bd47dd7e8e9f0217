//! The offset reset request: which groups, on which cluster, moved where. Checked field by
//! field before anything is read; errors name the field.

use std::collections::BTreeSet;

use regex::Regex;
use serde::{Deserialize, Serialize};
use tidemark_core::kafka::KafkaSettings;
use tidemark_core::layout::{BackupId, RestoreId, validate_topic_name};
use tidemark_core::request::{TargetSpec, TimeValue};

use crate::error::{ResetError, Result};

/// The state machine's input, as documented in `docs/offset-reset.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub target: TargetSpec,
    pub groups: GroupSelection,
    pub strategy: Strategy,
    /// Topics whose offsets move (every partition). Required by `timestamp`, `earliest` and
    /// `latest`; narrows `snapshot`; not used with `explicit`, whose offsets name their topics.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Plan and report only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Who asked, for the audit trail (the tidemark CLI fills in its STS identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSelection {
    #[serde(default)]
    pub names: Vec<String>,
    /// Regular expressions matched against whole group ids known to the cluster (and, for
    /// the `snapshot` strategy, to the snapshot).
    #[serde(default)]
    pub patterns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Strategy {
    /// Where each group stood in the backup's latest cluster snapshot at or before `at`,
    /// translated through a restore's offset mapping when `restore_id` is given.
    Snapshot {
        backup_id: String,
        at: TimeValue,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore_id: Option<String>,
    },
    /// The first offset whose record timestamp is at or after `at` (the log end if none).
    Timestamp { at: TimeValue },
    /// Exactly these offsets.
    Explicit { offsets: Vec<ExplicitOffset> },
    /// The log start of each partition.
    Earliest,
    /// The log end of each partition.
    Latest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The strategy with its times resolved and ids checked.
#[derive(Debug, Clone)]
pub enum ValidStrategy {
    Snapshot {
        backup_id: BackupId,
        at_ms: i64,
        restore_id: Option<RestoreId>,
    },
    Timestamp {
        at_ms: i64,
    },
    Explicit {
        offsets: Vec<ExplicitOffset>,
    },
    Earliest,
    Latest,
}

/// RFC 3339 in UTC, as operators write times in requests.
pub(crate) fn show_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

impl ValidStrategy {
    /// One line for plans and logs.
    pub fn describe(&self) -> String {
        match self {
            ValidStrategy::Snapshot {
                backup_id,
                at_ms,
                restore_id,
            } => match restore_id {
                Some(restore_id) => format!(
                    "snapshot of backup {backup_id} at or before {}, translated through restore {restore_id}",
                    show_time(*at_ms)
                ),
                None => format!(
                    "snapshot of backup {backup_id} at or before {}",
                    show_time(*at_ms)
                ),
            },
            ValidStrategy::Timestamp { at_ms } => {
                format!("first offset stamped at or after {}", show_time(*at_ms))
            }
            ValidStrategy::Explicit { offsets } => format!("{} explicit offsets", offsets.len()),
            ValidStrategy::Earliest => "earliest".into(),
            ValidStrategy::Latest => "latest".into(),
        }
    }
}

/// A request that passed every check that needs no I/O.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub target: KafkaSettings,
    pub names: Vec<String>,
    pub patterns: Vec<Regex>,
    pub strategy: ValidStrategy,
    pub topics: Vec<String>,
    pub dry_run: bool,
}

impl ResetRequest {
    pub fn from_json(input: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(input.clone())
            .map_err(|error| ResetError::InvalidRequest(error.to_string()))
    }

    pub fn validate(&self) -> Result<ValidRequest> {
        let invalid = ResetError::InvalidRequest;
        let target = self.target.settings().map_err(invalid)?;
        if self.groups.names.is_empty() && self.groups.patterns.is_empty() {
            return Err(invalid(
                "groups: give names, patterns or both; no group is selected".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for name in &self.groups.names {
            check_group_id("groups.names", name)?;
            if !seen.insert(name) {
                return Err(invalid(format!("groups.names: {name:?} is listed twice")));
            }
        }
        let patterns = self
            .groups
            .patterns
            .iter()
            .map(|pattern| {
                Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
                    invalid(format!(
                        "groups.patterns: {pattern:?} is not a valid regular expression: {error}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for topic in &self.topics {
            validate_topic_name(topic)
                .map_err(|_| invalid(format!("topics: {topic:?} is not a valid topic name")))?;
        }
        let strategy = match &self.strategy {
            Strategy::Snapshot {
                backup_id,
                at,
                restore_id,
            } => ValidStrategy::Snapshot {
                backup_id: BackupId::parse(backup_id)
                    .map_err(|error| invalid(format!("strategy.backup_id: {error}")))?,
                at_ms: at.to_millis("strategy.at").map_err(invalid)?,
                restore_id: restore_id
                    .as_deref()
                    .map(RestoreId::parse)
                    .transpose()
                    .map_err(|error| invalid(format!("strategy.restore_id: {error}")))?,
            },
            Strategy::Timestamp { at } => ValidStrategy::Timestamp {
                at_ms: at.to_millis("strategy.at").map_err(invalid)?,
            },
            Strategy::Explicit { offsets } => {
                if !self.topics.is_empty() {
                    return Err(invalid(
                        "topics: not used with the explicit strategy; its offsets name their topics"
                            .into(),
                    ));
                }
                if offsets.is_empty() {
                    return Err(invalid("strategy.offsets: empty; nothing to move".into()));
                }
                let mut seen = BTreeSet::new();
                for (index, offset) in offsets.iter().enumerate() {
                    let field = format!("strategy.offsets[{index}]");
                    check_group_id(&format!("{field}.group"), &offset.group)?;
                    validate_topic_name(&offset.topic).map_err(|_| {
                        invalid(format!(
                            "{field}.topic: {:?} is not a valid topic name",
                            offset.topic
                        ))
                    })?;
                    if offset.partition < 0 || offset.offset < 0 {
                        return Err(invalid(format!(
                            "{field}: partition ({}) and offset ({}) must not be negative",
                            offset.partition, offset.offset
                        )));
                    }
                    if !seen.insert((&offset.group, &offset.topic, offset.partition)) {
                        return Err(invalid(format!(
                            "{field}: {}/{} of group {:?} is given twice",
                            offset.topic, offset.partition, offset.group
                        )));
                    }
                }
                ValidStrategy::Explicit {
                    offsets: offsets.clone(),
                }
            }
            Strategy::Earliest => ValidStrategy::Earliest,
            Strategy::Latest => ValidStrategy::Latest,
        };
        let needs_topics = matches!(
            strategy,
            ValidStrategy::Timestamp { .. } | ValidStrategy::Earliest | ValidStrategy::Latest
        );
        if needs_topics && self.topics.is_empty() {
            return Err(invalid(format!(
                "topics: the {} strategy needs the topics whose offsets move",
                strategy.describe()
            )));
        }
        Ok(ValidRequest {
            target,
            names: self.groups.names.clone(),
            patterns,
            strategy,
            topics: self.topics.clone(),
            dry_run: self.dry_run,
        })
    }
}

fn check_group_id(field: &str, group: &str) -> Result<()> {
    if group.is_empty() || group.len() > 255 {
        return Err(ResetError::InvalidRequest(format!(
            "{field}: {group:?} is not a valid consumer group id (1-255 characters)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(overrides: serde_json::Value) -> serde_json::Value {
        let mut request = json!({
            "target": {"bootstrap_servers": "127.0.0.1:9092", "auth": "plaintext"},
            "groups": {"names": ["billing"]},
            "strategy": {"type": "latest"},
            "topics": ["payments"],
        });
        for (key, value) in overrides.as_object().unwrap() {
            request[key] = value.clone();
        }
        request
    }

    fn error_of(input: serde_json::Value) -> String {
        ResetRequest::from_json(&input)
            .and_then(|request| request.validate())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_strategy_parses_and_times_resolve() {
        let valid = |strategy: serde_json::Value, topics: serde_json::Value| {
            ResetRequest::from_json(&request(json!({"strategy": strategy, "topics": topics})))
                .unwrap()
                .validate()
                .unwrap()
                .strategy
        };
        assert!(matches!(
            valid(
                json!({"type": "timestamp", "at": "2026-11-22T14:29:00Z"}),
                json!(["t"])
            ),
            ValidStrategy::Timestamp {
                at_ms: 1_795_357_740_000
            }
        ));
        assert!(matches!(
            valid(
                json!({"type": "snapshot", "backup_id": "prod", "at": 5, "restore_id": "r1"}),
                json!([])
            ),
            ValidStrategy::Snapshot {
                at_ms: 5,
                restore_id: Some(_),
                ..
            }
        ));
        assert!(matches!(
            valid(json!({"type": "earliest"}), json!(["t"])),
            ValidStrategy::Earliest
        ));
        let explicit = json!({"type": "explicit", "offsets": [
            {"group": "billing", "topic": "payments", "partition": 0, "offset": 7}]});
        assert!(matches!(
            valid(explicit, json!([])),
            ValidStrategy::Explicit { .. }
        ));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                json!({"groups": {}}),
                "groups: give names, patterns or both",
            ),
            (
                json!({"groups": {"names": ["a", "a"]}}),
                "groups.names: \"a\" is listed twice",
            ),
            (
                json!({"groups": {"patterns": ["("]}}),
                "groups.patterns: \"(\" is not a valid regular expression",
            ),
            (
                json!({"topics": []}),
                "topics: the latest strategy needs the topics",
            ),
            (
                json!({"topics": ["bad topic"]}),
                "topics: \"bad topic\" is not a valid topic name",
            ),
            (
                json!({"strategy": {"type": "timestamp", "at": "yesterday"}}),
                "strategy.at: \"yesterday\" is not an RFC 3339 time",
            ),
            (
                json!({"strategy": {"type": "snapshot", "backup_id": "../x", "at": 1}}),
                "strategy.backup_id",
            ),
            (
                json!({"strategy": {"type": "rewind"}}),
                "unknown variant `rewind`",
            ),
            (
                json!({"strategy": {"type": "explicit", "offsets": []}, "topics": []}),
                "strategy.offsets: empty",
            ),
            (
                json!({"strategy": {"type": "explicit", "offsets": [
                {"group": "g", "topic": "t", "partition": 0, "offset": -3}]}, "topics": []}),
                "strategy.offsets[0]: partition (0) and offset (-3) must not be negative",
            ),
            (
                json!({"strategy": {"type": "explicit", "offsets": [
                {"group": "g", "topic": "t", "partition": 0, "offset": 1}]}}),
                "topics: not used with the explicit strategy",
            ),
            (
                json!({"target": {"auth": "plaintext"}}),
                "target.bootstrap_servers",
            ),
            (json!({"dry_run": "yes"}), "invalid type"),
            (json!({"extra": 1}), "unknown field `extra`"),
        ];
        for (overrides, expected) in cases {
            let error = error_of(request(overrides.clone()));
            assert!(
                error.contains(expected),
                "{overrides}: {error:?} does not contain {expected:?}"
            );
            assert!(
                !error.contains("TIDEMARK_"),
                "{error} names an env variable"
            );
        }
    }
}
