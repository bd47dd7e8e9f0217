//! Turns [`KafkaSettings`] into a ready connection: the broker list (from MSK when given a
//! cluster ARN) and the secrets it names, fetched from Secrets Manager. The result builds
//! librdkafka configurations; its `Debug` never shows a secret.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use super::iam::MskIamTokenProvider;
use super::settings::{AuthMethod, CaSource, ClusterSource, KafkaSettings};
use crate::error::{Error, Result};

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TrustedCa {
    /// librdkafka probes the usual system locations (the vendored OpenSSL has none built in).
    SystemStore,
    File(String),
    Pem(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientCertificate {
    certificate_pem: String,
    private_key_pem: Secret,
    private_key_password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ScramCredentials {
    username: String,
    password: Secret,
}

/// A resolved connection to one cluster.
#[derive(Clone)]
pub struct KafkaConnection {
    pub bootstrap_servers: String,
    pub auth: AuthMethod,
    pub request_timeout: Duration,
    ca: TrustedCa,
    client_certificate: Option<ClientCertificate>,
    scram: Option<ScramCredentials>,
    iam: Option<Arc<MskIamTokenProvider>>,
}

impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("auth", &self.auth)
            .field("ca", &self.ca)
            .field("client_certificate", &self.client_certificate)
            .field("scram", &self.scram)
            .finish_non_exhaustive()
    }
}

impl KafkaConnection {
    /// A plaintext connection, for local brokers and tests.
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConnection {
            bootstrap_servers: bootstrap_servers.into(),
            auth: AuthMethod::Plaintext,
            request_timeout: Duration::from_secs(10),
            ca: TrustedCa::SystemStore,
            client_certificate: None,
            scram: None,
            iam: None,
        }
    }

    /// Resolves the broker list and fetches the secrets `settings` names. `iam` must be given
    /// when the method is `msk-iam`.
    pub async fn resolve(
        settings: &KafkaSettings,
        msk: &aws_sdk_kafka::Client,
        secrets: &aws_sdk_secretsmanager::Client,
        iam: Option<MskIamTokenProvider>,
    ) -> Result<Self> {
        let bootstrap_servers = match &settings.source {
            ClusterSource::Bootstrap(servers) => servers.clone(),
            ClusterSource::MskCluster(arn) => {
                msk_bootstrap_brokers(msk, arn, settings.auth).await?
            }
        };
        let ca = match &settings.ca {
            CaSource::SystemStore => TrustedCa::SystemStore,
            CaSource::File(path) => {
                if !std::path::Path::new(path).is_file() {
                    return Err(Error::Config(format!(
                        "TIDEMARK_KAFKA_TLS_CA_FILE={path:?} is not a readable file"
                    )));
                }
                TrustedCa::File(path.clone())
            }
            CaSource::Secret(arn) => {
                let secret: CaSecret = read_json_secret(secrets, arn).await?;
                TrustedCa::Pem(secret.certificate)
            }
        };
        let client_certificate = match &settings.client_cert_secret_arn {
            None => None,
            Some(arn) => {
                let secret: ClientCertificateSecret = read_json_secret(secrets, arn).await?;
                Some(ClientCertificate {
                    certificate_pem: secret.certificate,
                    private_key_pem: Secret(secret.private_key),
                    private_key_password: secret.private_key_password.map(Secret),
                })
            }
        };
        let scram = match &settings.scram_secret_arn {
            None => None,
            Some(arn) => {
                let secret: ScramSecret = read_json_secret(secrets, arn).await?;
                Some(ScramCredentials {
                    username: secret.username,
                    password: Secret(secret.password),
                })
            }
        };
        let iam = match (settings.auth, iam) {
            (AuthMethod::MskIam, Some(provider)) => Some(Arc::new(provider)),
            (AuthMethod::MskIam, None) => {
                return Err(Error::Config(
                    "TIDEMARK_KAFKA_AUTH=msk-iam needs AWS credentials and a region for signing"
                        .into(),
                ));
            }
            _ => None,
        };
        Ok(KafkaConnection {
            bootstrap_servers,
            auth: settings.auth,
            request_timeout: settings.request_timeout,
            ca,
            client_certificate,
            scram,
            iam,
        })
    }

    pub(crate) fn iam_token_provider(&self) -> Option<Arc<MskIamTokenProvider>> {
        self.iam.clone()
    }

    pub(crate) fn scram_credentials(&self) -> Option<(&str, &Secret)> {
        self.scram
            .as_ref()
            .map(|scram| (scram.username.as_str(), &scram.password))
    }

    /// The rustls configuration of the control-plane client, when the method uses TLS: the
    /// trusted CAs and, for mTLS, the client certificate chain and key.
    pub(crate) fn tls_client_config(&self) -> Result<Option<rustls::ClientConfig>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        if !self.auth.uses_tls() {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        let pem_roots = |pem: &[u8], origin: &str| -> Result<Vec<CertificateDer<'static>>> {
            let certificates = CertificateDer::pem_slice_iter(pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|error| {
                    Error::Config(format!("{origin}: not a PEM certificate bundle: {error}"))
                })?;
            if certificates.is_empty() {
                return Err(Error::Config(format!("{origin}: holds no PEM certificate")));
            }
            Ok(certificates)
        };
        let certificates = match &self.ca {
            TrustedCa::SystemStore => rustls_native_certs::load_native_certs().certs,
            TrustedCa::File(path) => {
                let pem = std::fs::read(path).map_err(|error| {
                    Error::Config(format!("TIDEMARK_KAFKA_TLS_CA_FILE={path:?}: {error}"))
                })?;
                pem_roots(&pem, &format!("TIDEMARK_KAFKA_TLS_CA_FILE={path:?}"))?
            }
            TrustedCa::Pem(pem) => pem_roots(pem.as_bytes(), "the CA secret's certificate")?,
        };
        let (added, _ignored) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(Error::Config(
                "no usable CA certificate to verify the brokers with".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Config(format!("TLS setup: {error}")))?
            .with_root_certificates(roots);
        let config = match &self.client_certificate {
            None => builder.with_no_client_auth(),
            Some(certificate) => {
                let origin = "TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN";
                let chain = pem_roots(certificate.certificate_pem.as_bytes(), origin)?;
                let pem = certificate.private_key_pem.expose();
                if certificate.private_key_password.is_some() || pem.contains("ENCRYPTED") {
                    return Err(Error::Config(format!(
                        "{origin}: the private key is encrypted; store it unencrypted in the \
                         secret (Secrets Manager encrypts the secret at rest)"
                    )));
                }
                let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|error| {
                    Error::Config(format!(
                        "{origin}: privateKey is not a PEM private key: {error}"
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| Error::Config(format!("{origin}: {error}")))?
            }
        };
        Ok(Some(config))
    }

    /// The librdkafka configuration shared by every client on this connection.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id)
            .set(
                "socket.connection.setup.timeout.ms",
                self.request_timeout.as_millis().to_string(),
            );
        let protocol = match self.auth {
            AuthMethod::Plaintext => "PLAINTEXT",
            AuthMethod::Tls | AuthMethod::MutualTls => "SSL",
            AuthMethod::ScramSha512 | AuthMethod::ScramSha256 | AuthMethod::MskIam => "SASL_SSL",
        };
        config.set("security.protocol", protocol);
        if self.auth.uses_tls() {
            match &self.ca {
                TrustedCa::SystemStore => config.set("ssl.ca.location", "probe"),
                TrustedCa::File(path) => config.set("ssl.ca.location", path),
                TrustedCa::Pem(pem) => config.set("ssl.ca.pem", pem),
            };
        }
        if let Some(certificate) = &self.client_certificate {
            config
                .set("ssl.certificate.pem", &certificate.certificate_pem)
                .set("ssl.key.pem", certificate.private_key_pem.expose());
            if let Some(password) = &certificate.private_key_password {
                config.set("ssl.key.password", password.expose());
            }
        }
        if let Some(scram) = &self.scram {
            let mechanism = match self.auth {
                AuthMethod::ScramSha256 => "SCRAM-SHA-256",
                _ => "SCRAM-SHA-512",
            };
            config
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", &scram.username)
                .set("sasl.password", scram.password.expose());
        }
        if self.auth == AuthMethod::MskIam {
            config.set("sasl.mechanism", "OAUTHBEARER");
        }
        config
    }
}

async fn msk_bootstrap_brokers(
    msk: &aws_sdk_kafka::Client,
    cluster_arn: &str,
    auth: AuthMethod,
) -> Result<String> {
    let output = msk
        .get_bootstrap_brokers()
        .cluster_arn(cluster_arn)
        .send()
        .await
        .map_err(crate::stores::aws_error(
            "kafka:GetBootstrapBrokers",
            cluster_arn,
        ))?;
    let (field, brokers) = match auth {
        AuthMethod::Plaintext => ("BootstrapBrokerString", output.bootstrap_broker_string()),
        AuthMethod::Tls | AuthMethod::MutualTls => (
            "BootstrapBrokerStringTls",
            output.bootstrap_broker_string_tls(),
        ),
        AuthMethod::ScramSha512 | AuthMethod::ScramSha256 => (
            "BootstrapBrokerStringSaslScram",
            output.bootstrap_broker_string_sasl_scram(),
        ),
        AuthMethod::MskIam => (
            "BootstrapBrokerStringSaslIam",
            output.bootstrap_broker_string_sasl_iam(),
        ),
    };
    match brokers.filter(|brokers| !brokers.is_empty()) {
        Some(brokers) => Ok(brokers.to_owned()),
        None => {
            let offered: Vec<&str> = [
                (output.bootstrap_broker_string(), "plaintext"),
                (output.bootstrap_broker_string_tls(), "tls or mtls"),
                (
                    output.bootstrap_broker_string_sasl_scram(),
                    "sasl-scram-sha-512",
                ),
                (output.bootstrap_broker_string_sasl_iam(), "msk-iam"),
            ]
            .into_iter()
            .filter(|(brokers, _)| brokers.is_some_and(|b| !b.is_empty()))
            .map(|(_, name)| name)
            .collect();
            Err(Error::Config(format!(
                "MSK cluster {cluster_arn} has no {field}: it does not accept TIDEMARK_KAFKA_AUTH={auth} (it offers: {})",
                if offered.is_empty() {
                    "nothing yet; is the cluster active?".to_owned()
                } else {
                    offered.join(", ")
                }
            )))
        }
    }
}

#[derive(Deserialize)]
struct CaSecret {
    certificate: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientCertificateSecret {
    certificate: String,
    private_key: String,
    #[serde(default)]
    private_key_password: Option<String>,
}

#[derive(Deserialize)]
struct ScramSecret {
    username: String,
    password: String,
}

/// Fetches a JSON secret. Errors name the secret and the missing field, never a value.
async fn read_json_secret<T: serde::de::DeserializeOwned>(
    secrets: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<T> {
    let output = secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(crate::stores::aws_error(
            "secretsmanager:GetSecretValue",
            arn,
        ))?;
    let text = output.secret_string().ok_or_else(|| {
        Error::Config(format!(
            "secret {arn} has no SecretString (binary secrets are not supported)"
        ))
    })?;
    serde_json::from_str(text).map_err(|error| {
        // serde's message names the field; strip the position, which could hint at values.
        let reason = error.to_string();
        let reason = reason.split(" at line").next().unwrap_or("not JSON");
        Error::Config(format!(
            "secret {arn} is not in the expected format: {reason}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_kafka::operation::get_bootstrap_brokers::GetBootstrapBrokersOutput;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;
    use crate::config::Env;

    const ARN: &str = "arn:aws:kafka:eu-west-1:123456789012:cluster/payments/0b1c2d3e-1";

    fn settings(pairs: &[(&str, &str)]) -> KafkaSettings {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KafkaSettings::from_env(&Env::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }))
        .unwrap()
    }

    fn msk_offering_tls_scram_and_iam() -> aws_sdk_kafka::Client {
        let rule = mock!(aws_sdk_kafka::Client::get_bootstrap_brokers)
            .match_requests(|request| request.cluster_arn() == Some(ARN))
            .then_output(|| {
                GetBootstrapBrokersOutput::builder()
                    .bootstrap_broker_string_tls("b-1.tls:9094,b-2.tls:9094")
                    .bootstrap_broker_string_sasl_scram("b-1.scram:9096,b-2.scram:9096")
                    .bootstrap_broker_string_sasl_iam("b-1.iam:9098,b-2.iam:9098")
                    .build()
            });
        mock_client!(
            aws_sdk_kafka,
            aws_smithy_mocks::RuleMode::MatchAny,
            &[&rule]
        )
    }

    fn secrets(value: &'static str) -> aws_sdk_secretsmanager::Client {
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .then_output(move || GetSecretValueOutput::builder().secret_string(value).build());
        mock_client!(
            aws_sdk_secretsmanager,
            aws_smithy_mocks::RuleMode::MatchAny,
            &[&rule]
        )
    }

    fn no_secrets() -> aws_sdk_secretsmanager::Client {
        secrets("{}")
    }

    #[tokio::test]
    async fn msk_brokers_are_chosen_by_the_auth_method() {
        let msk = msk_offering_tls_scram_and_iam();
        let tls = KafkaConnection::resolve(
            &settings(&[
                ("TIDEMARK_MSK_CLUSTER_ARN", ARN),
                ("TIDEMARK_KAFKA_AUTH", "tls"),
            ]),
            &msk,
            &no_secrets(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(tls.bootstrap_servers, "b-1.tls:9094,b-2.tls:9094");

        let scram = KafkaConnection::resolve(
            &settings(&[
                ("TIDEMARK_MSK_CLUSTER_ARN", ARN),
                ("TIDEMARK_KAFKA_AUTH", "sasl-scram-sha-512"),
                ("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", "arn:secret:scram"),
            ]),
            &msk,
            &secrets(r#"{"username": "backup", "password": "hunter2"}"#),
            None,
        )
        .await
        .unwrap();
        assert_eq!(scram.bootstrap_servers, "b-1.scram:9096,b-2.scram:9096");
        let debug = format!("{scram:?}");
        assert!(
            !debug.contains("hunter2"),
            "the password leaked into Debug: {debug}"
        );
        let config = scram.client_config("test");
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("backup"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("ssl.ca.location"), Some("probe"));

        let iam = KafkaConnection::resolve(
            &settings(&[
                ("TIDEMARK_MSK_CLUSTER_ARN", ARN),
                ("TIDEMARK_KAFKA_AUTH", "msk-iam"),
            ]),
            &msk,
            &no_secrets(),
            Some(MskIamTokenProvider::for_tests("eu-west-1")),
        )
        .await
        .unwrap();
        assert_eq!(iam.bootstrap_servers, "b-1.iam:9098,b-2.iam:9098");
        assert_eq!(
            iam.client_config("test").get("sasl.mechanism"),
            Some("OAUTHBEARER")
        );
    }

    #[tokio::test]
    async fn a_cluster_without_the_wanted_listener_is_a_clear_error() {
        let error = KafkaConnection::resolve(
            &settings(&[
                ("TIDEMARK_MSK_CLUSTER_ARN", ARN),
                ("TIDEMARK_KAFKA_AUTH", "plaintext"),
            ]),
            &msk_offering_tls_scram_and_iam(),
            &no_secrets(),
            None,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains(ARN), "{error}");
        assert!(error.contains("no BootstrapBrokerString"), "{error}");
        assert!(
            error.contains("tls or mtls, sasl-scram-sha-512, msk-iam"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_malformed_secret_names_the_field_and_hides_the_value() {
        let error = KafkaConnection::resolve(
            &settings(&[
                ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "b-1:9096"),
                ("TIDEMARK_KAFKA_AUTH", "sasl-scram-sha-256"),
                ("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", "arn:secret:scram"),
            ]),
            &msk_offering_tls_scram_and_iam(),
            &secrets(r#"{"user": "backup", "pass": "s3cr3t-value"}"#),
            None,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("arn:secret:scram"), "{error}");
        assert!(error.contains("missing field `username`"), "{error}");
        assert!(!error.contains("s3cr3t-value"), "{error}");
    }

    #[tokio::test]
    async fn mutual_tls_uses_the_event_source_mapping_secret_format() {
        let connection = KafkaConnection::resolve(
            &settings(&[
                ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "b-1:9094"),
                ("TIDEMARK_KAFKA_AUTH", "mtls"),
                ("TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN", "arn:secret:cert"),
            ]),
            &msk_offering_tls_scram_and_iam(),
            &secrets(
                r#"{"certificate": "CERT-PEM", "privateKey": "KEY-PEM", "privateKeyPassword": "pw"}"#,
            ),
            None,
        )
        .await
        .unwrap();
        let config = connection.client_config("test");
        assert_eq!(config.get("security.protocol"), Some("SSL"));
        assert_eq!(config.get("ssl.certificate.pem"), Some("CERT-PEM"));
        assert_eq!(config.get("ssl.key.pem"), Some("KEY-PEM"));
        assert_eq!(config.get("ssl.key.password"), Some("pw"));
        assert_eq!(config.get("sasl.mechanism"), None);
        assert!(!format!("{connection:?}").contains("KEY-PEM"));
    }

    #[test]
    fn plaintext_sets_no_tls_or_sasl() {
        let config = KafkaConnection::plaintext("127.0.0.1:9092").client_config("test");
        assert_eq!(config.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(config.get("ssl.ca.location"), None);
        assert_eq!(config.get("sasl.mechanism"), None);
    }
}
