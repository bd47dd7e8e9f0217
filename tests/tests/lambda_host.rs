//! The local Lambda host answers like the Lambda service: ARNs accepted, function errors as
//! HTTP 200 with `X-Amz-Function-Error`, timeouts that stop the environment, the deadline
//! passed to the function, and AWS's errors for unknown functions and bad payloads.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tidemark_tests::Stack;

fn fixture_function(name: &str) -> String {
    format!("{}/fixtures/functions/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn invoke(endpoint: &str, function: &str, payload: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{endpoint}/2015-03-31/functions/{function}/invocations"
        ))
        .body(payload.to_owned())
        .send()
        .await
        .expect("invoke request")
}

#[tokio::test]
async fn invocations_receive_their_event_deadline_and_arn() {
    let stack = Stack::from_env();
    let host = stack.start_lambda_host(
        &format!("echo={}", fixture_function("echo_context.py")),
        &[],
        7,
    );
    for name in [
        "echo",
        "echo:$LATEST",
        "arn:aws:lambda:us-east-1:000000000000:function:echo",
    ] {
        let sent_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let response = invoke(&host.endpoint, name, r#"{"ping": 1}"#).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(
            response.headers().get("x-amz-function-error").is_none(),
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["event"], json!({"ping": 1}));
        assert_eq!(body["function_name"], "echo");
        assert_eq!(
            body["function_arn"],
            "arn:aws:lambda:us-east-1:000000000000:function:echo"
        );
        let deadline_in = body["deadline_ms"].as_i64().unwrap() - sent_at;
        assert!(
            (5_000..=7_500).contains(&deadline_in),
            "deadline {deadline_in} ms away, timeout is 7 s"
        );
    }
}

#[tokio::test]
async fn a_function_past_its_timeout_is_stopped_and_reported_as_aws_does() {
    let stack = Stack::from_env();
    let host = stack.start_lambda_host(
        &format!("stuck={}", fixture_function("never_answers.sh")),
        &[],
        1,
    );
    let started = Instant::now();
    let response = invoke(&host.endpoint, "stuck", "{}").await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("x-amz-function-error").unwrap(),
        "Unhandled"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds"),
        "{body}"
    );
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(10),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn unknown_functions_and_bad_payloads_get_aws_errors() {
    let stack = Stack::from_env();
    let host = stack.start_lambda_host(
        &format!("echo={}", fixture_function("echo_context.py")),
        &[],
        5,
    );

    let response = invoke(
        &host.endpoint,
        "arn:aws:lambda:us-east-1:000000000000:function:missing",
        "{}",
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers().get("x-amzn-errortype").unwrap(),
        "ResourceNotFoundException"
    );

    let response = invoke(&host.endpoint, "echo", "not json").await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers().get("x-amzn-errortype").unwrap(),
        "InvalidRequestContentException"
    );

    let oversized = format!("\"{}\"", "x".repeat(6 * 1024 * 1024));
    let response = invoke(&host.endpoint, "echo", &oversized).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers().get("x-amzn-errortype").unwrap(),
        "RequestEntityTooLargeException"
    );
}

#[tokio::test]
async fn a_function_that_cannot_start_reports_an_exit_error_and_logs_why() {
    let stack = Stack::from_env();
    let host = stack.start_backup_writer(
        &[
            ("TIDEMARK_BUCKET", "b"),
            ("TIDEMARK_TABLE", "t"),
            ("TIDEMARK_BACKUP_ID", "x"),
            ("TIDEMARK_COMPRESSION_LEVEL", "99"),
        ],
        10,
    );
    let response = invoke(&host.endpoint, "backup-writer", "{}").await;
    assert_eq!(
        response.headers().get("x-amz-function-error").unwrap(),
        "Unhandled"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(
        host.process
            .log()
            .contains("TIDEMARK_COMPRESSION_LEVEL=99 is not valid"),
        "the configuration error must be in the function's log:\n{}",
        host.process.log()
    );
}
