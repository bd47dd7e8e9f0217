//! MSK IAM authentication: SASL/OAUTHBEARER whose token is a SigV4-presigned
//! `kafka-cluster:Connect` request, base64url-encoded, as AWS's MSK IAM signer libraries make it.
//! librdkafka asks for a new token at 80% of the lifetime we report, so the token is renewed
//! before it expires; the lifetime never outlasts the credentials that signed it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::connection::Secret;
use crate::error::{Error, Result};

/// How long a presigned token is valid, as the AWS signer libraries set it.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(900);
const SIGNING_NAME: &str = "kafka-cluster";
const USER_AGENT: &str = concat!("tidemark/", env!("CARGO_PKG_VERSION"));

/// A token and the moment (Unix ms) after which the broker will refuse it.
#[derive(Debug, Clone)]
pub struct MskIamToken {
    pub value: Secret,
    pub expires_at_ms: i64,
}

/// Signs `kafka-cluster:Connect` for `region` with `credentials` at `signing_time`.
pub fn sign_token(
    credentials: &Credentials,
    region: &str,
    signing_time: SystemTime,
) -> Result<MskIamToken> {
    let host = format!("kafka.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=kafka-cluster%3AConnect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_VALIDITY);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(signing_time)
        .settings(settings)
        .build()
        .map_err(|error| signing_error(error.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|error| signing_error(error.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|error| signing_error(error.to_string()))?
        .into_parts();
    let mut presigned = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .map_err(|error| signing_error(error.to_string()))?;
    instructions.apply_to_request_http1x(&mut presigned);
    // The signer libraries append the user agent after signing; brokers ignore it in the check.
    let token_url = format!("{}&User-Agent={USER_AGENT}", presigned.uri());

    let signed_at_ms = unix_ms(signing_time);
    let mut expires_at_ms = signed_at_ms + TOKEN_VALIDITY.as_millis() as i64;
    if let Some(credentials_expiry) = credentials.expiry() {
        expires_at_ms = expires_at_ms.min(unix_ms(credentials_expiry));
    }
    Ok(MskIamToken {
        value: Secret::new(URL_SAFE_NO_PAD.encode(token_url)),
        expires_at_ms,
    })
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn signing_error(message: String) -> Error {
    Error::Kafka {
        operation: "sign MSK IAM token",
        message,
        retryable: false,
    }
}

/// Makes tokens on demand with the current credentials (refreshed by the SDK's provider).
#[derive(Debug)]
pub struct MskIamTokenProvider {
    region: String,
    credentials: SharedCredentialsProvider,
    runtime: tokio::runtime::Handle,
}

impl MskIamTokenProvider {
    /// Uses the region and credentials chain of `sdk`. Must be called inside a multi-threaded
    /// Tokio runtime: tokens are made from librdkafka's polling threads, which block on it.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Result<Self> {
        let region = sdk.region().ok_or_else(|| {
            Error::Config("msk-iam needs an AWS region (AWS_REGION) to sign tokens".into())
        })?;
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| Error::Config("msk-iam needs AWS credentials to sign tokens".into()))?;
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| {
                Error::Config("msk-iam token signing needs a multi-threaded tokio runtime".into())
            })?;
        Ok(MskIamTokenProvider {
            region: region.to_string(),
            credentials,
            runtime,
        })
    }

    /// Static test credentials in `region`.
    #[cfg(test)]
    pub(crate) fn for_tests(region: &str) -> Self {
        MskIamTokenProvider {
            region: region.to_owned(),
            credentials: SharedCredentialsProvider::new(Credentials::for_tests()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// A fresh token. librdkafka asks for one from whichever thread polls the client, which
    /// may be a Tokio worker where blocking on the runtime panics; a scoped plain thread may
    /// always block on it (the runtime's other workers drive any I/O).
    pub fn token(&self) -> Result<MskIamToken> {
        let loaded = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.runtime
                        .block_on(self.credentials.provide_credentials())
                })
                .join()
        });
        let credentials = match loaded {
            Ok(Ok(credentials)) => credentials,
            Ok(Err(error)) => {
                return Err(Error::Kafka {
                    operation: "load AWS credentials for MSK IAM",
                    message: error.to_string(),
                    retryable: true,
                });
            }
            Err(_) => {
                return Err(Error::Kafka {
                    operation: "load AWS credentials for MSK IAM",
                    message: "the credentials provider panicked".into(),
                    retryable: false,
                });
            }
        };
        sign_token(&credentials, &self.region, SystemTime::now())
    }

    /// A fresh token, for a caller on the runtime (the control-plane client signs one for
    /// every connection it opens).
    pub async fn fresh_token(&self) -> Result<MskIamToken> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|error| Error::Kafka {
                operation: "load AWS credentials for MSK IAM",
                message: error.to_string(),
                retryable: true,
            })?;
        sign_token(&credentials, &self.region, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn decode(token: &MskIamToken) -> (String, HashMap<String, String>) {
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(token.value.expose()).unwrap()).unwrap();
        let (base, query) = url.split_once('?').unwrap();
        let params = query
            .split('&')
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap();
                (key.to_owned(), value.to_owned())
            })
            .collect();
        (base.to_owned(), params)
    }

    #[test]
    fn the_token_is_a_presigned_connect_request_for_the_region() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            None,
            "test",
        );
        let signed_at = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let token = sign_token(&credentials, "eu-west-1", signed_at).unwrap();
        assert!(
            !token.value.expose().contains('=') && !token.value.expose().contains('+'),
            "base64url without padding"
        );
        let (base, params) = decode(&token);
        assert_eq!(base, "https://kafka.eu-west-1.amazonaws.com/");
        assert_eq!(params["Action"], "kafka-cluster%3AConnect");
        assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            params["X-Amz-Credential"],
            "AKIDEXAMPLE%2F20260101%2Feu-west-1%2Fkafka-cluster%2Faws4_request"
        );
        assert_eq!(params["X-Amz-Date"], "20260101T000000Z");
        assert_eq!(params["X-Amz-Expires"], "900");
        assert_eq!(params["X-Amz-SignedHeaders"], "host");
        assert_eq!(params["X-Amz-Security-Token"], "session");
        assert_eq!(params["X-Amz-Signature"].len(), 64);
        assert!(params["User-Agent"].starts_with("tidemark"));
        assert_eq!(token.expires_at_ms, 1_767_225_600_000 + 900_000);
    }

    #[test]
    fn the_token_never_outlives_its_credentials() {
        let signed_at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let credentials_expiry = signed_at + Duration::from_secs(120);
        let credentials =
            Credentials::new("AKID", "secret", None, Some(credentials_expiry), "test");
        let token = sign_token(&credentials, "us-east-1", signed_at).unwrap();
        assert_eq!(token.expires_at_ms, 1_767_225_600_000 + 120_000);
        let (_, params) = decode(&token);
        assert!(!params.contains_key("X-Amz-Security-Token"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tokens_can_be_made_from_inside_the_runtime() {
        // librdkafka may ask from a Tokio worker thread (e.g. while a client is created in
        // async code); that must not panic or deadlock.
        let token = MskIamTokenProvider::for_tests("eu-west-1").token().unwrap();
        let (base, params) = decode(&token);
        assert_eq!(base, "https://kafka.eu-west-1.amazonaws.com/");
        assert_eq!(params["X-Amz-Expires"], "900");
    }

    #[test]
    fn tokens_change_with_time_and_credentials() {
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let other = Credentials::new("AKID", "other-secret", None, None, "test");
        let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let first = sign_token(&credentials, "us-east-1", at).unwrap();
        let later = sign_token(&credentials, "us-east-1", at + Duration::from_secs(1)).unwrap();
        let resigned = sign_token(&other, "us-east-1", at).unwrap();
        let signature = |token: &MskIamToken| decode(token).1["X-Amz-Signature"].clone();
        assert_ne!(signature(&first), signature(&later));
        assert_ne!(signature(&first), signature(&resigned));
        assert_eq!(
            signature(&first),
            signature(&sign_token(&credentials, "us-east-1", at).unwrap()),
            "signing is deterministic"
        );
    }
}
