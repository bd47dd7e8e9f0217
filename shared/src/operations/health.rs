//! A backup's health record: one item, three aspects, each set by the part that knows it.
//! The snapshotter reports freshness (how far the backup is behind its topics, which
//! partitions stalled), the validation run what it proved, the drill how the last recovery
//! went. `tidemark status` and `tidemark backups describe` read it and judge it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the snapshotter saw when it last compared checkpoints with the topics' ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    pub checked_at_ms: i64,
    pub snapshot_key: String,
    /// Partitions with a checkpoint that were compared.
    pub partitions: usize,
    /// Records in the topics past the backup's checkpoints.
    pub records_behind: i64,
    /// The oldest checkpoint of a partition with records waiting: records written since then
    /// may not be backed up (the recovery point if the cluster were lost now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind_since_ms: Option<i64>,
    pub stalled_count: usize,
    /// The first stalled partitions (`topic:partition`).
    pub stalled: Vec<String>,
}

/// What the last validation run proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationHealth {
    pub run_id: String,
    pub finished_at_ms: i64,
    pub depth: String,
    pub partitions: usize,
    pub errors: usize,
    pub warnings: usize,
    pub cause: String,
    pub report_key: String,
    /// Per partition without errors: every offset below this one was validated.
    pub validated_through: BTreeMap<String, i64>,
}

/// How the last recovery drill went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillHealth {
    pub drill_id: String,
    pub finished_at_ms: i64,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_target_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_target_ms: Option<i64>,
    pub cause: String,
    pub report_key: String,
}

/// One aspect of the record, as its writer sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthAspect {
    Freshness(Freshness),
    Validation(ValidationHealth),
    Drill(DrillHealth),
}

impl HealthAspect {
    /// The attribute the aspect is kept under.
    pub fn name(&self) -> &'static str {
        match self {
            HealthAspect::Freshness(_) => "freshness",
            HealthAspect::Validation(_) => "validation",
            HealthAspect::Drill(_) => "drill",
        }
    }

    /// When the aspect was observed: a record is only replaced by a later one.
    pub fn at_ms(&self) -> i64 {
        match self {
            HealthAspect::Freshness(freshness) => freshness.checked_at_ms,
            HealthAspect::Validation(validation) => validation.finished_at_ms,
            HealthAspect::Drill(drill) => drill.finished_at_ms,
        }
    }

    pub fn to_json(&self) -> String {
        match self {
            HealthAspect::Freshness(value) => serde_json::to_string(value),
            HealthAspect::Validation(value) => serde_json::to_string(value),
            HealthAspect::Drill(value) => serde_json::to_string(value),
        }
        .expect("health aspects serialise")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHealth {
    pub freshness: Option<Freshness>,
    pub validation: Option<ValidationHealth>,
    pub drill: Option<DrillHealth>,
}

impl BackupHealth {
    /// Sets `aspect` unless the record holds a later one.
    pub fn apply(&mut self, aspect: HealthAspect) {
        fn newer<T>(slot: &mut Option<T>, value: T, at: impl Fn(&T) -> i64) {
            if slot.as_ref().is_none_or(|old| at(old) <= at(&value)) {
                *slot = Some(value);
            }
        }
        match aspect {
            HealthAspect::Freshness(value) => {
                newer(&mut self.freshness, value, |f| f.checked_at_ms)
            }
            HealthAspect::Validation(value) => {
                newer(&mut self.validation, value, |v| v.finished_at_ms)
            }
            HealthAspect::Drill(value) => newer(&mut self.drill, value, |d| d.finished_at_ms),
        }
    }

    /// Reads an aspect stored as JSON under `name`; unknown names are ignored.
    pub fn set_from_json(&mut self, name: &str, json: &str) -> serde_json::Result<()> {
        match name {
            "freshness" => self.freshness = Some(serde_json::from_str(json)?),
            "validation" => self.validation = Some(serde_json::from_str(json)?),
            "drill" => self.drill = Some(serde_json::from_str(json)?),
            _ => {}
        }
        Ok(())
    }
}

/// When a backup counts as unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Freshness older than this means the snapshotter stopped reporting.
    pub freshness_max_age_ms: i64,
    /// Records waiting longer than this (the recovery point now) is red.
    pub rpo_max_ms: i64,
    /// A validation older than this is amber.
    pub validation_max_age_ms: i64,
    /// A drill older than this (or none) is red; `None`: drills are not required.
    pub drill_interval_ms: Option<i64>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        const MINUTE: i64 = 60_000;
        HealthPolicy {
            freshness_max_age_ms: 15 * MINUTE,
            rpo_max_ms: 15 * MINUTE,
            validation_max_age_ms: 8 * 24 * 60 * MINUTE,
            drill_interval_ms: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Green,
    Amber,
    Red,
}

/// The judgement on one backup: its worst level and every reason below green.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub level: Level,
    /// The recovery point if the cluster were lost now (ms), when freshness is known.
    pub rpo_now_ms: Option<i64>,
    pub reasons: Vec<String>,
}

