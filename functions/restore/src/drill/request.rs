//! What a drill is asked for, and what its Prepare step writes down.

use serde::{Deserialize, Serialize};
pub use tidemark_core::request::TargetSpec;

use crate::request::{CutMode, CutRequest};

/// What an operator or a schedule starts a drill with (`docs/operations.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    pub backup_id: String,
    /// The cluster to restore into; the drill function's own cluster (the source) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    pub topics: DrillTopics,
    /// The moment to restore; the drill's start (everything the backup holds) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<CutRequest>,
    /// Groups whose positions at the cut are checked on the restored topics (never moved).
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Scratch topics are named `{scratch_prefix}{drill id}.{source topic}`.
    #[serde(default = "default_scratch_prefix")]
    pub scratch_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

fn default_scratch_prefix() -> String {
    "tidemark-drill.".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillTopics {
    /// Regular expressions matched against whole topic names.
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A recovery tier and its targets: how long recovery may take, how much may be lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_target_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_target_seconds: Option<u64>,
}

/// The drill as prepared: written once to `drills/{id}/drill.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillPlan {
    pub drill_id: String,
    pub backup_id: String,
    pub started_at_ms: i64,
    pub cut_mode: CutMode,
    pub cut_at_ms: i64,
    pub scratch_prefix: String,
    pub target: TargetSpec,
    pub topics: DrillTopics,
    pub groups: Vec<String>,
    pub tier: Option<Tier>,
    pub requested_by: Option<String>,
    pub execution: Option<String>,
    /// The restore state machine's input.
    pub restore_input: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    pub restore_input: serde_json::Value,
    pub bucket: String,
    /// The restore's partition list: the verification's Map items.
    pub partitions_key: String,
}
