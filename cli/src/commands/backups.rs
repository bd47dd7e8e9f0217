//! `backups list` and `backups describe`.

use serde::Serialize;
use tidemark_core::checkpoint::GapKind;
use tidemark_core::index::IndexStore;
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::operations::health::assess;
use tidemark_core::operations::{Assessment, BackupHealth, HealthPolicy};
use tidemark_core::validation::partitions_to_validate;

use crate::error::Result;
use crate::output::{Render, size, time};
use tidemark_core::stores::BackupStores;

#[derive(Debug, Serialize)]
pub struct BackupList {
    pub bucket: String,
    pub backups: Vec<String>,
}

impl Render for BackupList {
    fn text(&self) -> String {
        if self.backups.is_empty() {
            return format!("no backups in s3://{}", self.bucket);
        }
        self.backups.join("\n")
    }
}

/// Backup ids: the folders under the prefix that hold a `topics/` folder.
pub async fn list(deployment: &BackupStores) -> Result<BackupList> {
    let root = deployment.layout.topics_prefix(&BackupId::parse("x")?);
    // `{prefix}/x/topics/` → `{prefix}/`
    let prefix = root.trim_end_matches("x/topics/").to_owned();
    let mut backups = Vec::new();
    for folder in deployment.objects.list_prefixes(&prefix).await? {
        let id = folder[prefix.len()..].trim_end_matches('/');
        let Ok(backup_id) = BackupId::parse(id) else {
            continue;
        };
        let topics = deployment.layout.topics_prefix(&backup_id);
        if !deployment.objects.list_prefixes(&topics).await?.is_empty() {
            backups.push(id.to_owned());
        }
    }
    Ok(BackupList {
        bucket: deployment.bucket.clone(),
        backups,
    })
}

#[derive(Debug, Serialize)]
pub struct BackupDescription {
    pub backup_id: String,
    pub partitions: Vec<PartitionDescription>,
    pub segments: usize,
    pub records: u64,
    pub stored_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Framed records ÷ stored bytes.
    pub compression_ratio: f64,
    pub latest_snapshot: Option<String>,
    /// Freshness, the last validation and the last drill, judged by the default policy.
    pub health: BackupHealth,
    pub assessment: Assessment,
}

#[derive(Debug, Serialize)]
pub struct PartitionDescription {
    pub topic: String,
    /// The topic's generation (a topic deleted and recreated under its name is the next one).
    pub generation: u32,
    pub partition: i32,
    /// Offsets `start..next` are backed up or recorded gaps.
    pub start_offset: Option<i64>,
    pub next_offset: Option<i64>,
    pub segments: usize,
    pub records: u64,
    pub stored_bytes: u64,
    pub uncompressed_bytes: u64,
    pub first_record_time: Option<String>,
    pub last_record_time: Option<String>,
    /// Recorded gaps of offsets the source did not deliver, inclusive.
    pub gaps: Vec<(i64, i64)>,
    /// Offsets erasures removed (their ranges are in the erasures' reports).
    #[serde(skip_serializing_if = "is_zero")]
    pub erased_offsets: i64,
}

fn is_zero(count: &i64) -> bool {
    *count == 0
}

impl Render for BackupDescription {
    fn text(&self) -> String {
        let mut out = format!(
            "backup {}: {} partitions, {} segments, {} records, {} stored ({} framed, {:.2}x)\n",
            self.backup_id,
            self.partitions.len(),
            self.segments,
            self.records,
            size(self.stored_bytes),
            size(self.uncompressed_bytes),
            self.compression_ratio
        );
        out += &format!(
            "latest snapshot: {}\n",
            self.latest_snapshot.as_deref().unwrap_or("none")
        );
        out += &format!(
            "health: {:?}{}\n",
            self.assessment.level,
            self.assessment
                .reasons
                .iter()
                .map(|reason| format!("\n  - {reason}"))
                .collect::<String>()
        );
        if let Some(validation) = &self.health.validation {
            out += &format!(
                "last validation: {} at {}: {}\n",
                validation.run_id,
                time(validation.finished_at_ms),
                validation.cause
            );
        }
        if let Some(drill) = &self.health.drill {
            out += &format!(
                "last drill: {} at {}: {}\n",
                drill.drill_id,
                time(drill.finished_at_ms),
                drill.cause
            );
        }
        for p in &self.partitions {
            let range = |start: Option<i64>, next: Option<i64>| match (start, next) {
                (Some(start), Some(next)) if next > start => format!("{start}..={}", next - 1),
                (Some(_), Some(_)) => "none (all expired)".into(),
                _ => "no checkpoint".into(),
            };
            let generation = match p.generation {
                0 => String::new(),
                g => format!(" (generation {g})"),
            };
            out += &format!(
                "  {}-{}{}  offsets {}  {} segments  {} records  {}  {} .. {}{}\n",
                p.topic,
                p.partition,
                generation,
                range(p.start_offset, p.next_offset),
                p.segments,
                p.records,
                size(p.stored_bytes),
                p.first_record_time.as_deref().unwrap_or("-"),
                p.last_record_time.as_deref().unwrap_or("-"),
                if p.gaps.is_empty() {
                    String::new()
                } else {
                    let gaps: Vec<String> =
                        p.gaps.iter().map(|(a, b)| format!("{a}..={b}")).collect();
                    format!("  gaps {}", gaps.join(", "))
                } + &if p.erased_offsets == 0 {
                    String::new()
                } else {
                    format!("  {} erased", p.erased_offsets)
                }
            );
        }
        out
    }
}

