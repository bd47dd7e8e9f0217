//! Which generation of a topic a record belongs to. A topic deleted and recreated under its
//! name restarts its offsets, so each life of the topic is backed up on its own (the
//! generation is part of every key), and the catalog records when each began and, where the
//! cluster reports topic ids (Kafka 2.8+), which id it has.
//!
//! The writer and the snapshotter both name generations through [`generation_of_topic_id`], so
//! the same id always gets the same generation whoever sees it first. Restore, validation and
//! the CLI pick the generation alive at a time with [`generation_alive_at`].

use crate::error::{Error, Result};
use crate::layout::BackupId;
use crate::snapshot::{SnapshotCatalog, TopicGeneration};

/// How many concurrent recordings with other ids one call outlasts before it gives up. A
/// topic recreated that many times within one call's few milliseconds is not a real case.
const MAX_RECORDING_ATTEMPTS: usize = 8;

/// The generation of `topic` whose live id is `topic_id`: the one recorded with that id, or a
/// new one recorded now (the next after the latest). With nothing recorded yet, the id is
/// claimed for generation 0 (the generation every backup starts in, and every backup written
/// before generations existed holds), unless `seen_new` says why the live topic is not the
/// one backed up before; then it becomes generation 1. `seen_new` joins the evidence of a new
/// generation either way.
///
/// Returns the catalog's record of that generation. Two callers racing with the same new id
/// both get the record that stood: the catalog keeps the first record of each generation.
pub async fn generation_of_topic_id(
    catalog: &dyn SnapshotCatalog,
    backup_id: &BackupId,
    topic: &str,
    topic_id: &str,
    detected_at_ms: i64,
    seen_new: Vec<String>,
) -> Result<TopicGeneration> {
    for _ in 0..MAX_RECORDING_ATTEMPTS {
        let recorded = catalog.topic_generations(backup_id, topic).await?;
        if let Some(known) = recorded
            .iter()
            .find(|generation| generation.topic_id.as_deref() == Some(topic_id))
        {
            return Ok(known.clone());
        }
        let (generation, mut evidence) = match recorded.last() {
            Some(latest) => (
                latest.generation + 1,
                vec![match &latest.topic_id {
                    Some(before) => format!(
                        "topic id changed from {before} to {topic_id}: the topic was deleted \
                         and created again"
                    ),
                    None => format!(
                        "topic id {topic_id} is not the one recorded for generation {} (none \
                         was recorded): taken as a new topic",
                        latest.generation
                    ),
                }],
            ),
            None if seen_new.is_empty() => (
                0,
                vec![format!("the first topic id seen for {topic}: {topic_id}")],
            ),
            None => (1, Vec::new()),
        };
        for seen in &seen_new {
            if !evidence.contains(seen) {
                evidence.push(seen.clone());
            }
        }
        catalog
            .record_topic_generation(
                backup_id,
                &TopicGeneration {
                    topic: topic.to_owned(),
                    generation,
                    detected_at_ms,
                    evidence,
                    topic_id: Some(topic_id.to_owned()),
                },
            )
            .await?;
    }
    Err(Error::IndexStore {
        operation: "RecordTopicGeneration",
        message: format!(
            "topic {topic}: no generation could be recorded for topic id {topic_id}: other ids \
             took {MAX_RECORDING_ATTEMPTS} generations in a row"
        ),
        retryable: true,
    })
}

/// The latest recorded generation of a topic (0 when none is recorded): where a writer that
/// cannot ask the cluster for topic ids writes.
pub fn latest_generation(generations: &[TopicGeneration]) -> u32 {
    generations.iter().map(|g| g.generation).max().unwrap_or(0)
}

/// The generation alive at `at_ms`: the latest one detected at or before it. Generation 0 is
/// alive from the backup's start, whenever its id was recorded.
///
/// A generation is detected shortly after the topic was recreated (at the writer's first batch
/// of it, or the next snapshot), so a time in between picks the older generation: name the
/// generation to restore the newer one's first records.
pub fn generation_alive_at(generations: &[TopicGeneration], at_ms: i64) -> u32 {
    generations
        .iter()
        .filter(|g| g.generation == 0 || g.detected_at_ms <= at_ms)
        .map(|g| g.generation)
        .max()
        .unwrap_or(0)
}

