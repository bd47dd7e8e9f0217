//! Pieces of the operator requests both state machines take (restore and offset reset):
//! the target cluster and moments in time. Errors name the request field, never an
//! environment variable.

use serde::{Deserialize, Serialize};

use crate::config::Env;
use crate::kafka::KafkaSettings;

/// Which cluster to change. The same choices as the functions' own cluster settings
/// (`docs/configuration.md`), given per request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msk_cluster_arn: Option<String>,
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_secret_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_scram_secret_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_secret_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
}

/// Each request field and the environment variable the shared settings parser knows it by.
const TARGET_FIELDS: [(&str, &str); 7] = [
    (
        "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
        "target.bootstrap_servers",
    ),
    ("TIDEMARK_MSK_CLUSTER_ARN", "target.msk_cluster_arn"),
    ("TIDEMARK_KAFKA_AUTH", "target.auth"),
    (
        "TIDEMARK_KAFKA_TLS_CA_SECRET_ARN",
        "target.tls_ca_secret_arn",
    ),
    (
        "TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN",
        "target.sasl_scram_secret_arn",
    ),
    (
        "TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN",
        "target.tls_client_cert_secret_arn",
    ),
    (
        "TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS",
        "target.request_timeout_ms",
    ),
];

impl TargetSpec {
    /// The connection settings, validated by the same rules as the functions' environment.
    /// The error names the request fields.
    pub fn settings(&self) -> Result<KafkaSettings, String> {
        let value = |name: &str| -> Option<String> {
            match name {
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS" => self.bootstrap_servers.clone(),
                "TIDEMARK_MSK_CLUSTER_ARN" => self.msk_cluster_arn.clone(),
                "TIDEMARK_KAFKA_AUTH" => Some(self.auth.clone()),
                "TIDEMARK_KAFKA_TLS_CA_SECRET_ARN" => self.tls_ca_secret_arn.clone(),
                "TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN" => self.sasl_scram_secret_arn.clone(),
                "TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN" => {
                    self.tls_client_cert_secret_arn.clone()
                }
                "TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS" => {
                    self.request_timeout_ms.map(|ms| ms.to_string())
                }
                _ => None,
            }
        };
        KafkaSettings::from_env(&Env::from_lookup(value)).map_err(|error| {
            let mut message = error.to_string();
            for (variable, field) in TARGET_FIELDS {
                message = message.replace(variable, field);
            }
            message.replace("invalid configuration: ", "")
        })
    }
}

/// A moment: RFC 3339 text (`2026-11-22T14:29:00Z`) or milliseconds since the epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeValue {
    Millis(i64),
    Text(String),
}

impl TimeValue {
    /// Milliseconds since the epoch; the error names `field`.
    pub fn to_millis(&self, field: &str) -> Result<i64, String> {
        match self {
            TimeValue::Millis(ms) if *ms >= 0 => Ok(*ms),
            TimeValue::Millis(ms) => Err(format!("{field}: {ms} is before 1970")),
            TimeValue::Text(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| time.timestamp_millis())
                .map_err(|error| {
                    format!(
                        "{field}: {text:?} is not an RFC 3339 time like 2026-11-22T14:29:00Z ({error})"
                    )
                }),
        }
    }
}
