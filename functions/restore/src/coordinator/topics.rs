//! Creating the planned target topics, and remembering which ones this restore created so a
//! rollback deletes those and never a topic that was there before.
//!
//! The mark is written before the topic is created (an intent): a crash between the two leaves
//! a mark whose topic may or may not exist, and both a retry (which creates it if needed) and
//! a rollback (which deletes it if it exists) know it is this restore's. Written after, a crash
//! between would leave a topic no one owns: the retry refused it and the rollback kept it.

use serde::{Deserialize, Serialize};

use crate::error::{RestoreError, Result};
use crate::plan::RestorePlan;
use crate::target::Cluster;
use tidemark_core::stores::BackupStores;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopics {
    pub created: Vec<String>,
}

/// Marks `created-topics/{topic}` are written right before each creation.
fn created_prefix(backup: &BackupStores, plan: &RestorePlan) -> Result<String> {
    plan.object_key(backup, "created-topics/")
}

/// The topics this restore created so far, from their marks.
pub(crate) async fn created_topics(
    backup: &BackupStores,
    plan: &RestorePlan,
) -> Result<Vec<String>> {
    let prefix = created_prefix(backup, plan)?;
    Ok(backup
        .objects
        .list(&prefix)
        .await?
        .into_iter()
        .map(|key| key[prefix.len()..].to_owned())
        .collect())
}

pub async fn create(
    backup: &BackupStores,
    plan: &RestorePlan,
    cluster: &dyn Cluster,
) -> Result<CreatedTopics> {
    let prefix = created_prefix(backup, plan)?;
    let already = created_topics(backup, plan).await?;
    let existing: Vec<String> = cluster
        .topics()
        .await?
        .into_iter()
        .map(|topic| topic.name)
        .collect();
    let mut created = Vec::new();
    for topic in plan.topics.iter().filter(|topic| topic.create) {
        let exists = existing.contains(&topic.target);
        if already.contains(&topic.target) && exists {
            // A retried step: created by this restore on an earlier attempt.
            created.push(topic.target.clone());
            continue;
        }
        if exists {
            return Err(RestoreError::TargetChanged(format!(
                "target topic {} appeared after the plan was made; it was not created by this \
                 restore and is left alone",
                topic.target
            )));
        }
        backup
            .put_json_once(&format!("{prefix}{}", topic.target), &topic.source)
            .await?;
        cluster
            .create_topic(
                &topic.target,
                topic.partition_count,
                plan.replication_factor,
                &topic.configs,
            )
            .await?;
        tracing::info!(topic = %topic.target, partitions = topic.partition_count, "created target topic");
        created.push(topic.target.clone());
    }
    Ok(CreatedTopics { created })
}
