//! The local AWS endpoint that a Step Functions emulator calls. moto sends every service call
//! of a running state machine (Lambda invokes, the Distributed Map's S3 reads) to one port;
//! this gateway answers there. Lambda invokes go to whichever Lambda host registered the
//! function; everything else passes through to the emulator unchanged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};

use crate::function_name;

#[derive(Clone)]
struct Gateway {
    upstream: String,
    client: reqwest::Client,
    /// Function name → base URL of the Lambda host that runs it.
    functions: Arc<RwLock<HashMap<String, String>>>,
}

/// `upstream`: base URL of the AWS emulator (e.g. `http://127.0.0.1:14566`).
pub fn router(upstream: String) -> Router {
    let gateway = Gateway {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::new(),
        functions: Arc::default(),
    };
    Router::new()
        .route(
            "/_tidemark/functions/{name}",
            put(register).delete(unregister),
        )
        .route(
            "/2015-03-31/functions/{function_name}/invocations",
            post(invoke),
        )
        .fallback(pass_through)
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(gateway)
}

/// Body: the base URL of the Lambda host serving `name`.
async fn register(
    State(gateway): State<Gateway>,
    Path(name): Path<String>,
    body: String,
) -> StatusCode {
    let endpoint = body.trim().trim_end_matches('/').to_owned();
    if function_name::parse(&name) != Some(name.as_str()) || !endpoint.starts_with("http://") {
        return StatusCode::BAD_REQUEST;
    }
    tracing::info!(%name, %endpoint, "function registered");
    gateway
        .functions
        .write()
        .expect("lock poisoned")
        .insert(name, endpoint);
    StatusCode::NO_CONTENT
}

async fn unregister(State(gateway): State<Gateway>, Path(name): Path<String>) -> StatusCode {
    gateway
        .functions
        .write()
        .expect("lock poisoned")
        .remove(&name);
    StatusCode::NO_CONTENT
}

async fn invoke(
    State(gateway): State<Gateway>,
    Path(requested): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = function_name::parse(&requested).and_then(|name| {
        gateway
            .functions
            .read()
            .expect("lock poisoned")
            .get(name)
            .cloned()
    });
    let Some(endpoint) = endpoint else {
        let body = serde_json::json!({
            "Type": "User",
            "message": format!("Function not found: {requested}"),
        });
        return (
            StatusCode::NOT_FOUND,
            [("x-amzn-errortype", "ResourceNotFoundException")],
            body.to_string(),
        )
            .into_response();
    };
    let url = format!("{endpoint}/2015-03-31/functions/{requested}/invocations");
    forward(&gateway.client, Method::POST, &url, &headers, body).await
}

async fn pass_through(State(gateway): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let url = format!("{}{path}", gateway.upstream);
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(body) => body,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    forward(&gateway.client, parts.method, &url, &parts.headers, body).await
}

async fn forward(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut response_headers = HeaderMap::new();
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response_headers.insert(name.clone(), value.clone());
                }
            }
            match answer.bytes().await {
                Ok(bytes) => (status, response_headers, bytes).into_response(),
                Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
            }
        }
        Err(error) => (StatusCode::BAD_GATEWAY, format!("{url}: {error}")).into_response(),
    }
}
