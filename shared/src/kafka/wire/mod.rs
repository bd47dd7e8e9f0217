//! The Kafka control plane on the wire protocol: one pure-Rust client (kafka-protocol codecs
//! over tokio TCP + rustls) for every request that is not consuming or producing records —
//! metadata with topic ids, list offsets, configs, topics, groups and their offsets.
//!
//! Why not librdkafka here: its admin client cannot authenticate with MSK IAM, it cannot
//! delete a committed offset, it shows no topic ids, and reading or committing a group's
//! offsets needs one short-lived client per group. This client keeps one authenticated
//! connection per broker, pipelines every request to it, asks each coordinator about many
//! groups at once, and retries coordinator moves itself.
//!
//! - [`broker`]: one connection (frames, pipelining, versions);
//! - [`handshake`]: TCP, TLS, ApiVersions, SASL (SCRAM, OAUTHBEARER with MSK IAM);
//! - this file: the cluster's brokers, controller, API versions and retries;
//! - [`coordinators`]: finding group coordinators, per-coordinator batches and their retries;
//! - [`reader`], [`offsets`] and [`admin`]: the [`ClusterReader`](super::ClusterReader) and
//!   [`ClusterAdmin`](super::ClusterAdmin) requests.

mod admin;
mod broker;
mod coordinators;
mod errors;
mod fetch;
mod handshake;
mod offsets;
mod reader;
#[cfg(test)]
mod scripted_tests;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, GroupId, MetadataRequest, MetadataResponse, TopicName,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio_rustls::TlsConnector;

use self::broker::BrokerConnection;
pub(crate) use self::coordinators::{Attempt, attempt_of};
use super::connection::KafkaConnection;
use crate::error::{Error, Result};

