//! How to reach a cluster and authenticate, read once from the environment. Secrets are named
//! here (Secrets Manager ARNs), never held: they are fetched when the connection is resolved.

use std::fmt;
use std::time::Duration;

use crate::config::Env;
use crate::error::{Error, Result};

/// Where the broker list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// `TIDEMARK_KAFKA_BOOTSTRAP_SERVERS`: `host:port` pairs, comma separated.
    Bootstrap(String),
    /// `TIDEMARK_MSK_CLUSTER_ARN`: resolved with MSK `GetBootstrapBrokers`, picking the broker
    /// list that matches the authentication.
    MskCluster(String),
}

/// `TIDEMARK_KAFKA_AUTH`: how the client authenticates. Each maps to one MSK broker list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No TLS, no SASL: local brokers only.
    Plaintext,
    /// TLS, the server verified against a CA bundle (or the system store).
    Tls,
    /// TLS with a client certificate (`TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN`).
    MutualTls,
    /// SASL/SCRAM-SHA-512 over TLS, credentials from Secrets Manager (what MSK offers).
    ScramSha512,
    /// SASL/SCRAM-SHA-256 over TLS.
    ScramSha256,
    /// MSK IAM: SASL/OAUTHBEARER with a SigV4-signed token, over TLS.
    MskIam,
}

impl AuthMethod {
    pub const NAMES: &'static str =
        "plaintext, tls, mtls, sasl-scram-sha-512, sasl-scram-sha-256 or msk-iam";

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "plaintext" => AuthMethod::Plaintext,
            "tls" => AuthMethod::Tls,
            "mtls" => AuthMethod::MutualTls,
            "sasl-scram-sha-512" => AuthMethod::ScramSha512,
            "sasl-scram-sha-256" => AuthMethod::ScramSha256,
            "msk-iam" => AuthMethod::MskIam,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Plaintext => "plaintext",
            AuthMethod::Tls => "tls",
            AuthMethod::MutualTls => "mtls",
            AuthMethod::ScramSha512 => "sasl-scram-sha-512",
            AuthMethod::ScramSha256 => "sasl-scram-sha-256",
            AuthMethod::MskIam => "msk-iam",
        }
    }

    pub fn uses_tls(self) -> bool {
        self != AuthMethod::Plaintext
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the CA bundle that verifies the brokers comes from. Without one, TLS uses the
/// system's trust store (enough for MSK, whose certificates chain to Amazon's public CAs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    SystemStore,
    /// `TIDEMARK_KAFKA_TLS_CA_FILE`: a PEM file.
    File(String),
    /// `TIDEMARK_KAFKA_TLS_CA_SECRET_ARN`: a secret shaped like the event source mapping's
    /// `SERVER_ROOT_CA_CERTIFICATE`: `{"certificate": "-----BEGIN CERTIFICATE-----..."}`.
    Secret(String),
}

/// Everything needed to connect, before secrets and broker lists are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub source: ClusterSource,
    pub auth: AuthMethod,
    pub ca: CaSource,
    /// `TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN`: `{"username": ..., "password": ...}`, the format
    /// MSK and the event source mapping use.
    pub scram_secret_arn: Option<String>,
    /// `TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN`: `{"certificate": PEM chain, "privateKey":
    /// PEM, "privateKeyPassword": optional}`, the event source mapping's
    /// `CLIENT_CERTIFICATE_TLS_AUTH` format.
    pub client_cert_secret_arn: Option<String>,
    /// `TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS`: how long one cluster request may take (default 10 s).
    pub request_timeout: Duration,
}

