//! Creating the planned target topics, and remembering which ones this restore created so a
//! rollback deletes those and never a topic that was there before.

use serde::{Deserialize, Serialize};

use crate::backup::Backup;
use crate::error::{RestoreError, Result};
use crate::plan::RestorePlan;
use crate::target::Cluster;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopics {
    pub created: Vec<String>,
}

/// Marks `created-topics/{topic}` are written right after each creation.
fn created_prefix(backup: &Backup, plan: &RestorePlan) -> Result<String> {
    backup.plan_key(plan, "created-topics/")
}

/// The topics this restore created so far, from their marks.
pub(crate) async fn created_topics(backup: &Backup, plan: &RestorePlan) -> Result<Vec<String>> {
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
    backup: &Backup,
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
        if already.contains(&topic.target) {
            // A retried step: created by this restore on the first attempt.
            created.push(topic.target.clone());
            continue;
        }
        if existing.contains(&topic.target) {
            return Err(RestoreError::TargetChanged(format!(
                "target topic {} appeared after the plan was made; it was not created by this \
                 restore and is left alone",
                topic.target
            )));
        }
        cluster
            .create_topic(
                &topic.target,
                topic.partition_count,
                plan.replication_factor,
                &topic.configs,
            )
            .await?;
        backup
            .put_json_once(&format!("{prefix}{}", topic.target), &topic.source)
            .await?;
        tracing::info!(topic = %topic.target, partitions = topic.partition_count, "created target topic");
        created.push(topic.target.clone());
    }
    Ok(CreatedTopics { created })
}
