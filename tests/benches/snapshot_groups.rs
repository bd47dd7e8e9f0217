//! How long one snapshot takes for hundreds of consumer groups on the local broker, by
//! parallelism; parallelism 1 (one group at a time) is the baseline measured in the same run.
//!
//! Needs the local stack (`local/up.sh`). Run:
//!   source local/env.sh && local/up.sh && \
//!   cargo bench -p tidemark-tests --bench snapshot_groups --profile dev -- [GROUPS] [PARTITIONS]

use std::time::Instant;

use tidemark_core::config::NameFilter;
use tidemark_core::kafka::{KafkaCluster, KafkaConnection};
use tidemark_core::layout::BackupId;
use tidemark_core::stores::MemoryIndexStore;
use tidemark_tests::{Stack, unique};

const RUNS: usize = 5;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"));
    let groups: usize = args.next().map_or(200, |arg| arg.parse().expect("GROUPS"));
    let partitions: i32 = args
        .next()
        .map_or(8, |arg| arg.parse().expect("PARTITIONS"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(groups, partitions));
}

async fn run(groups: usize, partitions: i32) {
    let stack = Stack::from_env();
    let prefix = unique("bench").replace('-', "_");
    let topic = format!("{prefix}.payments");
    stack.create_topic(&topic, partitions as u32, &[]);
    let setup = Instant::now();
    stack.python(&[
        "make-groups",
        "--bootstrap",
        &stack.kafka_bootstrap,
        "--topic",
        &topic,
        "--prefix",
        &prefix,
        "--count",
        &groups.to_string(),
        "--partitions",
        &partitions.to_string(),
    ]);
    eprintln!(
        "committed offsets for {groups} groups in {:.1?}",
        setup.elapsed()
    );

    let index = MemoryIndexStore::new();
    let backup_id = BackupId::parse("bench").unwrap();
    let topics = NameFilter::new(Some(regex(&format!("{prefix}\\..*"))), None);
    let group_filter = NameFilter::new(Some(regex(&format!("{prefix}-.*"))), None);

    println!("groups={groups} partitions={partitions} runs={RUNS} (median, min)");
    println!("| parallelism | median | min | speed-up vs 1 |");
    println!("|---|---|---|---|");
    let mut baseline = None;
    for parallelism in [1, 4, 16, 64] {
        let cluster = KafkaCluster::connect(
            KafkaConnection::plaintext(&stack.kafka_bootstrap),
            "tidemark-bench",
            parallelism,
        )
        .unwrap();
        let collector = offset_snapshotter::collect::Collector {
            cluster: &cluster,
            index: &index,
            catalog: &index,
            backup_id: &backup_id,
            bootstrap_servers: &stack.kafka_bootstrap,
            topics: &topics,
            groups: &group_filter,
            parallelism,
        };
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            let snapshot = collector.collect(None).await.expect("snapshot");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(snapshot.groups.len(), groups, "every group captured");
            for group in &snapshot.groups {
                assert_eq!(
                    group.offsets.len(),
                    partitions as usize,
                    "{}",
                    group.group.group_id
                );
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[RUNS / 2];
        let baseline = *baseline.get_or_insert(median);
        println!(
            "| {parallelism} | {median:.0} ms | {:.0} ms | {:.2}× |",
            times[0],
            baseline / median
        );
    }
}

fn regex(pattern: &str) -> regex::Regex {
    regex::Regex::new(&format!("^(?:{pattern})$")).unwrap()
}