/// How often a request whose group coordinator moved (or whose broker connection dropped) is
/// tried in all, and the first pause between tries (doubling, at most one second).
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Topology {
    /// Broker id → `host:port`, from the latest metadata.
    brokers: BTreeMap<i32, String>,
    controller: Option<i32>,
    /// Group → its coordinator's `host:port`.
    coordinators: HashMap<String, String>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<BrokerConnection>>>>;

/// A Kafka cluster reached through the wire protocol. Cheap to share; connects on first use.
pub struct KafkaCluster {
    connection: KafkaConnection,
    client_id: String,
    tls: Option<TlsConnector>,
    topology: Mutex<Topology>,
    sockets: Mutex<HashMap<String, Slot>>,
    /// Highest version to use per API key, below what the broker offers: tests use it to walk
    /// the paths older brokers take.
    ceilings: HashMap<i16, i16>,
}

impl KafkaCluster {
    /// A client of the cluster `connection` describes. Checks the TLS material now; opens no
    /// connection until the first request.
    pub fn connect(connection: KafkaConnection, client_id: &str) -> Result<Self> {
        let tls = handshake::tls_connector(&connection)?;
        Ok(KafkaCluster {
            connection,
            client_id: client_id.to_owned(),
            tls,
            topology: Mutex::default(),
            sockets: Mutex::default(),
            ceilings: HashMap::new(),
        })
    }

    /// Never uses `api` above `version`, as if the brokers offered no more.
    pub fn with_version_ceiling(mut self, api: ApiKey, version: i16) -> Self {
        self.ceilings.insert(api as i16, version);
        self
    }

    pub fn connection(&self) -> &KafkaConnection {
        &self.connection
    }

    /// The open connection to `address`, opened (and authenticated) when there is none.
    async fn broker(&self, address: &str) -> Result<Arc<BrokerConnection>> {
        self.lane(address, 0).await
    }

    /// Connection number `lane` to `address`. A broker answers the requests of one connection
    /// one at a time, in order; requests spread over lanes are served in parallel.
    async fn lane(&self, address: &str, lane: usize) -> Result<Arc<BrokerConnection>> {
        let key = if lane == 0 {
            address.to_owned()
        } else {
            format!("{address}#{lane}")
        };
        let slot = Arc::clone(
            self.sockets
                .lock()
                .expect("lock poisoned")
                .entry(key)
                .or_default(),
        );
        let mut slot = slot.lock().await;
        if let Some(broker) = slot.as_ref().filter(|broker| broker.is_usable()) {
            return Ok(Arc::clone(broker));
        }
        let broker = Arc::new(
            handshake::open(
                address,
                &self.connection,
                self.tls.as_ref(),
                &self.client_id,
            )
            .await?,
        );
        *slot = Some(Arc::clone(&broker));
        Ok(broker)
    }

    /// A connection to any broker: the known ones first, then the bootstrap list.
    async fn any_broker(&self) -> Result<Arc<BrokerConnection>> {
        let known: Vec<String> = self.topology().brokers.values().cloned().collect();
        let bootstrap = self
            .connection
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .map(str::to_owned);
        let mut last_error = None;
        for address in known.into_iter().chain(bootstrap) {
            match self.broker(&address).await {
                Ok(broker) => return Ok(broker),
                // A broker that refuses our credentials or TLS refuses them everywhere.
                Err(error) if !error.is_retryable() => return Err(error),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::Config(format!(
                "no bootstrap server in {:?}",
                self.connection.bootstrap_servers
            ))
        }))
    }

    /// The connection to broker `id`, reading metadata when the id is not known yet.
    async fn node(&self, id: i32) -> Result<Arc<BrokerConnection>> {
        let known = self.topology().brokers.get(&id).cloned();
        let address = match known {
            Some(address) => address,
            None => {
                self.metadata(Some(&[])).await?;
                self.topology()
                    .brokers
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Error::Kafka {
                        operation: "find a broker",
                        message: format!(
                            "broker id {id} is not in the metadata of {}",
                            self.connection.bootstrap_servers
                        ),
                        retryable: true,
                    })?
            }
        };
        self.broker(&address).await
    }

    /// The controller (where topics are created and deleted).
    async fn controller(&self) -> Result<Arc<BrokerConnection>> {
        let controller = self.topology().controller;
        match controller {
            Some(id) if id >= 0 => self.node(id).await,
            _ => {
                let metadata = self.metadata(Some(&[])).await?;
                if metadata.controller_id.0 >= 0 {
                    self.node(metadata.controller_id.0).await
                } else {
                    self.any_broker().await
                }
            }
        }
    }

    /// Sends `request` to `broker` in the highest version both sides (and `wanted`) accept.
    async fn call<R: Request>(
        &self,
        broker: &BrokerConnection,
        request: &R,
        wanted: RangeInclusive<i16>,
    ) -> Result<R::Response> {
        let version = broker.version::<R>(self.capped::<R>(wanted))?;
        broker.send(request, version).await
    }

    /// The version `broker` would be asked `R` in.
    fn version_for<R: Request>(
        &self,
        broker: &BrokerConnection,
        wanted: RangeInclusive<i16>,
    ) -> Result<i16> {
        broker.version::<R>(self.capped::<R>(wanted))
    }

    fn capped<R: Request>(&self, wanted: RangeInclusive<i16>) -> RangeInclusive<i16> {
        match self.ceilings.get(&R::KEY) {
            Some(&ceiling) => *wanted.start()..=(*wanted.end()).min(ceiling),
            None => wanted,
        }
    }

    /// Metadata of `topics` (`None`: every topic; empty: brokers only), from any broker.
    /// Refreshes the known brokers and controller.
    async fn metadata(&self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|topic| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = self
            .retrying(|| async {
                let broker = self.any_broker().await?;
                self.call(&broker, &request, 4..=12).await
            })
            .await?;
        let mut topology = self.topology();
        topology.brokers = response
            .brokers
            .iter()
            .map(|broker| {
                (
                    broker.node_id.0,
                    format!("{}:{}", broker.host.as_str(), broker.port),
                )
            })
            .collect();
        topology.controller = Some(response.controller_id.0);
        drop(topology);
        Ok(response)
    }

    /// Tries `call` again while it fails with a retryable error, with a bounded backoff.
    async fn retrying<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match call().await {
                Err(error) if error.is_retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(%error, attempt, "retrying a cluster request");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn topology(&self) -> std::sync::MutexGuard<'_, Topology> {
        self.topology.lock().expect("lock poisoned")
    }
}

pub(crate) fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

pub(crate) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}
