//! Opening an authenticated broker connection: TCP, then TLS (rustls) when the method uses it,
//! then ApiVersions, then SASL: SCRAM-SHA-256/512 (rsasl) or OAUTHBEARER with a freshly signed
//! MSK IAM token (every connection signs its own, so no token outlives its credentials).

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::broker::{BrokerConnection, Stream};
use super::errors::{api_error_with, error_name};
use crate::error::{Error, Result};
use crate::kafka::connection::KafkaConnection;
use crate::kafka::settings::AuthMethod;

/// Connects, negotiates versions and authenticates to `address` (`host:port`).
pub(crate) async fn open(
    address: &str,
    connection: &KafkaConnection,
    tls: Option<&TlsConnector>,
    client_id: &str,
) -> Result<BrokerConnection> {
    let timeout = connection.request_timeout;
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| {
            unreachable(
                address,
                connection,
                &format!("no TCP connection within {timeout:?}"),
            )
        })?
        .map_err(|error| unreachable(address, connection, &error.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|error| tls_error(address, connection, &error.to_string()))?;
            let stream = tokio::time::timeout(timeout, tls.connect(name, tcp))
                .await
                .map_err(|_| tls_error(address, connection, "no TLS handshake within the timeout"))?
                .map_err(|error| tls_error(address, connection, &error.to_string()))?;
            Box::new(stream)
        }
    };
    let broker = BrokerConnection::start(address, stream, client_id, timeout);
    broker.negotiate_versions().await?;
    if let Some(lifetime) = authenticate(&broker, connection).await? {
        broker.session_lasts(lifetime);
    }
    Ok(broker)
}

/// Runs the SASL exchange the connection's method needs; returns the session's lifetime when
/// the broker limits it.
async fn authenticate(
    broker: &BrokerConnection,
    connection: &KafkaConnection,
) -> Result<Option<Duration>> {
    let mechanism = match connection.auth {
        AuthMethod::Plaintext | AuthMethod::Tls | AuthMethod::MutualTls => return Ok(None),
        AuthMethod::ScramSha512 => "SCRAM-SHA-512",
        AuthMethod::ScramSha256 => "SCRAM-SHA-256",
        AuthMethod::MskIam => "OAUTHBEARER",
    };
    let version = broker.version::<SaslHandshakeRequest>(1..=1)?;
    let handshake = broker
        .send(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
            version,
        )
        .await?;
    if handshake.error_code != 0 {
        let offered: Vec<&str> = handshake
            .mechanisms
            .iter()
            .map(|name| name.as_str())
            .collect();
        return Err(authentication_error(
            broker,
            connection,
            &format!(
                "the broker does not offer {mechanism} ({}; it offers {})",
                error_name(handshake.error_code),
                if offered.is_empty() {
                    "nothing".to_owned()
                } else {
                    offered.join(", ")
                }
            ),
        ));
    }
    let mut lifetime = None;
    if connection.auth == AuthMethod::MskIam {
        let provider = connection.iam_token_provider().ok_or_else(|| {
            Error::Config("TIDEMARK_KAFKA_AUTH=msk-iam needs AWS credentials to sign tokens".into())
        })?;
        let token = provider.fresh_token().await?;
        // RFC 7628's initial client response: no authorization id, the bearer token.
        let message = format!("n,,\x01auth=Bearer {}\x01\x01", token.value.expose());
        lifetime = sasl_round(broker, connection, message.into_bytes())
            .await?
            .1;
    } else {
        let (username, password) = connection.scram_credentials().ok_or_else(|| {
            Error::Config(format!(
                "TIDEMARK_KAFKA_AUTH={} needs TIDEMARK_KAFKA_SCRAM_SECRET_ARN",
                connection.auth
            ))
        })?;
        let config =
            SASLConfig::with_credentials(None, username.to_owned(), password.expose().to_owned())
                .map_err(|error| authentication_error(broker, connection, &error.to_string()))?;
        let name = Mechname::parse(mechanism.as_bytes())
            .map_err(|error| authentication_error(broker, connection, &error.to_string()))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|error| authentication_error(broker, connection, &error.to_string()))?;
        let mut input: Option<Bytes> = None;
        loop {
            let mut out = Cursor::new(Vec::new());
            let state = session
                .step(input.as_deref(), &mut out)
                .map_err(|error| authentication_error(broker, connection, &error.to_string()))?;
            match state {
                State::Running => {
                    let (answer, session_lifetime) =
                        sasl_round(broker, connection, out.into_inner()).await?;
                    input = Some(answer);
                    lifetime = session_lifetime.or(lifetime);
                }
                // The server's final message was checked (SCRAM verifies the server too).
                State::Finished(_) => break,
            }
        }
    }
    Ok(lifetime)
}

/// One SaslAuthenticate exchange: our bytes, the broker's answer and session lifetime.
async fn sasl_round(
    broker: &BrokerConnection,
    connection: &KafkaConnection,
    bytes: Vec<u8>,
) -> Result<(Bytes, Option<Duration>)> {
    let version = broker.version::<SaslAuthenticateRequest>(0..=2)?;
    let answer = broker
        .send(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
            version,
        )
        .await?;
    if answer.error_code != 0 {
        let reason = api_error_with(
            "authenticate",
            &broker.address,
            ApiKey::SaslAuthenticate,
            answer.error_code,
            None,
            answer
                .error_message
                .as_ref()
                .map(|message| message.as_str()),
        );
        return Err(authentication_error(
            broker,
            connection,
            &reason.to_string(),
        ));
    }
    let lifetime = (answer.session_lifetime_ms > 0)
        .then(|| Duration::from_millis(answer.session_lifetime_ms as u64));
    Ok((answer.auth_bytes, lifetime))
}

fn unreachable(address: &str, connection: &KafkaConnection, reason: &str) -> Error {
    Error::Kafka {
        operation: "connect to a broker",
        message: format!(
            "cannot reach broker {address} of {} ({}): {reason}",
            connection.bootstrap_servers, connection.auth
        ),
        retryable: true,
    }
}

fn tls_error(address: &str, connection: &KafkaConnection, reason: &str) -> Error {
    Error::Kafka {
        operation: "connect to a broker",
        message: format!(
            "TLS to {address} failed ({}): {reason}; check the CA bundle and the broker's certificate",
            connection.auth
        ),
        retryable: false,
    }
}

fn authentication_error(
    broker: &BrokerConnection,
    connection: &KafkaConnection,
    reason: &str,
) -> Error {
    Error::Kafka {
        operation: "authenticate",
        message: format!(
            "authentication to {} failed ({}): {reason}; check the credentials",
            broker.address, connection.auth
        ),
        retryable: false,
    }
}

/// The TLS client of a connection whose method uses TLS.
pub(crate) fn tls_connector(connection: &KafkaConnection) -> Result<Option<TlsConnector>> {
    Ok(connection
        .tls_client_config()?
        .map(|config| TlsConnector::from(Arc::new(config))))
}
