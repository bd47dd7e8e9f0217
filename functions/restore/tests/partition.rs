//! The partition restore on the in-memory twins: exact selection, de-duplication, resuming
//! after a crash or a deadline without duplicates, and refusing a target someone else writes.

mod common;

use std::time::Duration;

use common::{Fixture, TOPIC, record, time_cut};
use restore::RestoreError;
use restore::partition::target::{MemoryTargetWriter, TargetWriter};
use restore::partition::{
    Pacing, PartitionProgress, PartitionReport, Waited, latest_progress, restore_partition,
};
use restore::plan::PartitionTask;
use restore::request::{Cut, CutMode};
use tidemark_core::layout::RestoreId;
use tidemark_core::segment::Record;

const FAR: i64 = i64::MAX;

fn pacing(batch_records: usize) -> Pacing {
    Pacing {
        batch_records,
        deadline_reserve: Duration::ZERO,
        prefetch_segments: 1,
    }
}

async fn run(
    fixture: &Fixture,
    target: &MemoryTargetWriter,
    task: &PartitionTask,
    deadline_ms: i64,
    batch_records: usize,
) -> restore::Result<PartitionReport> {
    let restore_id = RestoreId::parse("r1").unwrap();
    restore_partition(
        &fixture.backup,
        target,
        &fixture.backup_id,
        &restore_id,
        task,
        deadline_ms,
        pacing(batch_records),
    )
    .await
}

async fn progress(fixture: &Fixture) -> PartitionProgress {
    let restore_id = RestoreId::parse("r1").unwrap();
    latest_progress(&fixture.backup, &fixture.backup_id, &restore_id, TOPIC, 0)
        .await
        .unwrap()
        .expect("progress recorded")
}

fn restored(target: &MemoryTargetWriter) -> Vec<Record> {
    target.records(&format!("{TOPIC}.restored"), 0)
}

