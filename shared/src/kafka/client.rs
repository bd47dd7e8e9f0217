//! librdkafka clients on a [`KafkaConnection`], for the data path only (the bridge's consumer,
//! the restore's producer and its read-back): the context that supplies MSK IAM tokens and
//! remembers the last broker error, and the mapping of failures to errors a person can act on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::connection::KafkaConnection;
use super::iam::MskIamTokenProvider;
use crate::error::{Error, Result};

/// Context of every Tidemark client: answers OAUTHBEARER refreshes with MSK IAM tokens and
/// keeps the latest broker-level error, so a timeout can say *why* nothing answered.
pub struct ClusterContext {
    iam: Option<Arc<MskIamTokenProvider>>,
    last_error: Mutex<Option<String>>,
}

impl ClusterContext {
    pub fn new(connection: &KafkaConnection) -> Self {
        ClusterContext {
            iam: connection.iam_token_provider(),
            last_error: Mutex::new(None),
        }
    }

    fn remember(&self, error: String) {
        *self.last_error.lock().expect("lock poisoned") = Some(error);
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("lock poisoned").clone()
    }
}

impl ClientContext for ClusterContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility, "{message}");
                // librdkafka says why a broker failed (refused, TLS, SASL) only in its log.
                if facility == "FAIL" {
                    self.remember(message.to_owned());
                }
            }
            _ => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason, "broker error");
        // "n/n brokers are down" follows the error that says why; keep the why.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            self.remember(reason.to_owned());
        }
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> std::result::Result<OAuthToken, Box<dyn std::error::Error>> {
        let provider = self
            .iam
            .as_ref()
            .ok_or("OAUTHBEARER is only used with TIDEMARK_KAFKA_AUTH=msk-iam")?;
        let token = provider.token()?;
        Ok(OAuthToken {
            token: token.value.expose().to_owned(),
            principal_name: "tidemark".to_owned(),
            lifetime_ms: token.expires_at_ms,
        })
    }
}

impl ConsumerContext for ClusterContext {}

pub type ClusterConsumer = BaseConsumer<ClusterContext>;

/// A consumer that never subscribes: for metadata, watermarks and, with `group`, reading that
/// group's committed offsets without joining it.
pub fn consumer(
    connection: &KafkaConnection,
    client_id: &str,
    group: Option<&str>,
) -> Result<ClusterConsumer> {
    let mut config = connection.client_config(client_id);
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Watermarks are log-end offsets, not the last stable offset.
        .set("isolation.level", "read_uncommitted");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    let consumer: ClusterConsumer = config
        .create_with_context(ClusterContext::new(connection))
        .map_err(|error| client_creation_error(connection, error))?;
    // Serves the initial OAUTHBEARER token request before the first broker call needs it.
    serve_events(&consumer);
    Ok(consumer)
}

/// Handles queued client events (token refreshes, errors, logs) without waiting. A poll with
/// no timeout serves at most one event and says `None` for both "served one" and "empty", so
/// this polls a bounded number of times.
pub fn serve_events(consumer: &ClusterConsumer) {
    for _ in 0..256 {
        if let Some(Err(error)) = consumer.poll(Duration::ZERO) {
            tracing::debug!(%error, "client event");
        }
    }
}

/// Closes a consumer that has a group id. rust-rdkafka's `Drop` waits in 100 ms polls for the
/// close to finish, which made reading one group's offsets take ~100 ms instead of ~3 ms.
pub fn close(consumer: ClusterConsumer) {
    if consumer.close_queue().is_ok() {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !consumer.closed() && std::time::Instant::now() < deadline {
            consumer.poll(Duration::from_millis(1));
        }
    }
}

fn client_creation_error(connection: &KafkaConnection, error: KafkaError) -> Error {
    Error::Kafka {
        operation: "create client",
        message: format!(
            "cannot configure a client for {} ({}): {error}",
            connection.bootstrap_servers, connection.auth
        ),
        retryable: false,
    }
}

