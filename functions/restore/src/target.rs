//! Reaching the target cluster named in a request: the seam between the restore logic and
//! librdkafka (or the in-memory twins in unit tests).

use std::sync::Arc;

use async_trait::async_trait;
use tidemark_core::kafka::{AwsClusterConnector, ClusterConnector, KafkaSettings};

pub use tidemark_core::kafka::Cluster;

use crate::drill::read::{KafkaRestoredReader, RestoredReader};
use crate::error::Result;
use crate::partition::target::{KafkaTargetWriter, TargetWriter};

/// A cluster connector that also makes the partition restore's producer.
#[async_trait]
pub trait TargetConnector: ClusterConnector {
    /// A producer to the target that can send records of up to `max_record_bytes` (framed).
    async fn writer(
        &self,
        settings: &KafkaSettings,
        max_record_bytes: u64,
    ) -> Result<Arc<dyn TargetWriter>>;

    /// A reader of restored partitions, for the recovery drill's comparison.
    async fn reader(&self, settings: &KafkaSettings) -> Result<Arc<dyn RestoredReader>>;
}

/// Real clusters: MSK broker lists and secrets resolved through AWS, then librdkafka.
pub struct AwsTargetConnector {
    clusters: AwsClusterConnector,
}

impl AwsTargetConnector {
    pub fn new(aws: aws_config::SdkConfig, client_id: &'static str) -> Self {
        AwsTargetConnector {
            clusters: AwsClusterConnector::new(aws, client_id),
        }
    }
}

#[async_trait]
impl ClusterConnector for AwsTargetConnector {
    async fn cluster(&self, settings: &KafkaSettings) -> tidemark_core::Result<Arc<dyn Cluster>> {
        self.clusters.cluster(settings).await
    }
}

#[async_trait]
impl TargetConnector for AwsTargetConnector {
    async fn writer(
        &self,
        settings: &KafkaSettings,
        max_record_bytes: u64,
    ) -> Result<Arc<dyn TargetWriter>> {
        let connection = self.clusters.connection(settings).await?;
        Ok(Arc::new(KafkaTargetWriter::connect(
            connection,
            max_record_bytes,
        )?))
    }

    async fn reader(&self, settings: &KafkaSettings) -> Result<Arc<dyn RestoredReader>> {
        let connection = self.clusters.connection(settings).await?;
        Ok(Arc::new(KafkaRestoredReader { connection }))
    }
}
