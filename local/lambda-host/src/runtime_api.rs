//! The Lambda Runtime API (2018-06-01) that a function process polls, one endpoint per
//! execution environment.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::MAX_PAYLOAD_BYTES;
use crate::environment::{Outcome, RuntimeState};

pub fn router(state: Arc<RuntimeState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES + 1024))
        .with_state(state)
}

async fn next(State(state): State<Arc<RuntimeState>>) -> Response {
    let event = state.next_event().await;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", event.request_id);
    set("lambda-runtime-deadline-ms", event.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", event.function_arn);
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-{}", uuid::Uuid::new_v4().simple()),
    );
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, event.payload).into_response()
}

async fn response(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    if body.len() > MAX_PAYLOAD_BYTES {
        let outcome = crate::environment::function_error(
            "Function.ResponseSizeTooLarge",
            &request_id,
            &format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).",
                body.len()
            ),
        );
        state.complete(&request_id, outcome);
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    if state.complete(&request_id, Outcome::Success(body)) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn error(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    if state.complete(&request_id, Outcome::FunctionError(body)) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn init_error(State(state): State<Arc<RuntimeState>>, body: Bytes) -> StatusCode {
    state.record_init_error(body);
    StatusCode::ACCEPTED
}
