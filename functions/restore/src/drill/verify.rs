//! One partition of a drill: the records the restore selected from the backup, compared one
//! by one with what the restored topic holds, and where each chosen group would resume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tidemark_core::layout::{BackupId, PartitionId};
use tidemark_core::offset_map::RestoreOffsetMapping;
use tidemark_core::segment::Record;

use super::read::RestoredReader;
use crate::error::Result;
use crate::partition::scan::{ScanStart, Scanner};
use crate::plan::PartitionTask;
use tidemark_core::stores::BackupStores;

/// How a restored partition first differs from the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Difference {
    /// The backup's record at `source_offset` is not in the restored topic.
    Missing { source_offset: i64, target_end: i64 },
    /// The restored topic holds more records than the backup selects.
    Extra { target_offset: i64 },
    /// The records at these offsets differ in `field`.
    Differs {
        source_offset: i64,
        target_offset: i64,
        field: String,
    },
    /// The backup could not be read from `source_offset` on.
    Unreadable { source_offset: i64, error: String },
}

impl Difference {
    pub fn describe(&self) -> String {
        match self {
            Difference::Missing {
                source_offset,
                target_end,
            } => format!(
                "source offset {source_offset} is missing: the restored partition ends at target offset {target_end}"
            ),
            Difference::Extra { target_offset } => {
                format!("target offset {target_offset} holds a record the backup does not select")
            }
            Difference::Differs {
                source_offset,
                target_offset,
                field,
            } => format!(
                "source offset {source_offset} (target offset {target_offset}) differs in its {field}"
            ),
            Difference::Unreadable {
                source_offset,
                error,
            } => format!("the backup is unreadable from source offset {source_offset}: {error}"),
        }
    }
}

/// Where a chosen group would resume on this partition, checked against the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLanding {
    pub group: String,
    pub committed_source_offset: i64,
    /// The restore's translation of the committed offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translated: Option<i64>,
    /// The target offset of the first restored record at or after the committed offset (the
    /// end when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    pub ok: bool,
}

/// The evidence for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEvidence {
    pub source_topic: String,
    #[serde(default)]
    pub generation: u32,
    pub target_topic: String,
    pub partition: i32,
    /// Records that matched, in order.
    pub records: u64,
    pub bytes: u64,
    /// SHA-256 over the matched records' contents in order (everything but the offset): the
    /// same for the backup and the restored topic when they match.
    pub digest: String,
    pub first_source_offset: Option<i64>,
    pub last_source_offset: Option<i64>,
    pub first_target_offset: Option<i64>,
    pub last_target_offset: Option<i64>,
    pub first_timestamp: Option<i64>,
    pub last_timestamp: Option<i64>,
    /// The newest record timestamp restored (for the recovery point).
    pub newest_timestamp: Option<i64>,
    pub difference: Option<Difference>,
    /// Where the backup itself stops being readable, when that lies past the first difference
    /// (the restore stopped there, so the restored topic is short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable_from: Option<Difference>,
    pub groups: Vec<GroupLanding>,
    pub verified_at_ms: i64,
}

impl PartitionEvidence {
    pub fn passed(&self) -> bool {
        self.difference.is_none() && self.groups.iter().all(|group| group.ok)
    }
}

/// Which of the two records' fields differ first, if any (the offset is the restore's).
fn first_difference(backup: &Record, restored: &Record) -> Option<&'static str> {
    if backup.key != restored.key {
        Some("key")
    } else if backup.value != restored.value {
        Some("value")
    } else if backup.headers != restored.headers {
        Some("headers")
    } else if backup.timestamp != restored.timestamp {
        Some("timestamp")
    } else if backup.timestamp_type != restored.timestamp_type {
        Some("timestamp type")
    } else {
        None
    }
}

/// Feeds a record's contents to the digest: lengths first, so no two records collide by
/// concatenation, and -1 for null.
fn digest_record(digest: &mut Sha256, record: &Record) {
    fn bytes(digest: &mut Sha256, value: Option<&[u8]>) {
        match value {
            None => digest.update((-1i64).to_be_bytes()),
            Some(value) => {
                digest.update((value.len() as i64).to_be_bytes());
                digest.update(value);
            }
        }
    }
    digest.update(record.timestamp.to_be_bytes());
    digest.update([record.timestamp_type as u8]);
    bytes(digest, record.key.as_deref());
    bytes(digest, record.value.as_deref());
    digest.update((record.headers.len() as i64).to_be_bytes());
    for header in &record.headers {
        bytes(digest, Some(header.key.as_bytes()));
        bytes(digest, header.value.as_deref());
    }
}

