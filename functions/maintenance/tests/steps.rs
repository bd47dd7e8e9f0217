//! The validator's and the maintainer's steps on the in-memory stores: resuming across steps,
//! the reports, bad input.

use std::sync::Arc;

use maintenance::{
    BackupConfig, Maintainer, MaintenanceError, MaintenanceResponse, MaintenanceSettings,
    MaintenanceStep, ValidationResponse, ValidationStep, Validator,
};
use serde_json::json;
use tidemark_core::config::StoreLocation;
use tidemark_core::index::{SegmentEntry, record_segment};
use tidemark_core::keys::{MemoryKeyService, SegmentKeys};
use tidemark_core::layout::{BackupId, PartitionId, StorageLayout};
use tidemark_core::object_store::{ObjectMetadata, ObjectStore};
use tidemark_core::segment::{Record, SegmentEncoder, TimestampType};
use tidemark_core::stores::{MemoryIndexStore, MemoryObjectStore};

struct Harness {
    objects: Arc<MemoryObjectStore>,
    index: Arc<MemoryIndexStore>,
    config: BackupConfig,
    validator: Validator,
    layout: StorageLayout,
}

fn partition(topic: &str, partition: i32) -> PartitionId {
    PartitionId::new(BackupId::parse("prod").unwrap(), topic, partition)
}

/// Two topics, three partitions, one ten-record segment each.
async fn harness() -> Harness {
    let objects = Arc::new(MemoryObjectStore::new());
    let index = Arc::new(MemoryIndexStore::new());
    let layout = StorageLayout::new("t").unwrap();
    for id in [
        partition("orders", 0),
        partition("payments", 0),
        partition("payments", 1),
    ] {
        store_ten_records(&objects, &index, &layout, &id).await;
    }
    let config = BackupConfig {
        store: StoreLocation {
            bucket: "b".into(),
            table: "t".into(),
            layout: layout.clone(),
            s3: Default::default(),
        },
        backup_id: BackupId::parse("prod").unwrap(),
        metrics_namespace: "Tidemark".into(),
    };
    let keys = SegmentKeys::new(Arc::new(MemoryKeyService::default()), None);
    let validator = Validator::new(
        config.clone(),
        objects.clone(),
        index.clone(),
        Arc::new(keys),
        index.clone(),
    );
    Harness {
        objects,
        index,
        config,
        validator,
        layout,
    }
}

/// One segment of ten records, offsets 0..=9, stored and indexed in partition `id`.
async fn store_ten_records(
    objects: &MemoryObjectStore,
    index: &MemoryIndexStore,
    layout: &StorageLayout,
    id: &PartitionId,
) {
    let mut encoder = SegmentEncoder::new(&id.topic, id.partition, 3).unwrap();
    for offset in 0..10 {
        encoder
            .push(&Record {
                offset,
                timestamp: offset,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(b"v".to_vec()),
                headers: vec![],
            })
            .unwrap();
    }
    let segment = encoder.finish().unwrap();
    let key = layout.segment_key(id, 0, 9);
    objects
        .put_if_absent(&key, segment.bytes.clone(), &ObjectMetadata::new())
        .await
        .unwrap();
    let entry = SegmentEntry::new(key, &segment.header, segment.bytes.len() as u64, 1);
    record_segment(index, id, &entry, 9, None, 1).await.unwrap();
}

