use std::sync::Arc;

use backup_writer::{BackupWriter, TopicGenerations};
use tidemark_core::config::{BackupWriterConfig, Env};
use tidemark_core::kafka::{AwsClusterConnector, ClusterConnector, ClusterReader};
use tidemark_core::keys::{KmsKeyService, SegmentKeys};
use tidemark_core::masking;
use tidemark_core::shredding::Shredding;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidemark_core::telemetry::init_tracing();
    let env = Env::process();
    let config = BackupWriterConfig::from_env(&env)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (objects, index) = config.store.connect(&aws);
    let index = Arc::new(index);
    let kms = Arc::new(KmsKeyService::new(&aws));
    let shredding = Shredding::new(index.clone(), kms.clone(), config.shredding_kms_key.clone())
        .with_commit_lease(config.shredding_commit_lease);
    let keys = SegmentKeys::new(kms, config.segment_encryption_key.clone())
        .with_shredding(Arc::new(shredding));
    let topic_ids: Option<Arc<dyn ClusterReader>> = match &config.topic_ids_from {
        Some(settings) => Some(
            AwsClusterConnector::new(aws.clone(), "tidemark-backup-writer")
                .cluster(settings)
                .await?,
        ),
        None => None,
    };
    let generations = TopicGenerations::new(config.backup_id.clone(), index.clone(), topic_ids);
    // A masked backup's rules are checked (and its hash key read) before the first event.
    let masking =
        masking::from_writer_config(&config, &aws_sdk_secretsmanager::Client::new(&aws)).await?;
    let writer = Arc::new(
        BackupWriter::new(
            config,
            Arc::new(objects),
            index,
            Arc::new(keys),
            generations,
        )
        .masking(masking),
    );

    backup_writer::invocation::run(writer).await
}
