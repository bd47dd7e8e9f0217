//! Cluster snapshots: consumer group offsets and topology at one moment, so a restore can put
//! consumers back where they stood at T. Stored as zstd-compressed JSON in S3 and indexed by
//! time in the catalog; the format is specified in `docs/snapshots.md`.

mod catalog;
pub mod generations;

use serde::{Deserialize, Serialize};

pub use catalog::{SnapshotCatalog, SnapshotEntry, TopicGeneration};

use crate::error::{Error, Result};
use crate::kafka::{CommittedOffset, GroupDescription, TopicConfigs};

pub const SNAPSHOT_FORMAT: &str = "tidemark.cluster-snapshot";
pub const SNAPSHOT_VERSION: u32 = 1;

/// One sample of a cluster's consumer state and topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub format: String,
    pub version: u32,
    pub backup_id: String,
    pub bootstrap_servers: String,
    /// When reading began.
    pub started_at_ms: i64,
    /// When the last read finished. Every offset here was committed at or before this moment,
    /// so using the latest snapshot taken at or before T never positions a group later than it
    /// stood at T (invariant 7). The catalog indexes snapshots by this time.
    pub taken_at_ms: i64,
    /// Backed-up topics, by name.
    pub topics: Vec<TopicSnapshot>,
    /// Groups that match the group filter, by id.
    pub groups: Vec<GroupSnapshot>,
    /// Topic recreations first detected by this snapshot.
    pub recreations: Vec<TopicGeneration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSnapshot {
    pub name: String,
    /// 0 for the topic the backup first saw; +1 at each detected delete-and-recreate.
    pub generation: u32,
    /// The topic's id (Metadata v10+); a different id under the same name is a new topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    pub partition_count: i32,
    /// Non-default configs (`None`: sensitive, hidden by the broker).
    pub configs: TopicConfigs,
    pub partitions: Vec<PartitionSnapshot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    pub partition: i32,
    pub low_watermark: i64,
    pub high_watermark: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    #[serde(flatten)]
    pub group: GroupDescription,
    /// Committed offsets on backed-up topics, by topic then partition.
    pub offsets: Vec<CommittedOffset>,
    /// Set when the offsets could not be read; such a group is unknown in this snapshot, not
    /// a group without commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ClusterSnapshot {
    pub fn topic(&self, name: &str) -> Option<&TopicSnapshot> {
        self.topics.iter().find(|topic| topic.name == name)
    }

    pub fn group(&self, group_id: &str) -> Option<&GroupSnapshot> {
        self.groups
            .iter()
            .find(|group| group.group.group_id == group_id)
    }

    pub fn encode(&self, level: i32) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|error| {
            Error::InvalidRecords(format!("snapshot does not serialise: {error}"))
        })?;
        Ok(zstd::bulk::compress(&json, level)?)
    }

    /// Reads a stored snapshot; `key` names it in errors.
    pub fn decode(bytes: &[u8], key: &str) -> Result<Self> {
        let json = zstd::stream::decode_all(bytes)
            .map_err(|error| Error::CorruptSnapshot(format!("{key}: not a zstd frame: {error}")))?;
        let snapshot: ClusterSnapshot = serde_json::from_slice(&json)
            .map_err(|error| Error::CorruptSnapshot(format!("{key}: {error}")))?;
        if snapshot.format != SNAPSHOT_FORMAT || snapshot.version != SNAPSHOT_VERSION {
            return Err(Error::CorruptSnapshot(format!(
                "{key}: format {:?} version {} is not {SNAPSHOT_FORMAT:?} version {SNAPSHOT_VERSION}",
                snapshot.format, snapshot.version
            )));
        }
        Ok(snapshot)
    }
}

/// The latest snapshot taken at or before `at_ms` and its key, read and decoded. A catalog
/// entry whose object is gone is an error, not "no snapshot".
pub async fn load_at_or_before(
    catalog: &dyn SnapshotCatalog,
    objects: &dyn crate::object_store::ObjectStore,
    backup_id: &crate::layout::BackupId,
    at_ms: i64,
) -> Result<Option<(ClusterSnapshot, String)>> {
    let Some(entry) = catalog.snapshot_at_or_before(backup_id, at_ms).await? else {
        return Ok(None);
    };
    let bytes = objects.get(&entry.key).await?.ok_or_else(|| {
        Error::CorruptSnapshot(format!(
            "the catalog lists snapshot {} but the object is missing",
            entry.key
        ))
    })?;
    Ok(Some((
        ClusterSnapshot::decode(&bytes, &entry.key)?,
        entry.key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::GroupMember;

    fn sample() -> ClusterSnapshot {
        ClusterSnapshot {
            format: SNAPSHOT_FORMAT.into(),
            version: SNAPSHOT_VERSION,
            backup_id: "prod".into(),
            bootstrap_servers: "b-1:9092".into(),
            started_at_ms: 1_000,
            taken_at_ms: 1_250,
            topics: vec![TopicSnapshot {
                name: "payments".into(),
                generation: 0,
                topic_id: Some("5d1c8a0e-6a3b-4a8e-9d1f-2f3a4b5c6d7e".into()),
                partition_count: 1,
                configs: [("retention.ms".to_owned(), Some("86400000".to_owned()))].into(),
                partitions: vec![PartitionSnapshot {
                    partition: 0,
                    low_watermark: 0,
                    high_watermark: 42,
                }],
            }],
            groups: vec![GroupSnapshot {
                group: GroupDescription {
                    group_id: "payment-processor".into(),
                    state: "Stable".into(),
                    protocol_type: "consumer".into(),
                    protocol: "range".into(),
                    members: vec![GroupMember {
                        member_id: "m-1".into(),
                        client_id: "c".into(),
                        client_host: "/10.0.0.1".into(),
                    }],
                },
                offsets: vec![CommittedOffset {
                    topic: "payments".into(),
                    partition: 0,
                    offset: 40,
                    metadata: String::new(),
                }],
                error: None,
            }],
            recreations: vec![],
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_its_stored_form() {
        let snapshot = sample();
        let bytes = snapshot.encode(3).unwrap();
        assert_eq!(ClusterSnapshot::decode(&bytes, "k").unwrap(), snapshot);
        let json: serde_json::Value =
            serde_json::from_slice(&zstd::stream::decode_all(&bytes[..]).unwrap()).unwrap();
        assert_eq!(
            json["groups"][0]["group_id"], "payment-processor",
            "group fields are flat"
        );
        assert!(json["groups"][0].get("error").is_none());
    }

    #[test]
    fn foreign_or_damaged_bytes_are_named_errors() {
        let error = ClusterSnapshot::decode(b"not zstd", "snapshots/1.json.zst").unwrap_err();
        assert!(
            error.to_string().contains("snapshots/1.json.zst"),
            "{error}"
        );
        let mut other = sample();
        other.version = 99;
        let error = ClusterSnapshot::decode(&other.encode(3).unwrap(), "k").unwrap_err();
        assert!(error.to_string().contains("version 99"), "{error}");
    }
}