fn ago(now_ms: i64, at_ms: i64) -> String {
    let seconds = (now_ms - at_ms).max(0) / 1000;
    match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7_200 => format!("{} min ago", seconds / 60),
        7_200..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

pub fn assess(health: &BackupHealth, now_ms: i64, policy: &HealthPolicy) -> Assessment {
    let mut level = Level::Green;
    let mut reasons = Vec::new();
    let mut flag = |at: Level, reason: String| {
        level = level.max(at);
        reasons.push(reason);
    };
    let mut rpo_now_ms = None;
    match &health.freshness {
        None => flag(
            Level::Amber,
            "no freshness report yet (the snapshotter reports it when its stall check is on)"
                .into(),
        ),
        Some(freshness) => {
            let rpo = freshness
                .behind_since_ms
                .map_or(0, |since| (now_ms - since).max(0));
            rpo_now_ms = Some(rpo);
            if now_ms - freshness.checked_at_ms > policy.freshness_max_age_ms {
                flag(
                    Level::Red,
                    format!(
                        "stale: the snapshotter last compared the backup with its topics {}",
                        ago(now_ms, freshness.checked_at_ms)
                    ),
                );
            }
            if freshness.stalled_count > 0 {
                flag(
                    Level::Red,
                    format!(
                        "{} partitions stalled: {}",
                        freshness.stalled_count,
                        freshness.stalled.join(", ")
                    ),
                );
            }
            if rpo > policy.rpo_max_ms {
                flag(
                    Level::Red,
                    format!(
                        "{} records not backed up, the oldest partition behind since {}",
                        freshness.records_behind,
                        ago(now_ms, now_ms - rpo)
                    ),
                );
            }
        }
    }
    match &health.validation {
        None => flag(Level::Amber, "never validated".into()),
        Some(validation) if validation.errors > 0 => flag(
            Level::Red,
            format!(
                "last validation {} failed: {}",
                validation.run_id, validation.cause
            ),
        ),
        Some(validation) if now_ms - validation.finished_at_ms > policy.validation_max_age_ms => {
            flag(
                Level::Amber,
                format!(
                    "last validation {} finished {}",
                    validation.run_id,
                    ago(now_ms, validation.finished_at_ms)
                ),
            )
        }
        Some(_) => {}
    }
    let drill_required = policy.drill_interval_ms.is_some();
    let missing = if drill_required {
        Level::Red
    } else {
        Level::Amber
    };
    match &health.drill {
        None => flag(missing, "never drilled".into()),
        Some(drill) => {
            if !drill.passed {
                flag(
                    Level::Red,
                    format!("last drill {} failed: {}", drill.drill_id, drill.cause),
                );
            }
            if let (Some(rto), Some(target)) = (drill.rto_ms, drill.rto_target_ms)
                && rto > target
            {
                flag(
                    Level::Red,
                    format!(
                        "last drill {} took {} s to verify, over its RTO target of {} s",
                        drill.drill_id,
                        rto / 1000,
                        target / 1000
                    ),
                );
            }
            if let Some(interval) = policy.drill_interval_ms
                && now_ms - drill.finished_at_ms > interval
            {
                flag(
                    Level::Red,
                    format!(
                        "overdue: the last drill {} ran {}",
                        drill.drill_id,
                        ago(now_ms, drill.finished_at_ms)
                    ),
                );
            }
        }
    }
    Assessment {
        level,
        rpo_now_ms,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100 * 86_400_000;

    fn healthy() -> BackupHealth {
        BackupHealth {
            freshness: Some(Freshness {
                checked_at_ms: NOW - 60_000,
                snapshot_key: "s".into(),
                partitions: 4,
                records_behind: 10,
                behind_since_ms: Some(NOW - 5_000),
                stalled_count: 0,
                stalled: vec![],
            }),
            validation: Some(ValidationHealth {
                run_id: "v1".into(),
                finished_at_ms: NOW - 3_600_000,
                depth: "deep".into(),
                partitions: 4,
                errors: 0,
                warnings: 0,
                cause: "no errors".into(),
                report_key: "r".into(),
                validated_through: BTreeMap::new(),
            }),
            drill: Some(DrillHealth {
                drill_id: "d1".into(),
                finished_at_ms: NOW - 86_400_000,
                passed: true,
                tier: Some("gold".into()),
                rto_ms: Some(60_000),
                rto_target_ms: Some(900_000),
                rpo_ms: Some(1_000),
                rpo_target_ms: Some(300_000),
                cause: "verified".into(),
                report_key: "d".into(),
            }),
        }
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            drill_interval_ms: Some(7 * 86_400_000),
            ..HealthPolicy::default()
        }
    }

    #[test]
    fn a_fresh_validated_drilled_backup_is_green_with_its_recovery_point() {
        let assessment = assess(&healthy(), NOW, &policy());
        assert_eq!(assessment.level, Level::Green, "{:?}", assessment.reasons);
        assert_eq!(assessment.rpo_now_ms, Some(5_000));
    }

    #[test]
    fn each_kind_of_trouble_turns_it_red_and_says_why() {
        type Breakage = Box<dyn Fn(&mut BackupHealth)>;
        let cases: Vec<(&str, Breakage)> = vec![
            (
                "stalled",
                Box::new(|h| {
                    let f = h.freshness.as_mut().unwrap();
                    f.stalled_count = 1;
                    f.stalled = vec!["payments:3".into()];
                }),
            ),
            (
                "stale",
                Box::new(|h| h.freshness.as_mut().unwrap().checked_at_ms = NOW - 3_600_000),
            ),
            (
                "not backed up",
                Box::new(|h| h.freshness.as_mut().unwrap().behind_since_ms = Some(NOW - 3_600_000)),
            ),
            (
                "validation v1 failed",
                Box::new(|h| h.validation.as_mut().unwrap().errors = 2),
            ),
            (
                "drill d1 failed",
                Box::new(|h| h.drill.as_mut().unwrap().passed = false),
            ),
            (
                "over its RTO target",
                Box::new(|h| h.drill.as_mut().unwrap().rto_ms = Some(901_000)),
            ),
            (
                "overdue",
                Box::new(|h| h.drill.as_mut().unwrap().finished_at_ms = NOW - 8 * 86_400_000),
            ),
            ("never drilled", Box::new(|h| h.drill = None)),
        ];
        for (reason, break_it) in cases {
            let mut health = healthy();
            break_it(&mut health);
            let assessment = assess(&health, NOW, &policy());
            assert_eq!(assessment.level, Level::Red, "{reason}");
            assert!(
                assessment.reasons.iter().any(|r| r.contains(reason)),
                "{reason} not in {:?}",
                assessment.reasons
            );
        }
    }

    #[test]
    fn without_a_required_interval_a_missing_drill_or_validation_is_amber() {
        let mut health = healthy();
        health.drill = None;
        health.validation = None;
        let assessment = assess(&health, NOW, &HealthPolicy::default());
        assert_eq!(assessment.level, Level::Amber);
        assert_eq!(assessment.reasons, vec!["never validated", "never drilled"]);
    }

    #[test]
    fn an_older_aspect_never_replaces_a_newer_one() {
        let mut health = healthy();
        let mut late = health.drill.clone().unwrap();
        late.finished_at_ms -= 1;
        late.passed = false;
        health.apply(HealthAspect::Drill(late));
        assert!(health.drill.as_ref().unwrap().passed);
    }
}
