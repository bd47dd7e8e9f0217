//! The Kafka connection layer every function that talks to a cluster uses: settings from the
//! environment, resolution (MSK broker lists, Secrets Manager), authentication (TLS, mTLS,
//! SASL/SCRAM, MSK IAM) and the cluster-reading seam.

pub mod admin;
pub mod client;
pub mod cluster;
pub mod connection;
pub mod connector;
pub mod iam;
pub mod memory;
pub mod settings;

pub use admin::ClusterAdmin;
pub use cluster::{
    ClusterReader, CommittedOffset, GroupDescription, GroupMember, KafkaCluster, TopicConfigs,
    TopicDescription, TopicPartition, Watermarks, active_groups,
};
pub use connection::{KafkaConnection, Secret};
pub use connector::{AwsClusterConnector, Cluster, ClusterConnector};
pub use memory::MemoryCluster;
pub use settings::{AuthMethod, KafkaSettings};
