//! Reaching a cluster named in a request (a restore's or an offset reset's target): MSK broker
//! lists and secrets resolved through AWS, then the wire-protocol client. The seam between the state
//! machine steps and the cluster, with the in-memory twin behind it in unit tests.

use std::sync::Arc;

use async_trait::async_trait;

use super::admin::ClusterAdmin;
use super::cluster::ClusterReader;
use super::connection::KafkaConnection;
use super::iam::MskIamTokenProvider;
use super::settings::{AuthMethod, KafkaSettings};
use super::wire::KafkaCluster;
use crate::error::Result;

/// A cluster the steps can read and change.
pub trait Cluster: ClusterReader + ClusterAdmin {}
impl<T: ClusterReader + ClusterAdmin> Cluster for T {}

#[async_trait]
pub trait ClusterConnector: Send + Sync {
    async fn cluster(&self, settings: &KafkaSettings) -> Result<Arc<dyn Cluster>>;
}

pub struct AwsClusterConnector {
    aws: aws_config::SdkConfig,
    client_id: &'static str,
}

impl AwsClusterConnector {
    pub fn new(aws: aws_config::SdkConfig, client_id: &'static str) -> Self {
        AwsClusterConnector { aws, client_id }
    }

    pub async fn connection(&self, settings: &KafkaSettings) -> Result<KafkaConnection> {
        let iam = match settings.auth {
            AuthMethod::MskIam => Some(MskIamTokenProvider::from_sdk_config(&self.aws)?),
            _ => None,
        };
        KafkaConnection::resolve(
            settings,
            &aws_sdk_kafka::Client::new(&self.aws),
            &aws_sdk_secretsmanager::Client::new(&self.aws),
            iam,
        )
        .await
    }
}

#[async_trait]
impl ClusterConnector for AwsClusterConnector {
    async fn cluster(&self, settings: &KafkaSettings) -> Result<Arc<dyn Cluster>> {
        let connection = self.connection(settings).await?;
        Ok(Arc::new(KafkaCluster::connect(connection, self.client_id)?))
    }
}