pub async fn describe(
    deployment: &BackupStores,
    backup_id: &BackupId,
) -> Result<BackupDescription> {
    let partitions = partitions_to_validate(
        deployment.objects.as_ref(),
        deployment.index.as_ref(),
        &deployment.layout,
        backup_id,
    )
    .await?;
    if partitions.is_empty() {
        return Err(crate::error::CliError::Input(format!(
            "backup {backup_id} holds nothing in s3://{}/{}",
            deployment.bucket,
            deployment.layout.topics_prefix(backup_id)
        )));
    }
    let mut described = Vec::with_capacity(partitions.len());
    for partition in &partitions {
        described.push(describe_partition(deployment.index.as_ref(), partition).await?);
    }
    let latest_snapshot = deployment
        .catalog
        .snapshot_at_or_before(backup_id, i64::MAX)
        .await?
        .map(|snapshot| time(snapshot.taken_at_ms));
    let health = deployment.operations.health(backup_id).await?;
    let stored_bytes: u64 = described.iter().map(|p| p.stored_bytes).sum();
    let uncompressed_bytes: u64 = described.iter().map(|p| p.uncompressed_bytes).sum();
    Ok(BackupDescription {
        backup_id: backup_id.to_string(),
        segments: described.iter().map(|p| p.segments).sum(),
        records: described.iter().map(|p| p.records).sum(),
        stored_bytes,
        uncompressed_bytes,
        compression_ratio: if stored_bytes == 0 {
            0.0
        } else {
            (uncompressed_bytes as f64 / stored_bytes as f64 * 100.0).round() / 100.0
        },
        latest_snapshot,
        assessment: assess(
            &health,
            chrono::Utc::now().timestamp_millis(),
            &HealthPolicy::default(),
        ),
        health,
        partitions: described,
    })
}

async fn describe_partition(
    index: &dyn IndexStore,
    partition: &PartitionId,
) -> Result<PartitionDescription> {
    let checkpoint = index.checkpoint(partition).await?;
    let segments = index.segments(partition).await?;
    let gaps = index.gaps(partition).await?;
    Ok(PartitionDescription {
        topic: partition.topic.clone(),
        generation: partition.generation,
        partition: partition.partition,
        start_offset: checkpoint.as_ref().map(|c| c.start_offset),
        next_offset: checkpoint.as_ref().map(|c| c.next_offset),
        segments: segments.len(),
        records: segments.iter().map(|s| u64::from(s.record_count)).sum(),
        stored_bytes: segments.iter().map(|s| s.stored_bytes).sum(),
        uncompressed_bytes: segments.iter().map(|s| s.uncompressed_bytes).sum(),
        first_record_time: segments.iter().map(|s| s.min_timestamp).min().map(time),
        last_record_time: segments.iter().map(|s| s.max_timestamp).max().map(time),
        gaps: gaps
            .iter()
            .filter(|gap| gap.kind == GapKind::Missing)
            .map(|gap| (gap.start, gap.end))
            .collect(),
        erased_offsets: gaps
            .iter()
            .filter(|gap| gap.kind == GapKind::Erased)
            .map(|gap| gap.end - gap.start + 1)
            .sum(),
    })
}