/// Records as a target holds them: offsets renumbered from 0.
fn renumbered(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| Record {
            offset: index as i64,
            ..record.clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_segments_are_read_once_and_the_time_cut_is_exact() {
    let fixture = Fixture::new();
    let all: Vec<Record> = (0..300).map(|o| record(o, 1_000 + o)).collect();
    fixture.segment(0, &all[0..120], 1, true).await;
    fixture.segment(0, &all[100..200], 2, true).await; // a re-batched retry
    fixture.segment(0, &all[200..300], 3, true).await;
    let task = fixture.task(0, 0, 300, time_cut(1_000 + 249));
    let target = MemoryTargetWriter::new();
    let report = run(&fixture, &target, &task, FAR, 64).await.unwrap();
    assert!(report.done);
    assert_eq!(report.produced, 250);
    assert_eq!(restored(&target), renumbered(&all[..250]));
    let progress = progress(&fixture).await;
    assert_eq!(
        progress.offset_map.runs().len(),
        1,
        "one run for a contiguous restore"
    );
    assert_eq!(
        progress.offset_map.translate(120, progress.target_end()),
        120
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_time_cut_skips_late_timestamps_and_the_map_translates_around_them() {
    let fixture = Fixture::new();
    // Offsets 10..20 carry timestamps after the cut (a producer with a fast clock).
    let all: Vec<Record> = (0..40)
        .map(|o| {
            record(
                o,
                if (10..20).contains(&o) {
                    9_999
                } else {
                    100 + o
                },
            )
        })
        .collect();
    fixture.segment(0, &all, 1, true).await;
    let task = fixture.task(0, 0, 40, time_cut(500));
    let target = MemoryTargetWriter::new();
    run(&fixture, &target, &task, FAR, 7).await.unwrap();
    let expected: Vec<Record> = all.iter().filter(|r| r.timestamp <= 500).cloned().collect();
    assert_eq!(restored(&target), renumbered(&expected));
    let progress = progress(&fixture).await;
    let end = progress.target_end();
    // committed 15 (inside the skipped range) resumes at source 20 = target 10
    assert_eq!(progress.offset_map.translate(15, end), 10);
    assert_eq!(progress.offset_map.translate(5, end), 5);
    assert_eq!(progress.offset_map.translate(40, end), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consistent_cut_with_a_start_time_keeps_everything_after_the_first_record_in_range() {
    let fixture = Fixture::new();
    let timestamps = [50, 10, 60, 20, 70, 5, 80];
    let all: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(o, ts)| record(o as i64, *ts))
        .collect();
    fixture.segment(0, &all, 1, true).await;
    let mut task = fixture.task(
        0,
        0,
        7,
        Cut {
            mode: CutMode::Consistent,
            at_ms: 1,
        },
    );
    task.start_ms = Some(55);
    let target = MemoryTargetWriter::new();
    run(&fixture, &target, &task, FAR, 2).await.unwrap();
    // from offset 2 (ts 60) on, whatever the timestamps: no holes
    assert_eq!(restored(&target), renumbered(&all[2..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_some_records_resumes_at_the_next_record() {
    let fixture = Fixture::new();
    let all: Vec<Record> = (0..500).map(|o| record(o, 1_000 + o)).collect();
    for chunk in all.chunks(100) {
        fixture.segment(0, chunk, 1, true).await;
    }
    let task = fixture.task(0, 0, 500, time_cut(FAR));
    let target = MemoryTargetWriter::new();
    for crash_after in [1, 37, 150, 50, 200] {
        let target_topic = format!("{TOPIC}.restored");
        let before = target.records(&target_topic, 0).len();
        target.fail_after(crash_after);
        let crashed = run(&fixture, &target, &task, FAR, 50).await;
        assert!(
            crashed.is_err(),
            "the injected crash must fail the invocation"
        );
        assert_eq!(target.records(&target_topic, 0).len(), before + crash_after);
    }
    let report = run(&fixture, &target, &task, FAR, 50).await.unwrap();
    assert!(report.done);
    assert_eq!(restored(&target), renumbered(&all), "no duplicate, no gap");
    let progress = progress(&fixture).await;
    assert_eq!(progress.offset_map.runs().len(), 1);
    assert_eq!(progress.recovered, 1 + 37 + 150 + 50 + 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passed_deadline_stops_after_one_batch_and_the_next_invocation_continues() {
    let fixture = Fixture::new();
    let all: Vec<Record> = (0..100).map(|o| record(o, 1_000 + o)).collect();
    fixture.segment(0, &all, 1, true).await;
    let task = fixture.task(0, 0, 100, time_cut(FAR));
    let target = MemoryTargetWriter::new();
    let mut invocations = 0;
    loop {
        invocations += 1;
        let report = run(&fixture, &target, &task, 0, 30).await.unwrap();
        assert_eq!(report.produced_now, if report.done { 10 } else { 30 });
        if report.done {
            break;
        }
    }
    assert_eq!(invocations, 4);
    assert_eq!(restored(&target), renumbered(&all));
    let again = run(&fixture, &target, &task, FAR, 30).await.unwrap();
    assert!(
        again.done && again.produced_now == 0,
        "a finished partition stays finished"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_producer_on_the_target_is_detected_not_absorbed() {
    let fixture = Fixture::new();
    let all: Vec<Record> = (0..50).map(|o| record(o, 1_000 + o)).collect();
    fixture.segment(0, &all, 1, true).await;
    let task = fixture.task(0, 0, 50, time_cut(FAR));
    let target = MemoryTargetWriter::new();
    target.append(&format!("{TOPIC}.restored"), 0, &[record(999, 5)]);
    let error = run(&fixture, &target, &task, FAR, 10).await.unwrap_err();
    assert!(matches!(error, RestoreError::TargetChanged(_)), "{error}");
    assert!(error.to_string().contains("another producer"), "{error}");
    assert_eq!(
        target.records(&format!("{TOPIC}.restored"), 0).len(),
        1,
        "nothing produced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_segment_is_refused_before_any_of_its_records_is_produced() {
    let fixture = Fixture::new();
    let all: Vec<Record> = (0..60).map(|o| record(o, 1_000 + o)).collect();
    fixture.segment(0, &all[..30], 1, true).await;
    // One byte flipped near the end of the second segment's body.
    let key = fixture
        .segment_damaged(0, &all[30..], 2, true, |bytes| {
            let near_end = bytes.len() - 3;
            bytes[near_end] ^= 0x10;
        })
        .await;
    let task = fixture.task(0, 0, 60, time_cut(FAR));
    let target = MemoryTargetWriter::new();
    let error = run(&fixture, &target, &task, FAR, 1_000).await.unwrap_err();
    assert!(
        error.to_string().contains(&key),
        "the error names the segment: {error}"
    );
    assert!(error.to_string().contains("checksum"), "{error}");
    assert_eq!(
        restored(&target).len(),
        0,
        "the batch holding the damaged segment's records was never produced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_expired_after_the_plan_fail_the_partition_instead_of_being_skipped() {
    use tidemark_core::index::{IndexStore, record_segment};
    let fixture = Fixture::new();
    let id = fixture.partition(0);
    for range in [0..50, 50..100] {
        let records: Vec<Record> = range.map(|o| record(o, 1_000 + o)).collect();
        fixture.segment(0, &records, 5, true).await;
    }
    for entry in fixture.index.segments(&id).await.unwrap() {
        let observed = fixture.index.checkpoint(&id).await.unwrap();
        record_segment(fixture.index.as_ref(), &id, &entry, 0, observed, 5)
            .await
            .unwrap();
    }
    let task = fixture.task(0, 0, 100, time_cut(i64::MAX));
    // Retention expires the first segment between the plan and the partition's restore.
    let first = fixture.index.segments(&id).await.unwrap().remove(0);
    assert!(
        fixture
            .index
            .expire_segments(&id, std::slice::from_ref(&first), &[], 0, 50)
            .await
            .unwrap()
    );
    fixture.backup.objects.delete(&first.key).await.unwrap();

    let target = MemoryTargetWriter::new();
    let error = run(&fixture, &target, &task, i64::MAX, 1_000)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(
            "offsets 0..50 expired from the backup after this restore was planned (retention \
             moved its start to 50)"
        ),
        "{error}"
    );
    assert!(restored(&target).is_empty(), "nothing was produced");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_invocation_produces_nothing_while_the_first_holds_the_partition() {
    use restore::partition::lease;
    let fixture = Fixture::new();
    let records: Vec<Record> = (0..100).map(|o| record(o, 1_000 + o)).collect();
    fixture.segment(0, &records, 5, true).await;
    let task = fixture.task(0, 0, 100, time_cut(i64::MAX));
    let restore_id = RestoreId::parse("r1").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    // The first invocation is still running (a Step Functions retry started a second one).
    let held = lease::acquire(
        &fixture.backup,
        &fixture.backup_id,
        &restore_id,
        TOPIC,
        0,
        now + 60_000,
        now,
    )
    .await
    .unwrap();
    let target = MemoryTargetWriter::new();
    let error = run(&fixture, &target, &task, now + 60_000, 1_000)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Tidemark.PartitionBusy", "{error}");
    assert!(
        restored(&target).is_empty(),
        "the second invocation produced nothing"
    );

    // Once the first returns (its lease released), the next invocation restores everything.
    held.release(&fixture.backup).await.unwrap();
    let report = run(&fixture, &target, &task, i64::MAX, 1_000)
        .await
        .unwrap();
    assert!(report.done);
    assert_eq!(restored(&target).len(), 100);

    // A holder that crashed releases nothing: its partition waits until the holder's deadline,
    // after which Lambda has stopped it for certain.
    let other = Fixture::new();
    other.segment(0, &records, 5, true).await;
    let crashed = lease::acquire(
        &other.backup,
        &other.backup_id,
        &restore_id,
        TOPIC,
        0,
        now - 10_000,
        now - 70_000,
    )
    .await
    .unwrap();
    drop(crashed);
    let target = MemoryTargetWriter::new();
    let report = run(&other, &target, &task, i64::MAX, 1_000).await.unwrap();
    assert!(
        report.done,
        "a lease past its holder's deadline does not block"
    );
    assert_eq!(restored(&target).len(), 100);
}

/// A target that takes `delay` to accept each batch, as a slow cluster does.
struct SlowTarget {
    records: MemoryTargetWriter,
    delay: Duration,
}

#[async_trait::async_trait]
impl TargetWriter for SlowTarget {
    async fn end_offset(&self, topic: &str, partition: i32) -> restore::Result<i64> {
        self.records.end_offset(topic, partition).await
    }

    async fn read_record(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> restore::Result<Option<Record>> {
        self.records.read_record(topic, partition, offset).await
    }

    async fn send(
        &self,
        topic: &str,
        partition: i32,
        records: &[Record],
    ) -> restore::Result<Vec<i64>> {
        tokio::time::sleep(self.delay).await;
        self.records.send(topic, partition, records).await
    }

    async fn flush(&self) -> restore::Result<Vec<i64>> {
        self.records.flush().await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_says_how_long_the_restore_waited_for_the_target_and_for_the_backup() {
    let fixture = Fixture::new();
    let all: Vec<Record> = (0..100).map(|o| record(o, 1_000 + o)).collect();
    fixture.segment(0, &all, 1, true).await;
    let task = fixture.task(0, 0, 100, time_cut(FAR));
    let target = SlowTarget {
        records: MemoryTargetWriter::new(),
        delay: Duration::from_millis(40),
    };
    let restore_id = RestoreId::parse("r1").unwrap();
    let restore = || {
        restore_partition(
            &fixture.backup,
            &target,
            &fixture.backup_id,
            &restore_id,
            &task,
            FAR,
            pacing(25),
        )
    };
    let report = restore().await.unwrap();
    assert!(report.done);
    assert!(
        report.waited.for_target_ms >= 4 * 40,
        "four batches, each accepted after 40 ms: {:?}",
        report.waited
    );
    assert!(
        report.waited.for_backup_ms < report.waited.for_target_ms,
        "the records were ready long before the target took them: {:?}",
        report.waited
    );
    let again = restore().await.unwrap();
    assert_eq!(
        again.waited,
        Waited::default(),
        "a finished partition produces nothing and waits for nothing"
    );
}