/// What went wrong, in words that point at the fix. Reads the broker errors the client saw.
pub fn describe_failure(
    operation: &'static str,
    connection: &KafkaConnection,
    consumer: Option<&ClusterConsumer>,
    error: KafkaError,
) -> Error {
    if let Some(consumer) = consumer {
        serve_events(consumer);
    }
    let seen = consumer.and_then(|consumer| consumer.context().last_error());
    let code = error.rdkafka_error_code();
    let text = format!("{error} {}", seen.as_deref().unwrap_or_default()).to_lowercase();
    let servers = &connection.bootstrap_servers;
    let auth = connection.auth;
    let detail = seen.unwrap_or_else(|| error.to_string());

    let authorization = matches!(
        code,
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    );
    let (message, retryable) = if authorization {
        (
            format!(
                "not authorized to {operation} on {servers}: {error}; grant the function's principal \
                 the matching kafka-cluster or ACL permission (Describe on topics and groups, \
                 DescribeConfigs on topics)"
            ),
            false,
        )
    } else if matches!(
        code,
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
    ) || text.contains("authentication")
        || text.contains("sasl")
    {
        (
            format!("authentication to {servers} failed ({auth}): {detail}; check the credentials"),
            false,
        )
    } else if code == Some(RDKafkaErrorCode::SSL)
        || text.contains("ssl")
        || text.contains("certificate")
    {
        (
            format!(
                "TLS to {servers} failed ({auth}): {detail}; check the CA bundle and the broker's certificate"
            ),
            false,
        )
    } else if matches!(
        code,
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::Resolve
        )
    ) || text.contains("connect")
    {
        (
            format!(
                "cannot reach any broker of {servers} within {:?}: {detail}",
                connection.request_timeout
            ),
            true,
        )
    } else {
        (format!("{operation} on {servers} failed: {detail}"), true)
    };
    Error::Kafka {
        operation,
        message,
        retryable,
    }
}

/// A consumed message as Tidemark stores it: key, value, headers (order, duplicates, null
/// values), timestamp and timestamp type, offset.
/// A message's timestamp and its type; Kafka's "no timestamp" is -1.
pub fn timestamp_of<M: rdkafka::Message>(message: &M) -> (i64, crate::segment::TimestampType) {
    use crate::segment::TimestampType;
    match message.timestamp() {
        rdkafka::Timestamp::CreateTime(ms) => (ms, TimestampType::CreateTime),
        rdkafka::Timestamp::LogAppendTime(ms) => (ms, TimestampType::LogAppendTime),
        rdkafka::Timestamp::NotAvailable => (-1, TimestampType::NoTimestampType),
    }
}

pub fn record_from_message<M: rdkafka::Message>(message: &M) -> crate::segment::Record {
    use crate::segment::{Header, Record};
    use rdkafka::message::Headers;
    let (timestamp, timestamp_type) = timestamp_of(message);
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| Header {
                    key: header.key.to_owned(),
                    value: header.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        offset: message.offset(),
        timestamp,
        timestamp_type,
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// A blocking cluster call's task that did not finish (panicked or cancelled).
pub fn join_error(error: tokio::task::JoinError) -> Error {
    Error::Kafka {
        operation: "blocking cluster call",
        message: error.to_string(),
        retryable: true,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError;

    use super::*;

    fn failure(error: KafkaError) -> (String, bool) {
        let connection = KafkaConnection::plaintext("b-1:9092,b-2:9092");
        match describe_failure("read committed offsets", &connection, None, error) {
            Error::Kafka {
                message, retryable, ..
            } => (message, retryable),
            other => panic!("not a kafka error: {other}"),
        }
    }

    #[test]
    fn missing_permissions_name_what_to_grant_and_are_permanent() {
        for code in [
            RDKafkaErrorCode::GroupAuthorizationFailed,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
        ] {
            let (message, retryable) = failure(KafkaError::MetadataFetch(code));
            assert!(
                message
                    .starts_with("not authorized to read committed offsets on b-1:9092,b-2:9092"),
                "{message}"
            );
            assert!(
                message.contains("grant the function's principal"),
                "{message}"
            );
            assert!(!retryable);
        }
    }

    #[test]
    fn unreachable_brokers_are_retryable_and_authentication_is_not() {
        let (message, retryable) =
            failure(KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown));
        assert!(
            message.starts_with("cannot reach any broker of b-1:9092,b-2:9092 within 10s"),
            "{message}"
        );
        assert!(retryable);
        let (message, retryable) = failure(KafkaError::MetadataFetch(
            RDKafkaErrorCode::SaslAuthenticationFailed,
        ));
        assert!(
            message.starts_with("authentication to b-1:9092,b-2:9092 failed (plaintext)"),
            "{message}"
        );
        assert!(!retryable);
    }
}
