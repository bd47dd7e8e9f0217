//! Topic recreation: a topic deleted and recreated under the same name restarts its offsets,
//! so two generations must never be mixed. Kafka never moves a partition's watermarks back or
//! shrinks a topic; seeing either means a new topic (or an unclean leader election that lost
//! data, which reuses offsets just the same).
//!
//! The surest sign is the topic id (Metadata v10+, Kafka 2.8+): a new id under the same name
//! is a new topic whatever the watermarks say, even one that outgrew the old watermarks
//! between two samples. The watermark checks remain for clusters that report no ids.

use tidemark_core::kafka::Watermarks;
use tidemark_core::snapshot::TopicSnapshot;

/// What shows that `watermarks` (indexed by partition) belong to a newer topic than `previous`.
pub fn evidence_against_previous(
    previous: &TopicSnapshot,
    partition_count: i32,
    watermarks: &[Watermarks],
) -> Vec<String> {
    let mut evidence = Vec::new();
    if partition_count < previous.partition_count {
        evidence.push(format!(
            "partition count went down from {} to {partition_count}",
            previous.partition_count
        ));
    }
    for before in &previous.partitions {
        let Some(now) = watermarks.get(before.partition as usize) else {
            continue;
        };
        if now.high < before.high_watermark {
            evidence.push(format!(
                "partition {} log end went back from {} to {}",
                before.partition, before.high_watermark, now.high
            ));
        } else if now.low < before.low_watermark {
            evidence.push(format!(
                "partition {} log start went back from {} to {}",
                before.partition, before.low_watermark, now.low
            ));
        }
    }
    evidence
}

/// The id change that shows a new topic, when both ids are known and differ.
pub fn evidence_from_ids(before: Option<&str>, now: Option<&str>) -> Option<String> {
    match (before, now) {
        (Some(before), Some(now)) if before != now => Some(format!(
            "topic id changed from {before} to {now}: the topic was deleted and created again"
        )),
        _ => None,
    }
}

/// What shows that the topic ends before offsets the backup already holds. `backed_up_to`
/// gives, per partition, the next offset the backup expects (its checkpoint).
pub fn evidence_against_backup(
    backed_up_to: &[(i32, i64)],
    watermarks: &[Watermarks],
) -> Vec<String> {
    backed_up_to
        .iter()
        .filter_map(|(partition, next_offset)| {
            let now = watermarks.get(*partition as usize)?;
            (now.high < *next_offset).then(|| {
                format!(
                    "partition {partition} ends at {} but the backup already holds offsets up to {}",
                    now.high,
                    next_offset - 1
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tidemark_core::snapshot::PartitionSnapshot;

    use super::*;

    fn previous(highs: &[i64]) -> TopicSnapshot {
        TopicSnapshot {
            name: "payments".into(),
            generation: 0,
            topic_id: None,
            partition_count: highs.len() as i32,
            configs: BTreeMap::new(),
            partitions: highs
                .iter()
                .enumerate()
                .map(|(partition, high)| PartitionSnapshot {
                    partition: partition as i32,
                    low_watermark: 10,
                    high_watermark: *high,
                })
                .collect(),
        }
    }

    fn marks(pairs: &[(i64, i64)]) -> Vec<Watermarks> {
        pairs
            .iter()
            .map(|(low, high)| Watermarks {
                low: *low,
                high: *high,
            })
            .collect()
    }

    #[test]
    fn growth_and_retention_are_not_recreation() {
        let before = previous(&[100, 200]);
        assert!(evidence_against_previous(&before, 2, &marks(&[(10, 100), (10, 200)])).is_empty());
        assert!(evidence_against_previous(&before, 2, &marks(&[(50, 150), (90, 260)])).is_empty());
        assert!(
            evidence_against_previous(&before, 3, &marks(&[(10, 100), (10, 200), (0, 0)]))
                .is_empty(),
            "adding partitions is normal"
        );
    }

    #[test]
    fn watermarks_going_back_or_fewer_partitions_are_recreation() {
        let before = previous(&[100, 200]);
        let evidence = evidence_against_previous(&before, 2, &marks(&[(0, 3), (10, 200)]));
        assert_eq!(
            evidence,
            vec!["partition 0 log end went back from 100 to 3"]
        );
        let evidence = evidence_against_previous(&before, 2, &marks(&[(0, 100), (10, 200)]));
        assert_eq!(
            evidence,
            vec!["partition 0 log start went back from 10 to 0"]
        );
        let evidence = evidence_against_previous(&before, 1, &marks(&[(0, 0)]));
        assert_eq!(
            evidence,
            vec![
                "partition count went down from 2 to 1",
                "partition 0 log end went back from 100 to 0"
            ]
        );
    }

    #[test]
    fn a_topic_shorter_than_its_backup_is_recreation() {
        let now = marks(&[(0, 5), (0, 700)]);
        assert_eq!(
            evidence_against_backup(&[(0, 500), (1, 700)], &now),
            vec!["partition 0 ends at 5 but the backup already holds offsets up to 499"]
        );
        assert!(evidence_against_backup(&[(0, 5), (1, 10)], &now).is_empty());
    }
}