fn step(value: serde_json::Value) -> ValidationStep {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_step_past_its_deadline_still_validates_one_partition_and_the_next_resumes() {
    let h = harness().await;
    let progress = |response| match response {
        ValidationResponse::Progress(progress) => {
            (progress.position, progress.partitions, progress.done)
        }
        other => panic!("{other:?}"),
    };
    // A deadline already passed: one partition per step, never none.
    let mut position = 0;
    let mut steps = 0;
    loop {
        let response = h
            .validator
            .handle(
                step(json!({"step": "validate", "run_id": "r1", "request": {}, "position": position})),
                0,
            )
            .await
            .unwrap();
        let (next, total, done) = progress(response);
        assert_eq!((next, total), (position + 1, 3));
        position = next;
        steps += 1;
        if done {
            break;
        }
    }
    assert_eq!(steps, 3);
    // A generous deadline does everything in one step; results already written are kept.
    let far = i64::MAX / 2;
    let response = h
        .validator
        .handle(
            step(json!({"step": "validate", "run_id": "r1", "request": {}})),
            far,
        )
        .await
        .unwrap();
    assert_eq!(progress(response), (3, 3, true));
    let results = h
        .objects
        .list(&format!(
            "{}partitions/",
            h.layout.validation_prefix(
                &BackupId::parse("prod").unwrap(),
                &tidemark_core::layout::RunId::parse("r1").unwrap()
            )
        ))
        .await
        .unwrap();
    assert_eq!(results.len(), 3);

    let ValidationResponse::Report(report) = h
        .validator
        .handle(
            step(json!({"step": "summarize", "run_id": "r1", "request": {}})),
            far,
        )
        .await
        .unwrap()
    else {
        panic!("summarize returns a report")
    };
    assert_eq!(
        (
            report.tally.partitions,
            report.tally.segments,
            report.tally.records
        ),
        (3, 3, 30)
    );
    assert_eq!((report.tally.errors, report.tally.records_read), (0, 30));
    assert_eq!(report.cause, "no errors in 3 partitions (0 warnings)");
}

#[tokio::test]
async fn a_deleted_segment_fails_the_report_with_a_cause_naming_it() {
    let h = harness().await;
    let gone = h.layout.segment_key(&partition("payments", 1), 0, 9);
    assert!(h.objects.remove(&gone));
    let far = i64::MAX / 2;
    let request = json!({"depth": "listing", "topics": ["payments"]});
    h.validator
        .handle(
            step(json!({"step": "validate", "run_id": "r2", "request": request})),
            far,
        )
        .await
        .unwrap();
    let ValidationResponse::Report(report) = h
        .validator
        .handle(
            step(json!({"step": "summarize", "run_id": "r2", "request": request})),
            far,
        )
        .await
        .unwrap()
    else {
        panic!("summarize returns a report")
    };
    assert_eq!(
        (
            report.tally.partitions,
            report.tally.errors,
            report.tally.records_read
        ),
        (2, 1, 0)
    );
    assert_eq!(
        report.cause,
        format!(
            "1 error in backup prod (report t/prod/validations/r2/report.json): payments-1: {gone} is indexed but not in S3"
        )
    );
}

#[tokio::test]
async fn each_generation_of_a_partition_is_validated_and_reported_on_its_own() {
    let h = harness().await;
    // The topic was recreated: generation 1 has a partition 1 of its own, whose segment is
    // then lost.
    let recreated = partition("payments", 1).in_generation(1);
    store_ten_records(&h.objects, &h.index, &h.layout, &recreated).await;
    let gone = h.layout.segment_key(&recreated, 0, 9);
    assert!(h.objects.remove(&gone));
    let far = i64::MAX / 2;
    let request = json!({"depth": "listing", "topics": ["payments"]});
    for step_name in ["validate", "summarize"] {
        let response = h
            .validator
            .handle(
                step(json!({"step": step_name, "run_id": "r3", "request": request})),
                far,
            )
            .await
            .unwrap();
        let ValidationResponse::Report(report) = response else {
            continue;
        };
        assert_eq!(
            (report.tally.partitions, report.tally.errors),
            (3, 1),
            "both generations of partition 1 are checked, each once"
        );
        assert_eq!(report.tally.findings[0].generation, 1);
        assert!(
            report.cause.contains(&format!(
                "payments-1 (generation 1): {gone} is indexed but not in S3"
            )),
            "{}",
            report.cause
        );
        return;
    }
    panic!("summarize returns a report");
}

#[tokio::test]
async fn unknown_topics_and_bad_run_ids_are_refused_before_anything_is_written() {
    let h = harness().await;
    let error = h
        .validator
        .handle(
            step(json!({"step": "validate", "run_id": "r3", "request": {"topics": ["refunds"]}})),
            i64::MAX / 2,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, MaintenanceError::InvalidRequest(ref m) if m.contains("refunds")),
        "{error}"
    );
    let error = h
        .validator
        .handle(
            step(json!({"step": "validate", "run_id": "a/b", "request": {}})),
            0,
        )
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.InvalidRequest", "{error}");
    assert!(
        h.objects
            .list("t/prod/validations/")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        serde_json::from_value::<ValidationStep>(
            json!({"step": "validate", "run_id": "r", "request": {"depht": "deep"}})
        )
        .is_err(),
        "a misspelt field is refused, not ignored"
    );
}

