//! The event-source bridge: plays the AWS Kafka event source mapping against any Kafka
//! cluster and invokes a Lambda function through the Lambda Invoke API. It is how Tidemark's
//! backup writer runs locally and on LocalStack, whose free tier has no Kafka trigger.

pub mod batcher;
pub mod bridge;
pub mod error;
pub mod invoker;
pub mod source;

pub use error::{BridgeError, Result};
