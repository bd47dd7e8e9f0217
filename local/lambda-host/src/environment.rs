//! One execution environment: a function process started on demand, fed invocations through
//! its own Runtime API endpoint, killed on timeout and restarted on the next invocation, as in
//! AWS Lambda.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{info, warn};

/// What the host knows about a function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub region: String,
    pub account_id: String,
}

impl FunctionSpec {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.name
        )
    }
}

/// How an invocation ended, as the Invoke API reports it.
#[derive(Debug)]
pub enum Outcome {
    Success(Bytes),
    /// `X-Amz-Function-Error: Unhandled` with this JSON body.
    FunctionError(Bytes),
}

pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub reply: oneshot::Sender<Outcome>,
}

/// An event waiting for the function process to fetch it from `/next`.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: u64,
    pub function_arn: String,
}

/// State shared between an environment's supervisor and its Runtime API endpoint.
#[derive(Default)]
pub struct RuntimeState {
    pending: Mutex<Option<PendingEvent>>,
    pending_ready: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<Bytes>>,
}

impl RuntimeState {
    /// Waits until an event is handed to this environment, then takes it.
    pub async fn next_event(&self) -> PendingEvent {
        loop {
            let notified = self.pending_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(event) = self.pending.lock().expect("lock poisoned").take() {
                return event;
            }
            notified.await;
        }
    }

    /// Delivers the function's answer; false when no invocation with that id is waiting.
    pub fn complete(&self, request_id: &str, outcome: Outcome) -> bool {
        let waiter = self
            .in_flight
            .lock()
            .expect("lock poisoned")
            .remove(request_id);
        waiter.is_some_and(|waiter| waiter.send(outcome).is_ok())
    }

    pub fn record_init_error(&self, body: Bytes) {
        *self.init_error.lock().expect("lock poisoned") = Some(body);
    }

    fn offer(&self, event: PendingEvent, waiter: oneshot::Sender<Outcome>) {
        self.in_flight
            .lock()
            .expect("lock poisoned")
            .insert(event.request_id.clone(), waiter);
        *self.pending.lock().expect("lock poisoned") = Some(event);
        self.pending_ready.notify_waiters();
    }

    fn withdraw(&self, request_id: &str) {
        self.in_flight
            .lock()
            .expect("lock poisoned")
            .remove(request_id);
        let mut pending = self.pending.lock().expect("lock poisoned");
        if pending
            .as_ref()
            .is_some_and(|event| event.request_id == request_id)
        {
            *pending = None;
        }
    }
}

/// Serves invocations from `queue` one at a time in one environment until the queue closes.
pub async fn supervise(
    spec: Arc<FunctionSpec>,
    runtime_api: String,
    state: Arc<RuntimeState>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Invocation>>>,
) {
    let mut process: Option<Child> = None;
    loop {
        let Some(invocation) = queue.lock().await.recv().await else {
            return;
        };
        if let Some(child) = process.as_mut()
            && child.try_wait().ok().flatten().is_some()
        {
            process = None;
        }
        if process.is_none() {
            match start_process(&spec, &runtime_api) {
                Ok(child) => process = Some(child),
                Err(error) => {
                    let message = format!("cannot start {}: {error}", spec.binary.display());
                    let _ = invocation.reply.send(function_error(
                        "Runtime.InvalidEntrypoint",
                        &invocation.request_id,
                        &message,
                    ));
                    continue;
                }
            }
        }
        let child = process.as_mut().expect("process started above");

        let (waiter, answer) = oneshot::channel();
        let deadline = SystemTime::now() + spec.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let request_id = invocation.request_id.clone();
        state.offer(
            PendingEvent {
                request_id: request_id.clone(),
                payload: invocation.payload,
                deadline_ms,
                function_arn: spec.arn(),
            },
            waiter,
        );

        let outcome = tokio::select! {
            answer = answer => answer.unwrap_or_else(|_| function_error("Runtime.Unknown", &request_id, "the runtime dropped the invocation")),
            _ = tokio::time::sleep(spec.timeout) => {
                warn!(function = %spec.name, %request_id, "invocation timed out; stopping the environment");
                let _ = child.kill().await;
                process = None;
                let message = format!("Task timed out after {:.2} seconds", spec.timeout.as_secs_f64());
                function_error("Sandbox.Timedout", &request_id, &message)
            }
            status = child.wait() => {
                process = None;
                let init_error = state.init_error.lock().expect("lock poisoned").take();
                match init_error {
                    Some(body) => Outcome::FunctionError(body),
                    None => {
                        let status = status.map_or_else(|error| error.to_string(), |status| status.to_string());
                        function_error("Runtime.ExitError", &request_id, &format!("Runtime exited with error: {status}"))
                    }
                }
            }
        };
        state.withdraw(&request_id);
        let _ = invocation.reply.send(outcome);
    }
}

fn start_process(spec: &FunctionSpec, runtime_api: &str) -> std::io::Result<Child> {
    info!(function = %spec.name, binary = %spec.binary.display(), "starting execution environment");
    Command::new(&spec.binary)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("local/{}", uuid::Uuid::new_v4()),
        )
        .env("AWS_REGION", &spec.region)
        .env("AWS_DEFAULT_REGION", &spec.region)
        .env("_HANDLER", "bootstrap")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// A function error body in the shape AWS returns to the invoker.
pub fn function_error(error_type: &str, request_id: &str, message: &str) -> Outcome {
    let body = serde_json::json!({
        "errorType": error_type,
        "errorMessage": format!("RequestId: {request_id} Error: {message}"),
    });
    Outcome::FunctionError(Bytes::from(body.to_string()))
}
