//! Errors of the control-plane client, each naming the broker, the API and Kafka's error code,
//! in words that point at the fix.

use kafka_protocol::ResponseError;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::ApiKey;

use crate::error::Error;

/// Kafka's name of an API key, as its protocol guide spells it.
pub(crate) fn api_name(api_key: i16) -> String {
    ApiKey::try_from(api_key).map_or_else(|()| format!("API {api_key}"), |key| format!("{key:?}"))
}

/// Kafka's name of an error code, e.g. `NOT_COORDINATOR`.
pub(crate) fn error_name(code: i16) -> String {
    match code.err() {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_{code}"),
        Some(error) => screaming_snake_case(&format!("{error:?}")),
    }
}

fn screaming_snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (index, character) in camel.chars().enumerate() {
        if character.is_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(character.to_ascii_uppercase());
    }
    out
}

/// Error codes another attempt may not meet (as Kafka classifies them), plus the coordinator
/// moves this client retries itself.
pub(crate) fn is_retriable(code: i16) -> bool {
    code.err().is_some_and(|error| error.is_retriable())
}

pub(crate) const NOT_COORDINATOR: i16 = 16;
pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub(crate) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(crate) const GROUP_ID_NOT_FOUND: i16 = 69;
pub(crate) const TOPIC_ALREADY_EXISTS: i16 = 36;

/// The coordinator of a group moved or is still loading: find it again and retry.
pub(crate) fn coordinator_moved(code: i16) -> bool {
    matches!(
        code,
        NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS
    )
}

/// A broker answered `api` with error `code` for `subject`.
pub(crate) fn api_error(
    operation: &'static str,
    broker: &str,
    api: ApiKey,
    code: i16,
    subject: Option<&str>,
) -> Error {
    api_error_with(operation, broker, api, code, subject, None)
}

/// Like [`api_error`], with the broker's own message when it sent one.
pub(crate) fn api_error_with(
    operation: &'static str,
    broker: &str,
    api: ApiKey,
    code: i16,
    subject: Option<&str>,
    detail: Option<&str>,
) -> Error {
    let name = error_name(code);
    let subject = subject
        .map(|subject| format!(" for {subject}"))
        .unwrap_or_default();
    let detail = detail
        .filter(|detail| !detail.is_empty())
        .map(|detail| format!(": {detail}"))
        .unwrap_or_default();
    let hint = match code {
        // TOPIC_, GROUP_ and CLUSTER_AUTHORIZATION_FAILED
        29..=31 => {
            "; grant the function's principal the matching kafka-cluster action or ACL \
             (docs/configuration.md lists each request's permission)"
        }
        _ => "",
    };
    Error::Kafka {
        operation,
        message: format!(
            "{operation}: broker {broker} answered {api:?}{subject} with {name} (error {code}){detail}{hint}"
        ),
        retryable: is_retriable(code) || coordinator_moved(code),
    }
}

/// The connection to `broker` failed or closed.
pub(crate) fn transport_error(broker: &str, reason: &str) -> Error {
    Error::Kafka {
        operation: "reach a broker",
        message: format!("broker {broker}: {reason}"),
        retryable: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_broker_api_subject_and_kafkas_error_name() {
        let error = api_error(
            "commit offsets",
            "b-1:9098",
            ApiKey::OffsetCommit,
            NOT_COORDINATOR,
            Some("group payment-processor"),
        );
        assert!(error.is_retryable());
        assert_eq!(
            error.to_string(),
            "kafka: commit offsets: broker b-1:9098 answered OffsetCommit for group \
             payment-processor with NOT_COORDINATOR (error 16)"
        );
        let error = api_error(
            "read configs",
            "b-1:9098",
            ApiKey::DescribeConfigs,
            29,
            None,
        );
        assert!(!error.is_retryable());
        assert!(
            error.to_string().contains(
                "with TOPIC_AUTHORIZATION_FAILED (error 29); grant the function's principal"
            ),
            "{error}"
        );
        assert_eq!(error_name(9999), "UNKNOWN_9999");
    }
}
