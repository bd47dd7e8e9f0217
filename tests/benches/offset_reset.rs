//! Resetting 500 consumer groups × 10 partitions on the local broker: the offset-reset
//! function's apply and verify steps with their bounded concurrency, against the same steps
//! one group at a time, in the same run. Every run moves every group to a new position and
//! reads it back, so no run finds the work already done.
//!
//! Needs the local stack (`local/up.sh`). Run:
//!   source local/env.sh && local/up.sh && \
//!   cargo bench -p tidemark-tests --bench offset_reset -- [GROUPS] [PARTITIONS] [CONCURRENCY]

use std::time::{Duration, Instant};

use offset_reset::apply::{apply, verify};
use offset_reset::config::DEFAULT_CONCURRENCY;
use offset_reset::plan::{GroupMove, PartitionMove, ResetPlan};
use tidemark_core::kafka::{KafkaCluster, KafkaConnection};
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
async fn measure(
    cluster: &KafkaCluster,
    groups: &[String],
    topic: &str,
    partitions: i32,
    concurrency: usize,
    first_offset: i64,
) -> (Duration, Duration) {
    let mut applied = Vec::new();
    let mut verified = Vec::new();
    for run in 0..RUNS {
        let plan = plan(groups, topic, partitions, first_offset + 100 * run as i64);
        let started = Instant::now();
        apply(&plan, cluster, concurrency).await.expect("apply");
        applied.push(started.elapsed());
        let started = Instant::now();
        verify(&plan, cluster, concurrency).await.expect("verify");
        verified.push(started.elapsed());
    }
    applied.sort();
    verified.sort();
    (applied[RUNS / 2], verified[RUNS / 2])
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let group_count: usize = args.first().map_or(500, |n| n.parse().expect("GROUPS"));
    let partitions: i32 = args.get(1).map_or(10, |n| n.parse().expect("PARTITIONS"));
    let concurrency: usize = args
        .get(2)
        .map_or(DEFAULT_CONCURRENCY, |n| n.parse().expect("CONCURRENCY"));
    let stack = Stack::from_env();
    let topic = unique("bench-reset");
    stack.create_topic(&topic, partitions as u32, &[]);
    let prefix = unique("bench-group");
    let groups: Vec<String> = (0..group_count)
        .map(|n| format!("{prefix}-{n:04}"))
        .collect();
    let cluster = KafkaCluster::connect(
        KafkaConnection::plaintext(stack.kafka_bootstrap.clone()),
        "tidemark-bench",
        DEFAULT_CONCURRENCY,
    )
    .expect("connecting");

    println!(
        "{group_count} groups × {partitions} partitions ({} offsets), median of {RUNS} runs each",
        group_count * partitions as usize
    );
    let (parallel_apply, parallel_verify) = measure(
        &cluster,
        &groups,
        &topic,
        partitions,
        DEFAULT_CONCURRENCY,
        1_000,
    )
    .await;
    let (serial_apply, serial_verify) =
        measure(&cluster, &groups, &topic, partitions, 1, 2_000).await;
    let row = |name: &str, apply: Duration, verify: Duration| {
        let total = apply + verify;
        let serial_total = serial_apply + serial_verify;
        println!(
            "| {name} | {:.3} s | {:.3} s | {:.3} s | {:.1}× |",
            apply.as_secs_f64(),
            verify.as_secs_f64(),
            total.as_secs_f64(),
            serial_total.as_secs_f64() / total.as_secs_f64()
        );
    };
    println!("| path | apply | verify | apply + verify | speed-up vs one at a time |");
    println!("|---|---|---|---|---|");
    row("one group at a time", serial_apply, serial_verify);
    row(
        &format!("{concurrency} groups at a time"),
        parallel_apply,
        parallel_verify,
    );
}
