//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) with AWS's
//! semantics: function errors are HTTP 200 with `X-Amz-Function-Error`, names and ARNs are
//! accepted, unknown functions are `ResourceNotFoundException`, payloads are JSON up to 6 MB.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

use crate::MAX_PAYLOAD_BYTES;
use crate::environment::{FunctionSpec, Invocation, Outcome};
use crate::function_name;

pub struct RegisteredFunction {
    pub spec: Arc<FunctionSpec>,
    pub queue: mpsc::Sender<Invocation>,
}

pub type Registry = Arc<HashMap<String, RegisteredFunction>>;

pub fn router(registry: Registry) -> Router {
    Router::new()
        .route(
            "/2015-03-31/functions/{function_name}/invocations",
            post(invoke),
        )
        // Larger than the limit so that an oversized payload gets AWS's error, not a bare 413.
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES * 2))
        .with_state(registry)
}

fn aws_error(status: StatusCode, error_type: &str, message: String) -> Response {
    let body = serde_json::json!({ "Type": "User", "message": message });
    (
        status,
        [
            ("x-amzn-errortype", error_type.to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn invoke(
    State(registry): State<Registry>,
    Path(requested): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let Some(function) = function_name::parse(&requested).and_then(|name| registry.get(name))
    else {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {requested}"),
        );
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!(
                "{} byte payload is too large for the RequestResponse invocation type ({MAX_PAYLOAD_BYTES} byte maximum)",
                payload.len()
            ),
        );
    }
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json".to_owned(),
        );
    }
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("RequestResponse");
    let request_id = uuid::Uuid::new_v4().to_string();
    let (reply, answer) = oneshot::channel();
    let invocation = Invocation {
        request_id: request_id.clone(),
        payload,
        reply,
    };
    match invocation_type {
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        "Event" => {
            if function.queue.send(invocation).await.is_err() {
                return aws_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceException",
                    "function is shutting down".into(),
                );
            }
            return (StatusCode::ACCEPTED, [("x-amzn-requestid", request_id)]).into_response();
        }
        "RequestResponse" => {}
        other => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!("invalid invocation type {other:?}"),
            );
        }
    }
    if function.queue.send(invocation).await.is_err() {
        return aws_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "function is shutting down".into(),
        );
    }
    let base_headers = [
        ("x-amzn-requestid", request_id),
        ("x-amz-executed-version", "$LATEST".to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    match answer.await {
        Ok(Outcome::Success(body)) => (StatusCode::OK, base_headers, body).into_response(),
        Ok(Outcome::FunctionError(body)) => (
            StatusCode::OK,
            base_headers,
            [("x-amz-function-error", "Unhandled")],
            body,
        )
            .into_response(),
        Err(_) => aws_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "the execution environment stopped".into(),
        ),
    }
}
