//! Reaching the target cluster named in a request: the seam between the restore logic and
//! librdkafka (or the in-memory twins in unit tests).

use std::sync::Arc;

use async_trait::async_trait;
use tidemark_core::kafka::iam::MskIamTokenProvider;
use tidemark_core::kafka::{
    AuthMethod, ClusterAdmin, ClusterReader, KafkaCluster, KafkaConnection, KafkaSettings,
};

use crate::error::Result;
use crate::partition::target::{KafkaTargetWriter, TargetWriter};

/// A cluster the restore can read and change.
pub trait Cluster: ClusterReader + ClusterAdmin {}
impl<T: ClusterReader + ClusterAdmin> Cluster for T {}

#[async_trait]
pub trait TargetConnector: Send + Sync {
    async fn cluster(&self, settings: &KafkaSettings) -> Result<Arc<dyn Cluster>>;
    async fn writer(&self, settings: &KafkaSettings) -> Result<Arc<dyn TargetWriter>>;
}

/// Real clusters: MSK broker lists and secrets resolved through AWS, then librdkafka.
pub struct AwsTargetConnector {
    aws: aws_config::SdkConfig,
    client_id: &'static str,
}

impl AwsTargetConnector {
    pub fn new(aws: aws_config::SdkConfig, client_id: &'static str) -> Self {
        AwsTargetConnector { aws, client_id }
    }

    async fn connection(&self, settings: &KafkaSettings) -> Result<KafkaConnection> {
        let iam = match settings.auth {
            AuthMethod::MskIam => Some(MskIamTokenProvider::from_sdk_config(&self.aws)?),
            _ => None,
        };
        Ok(KafkaConnection::resolve(
            settings,
            &aws_sdk_kafka::Client::new(&self.aws),
            &aws_sdk_secretsmanager::Client::new(&self.aws),
            iam,
        )
        .await?)
    }
}

#[async_trait]
impl TargetConnector for AwsTargetConnector {
    async fn cluster(&self, settings: &KafkaSettings) -> Result<Arc<dyn Cluster>> {
        let connection = self.connection(settings).await?;
        Ok(Arc::new(KafkaCluster::connect(
            connection,
            self.client_id,
            16,
        )?))
    }

    async fn writer(&self, settings: &KafkaSettings) -> Result<Arc<dyn TargetWriter>> {
        let connection = self.connection(settings).await?;
        Ok(Arc::new(KafkaTargetWriter::connect(connection)?))
    }
}
