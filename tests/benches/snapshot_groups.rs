//! How long one snapshot takes for 1000 consumer groups × 8 partitions on the local broker:
//! the snapshotter's collector on the wire-protocol client, against the same collector reading
//! group offsets the librdkafka way (one consumer per group, 16 at a time), in the same run.
//!
//! Needs the local stack (`local/up.sh`). Run:
//!   source local/env.sh && local/up.sh && \
//!   cargo bench -p tidemark-tests --bench snapshot_groups -- [GROUPS] [PARTITIONS] [--json FILE]

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use tidemark_core::config::NameFilter;
use tidemark_core::kafka::{
    ClusterReader, CommittedOffset, GroupDescription, KafkaCluster, KafkaConnection, TopicConfigs,
    TopicDescription, TopicPartition, Watermarks,
};
use tidemark_core::layout::BackupId;
use tidemark_core::stores::MemoryIndexStore;
use tidemark_tests::librdkafka_groups::LibrdkafkaGroups;
use tidemark_tests::{Stack, unique};

/// The wire client for everything but group offsets, which it reads through librdkafka.
struct LibrdkafkaOffsets {
    wire: KafkaCluster,
    groups: LibrdkafkaGroups,
}

#[async_trait]
impl ClusterReader for LibrdkafkaOffsets {
    async fn topics(&self) -> tidemark_core::Result<Vec<TopicDescription>> {
        self.wire.topics().await
    }
    async fn watermarks(
        &self,
        partitions: &[TopicPartition],
    ) -> tidemark_core::Result<Vec<Watermarks>> {
        self.wire.watermarks(partitions).await
    }
    async fn records_waiting(
        &self,
        partition: &TopicPartition,
        from: i64,
        to: i64,
    ) -> tidemark_core::Result<bool> {
        self.wire.records_waiting(partition, from, to).await
    }
    async fn topic_configs(
        &self,
        topics: &[String],
    ) -> tidemark_core::Result<BTreeMap<String, TopicConfigs>> {
        self.wire.topic_configs(topics).await
    }
    async fn effective_topic_configs(
        &self,
        topics: &[String],
        names: &[&str],
    ) -> tidemark_core::Result<BTreeMap<String, TopicConfigs>> {
        self.wire.effective_topic_configs(topics, names).await
    }
    async fn offsets_for_time(
        &self,
        partitions: &[TopicPartition],
        at_ms: i64,
    ) -> tidemark_core::Result<Vec<i64>> {
        self.wire.offsets_for_time(partitions, at_ms).await
    }
    async fn groups(&self) -> tidemark_core::Result<Vec<GroupDescription>> {
        self.wire.groups().await
    }
    async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> tidemark_core::Result<Vec<CommittedOffset>> {
        let wanted = [(group_id.to_owned(), partitions.to_vec())];
        Ok(self.groups.committed(&wanted).await.pop().unwrap())
    }
    async fn committed_offsets_of_groups(
        &self,
        wanted: &[(String, Vec<TopicPartition>)],
    ) -> Vec<tidemark_core::Result<Vec<CommittedOffset>>> {
        self.groups
            .committed(wanted)
            .await
            .into_iter()
            .map(Ok)
            .collect()
    }
}

const RUNS: usize = 5;

fn main() {
    let (numbers, json_path) = tidemark_tests::bench_args();
    let groups = numbers.first().copied().unwrap_or(1000);
    let partitions = numbers.get(1).map_or(8, |&n| n as i32);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(groups, partitions, json_path));
}

async fn run(groups: usize, partitions: i32, json_path: Option<String>) {
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

    let connection = KafkaConnection::plaintext(&stack.kafka_bootstrap);
    let wire = KafkaCluster::connect(connection.clone(), "tidemark-bench").unwrap();
    let librdkafka = LibrdkafkaOffsets {
        wire: KafkaCluster::connect(connection.clone(), "tidemark-bench").unwrap(),
        groups: LibrdkafkaGroups {
            connection,
            concurrency: 16,
        },
    };
    println!("groups={groups} partitions={partitions} runs={RUNS} (median, min)");
    println!("| group offsets read by | median | min | speed-up vs librdkafka |");
    println!("|---|---|---|---|");
    let mut results = Vec::new();
    let readers: [(&str, &dyn ClusterReader); 2] = [
        (
            "librdkafka, a consumer per group, 16 at a time",
            &librdkafka,
        ),
        ("wire protocol, batched OffsetFetch", &wire),
    ];
    let mut baseline = None;
    for (name, cluster) in readers {
        let collector = offset_snapshotter::collect::Collector {
            cluster,
            index: &index,
            catalog: &index,
            backup_id: &backup_id,
            bootstrap_servers: &stack.kafka_bootstrap,
            topics: &topics,
            groups: &group_filter,
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
            "| {name} | {median:.0} ms | {:.0} ms | {:.2}× |",
            times[0],
            baseline / median
        );
        results.push(serde_json::json!({"reader": name, "median_ms": median, "min_ms": times[0]}));
    }
    let json = serde_json::json!({
        "bench": "snapshot_groups",
        "groups": groups,
        "partitions": partitions,
        "runs": RUNS,
        "results": results,
    });
    tidemark_tests::write_bench_json(json_path, &json);
}

fn regex(pattern: &str) -> regex::Regex {
    regex::Regex::new(&format!("^(?:{pattern})$")).unwrap()
}