impl KafkaSettings {
    /// The settings when a cluster is named (`TIDEMARK_KAFKA_BOOTSTRAP_SERVERS` or
    /// `TIDEMARK_MSK_CLUSTER_ARN`), for functions that use a cluster only if given one.
    pub fn from_env_if_set<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Self>> {
        let named = env.optional("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS").is_some()
            || env.optional("TIDEMARK_MSK_CLUSTER_ARN").is_some();
        named.then(|| Self::from_env(env)).transpose()
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self> {
        let bootstrap = env.optional("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS");
        let cluster_arn = env.optional("TIDEMARK_MSK_CLUSTER_ARN");
        let source = match (bootstrap, cluster_arn) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set either TIDEMARK_KAFKA_BOOTSTRAP_SERVERS or TIDEMARK_MSK_CLUSTER_ARN, not both"
                        .into(),
                ));
            }
            (None, None) => {
                return Err(Error::Config(
                    "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS or TIDEMARK_MSK_CLUSTER_ARN is required"
                        .into(),
                ));
            }
            (Some(servers), None) => ClusterSource::Bootstrap(parse_bootstrap(&servers)?),
            (None, Some(arn)) => ClusterSource::MskCluster(parse_msk_arn(&arn)?),
        };

        let raw_auth = env.required("TIDEMARK_KAFKA_AUTH")?;
        let auth = AuthMethod::parse(raw_auth.trim()).ok_or_else(|| {
            Error::Config(format!(
                "TIDEMARK_KAFKA_AUTH={raw_auth:?} is not valid: expected {}",
                AuthMethod::NAMES
            ))
        })?;

        let ca = match (
            env.optional("TIDEMARK_KAFKA_TLS_CA_FILE"),
            env.optional("TIDEMARK_KAFKA_TLS_CA_SECRET_ARN"),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "set either TIDEMARK_KAFKA_TLS_CA_FILE or TIDEMARK_KAFKA_TLS_CA_SECRET_ARN, not both"
                        .into(),
                ));
            }
            (Some(path), None) => CaSource::File(path),
            (None, Some(arn)) => CaSource::Secret(arn),
            (None, None) => CaSource::SystemStore,
        };
        if !auth.uses_tls() && ca != CaSource::SystemStore {
            return Err(Error::Config(
                "a TLS CA is set but TIDEMARK_KAFKA_AUTH=plaintext does not use TLS".into(),
            ));
        }

        let scram_secret_arn = env.optional("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN");
        let is_scram = matches!(auth, AuthMethod::ScramSha512 | AuthMethod::ScramSha256);
        match (is_scram, &scram_secret_arn) {
            (true, None) => {
                return Err(Error::Config(format!(
                    "TIDEMARK_KAFKA_AUTH={auth} needs TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN"
                )));
            }
            (false, Some(_)) => {
                return Err(Error::Config(format!(
                    "TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN is set but TIDEMARK_KAFKA_AUTH={auth} does not use SCRAM"
                )));
            }
            _ => {}
        }

        let client_cert_secret_arn = env.optional("TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN");
        match (auth == AuthMethod::MutualTls, &client_cert_secret_arn) {
            (true, None) => {
                return Err(Error::Config(
                    "TIDEMARK_KAFKA_AUTH=mtls needs TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN"
                        .into(),
                ));
            }
            (false, Some(_)) => {
                return Err(Error::Config(format!(
                    "TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN is set but TIDEMARK_KAFKA_AUTH={auth} does not use client certificates"
                )));
            }
            _ => {}
        }

        let timeout_ms: u64 = env.parsed(
            "TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS",
            10_000,
            "milliseconds, 100 to 300000",
        )?;
        if !(100..=300_000).contains(&timeout_ms) {
            return Err(Error::Config(format!(
                "TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS={timeout_ms} is not valid: expected milliseconds, 100 to 300000"
            )));
        }

        Ok(KafkaSettings {
            source,
            auth,
            ca,
            scram_secret_arn,
            client_cert_secret_arn,
            request_timeout: Duration::from_millis(timeout_ms),
        })
    }
}

fn parse_bootstrap(raw: &str) -> Result<String> {
    let servers: Vec<&str> = raw.split(',').map(str::trim).collect();
    for server in &servers {
        let valid = server
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(Error::Config(format!(
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS={raw:?} is not valid: {server:?} is not host:port"
            )));
        }
    }
    Ok(servers.join(","))
}

