//! Adapters for the storage seams: real AWS services and in-memory twins.

mod backup;
mod dynamodb;
mod memory;
mod s3;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use backup::{BackedUpTopic, BackupStores, SegmentRef, SegmentSource};
pub use dynamodb::DynamoIndexStore;
pub use memory::{MemoryIndexStore, MemoryObjectStore};
pub use s3::S3ObjectStore;

use aws_sdk_s3::error::SdkError;

use crate::config::StoreLocation;

impl StoreLocation {
    /// The S3 object store and the DynamoDB index at this location, from one SDK config.
    pub fn connect(&self, aws: &aws_config::SdkConfig) -> (S3ObjectStore, DynamoIndexStore) {
        let s3 = aws_sdk_s3::Client::from_conf(
            self.s3
                .apply(aws_sdk_s3::config::Builder::from(aws))
                .build(),
        );
        (
            S3ObjectStore::new(s3, &self.bucket),
            DynamoIndexStore::new(aws_sdk_dynamodb::Client::new(aws), &self.table),
        )
    }
}

/// Maps a failed AWS call on `subject` (a cluster, a secret, a key) to an error naming both.
pub(crate) fn aws_error<E, R>(
    operation: &'static str,
    subject: impl std::fmt::Display,
) -> impl FnOnce(SdkError<E, R>) -> crate::error::Error
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    move |error| {
        let (message, retryable) = describe_sdk_error(&error);
        crate::error::Error::Aws {
            operation,
            message: format!("{subject}: {message}"),
            retryable,
        }
    }
}

/// A readable message and whether the call may succeed when repeated, for any SDK error.
pub(crate) fn describe_sdk_error<E, R>(error: &SdkError<E, R>) -> (String, bool)
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let retryable = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("ProvisionedThroughputExceeded")
                || code.contains("RequestLimitExceeded")
                || code.contains("InternalServerError")
                || code.contains("InternalError")
                || code == "ServiceUnavailable"
                || code == "SlowDown"
                || code == "ConditionalRequestConflict"
        }
        _ => false,
    };
    let message = match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("unknown error"),
                err.message().unwrap_or("no message")
            )
        }
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    };
    (message, retryable)
}