/// Compares `task`'s selection of the backup with target offsets `task.target_base..target_end`
/// of the restored partition. `committed`: each chosen group's committed offset on the source
/// partition; `mapping`: the restore's offset mapping, when it got that far.
#[allow(clippy::too_many_arguments)]
pub async fn verify_partition(
    backup: &BackupStores,
    backup_id: &BackupId,
    restored: &dyn RestoredReader,
    task: &PartitionTask,
    target_end: i64,
    committed: &BTreeMap<String, i64>,
    mapping: Option<&RestoreOffsetMapping>,
    now_ms: impl Fn() -> i64,
) -> Result<PartitionEvidence> {
    let partition_id = PartitionId::new(backup_id.clone(), &task.source_topic, task.partition)
        .in_generation(task.generation);
    let (segments, _) = backup
        .segments(&partition_id, Some(task.segment_source))
        .await?;
    let mut scanner = Scanner::start(
        backup.clone(),
        backup_id.clone(),
        task.clone(),
        segments,
        ScanStart {
            from: task.first_offset,
            started: false,
            prefetch_segments: 1,
        },
    );
    let mut target = restored.read(
        &task.target_topic,
        task.partition,
        task.target_base,
        target_end,
    );
    let mut target_chunk = Vec::new().into_iter();
    let mut evidence = PartitionEvidence {
        source_topic: task.source_topic.clone(),
        generation: task.generation,
        target_topic: task.target_topic.clone(),
        partition: task.partition,
        records: 0,
        bytes: 0,
        digest: String::new(),
        first_source_offset: None,
        last_source_offset: None,
        first_target_offset: None,
        last_target_offset: None,
        first_timestamp: None,
        last_timestamp: None,
        newest_timestamp: None,
        difference: None,
        unreadable_from: None,
        groups: Vec::new(),
        verified_at_ms: 0,
    };
    // Groups by committed offset, the lowest first: each lands on the first record at or after.
    let mut waiting: Vec<(i64, String)> = committed
        .iter()
        .map(|(group, offset)| (*offset, group.clone()))
        .collect();
    waiting.sort();
    let mut waiting = waiting.into_iter().peekable();
    let mut landed: Vec<(String, i64, i64)> = Vec::new();
    let mut digest = Sha256::new();
    let mut next_source = task.first_offset;
    loop {
        let source = match scanner.next().await {
            Ok(source) => source,
            Err(error) => {
                evidence.difference = Some(Difference::Unreadable {
                    source_offset: next_source,
                    error: error.to_string(),
                });
                break;
            }
        };
        let restored = match target_chunk.next() {
            Some(record) => Some(record),
            None => match target.recv().await {
                Some(chunk) => {
                    target_chunk = chunk?.into_iter();
                    target_chunk.next()
                }
                None => None,
            },
        };
        match (source, restored) {
            (None, None) => break,
            (Some(source), None) => {
                evidence.difference = Some(Difference::Missing {
                    source_offset: source.offset,
                    target_end: evidence
                        .last_target_offset
                        .map_or(task.target_base, |last| last + 1),
                });
                // Whether the rest of the backup reads: a short restore is often a backup that
                // stops being readable further on.
                let mut next = source.offset + 1;
                loop {
                    match scanner.next().await {
                        Ok(Some(record)) => next = record.offset + 1,
                        Ok(None) => break,
                        Err(error) => {
                            evidence.unreadable_from = Some(Difference::Unreadable {
                                source_offset: next,
                                error: error.to_string(),
                            });
                            break;
                        }
                    }
                }
                break;
            }
            (None, Some(restored)) => {
                evidence.difference = Some(Difference::Extra {
                    target_offset: restored.offset,
                });
                break;
            }
            (Some(source), Some(restored)) => {
                if let Some(field) = first_difference(&source, &restored) {
                    evidence.difference = Some(Difference::Differs {
                        source_offset: source.offset,
                        target_offset: restored.offset,
                        field: field.to_owned(),
                    });
                    break;
                }
                while let Some((offset, _)) = waiting.peek()
                    && *offset <= source.offset
                {
                    let (offset, group) = waiting.next().expect("peeked");
                    landed.push((group, offset, restored.offset));
                }
                digest_record(&mut digest, &source);
                evidence.records += 1;
                evidence.bytes += source.payload_len() as u64;
                evidence.first_source_offset.get_or_insert(source.offset);
                evidence.first_target_offset.get_or_insert(restored.offset);
                evidence.first_timestamp.get_or_insert(source.timestamp);
                evidence.last_source_offset = Some(source.offset);
                evidence.last_target_offset = Some(restored.offset);
                evidence.last_timestamp = Some(source.timestamp);
                evidence.newest_timestamp = evidence.newest_timestamp.max(Some(source.timestamp));
                next_source = source.offset + 1;
            }
        }
    }
    evidence.digest = format!("{:x}", digest.finalize());
    if evidence.difference.is_none() {
        // Groups past every restored record resume at the end.
        let end = evidence
            .last_target_offset
            .map_or(task.target_base, |last| last + 1);
        landed.extend(waiting.map(|(offset, group)| (group, offset, end)));
        evidence.groups = landed
            .into_iter()
            .map(|(group, committed, expected)| {
                let translated = mapping.and_then(|mapping| {
                    mapping
                        .translate(&task.source_topic, task.partition, committed)
                        .map(|(_, offset)| offset)
                });
                GroupLanding {
                    // Without the restore's mapping (it did not finish) there is nothing to
                    // judge; the restore's failure fails the drill.
                    ok: match translated {
                        Some(translated) => translated == expected,
                        None => mapping.is_none(),
                    },
                    group,
                    committed_source_offset: committed,
                    translated,
                    expected: Some(expected),
                }
            })
            .collect();
    }
    evidence.verified_at_ms = now_ms();
    Ok(evidence)
}