/// When generation `generation` of a topic stopped being the live one: the detection of the
/// next generation, if any.
pub fn generation_ended_at(generations: &[TopicGeneration], generation: u32) -> Option<i64> {
    generations
        .iter()
        .filter(|g| g.generation > generation)
        .map(|g| g.detected_at_ms)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::MemoryIndexStore;

    fn backup() -> BackupId {
        BackupId::parse("prod").unwrap()
    }

    #[tokio::test]
    async fn the_first_id_is_generation_zero_and_each_new_id_the_next() {
        let catalog = MemoryIndexStore::new();
        let of = |id: &'static str, at: i64| {
            let catalog = &catalog;
            async move {
                generation_of_topic_id(catalog, &backup(), "payments", id, at, Vec::new())
                    .await
                    .unwrap()
                    .generation
            }
        };
        assert_eq!(of("id-a", 100).await, 0);
        assert_eq!(of("id-a", 200).await, 0, "the same id, the same generation");
        assert_eq!(of("id-b", 300).await, 1);
        assert_eq!(of("id-a", 400).await, 0, "an old id keeps its generation");
        assert_eq!(of("id-c", 500).await, 2);
        let recorded = catalog
            .topic_generations(&backup(), "payments")
            .await
            .unwrap();
        let detected: Vec<(u32, i64)> = recorded
            .iter()
            .map(|g| (g.generation, g.detected_at_ms))
            .collect();
        assert_eq!(detected, vec![(0, 100), (1, 300), (2, 500)]);
        assert!(
            recorded[1].evidence[0].contains("id-a to id-b"),
            "{recorded:?}"
        );
    }

    #[tokio::test]
    async fn a_live_topic_that_cannot_be_generation_zero_starts_generation_one() {
        let catalog = MemoryIndexStore::new();
        let evidence = vec!["partition 0 ends at 3 but the backup holds offsets up to 9".into()];
        let generation = generation_of_topic_id(
            &catalog,
            &backup(),
            "payments",
            "id-b",
            50,
            evidence.clone(),
        )
        .await
        .unwrap();
        assert_eq!(generation.generation, 1);
        let recorded = catalog
            .topic_generations(&backup(), "payments")
            .await
            .unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].evidence, evidence);
    }

    #[tokio::test]
    async fn a_generation_recorded_without_an_id_is_not_claimed_by_an_id() {
        let catalog = MemoryIndexStore::new();
        catalog
            .record_topic_generation(
                &backup(),
                &TopicGeneration {
                    topic: "payments".into(),
                    generation: 1,
                    detected_at_ms: 10,
                    evidence: vec!["partition 0 log end went back".into()],
                    topic_id: None,
                },
            )
            .await
            .unwrap();
        let generation =
            generation_of_topic_id(&catalog, &backup(), "payments", "id-x", 20, Vec::new())
                .await
                .unwrap();
        assert_eq!(
            generation.generation, 2,
            "never mixes an unknown topic into generation 1"
        );
    }

    #[tokio::test]
    async fn racing_callers_with_one_new_id_agree() {
        let catalog = MemoryIndexStore::new();
        generation_of_topic_id(&catalog, &backup(), "payments", "id-a", 1, Vec::new())
            .await
            .unwrap();
        let backup = backup();
        let (left, right) = tokio::join!(
            generation_of_topic_id(&catalog, &backup, "payments", "id-b", 2, Vec::new()),
            generation_of_topic_id(&catalog, &backup, "payments", "id-b", 3, Vec::new()),
        );
        let (left, right) = (left.unwrap(), right.unwrap());
        assert_eq!(left, right, "both get the record that stood");
        assert_eq!(left.generation, 1);
        assert_eq!(
            catalog
                .topic_generations(&backup, "payments")
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn the_generation_alive_at_a_time_is_the_latest_detected_by_then() {
        let generation = |number: u32, detected_at_ms: i64| TopicGeneration {
            topic: "payments".into(),
            generation: number,
            detected_at_ms,
            evidence: Vec::new(),
            topic_id: None,
        };
        let recorded = [
            generation(0, 500),
            generation(1, 1_000),
            generation(2, 2_000),
        ];
        assert_eq!(
            generation_alive_at(&recorded, 0),
            0,
            "0 is alive from the start"
        );
        assert_eq!(generation_alive_at(&recorded, 999), 0);
        assert_eq!(generation_alive_at(&recorded, 1_000), 1);
        assert_eq!(generation_alive_at(&recorded, 5_000), 2);
        assert_eq!(generation_alive_at(&[], 5_000), 0);
        assert_eq!(generation_ended_at(&recorded, 0), Some(1_000));
        assert_eq!(generation_ended_at(&recorded, 2), None);
        assert_eq!(latest_generation(&recorded), 2);
        assert_eq!(latest_generation(&[]), 0);
    }
}
