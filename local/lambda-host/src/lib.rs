//! A local Lambda host: runs the same function binaries that are deployed, behind the Lambda
//! Runtime API, and serves the Lambda Invoke API as AWS does, so that SDK clients, the
//! event-source bridge and Step Functions emulators can invoke them.

pub mod environment;
pub mod function_name;
pub mod gateway;
pub mod invoke_api;
pub mod runtime_api;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use environment::{FunctionSpec, RuntimeState};
use invoke_api::RegisteredFunction;

/// Lambda's limit for a synchronous request or response payload.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Starts `concurrency` execution environments per function and returns the Invoke API router.
pub async fn start(
    functions: Vec<FunctionSpec>,
    concurrency: usize,
) -> anyhow::Result<axum::Router> {
    let mut registry = HashMap::new();
    for spec in functions {
        let spec = Arc::new(spec);
        let (queue, receiver) = mpsc::channel(1024);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..concurrency.max(1) {
            let state = Arc::new(RuntimeState::default());
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding a Runtime API port")?;
            let runtime_api = listener.local_addr()?.to_string();
            let router = runtime_api::router(Arc::clone(&state));
            tokio::spawn(async move { axum::serve(listener, router).await });
            tokio::spawn(environment::supervise(
                Arc::clone(&spec),
                runtime_api,
                state,
                Arc::clone(&receiver),
            ));
        }
        registry.insert(spec.name.clone(), RegisteredFunction { spec, queue });
    }
    Ok(invoke_api::router(Arc::new(registry)))
}
