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
    /// The cluster a function's own environment names (the `TIDEMARK_KAFKA_*` settings), as a
    /// request would name it; `None` when the environment names no cluster.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Option<TargetSpec> {
        if env.optional("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS").is_none()
            && env.optional("TIDEMARK_MSK_CLUSTER_ARN").is_none()
        {
            return None;
        }
        Some(TargetSpec {
            bootstrap_servers: env.optional("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS"),
            msk_cluster_arn: env.optional("TIDEMARK_MSK_CLUSTER_ARN"),
            auth: env.optional("TIDEMARK_KAFKA_AUTH").unwrap_or_default(),
            tls_ca_secret_arn: env.optional("TIDEMARK_KAFKA_TLS_CA_SECRET_ARN"),
            sasl_scram_secret_arn: env.optional("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN"),
            tls_client_cert_secret_arn: env.optional("TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN"),
            request_timeout_ms: env
                .optional("TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS")
                .and_then(|ms| ms.parse().ok()),
        })
    }

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

/// A Step Functions `Catch` result: the error name and its cause, as a failed state hands them
/// to the rollback path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error", default)]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl Failure {
    /// The reason in one line: a function error's message, a failed child execution's own
    /// cause and error, else the raw cause; the error name follows in parentheses.
    pub fn describe(&self) -> String {
        let parsed = serde_json::from_str::<serde_json::Value>(&self.cause).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|cause| cause.get(name))
                .and_then(|value| value.as_str())
                .map(str::to_owned)
        };
        // A failed child execution (DescribeExecution's fields): its own error and cause,
        // which may be a function error in turn.
        if let Some(cause) = field("Cause").or_else(|| field("cause")) {
            let error = field("Error")
                .or_else(|| field("error"))
                .unwrap_or_else(|| self.error.clone());
            return Failure { error, cause }.describe();
        }
        let message = field("errorMessage").unwrap_or_else(|| self.cause.clone());
        if self.error.is_empty() {
            message
        } else {
            format!("{message} ({})", self.error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_described_by_the_innermost_cause() {
        let child = Failure {
            error: "States.TaskFailed".into(),
            cause: serde_json::json!({
                "Status": "FAILED",
                "Error": "Tidemark.OffsetResetFailed",
                "Cause": "ApplyOffsets failed: group ledger: connection lost. Rollback: ...",
            })
            .to_string(),
        };
        assert_eq!(
            child.describe(),
            "ApplyOffsets failed: group ledger: connection lost. Rollback: ... (Tidemark.OffsetResetFailed)"
        );
        let function = Failure {
            error: "Tidemark.Refused".into(),
            cause: r#"{"errorType":"Tidemark.Refused","errorMessage":"no such backup"}"#.into(),
        };
        assert_eq!(function.describe(), "no such backup (Tidemark.Refused)");
        let plain = Failure {
            error: "States.Timeout".into(),
            cause: "timed out".into(),
        };
        assert_eq!(plain.describe(), "timed out (States.Timeout)");
        let child_refused = Failure {
            error: "States.TaskFailed".into(),
            cause: serde_json::json!({
                "Error": "Tidemark.Refused",
                "Cause": r#"{"errorType":"Tidemark.Refused","errorMessage":"group g is active"}"#,
            })
            .to_string(),
        };
        assert_eq!(
            child_refused.describe(),
            "group g is active (Tidemark.Refused)"
        );
    }
}
