//! The writer's own decoding of invocation bodies, in front of the Lambda runtime: the handler
//! gets exactly the event of its invocation, and the runtime is left nothing to parse.

use std::sync::{Arc, Mutex};

use backup_writer::invocation::{DecodeEvents, DecodedEvents};
use backup_writer::{EncodedEvent, Encoding};
use lambda_runtime::tower::{Layer, Service, ServiceExt, service_fn};
use lambda_runtime::{Context, LambdaInvocation};
use tidemark_core::config::NameFilter;
use tidemark_core::segment::SegmentReader;

fn invocation(request_id: &str, body: &[u8]) -> LambdaInvocation {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    LambdaInvocation {
        parts: http::Response::new(()).into_parts().0,
        body: body.to_vec().into(),
        context,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn records_in(event: &EncodedEvent) -> Vec<(String, i32, Vec<i64>)> {
    event
        .partitions
        .iter()
        .map(|partition| {
            let offsets = SegmentReader::open(partition.segment.bytes.as_ref())
                .unwrap()
                .map(|record| record.unwrap().offset)
                .collect();
            (partition.topic.clone(), partition.partition, offsets)
        })
        .collect()
}

/// Decodes through the layer with an inner service that records the bodies the runtime's own
/// services would have parsed.
async fn through_the_layer(
    invocations: Vec<LambdaInvocation>,
) -> (Arc<DecodedEvents>, Vec<Vec<u8>>) {
    let decoded = Arc::new(DecodedEvents::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = service_fn({
        let seen = seen.clone();
        move |invocation: LambdaInvocation| {
            seen.lock().unwrap().push(invocation.body.to_vec());
            async { Ok::<(), lambda_runtime::Error>(()) }
        }
    });
    let mut service = DecodeEvents {
        encoding: Arc::new(Encoding {
            topics: NameFilter::new(None, None),
            compression_level: 3,
            open_partitions: 2,
            compress_in_background: true,
            masking: None,
        }),
        decoded: decoded.clone(),
    }
    .layer(inner);
    for invocation in invocations {
        service
            .ready()
            .await
            .unwrap()
            .call(invocation)
            .await
            .unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    (decoded, seen)
}

#[tokio::test]
async fn each_invocation_gets_the_event_of_its_body_and_the_runtime_parses_nothing() {
    let msk = fixture("msk-event.json");
    let self_managed = fixture("self-managed-event.json");
    let (decoded, seen) = through_the_layer(vec![
        invocation("first", &msk),
        invocation("second", &self_managed),
    ])
    .await;
    assert_eq!(seen, vec![b"null".to_vec(), b"null".to_vec()]);

    let expected = |body: &[u8]| {
        let encoding = Encoding {
            topics: NameFilter::new(None, None),
            compression_level: 3,
            open_partitions: 1,
            compress_in_background: false,
            masking: None,
        };
        records_in(&backup_writer::encode_event(body, &encoding).unwrap())
    };
    // Taken in the other order than decoded: by request id, not by arrival.
    let second = decoded.take("second").unwrap();
    let first = decoded.take("first").unwrap();
    assert_eq!(records_in(&first), expected(&msk));
    assert_eq!(records_in(&second), expected(&self_managed));
    assert!(!records_in(&first).is_empty());
    assert_ne!(records_in(&first), records_in(&second));

    let Err(again) = decoded.take("first") else {
        panic!("an event is taken once");
    };
    let again = again.to_string();
    assert!(
        again.contains("no event was decoded for invocation first"),
        "{again}"
    );
}

#[tokio::test]
async fn a_malformed_body_reaches_the_handler_as_an_invalid_event() {
    let (decoded, seen) = through_the_layer(vec![
        invocation("bad-base64", &fixture("malformed-bad-base64.json")),
        invocation("not-json", b"{\"eventSource\":"),
    ])
    .await;
    assert_eq!(seen.len(), 2, "the runtime still answers each invocation");
    for request in ["bad-base64", "not-json"] {
        let Err(error) = decoded.take(request) else {
            panic!("{request} decoded");
        };
        assert!(
            matches!(error, tidemark_core::Error::InvalidEvent(_)),
            "{request}: {error}"
        );
    }
}
