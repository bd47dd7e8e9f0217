//! How the writer takes its invocations from the Lambda runtime.
//!
//! The runtime deserializes each invocation body into the handler's event type through
//! `serde_path_to_error`, which keeps every JSON map key it passes as an owned string, to name
//! the path of an error. An event of 6 MB carries nine keys per record: that made the writer's
//! CPU path a third slower than the same pass through plain `serde_json` (the handler bench).
//! So a layer in front of the runtime's own services decodes and encodes the body itself, in
//! one pass, and hands the result to the handler by request id; the runtime is left an empty
//! body (`null`) to deserialize.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{LambdaEvent, LambdaInvocation, Runtime, service_fn};

use crate::encode::{EncodedEvent, Encoding, encode_event};
use crate::handler::BackupWriter;

/// Serves the writer's invocations until the runtime stops.
pub async fn run(writer: Arc<BackupWriter>) -> Result<(), lambda_runtime::Error> {
    let encoding = Arc::new(writer.encoding());
    let decoded = Arc::new(DecodedEvents::default());
    let handler = service_fn({
        let decoded = decoded.clone();
        move |event: LambdaEvent<()>| {
            let writer = Arc::clone(&writer);
            let encoded = decoded.take(&event.context.request_id);
            async move { writer.handle(encoded).await }
        }
    });
    Runtime::new(handler)
        .layer(DecodeEvents { encoding, decoded })
        // Outermost, as `lambda_runtime::run` adds it: the invocation's span covers decoding.
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
}

/// Events decoded by [`DecodeEvents`], waiting for the handler call of their invocation.
#[derive(Default)]
pub struct DecodedEvents {
    by_request: Mutex<HashMap<String, tidemark_core::Result<EncodedEvent>>>,
}

impl DecodedEvents {
    fn put(&self, request_id: &str, event: tidemark_core::Result<EncodedEvent>) {
        self.lock().insert(request_id.to_owned(), event);
    }

    /// The event of `request_id`'s invocation, or an error if none was decoded for it.
    pub fn take(&self, request_id: &str) -> tidemark_core::Result<EncodedEvent> {
        self.lock().remove(request_id).unwrap_or_else(|| {
            Err(tidemark_core::Error::InvalidEvent(format!(
                "no event was decoded for invocation {request_id}"
            )))
        })
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, tidemark_core::Result<EncodedEvent>>> {
        // A panic while holding the map leaves nothing half-written in it.
        self.by_request
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The layer that decodes and encodes each invocation body before the runtime sees it.
pub struct DecodeEvents {
    pub encoding: Arc<Encoding>,
    pub decoded: Arc<DecodedEvents>,
}

impl<S> Layer<S> for DecodeEvents {
    type Service = DecodingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodingService {
            inner,
            encoding: self.encoding.clone(),
            decoded: self.decoded.clone(),
        }
    }
}

/// The runtime's services behind [`DecodeEvents`].
pub struct DecodingService<S> {
    inner: S,
    encoding: Arc<Encoding>,
    decoded: Arc<DecodedEvents>,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for DecodingService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let event = encode_event(&invocation.body, &self.encoding);
        self.decoded.put(&invocation.context.request_id, event);
        // The body's 6 MB are freed here, before the writes.
        invocation.body = "null".into();
        self.inner.call(invocation)
    }
}
