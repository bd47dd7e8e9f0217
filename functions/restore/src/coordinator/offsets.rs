//! What a restore hands the offset reset that follows it. The restore does not move consumer
//! groups itself: its ResetOffsets state runs the offset-reset state machine (the same one
//! operators run on their own) with the `snapshot` strategy, translated through this
//! restore's offset mapping. Here: that request, and the mapping it reads.

use tidemark_core::offset_map::{MappedPartition, RestoreOffsetMapping};

use crate::error::Result;
use crate::partition::PartitionProgress;
use crate::plan::{PartitionTask, RestorePlan};
use tidemark_core::stores::BackupStores;

/// The offset-reset request that puts the plan's groups where they stood at the cut, on the
/// restored topics; `None` when the plan moves no group (a group with no offset on the
/// restored topics at the cut has nothing to move, and the plan warns about it).
pub fn offset_reset_request(
    plan: &RestorePlan,
    target: &serde_json::Value,
) -> Option<serde_json::Value> {
    let groups: Vec<&String> = plan
        .groups
        .iter()
        .filter(|group| !group.source_offsets.is_empty())
        .map(|group| &group.group)
        .collect();
    if groups.is_empty() || plan.dry_run || !plan.move_groups {
        return None;
    }
    let snapshot = plan.snapshot.as_ref()?;
    Some(serde_json::json!({
        "target": target,
        "groups": {"names": groups},
        "strategy": {
            "type": "snapshot",
            "backup_id": plan.backup_id,
            // The snapshot the plan chose: "at or before" its own time finds it again.
            "at": snapshot.taken_at_ms,
            "restore_id": plan.restore_id,
        },
        "topics": plan.topics.iter().map(|topic| &topic.source).collect::<Vec<_>>(),
        "requested_by": format!("restore {}", plan.restore_id),
    }))
}

/// Writes the restore's offset mapping from every partition's finished progress: its
/// source→target offset runs and the target's end.
pub async fn write_offset_mapping(
    backup: &BackupStores,
    plan: &RestorePlan,
    finished: &[(&PartitionTask, PartitionProgress)],
) -> Result<RestoreOffsetMapping> {
    let partitions = finished
        .iter()
        .map(|(task, progress)| MappedPartition {
            source_topic: task.source_topic.clone(),
            target_topic: task.target_topic.clone(),
            partition: task.partition,
            target_end: progress.target_end(),
            offset_map: progress.offset_map.clone(),
        })
        .collect();
    let (backup_id, restore_id) = plan.ids()?;
    let key = backup
        .layout
        .restore_offset_mapping_key(&backup_id, &restore_id);
    let mapping = RestoreOffsetMapping {
        restore_id: plan.restore_id.clone(),
        partitions,
    };
    Ok(backup.put_json_once(&key, &mapping).await?)
}
