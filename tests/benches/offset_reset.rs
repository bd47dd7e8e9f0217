//! Resetting 500 consumer groups × 10 partitions on the local broker: the offset-reset
//! function's apply and verify steps on the wire-protocol client (one OffsetCommit per group,
//! all pipelined; OffsetFetch for many groups per request), against the librdkafka path they
//! replaced (one short-lived consumer per group, 32 groups at a time), in the same run. Every
//! run moves every group to a new position and reads it back, so no run finds the work done.
//!
//! Needs the local stack (`local/up.sh`). Run:
//!   source local/env.sh && local/up.sh && \
//!   cargo bench -p tidemark-tests --bench offset_reset -- [GROUPS] [PARTITIONS] [--json FILE] [--wire-only]

use std::time::{Duration, Instant};

use offset_reset::apply::{apply, verify};
use offset_reset::config::DEFAULT_CONCURRENCY;
use offset_reset::plan::{GroupMove, PartitionMove, ResetPlan};
use tidemark_core::kafka::{KafkaCluster, KafkaConnection, TopicPartition};
use tidemark_tests::librdkafka_groups::LibrdkafkaGroups;
use tidemark_tests::{Stack, unique};

const RUNS: usize = 3;

fn plan(groups: &[String], topic: &str, partitions: i32, offset: i64) -> ResetPlan {
    ResetPlan {
        reset_id: "bench".into(),
        planned_at_ms: 0,
        strategy: "explicit".into(),
        dry_run: false,
        request: serde_json::Value::Null,
        groups: groups
            .iter()
            .map(|group| GroupMove {
                group: group.clone(),
                existed: true,
                partitions: (0..partitions)
                    .map(|partition| PartitionMove {
                        topic: topic.to_owned(),
                        partition,
                        current: None,
                        new: offset + i64::from(partition),
                    })
                    .collect(),
            })
            .collect(),
        warnings: Vec::new(),
    }
}

/// Median wall time of apply and of verify over `RUNS` runs, each to a new position.
async fn measure_wire(
    cluster: &KafkaCluster,
    groups: &[String],
    topic: &str,
    partitions: i32,
    first_offset: i64,
) -> (Duration, Duration) {
    let mut applied = Vec::new();
    let mut verified = Vec::new();
    for run in 0..RUNS {
        let plan = plan(groups, topic, partitions, first_offset + 100 * run as i64);
        let started = Instant::now();
        apply(&plan, cluster).await.expect("apply");
        applied.push(started.elapsed());
        let started = Instant::now();
        verify(&plan, cluster).await.expect("verify");
        verified.push(started.elapsed());
    }
    applied.sort();
    verified.sort();
    (applied[RUNS / 2], verified[RUNS / 2])
}

/// The same work through librdkafka: commit every group, then read every group back and check.
async fn measure_librdkafka(
    baseline: &LibrdkafkaGroups,
    groups: &[String],
    topic: &str,
    partitions: i32,
    first_offset: i64,
) -> (Duration, Duration) {
    let mut applied = Vec::new();
    let mut verified = Vec::new();
    for run in 0..RUNS {
        let plan = plan(groups, topic, partitions, first_offset + 100 * run as i64);
        let commits = plan.commits();
        let wanted: Vec<(String, Vec<TopicPartition>)> = plan
            .groups
            .iter()
            .map(|group| (group.group.clone(), group.topic_partitions()))
            .collect();
        let started = Instant::now();
        baseline.commit(&commits).await;
        applied.push(started.elapsed());
        let started = Instant::now();
        let read = baseline.committed(&wanted).await;
        verified.push(started.elapsed());
        for ((group, expected), found) in commits.iter().zip(read) {
            assert_eq!(found.len(), expected.len(), "{group}");
            assert!(
                found
                    .iter()
                    .zip(expected)
                    .all(|(f, e)| f.offset == e.offset),
                "{group}"
            );
        }
    }
    applied.sort();
    verified.sort();
    (applied[RUNS / 2], verified[RUNS / 2])
}

#[tokio::main]
async fn main() {
    let (numbers, json_path) = tidemark_tests::bench_args();
    let wire_only = std::env::args().any(|arg| arg == "--wire-only");
    let group_count = numbers.first().copied().unwrap_or(500);
    let partitions = numbers.get(1).map_or(10, |&n| n as i32);
    let stack = Stack::from_env();
    let topic = unique("bench-reset");
    stack.create_topic(&topic, partitions as u32, &[]);
    let prefix = unique("bench-group");
    let groups: Vec<String> = (0..group_count)
        .map(|n| format!("{prefix}-{n:04}"))
        .collect();
    let connection = KafkaConnection::plaintext(stack.kafka_bootstrap.clone());
    let cluster = KafkaCluster::connect(connection.clone(), "tidemark-bench").expect("connecting");
    let baseline = LibrdkafkaGroups {
        connection,
        concurrency: DEFAULT_CONCURRENCY,
    };

    println!(
        "{group_count} groups × {partitions} partitions ({} offsets), median of {RUNS} runs each",
        group_count * partitions as usize
    );
    // `--wire-only` skips the baseline, for profiling the wire path alone (not for published runs).
    let (old_apply, old_verify) = if wire_only {
        (Duration::ZERO, Duration::ZERO)
    } else {
        measure_librdkafka(&baseline, &groups, &topic, partitions, 1_000).await
    };
    let (new_apply, new_verify) = measure_wire(&cluster, &groups, &topic, partitions, 2_000).await;
    let old_total = old_apply + old_verify;
    let row = |name: &str, apply: Duration, verify: Duration| {
        let total = apply + verify;
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1}× |",
            apply.as_secs_f64() * 1e3,
            verify.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            old_total.as_secs_f64() / total.as_secs_f64()
        );
    };
    println!("| path | apply | verify | apply + verify | speed-up vs librdkafka |");
    println!("|---|---|---|---|---|");
    row(
        &format!("librdkafka, a consumer per group, {DEFAULT_CONCURRENCY} at a time"),
        old_apply,
        old_verify,
    );
    row(
        "wire protocol, pipelined and batched",
        new_apply,
        new_verify,
    );
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let json = serde_json::json!({
        "bench": "offset_reset",
        "groups": group_count,
        "partitions": partitions,
        "runs": RUNS,
        "statistic": "median",
        "librdkafka": {"apply_ms": ms(old_apply), "verify_ms": ms(old_verify)},
        "wire": {"apply_ms": ms(new_apply), "verify_ms": ms(new_verify)},
        "speedup_apply_plus_verify": old_total.as_secs_f64() / (new_apply + new_verify).as_secs_f64(),
    });
    tidemark_tests::write_bench_json(json_path, &json);
}