/// `arn:aws:kafka:{region}:{account}:cluster/{name}/{uuid}` (any partition).
fn parse_msk_arn(raw: &str) -> Result<String> {
    let arn = raw.trim();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "kafka"
        && !parts[3].is_empty()
        && parts[5].starts_with("cluster/");
    if !valid {
        return Err(Error::Config(format!(
            "TIDEMARK_MSK_CLUSTER_ARN={raw:?} is not an MSK cluster ARN (arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/ID)"
        )));
    }
    Ok(arn.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<KafkaSettings> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KafkaSettings::from_env(&Env::from_lookup(move |name| map.get(name).cloned()))
    }

    const ARN: &str = "arn:aws:kafka:eu-west-1:123456789012:cluster/payments/0b1c2d3e-1";

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn every_auth_method_parses_with_what_it_needs() {
        let cases: [(&str, Pairs<'_>, AuthMethod); 6] = [
            ("plaintext", &[], AuthMethod::Plaintext),
            ("tls", &[], AuthMethod::Tls),
            (
                "mtls",
                &[("TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN", "arn:cert")],
                AuthMethod::MutualTls,
            ),
            (
                "sasl-scram-sha-512",
                &[("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", "arn:scram")],
                AuthMethod::ScramSha512,
            ),
            (
                "sasl-scram-sha-256",
                &[("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", "arn:scram")],
                AuthMethod::ScramSha256,
            ),
            ("msk-iam", &[], AuthMethod::MskIam),
        ];
        for (name, extra, expected) in cases {
            let mut pairs = vec![
                ("TIDEMARK_MSK_CLUSTER_ARN", ARN),
                ("TIDEMARK_KAFKA_AUTH", name),
            ];
            pairs.extend_from_slice(extra);
            let parsed = settings(&pairs).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(parsed.auth, expected);
            assert_eq!(parsed.auth.name(), name);
            assert_eq!(parsed.source, ClusterSource::MskCluster(ARN.into()));
            assert_eq!(parsed.ca, CaSource::SystemStore);
            assert_eq!(parsed.request_timeout, Duration::from_secs(10));
        }
    }

    #[test]
    fn bootstrap_servers_are_checked_and_normalised() {
        let parsed = settings(&[
            ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "b-1:9092, b-2:9092"),
            ("TIDEMARK_KAFKA_AUTH", "plaintext"),
        ])
        .unwrap();
        assert_eq!(
            parsed.source,
            ClusterSource::Bootstrap("b-1:9092,b-2:9092".into())
        );
    }

    #[test]
    fn each_bad_setting_is_named_in_the_error() {
        let cases: [(Pairs<'_>, &str); 11] = [
            (
                &[("TIDEMARK_KAFKA_AUTH", "tls")],
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS or TIDEMARK_MSK_CLUSTER_ARN is required",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_MSK_CLUSTER_ARN", ARN),
                    ("TIDEMARK_KAFKA_AUTH", "tls"),
                ],
                "not both",
            ),
            (
                &[("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1,b")],
                "\"b\" is not host:port",
            ),
            (
                &[
                    ("TIDEMARK_MSK_CLUSTER_ARN", "arn:aws:s3:::bucket"),
                    ("TIDEMARK_KAFKA_AUTH", "tls"),
                ],
                "TIDEMARK_MSK_CLUSTER_ARN",
            ),
            (
                &[("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1")],
                "TIDEMARK_KAFKA_AUTH is required",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_KAFKA_AUTH", "kerberos"),
                ],
                "TIDEMARK_KAFKA_AUTH=\"kerberos\"",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_KAFKA_AUTH", "sasl-scram-sha-512"),
                ],
                "needs TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_KAFKA_AUTH", "mtls"),
                ],
                "needs TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_KAFKA_AUTH", "tls"),
                    ("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", "x"),
                ],
                "does not use SCRAM",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_KAFKA_AUTH", "plaintext"),
                    ("TIDEMARK_KAFKA_TLS_CA_FILE", "/ca.pem"),
                ],
                "does not use TLS",
            ),
            (
                &[
                    ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "a:1"),
                    ("TIDEMARK_KAFKA_AUTH", "tls"),
                    ("TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS", "5"),
                ],
                "TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS=5",
            ),
        ];
        for (pairs, expected) in cases {
            let error = settings(pairs).unwrap_err().to_string();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }
}
