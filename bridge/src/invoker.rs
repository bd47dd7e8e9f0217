//! Invoking the target function. The Lambda adapter works against AWS, LocalStack or the local
//! Lambda host alike: the endpoint comes from `AWS_ENDPOINT_URL_LAMBDA` / `AWS_ENDPOINT_URL`.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;

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
    async fn invoke(&self, payload: Vec<u8>) -> Result<InvokeOutcome>;
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
    async fn invoke(&self, payload: Vec<u8>) -> Result<InvokeOutcome> {
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload))
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