fn settings(vars: &[(&str, &str)]) -> tidemark_core::Result<MaintenanceSettings> {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    MaintenanceSettings::from_env(&tidemark_core::config::Env::from_lookup(move |name| {
        vars.get(name).cloned()
    }))
}

#[test]
fn maintenance_settings_default_safely_and_refuse_bad_values_by_name() {
    let defaults = settings(&[]).unwrap();
    assert_eq!(
        (
            defaults.short_days,
            defaults.standard_days,
            defaults.long_days
        ),
        (35, 365, 2557)
    );
    assert_eq!(
        (
            defaults.min_pitr_window_days,
            defaults.compaction_target_mb,
            defaults.compaction_grace_hours
        ),
        (7, 64, 24)
    );
    let tiered = settings(&[
        ("TIDEMARK_RETENTION_SHORT_TOPICS", "payments\\.refunded"),
        ("TIDEMARK_RETENTION_SHORT_DAYS", "3"),
    ])
    .unwrap();
    assert_eq!(
        (
            tiered.keep_days("payments.refunded"),
            tiered.keep_days("orders")
        ),
        (3, 365)
    );
    for (name, value) in [
        ("TIDEMARK_RETENTION_LONG_DAYS", "-1"),
        ("TIDEMARK_MIN_PITR_WINDOW_DAYS", "a week"),
        ("TIDEMARK_COMPACTION_GRACE_HOURS", "-2"),
        ("TIDEMARK_COMPRESSION_LEVEL", "0"),
    ] {
        let error = settings(&[(name, value)]).unwrap_err().to_string();
        assert!(error.contains(name), "{error}");
    }
}

#[tokio::test]
async fn the_maintainer_steps_through_every_partition_and_sums_up() {
    let h = harness().await;
    // The harness's records are from 1970: every partition's one segment is past even the long
    // default tiers, so each expires (from the index and S3 together); nothing is left to merge.
    let keys = SegmentKeys::new(Arc::new(MemoryKeyService::default()), None);
    let maintainer = Maintainer::new(
        h.config.clone(),
        settings(&[]).unwrap(),
        h.objects.clone(),
        h.index.clone(),
        Arc::new(keys),
        h.index.clone(),
    );
    let mut position = 0;
    loop {
        let response = maintainer
            .handle(
                serde_json::from_value::<MaintenanceStep>(
                    json!({"step": "maintain", "run_id": "m1", "position": position}),
                )
                .unwrap(),
                0,
            )
            .await
            .unwrap();
        let MaintenanceResponse::Progress(progress) = response else {
            panic!("maintain returns progress")
        };
        assert_eq!(
            progress.position,
            position + 1,
            "one partition per step past the deadline"
        );
        position = progress.position;
        if progress.done {
            break;
        }
    }
    let MaintenanceResponse::Report(report) = maintainer
        .handle(
            serde_json::from_value::<MaintenanceStep>(json!({"step": "summarize", "run_id": "m1"}))
                .unwrap(),
            i64::MAX / 2,
        )
        .await
        .unwrap()
    else {
        panic!("summarize returns a report")
    };
    assert_eq!(
        (
            report.partitions,
            report.segments_expired,
            report.segments_compacted,
            report.objects_deleted
        ),
        (3, 3, 0, 3)
    );
    assert!(h.objects.list("t/prod/topics/").await.unwrap().is_empty());
    assert!(
        serde_json::from_value::<MaintenanceStep>(
            json!({"step": "maintain", "run_id": "m", "positon": 1})
        )
        .is_err(),
        "a misspelt field is refused"
    );
}
