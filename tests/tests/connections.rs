//! The Kafka connection layer against the real brokers and an independent SigV4 signer.

use std::time::Duration;

use tidemark_core::config::Env;
use tidemark_core::kafka::iam::MskIamTokenProvider;
use tidemark_core::kafka::{ClusterReader, KafkaCluster, KafkaConnection, KafkaSettings};
use tidemark_tests::Stack;

/// msk-iam end to end as far as a broker without OAUTHBEARER allows: the client must ask our
/// provider for a token and present it in the SASL handshake, which this broker then refuses
/// by name. Without the token the client would wait and time out instead.
#[tokio::test(flavor = "multi_thread")]
async fn msk_iam_tokens_reach_the_sasl_handshake() {
    let stack = Stack::from_env();
    let ca = stack.certs_dir.join("ca.pem");
    let pairs = [
        (
            "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
            stack.kafka_scram_bootstrap.clone(),
        ),
        ("TIDEMARK_KAFKA_AUTH", "msk-iam".to_owned()),
        (
            "TIDEMARK_KAFKA_TLS_CA_FILE",
            ca.to_str().unwrap().to_owned(),
        ),
        ("TIDEMARK_KAFKA_REQUEST_TIMEOUT_MS", "5000".to_owned()),
    ];
    let settings = KafkaSettings::from_env(&Env::from_lookup(|name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    }))
    .unwrap();
    let aws = stack.sdk_config().await;
    let connection = KafkaConnection::resolve(
        &settings,
        &aws_sdk_kafka::Client::new(&aws),
        &aws_sdk_secretsmanager::Client::new(&aws),
        Some(MskIamTokenProvider::from_sdk_config(&aws).unwrap()),
    )
    .await
    .unwrap();
    let cluster = KafkaCluster::connect(connection, "tidemark-test").unwrap();
    let error = cluster.topics().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "authentication to {} failed (msk-iam)",
            stack.kafka_scram_bootstrap
        )),
        "{error}"
    );
    assert!(
        error.contains("OAUTHBEARER"),
        "the broker refused our mechanism: {error}"
    );
}

#[test]
fn msk_iam_tokens_carry_the_signature_botocore_computes() {
    let stack = Stack::from_env();
    let credentials = aws_credential_types::Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token/with+chars=".into()),
        None,
        "test",
    );
    for (region, unix_seconds) in [
        ("eu-west-1", 1_767_225_600u64),
        ("us-east-1", 1_795_000_123),
    ] {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(unix_seconds);
        let token = tidemark_core::kafka::iam::sign_token(&credentials, region, at).unwrap();
        let url = String::from_utf8(
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.value.expose(),
            )
            .unwrap(),
        )
        .unwrap();
        let ours: std::collections::BTreeMap<&str, &str> = url
            .split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .collect();
        let seconds = unix_seconds.to_string();
        let botocore = stack.python(&[
            "sign-msk-iam",
            "--region",
            region,
            "--access-key",
            "AKIDEXAMPLE",
            "--secret-key",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "--session-token",
            "session-token/with+chars=",
            "--unix-seconds",
            &seconds,
        ]);
        for (name, value) in botocore.as_object().unwrap() {
            assert_eq!(
                Some(&value.as_str().unwrap()),
                ours.get(name.as_str()),
                "{name} in {url}"
            );
        }
    }
}
