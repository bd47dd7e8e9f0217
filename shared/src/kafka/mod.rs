//! The Kafka connection layer every function that talks to a cluster uses: settings from the
//! environment, resolution (MSK broker lists, Secrets Manager), authentication (TLS, mTLS,
//! SASL/SCRAM, MSK IAM), the control-plane client on the wire protocol ([`wire`]) and the
//! seams it implements. librdkafka ([`client`]) is used for records only: the bridge's
//! consumer and the restore's producer.

pub mod admin;
pub mod client;
pub mod cluster;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod connection;
pub mod connector;
pub mod iam;
pub mod memory;
pub mod settings;
pub mod wire;

pub use admin::{ClusterAdmin, OffsetRemoval};
pub use cluster::{
    ClusterReader, CommittedOffset, GroupDescription, GroupMember, TopicConfigs, TopicDescription,
    TopicPartition, Watermarks, active_groups,
};
pub use connection::{KafkaConnection, Secret};
pub use connector::{AwsClusterConnector, Cluster, ClusterConnector};
pub use memory::MemoryCluster;
pub use settings::{AuthMethod, KafkaSettings};
pub use wire::KafkaCluster;
