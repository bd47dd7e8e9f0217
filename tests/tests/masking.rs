//! A masked backup end to end: the real backup-writer binary behind the Lambda host, its hash
//! key in (emulated) Secrets Manager, records from the broker through the bridge. The clear
//! fields are searched for in every stored segment (decoded by the independent reader of the
//! format spec) and in the writer's log.

use serde_json::{Value, json};
use tidemark_tests::live_backup::Backup;
use tidemark_tests::{Stack, unique};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    text.as_str().map(|text| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    })
}

fn card(n: i64) -> String {
    format!("4111-0000-{n:04}-9999")
}

fn email(n: i64) -> String {
    format!("person-{n}@clear.example")
}

/// A payment with a card number and an e-mail in its value and the e-mail in a header; every
/// tenth value is not JSON at all.
fn payment(n: i64) -> Value {
    let value = if n % 10 == 9 {
        format!("legacy card={} email={}", card(n), email(n)).into_bytes()
    } else {
        json!({"n": n, "card": {"number": card(n), "expiry": "12/29"}, "email": email(n),
               "amount": 12345678901234567890u64})
        .to_string()
        .into_bytes()
    };
    json!({
        "partition": n % 2,
        "key": b64(format!("customer-{}", n % 7).as_bytes()),
        "value": b64(&value),
        "headers": [["customer-email", b64(email(n).as_bytes())], ["trace", b64(b"t")]],
    })
}

async fn hash_secret(stack: &Stack) -> String {
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk_config().await);
    secrets
        .create_secret()
        .name(unique("tidemark-masking"))
        .secret_string("a masking key of at least thirty-two bytes, kept in Secrets Manager")
        .send()
        .await
        .expect("creating the masking secret")
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_masked_backup_never_stores_or_logs_a_clear_field_and_redacts_what_is_not_json() {
    let stack = Stack::from_env();
    let secret = hash_secret(&stack).await;
    let rules = json!({
        "rules": [
            {"json_pointer": "/card/number", "action": "redact"},
            {"json_pointer": "/email", "action": "hash"},
            {"header": "customer-email", "action": "hash"},
            {"key": true, "action": "hash"},
        ],
        "unparsable": "redact_value",
    })
    .to_string();
    let mut backup = Backup::start_with(
        "payments.masked",
        2,
        &[
            ("TIDEMARK_MASKING_RULES", &rules),
            ("TIDEMARK_MASKING_HASH_SECRET_ARN", &secret),
            // The most the writer ever logs.
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    backup.produce_and_back_up((0..200).map(payment).collect());

    let stored = backup.backed_up_records();
    assert_eq!(stored.len(), 200);
    for record in &stored {
        let n = record["offset"].as_i64().unwrap() * 2 + record["partition"].as_i64().unwrap();
        let value = unb64(&record["value"]).unwrap();
        let text = String::from_utf8(value.clone()).unwrap();
        assert!(!text.contains("4111-0000"), "offset {n}: {text}");
        assert!(!text.contains("clear.example"), "offset {n}: {text}");
        if n % 10 == 9 {
            assert_eq!(
                text, "[redacted]",
                "a value that is not JSON is redacted whole"
            );
        } else {
            let masked: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(masked["card"]["number"], "[redacted]");
            assert_eq!(masked["card"]["expiry"], "12/29");
            assert_eq!(masked["n"], n);
            assert!(
                text.contains("12345678901234567890"),
                "other fields keep their digits"
            );
            assert!(
                masked["email"]
                    .as_str()
                    .unwrap()
                    .starts_with("hmac-sha256:")
            );
        }
        let key = String::from_utf8(unb64(&record["key"]).unwrap()).unwrap();
        assert!(
            key.starts_with("hmac-sha256:") && !key.contains("customer"),
            "{key}"
        );
        let headers = record["headers"].as_array().unwrap();
        let header = String::from_utf8(unb64(&headers[0][1]).unwrap()).unwrap();
        assert!(header.starts_with("hmac-sha256:"), "{header}");
        assert_eq!(unb64(&headers[1][1]), Some(b"t".to_vec()));
    }
    // Equal clear values stay equal masked: a customer's records can still be grouped.
    let keys_of = |customer: i64| -> Vec<Value> {
        stored
            .iter()
            .filter(|record| {
                let n =
                    record["offset"].as_i64().unwrap() * 2 + record["partition"].as_i64().unwrap();
                n % 7 == customer
            })
            .map(|record| record["key"].clone())
            .collect()
    };
    assert!(keys_of(3).windows(2).all(|pair| pair[0] == pair[1]));
    assert_ne!(keys_of(3)[0], keys_of(4)[0]);

    let log = backup.writer.process.log();
    assert!(!log.is_empty());
    assert!(
        !log.contains("4111-0000"),
        "the writer's log holds a card number"
    );
    assert!(
        !log.contains("clear.example"),
        "the writer's log holds an e-mail"
    );
}
