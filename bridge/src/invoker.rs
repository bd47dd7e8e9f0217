//! Invoking the target function. The Lambda adapter works against AWS, LocalStack or the local
//! Lambda host alike: the endpoint comes from `AWS_ENDPOINT_URL_LAMBDA` / `AWS_ENDPOINT_URL`.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::SdkBody;
use bytes::Bytes;

use crate::error::{BridgeError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    Success,
    /// The function ran and reported an error (`X-Amz-Function-Error`); the body says which.
    FunctionError(String),
}

#[async_trait]
pub trait FunctionInvoker: Send + Sync {
    /// Invokes synchronously. `Err` means the invocation itself failed (network, throttling).
    /// The payload is shared, not copied: a batch is kept for its retries while it is sent.
    async fn invoke(&self, payload: Bytes) -> Result<InvokeOutcome>;
}

pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        LambdaInvoker {
            client,
            function: function.into(),
        }
    }
}

#[async_trait]
impl FunctionInvoker for LambdaInvoker {
    async fn invoke(&self, payload: Bytes) -> Result<InvokeOutcome> {
        let content_length = payload.len().to_string();
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            // The SDK's payload is a `Blob`, which owns a `Vec`: handing it the batch would take a
            // 6 MB copy per attempt. The shared bytes go in as the body instead, before signing.
            .customize()
            .mutate_request(move |request| {
                *request.body_mut() = SdkBody::from(payload.clone());
                request
                    .headers_mut()
                    .insert("content-length", content_length.clone());
            })
            .send()
            .await
            .map_err(|error| BridgeError::Invoke {
                function: self.function.clone(),
                message: aws_sdk_lambda::error::DisplayErrorContext(&error).to_string(),
            })?;
        match output.function_error() {
            None => Ok(InvokeOutcome::Success),
            Some(kind) => {
                let body = output
                    .payload()
                    .map(|blob| String::from_utf8_lossy(blob.as_ref()).into_owned())
                    .unwrap_or_default();
                Ok(InvokeOutcome::FunctionError(format!("{kind}: {body}")))
            }
        }
    }
}
