//! An HTTP proxy in front of the AWS emulator that can make one DynamoDB operation fail the
//! way a throttled table does, so tests can break the system at a precise step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    target: String,
    failing_operation: String,
    armed: AtomicBool,
    failures: AtomicUsize,
    client: reqwest::Client,
}

impl FaultProxy {
    /// Proxies to `target`; while armed, every DynamoDB `operation` (e.g. `TransactWriteItems`)
    /// is answered with `ProvisionedThroughputExceededException`.
    pub async fn start(target: &str, operation: &str) -> FaultProxy {
        let state = Arc::new(ProxyState {
            target: target.trim_end_matches('/').to_owned(),
            failing_operation: format!("DynamoDB_20120810.{operation}"),
            armed: AtomicBool::new(true),
            failures: AtomicUsize::new(0),
            client: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, router).await });
        FaultProxy { endpoint, state }
    }

    pub fn disarm(&self) {
        self.state.armed.store(false, Ordering::SeqCst);
    }

    /// How many requests were failed so far.
    pub fn failures(&self) -> usize {
        self.state.failures.load(Ordering::SeqCst)
    }
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if state.armed.load(Ordering::SeqCst) && operation == state.failing_operation {
        state.failures.fetch_add(1, Ordering::SeqCst);
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected by the test fault proxy"}"#;
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            body,
        )
            .into_response();
    }
    let url = format!(
        "{}{}",
        state.target,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = state.client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let mut headers = response.headers().clone();
            headers.remove("content-length");
            headers.remove("transfer-encoding");
            let body = response.bytes().await.unwrap_or_default();
            (status, headers, body).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
