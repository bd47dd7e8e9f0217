//! One conformance suite for the cluster seam ([`ClusterReader`] + [`ClusterAdmin`]): the unit
//! tests run it against the in-memory twin, the integration tests against real brokers
//! (plaintext, TLS, SASL/SCRAM, and MSK IAM through a listener that checks the signature).
//! Each check panics with a message naming the broken rule. It sets up everything it reads
//! through the seam itself, so it needs nothing but an empty namespace: `prefix`.

use std::collections::BTreeMap;

use super::admin::OffsetRemoval;
use super::cluster::{CommittedOffset, TopicPartition, active_groups};
use super::connector::Cluster;

/// Runs every rule; returns how `delete_offsets` removed an offset on this cluster.
/// `keeps_commit_metadata`: whether the cluster stores a commit's metadata string (Kafka does;
/// the local test broker, nisshi 0.8.1, answers every fetch with empty metadata).
pub async fn cluster_contract(
    cluster: &dyn Cluster,
    prefix: &str,
    keeps_commit_metadata: bool,
) -> OffsetRemoval {
    let topic = format!("{prefix}.payments");
    let configs = BTreeMap::from([("retention.ms".to_owned(), Some("86400000".to_owned()))]);
    cluster.create_topic(&topic, 3, -1, &configs).await.unwrap();

    let listed = cluster.topics().await.unwrap();
    let described = listed
        .iter()
        .find(|t| t.name == topic)
        .unwrap_or_else(|| panic!("a created topic is listed: {listed:?}"));
    assert_eq!(
        described.partition_count, 3,
        "the topic has the partitions asked for"
    );
    let first_id = described.topic_id.clone();
    let named = cluster
        .describe_topics(&[topic.clone(), format!("{prefix}.never-created")])
        .await
        .unwrap();
    assert_eq!(
        named,
        vec![described.clone()],
        "describing named topics gives the existing ones, as listed, and leaves out the rest"
    );

    let error = cluster
        .create_topic(&topic, 3, -1, &configs)
        .await
        .unwrap_err();
    assert!(
        !error.is_retryable(),
        "creating an existing topic fails for good: {error}"
    );

    let overrides = cluster
        .topic_configs(std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(
        overrides[&topic].get("retention.ms"),
        Some(&Some("86400000".to_owned())),
        "a config set at creation is among the topic's overrides: {overrides:?}"
    );
    assert!(
        !overrides[&topic].contains_key("cleanup.policy"),
        "a default is not an override: {overrides:?}"
    );
    let effective = cluster
        .effective_topic_configs(
            std::slice::from_ref(&topic),
            &["retention.ms", "cleanup.policy"],
        )
        .await
        .unwrap();
    assert_eq!(
        effective[&topic]["retention.ms"].as_deref(),
        Some("86400000")
    );
    assert_eq!(
        effective[&topic]["cleanup.policy"].as_deref(),
        Some("delete"),
        "a default config reads as its effective value"
    );

    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let marks = cluster.watermarks(&partitions).await.unwrap();
    assert_eq!(marks.len(), 3, "one answer per partition, in order");
    assert!(
        marks.iter().all(|m| m.low == 0 && m.high == 0),
        "a new topic is empty: {marks:?}"
    );
    assert_eq!(
        cluster.offsets_for_time(&partitions, 0).await.unwrap(),
        [0, 0, 0],
        "no record that late: the log end"
    );

    // Three groups committed in one batch, with metadata; a fourth never committed.
    let groups: Vec<String> = (0..3).map(|n| format!("{prefix}-group-{n}")).collect();
    let commits: Vec<(String, Vec<CommittedOffset>)> = groups
        .iter()
        .enumerate()
        .map(|(n, group)| {
            let offsets = (0..2)
                .map(|p| CommittedOffset {
                    topic: topic.clone(),
                    partition: p,
                    offset: 100 * (n as i64 + 1) + i64::from(p),
                    metadata: format!("{group}-meta-{p}"),
                })
                .collect();
            (group.clone(), offsets)
        })
        .collect();
    for result in cluster.commit_offsets_of_groups(&commits).await {
        result.unwrap();
    }
    let never = format!("{prefix}-group-never");
    let mut wanted: Vec<(String, Vec<TopicPartition>)> = groups
        .iter()
        .map(|g| (g.clone(), partitions.clone()))
        .collect();
    wanted.push((never.clone(), partitions.clone()));
    let mut read = cluster.committed_offsets_of_groups(&wanted).await;
    assert_eq!(read.len(), 4, "one answer per group, in order");
    if !keeps_commit_metadata {
        for (offsets, (_, committed)) in read.iter_mut().zip(&commits) {
            let offsets = offsets.as_mut().unwrap();
            for (offset, committed) in offsets.iter_mut().zip(committed) {
                assert_eq!(
                    offset.metadata, "",
                    "metadata the broker does not keep reads empty"
                );
                offset.metadata = committed.metadata.clone();
            }
        }
    }
    for ((group, expected), found) in commits.iter().zip(&read) {
        assert_eq!(
            found.as_ref().unwrap(),
            expected,
            "{group}: offsets and metadata read back as committed; partition 2 (no commit) left out"
        );
    }
    assert_eq!(
        read[3].as_ref().unwrap(),
        &[],
        "a group that never committed has no offsets"
    );
    let single = cluster
        .committed_offsets(&groups[1], &partitions[..1])
        .await
        .unwrap();
    assert_eq!(single.len(), 1, "a single group reads the same");
    assert_eq!(
        single[0].offset, commits[1].1[0].offset,
        "a single group reads the same"
    );

    let listed = cluster.groups().await.unwrap();
    for group in &groups {
        let description = listed
            .iter()
            .find(|g| &g.group_id == group)
            .unwrap_or_else(|| panic!("a group with commits is listed: {group}"));
        assert!(description.members.is_empty(), "{group} has no members");
    }
    assert!(active_groups(cluster, &groups).await.unwrap().is_empty());
    let ids = cluster.group_ids().await.unwrap();
    assert!(
        groups.iter().all(|group| ids.contains(group)),
        "group ids list every group"
    );
    let mut asked = vec![groups[1].clone(), never.clone()];
    asked.sort();
    let described = cluster.describe_groups(&asked).await.unwrap();
    assert!(
        described
            .iter()
            .all(|group| asked.contains(&group.group_id))
            && described.iter().any(|group| group.group_id == groups[1]),
        "describe_groups describes the groups asked for and no others: {described:?}"
    );

    // Taking one offset away leaves the group exactly as if it had never committed there.
    let removal = cluster
        .delete_offsets(&groups[0], &partitions[1..2])
        .await
        .unwrap();
    let left: Vec<(i32, i64)> = cluster
        .committed_offsets(&groups[0], &partitions)
        .await
        .unwrap()
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    assert_eq!(
        left,
        [(0, 100)],
        "after delete_offsets the partition has no offset and the others are untouched"
    );

    cluster.delete_group(&groups[2]).await.unwrap();
    assert!(
        !cluster
            .groups()
            .await
            .unwrap()
            .iter()
            .any(|g| g.group_id == groups[2]),
        "a deleted group is not listed"
    );
    assert_eq!(
        cluster
            .committed_offsets(&groups[2], &partitions)
            .await
            .unwrap(),
        []
    );
    cluster.delete_group(&never).await.unwrap();

    cluster.delete_topic(&topic).await.unwrap();
    assert!(
        !cluster
            .topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == topic),
        "a deleted topic is not listed"
    );
    cluster.delete_topic(&topic).await.unwrap();

    // A topic created again under the same name is a new topic: a new id, where ids exist.
    cluster
        .create_topic(&topic, 1, -1, &BTreeMap::new())
        .await
        .unwrap();
    let second_id = cluster
        .topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == topic)
        .expect("recreated topic listed")
        .topic_id;
    if let (Some(first), Some(second)) = (&first_id, &second_id) {
        assert_ne!(first, second, "a recreated topic gets a new id");
    }
    assert_eq!(
        first_id.is_some(),
        second_id.is_some(),
        "ids are reported for every topic or none"
    );
    cluster.delete_topic(&topic).await.unwrap();
    for group in &groups[..2] {
        cluster.delete_group(group).await.unwrap();
    }
    removal
}
