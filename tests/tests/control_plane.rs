//! The wire-protocol control-plane client against the real local brokers: the cluster seam's
//! conformance suite on plaintext, TLS and SASL/SCRAM, and on the paths older brokers take.

use kafka_protocol::messages::ApiKey;
use tidemark_core::config::Env;
use tidemark_core::kafka::conformance::cluster_contract;
use tidemark_core::kafka::{KafkaCluster, KafkaConnection, KafkaSettings, OffsetRemoval};
use tidemark_tests::{Stack, unique};

/// Resolves a connection from `TIDEMARK_KAFKA_*` settings, as the functions do (signing MSK IAM
/// tokens with `aws`'s credentials when the method is msk-iam).
async fn resolve_with(pairs: &[(&str, String)], aws: &aws_config::SdkConfig) -> KafkaConnection {
    let settings = KafkaSettings::from_env(&Env::from_lookup(|name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    }))
    .unwrap();
    let iam = (settings.auth == tidemark_core::kafka::AuthMethod::MskIam)
        .then(|| tidemark_core::kafka::iam::MskIamTokenProvider::from_sdk_config(aws).unwrap());
    KafkaConnection::resolve(
        &settings,
        &aws_sdk_kafka::Client::new(aws),
        &aws_sdk_secretsmanager::Client::new(aws),
        iam,
    )
    .await
    .unwrap()
}

async fn resolve(stack: &Stack, pairs: &[(&str, String)]) -> KafkaConnection {
    resolve_with(pairs, &stack.sdk_config().await).await
}

async fn scram_secret(stack: &Stack) -> String {
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk_config().await);
    secrets
        .create_secret()
        .name(unique("AmazonMSK_tidemark"))
        .secret_string(
            serde_json::json!({
                "username": tidemark_tests::SCRAM_USER,
                "password": tidemark_tests::SCRAM_PASSWORD,
            })
            .to_string(),
        )
        .send()
        .await
        .expect("creating the SCRAM secret")
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wire_client_meets_the_cluster_contract_on_plaintext_tls_and_scram() {
    let stack = Stack::from_env();
    let ca = stack.certs_dir.join("ca.pem").to_str().unwrap().to_owned();
    let secret = scram_secret(&stack).await;
    let brokers = [
        vec![
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                stack.kafka_bootstrap.clone(),
            ),
            ("TIDEMARK_KAFKA_AUTH", "plaintext".to_owned()),
        ],
        vec![
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                stack.kafka_tls_bootstrap.clone(),
            ),
            ("TIDEMARK_KAFKA_AUTH", "tls".to_owned()),
            ("TIDEMARK_KAFKA_TLS_CA_FILE", ca.clone()),
        ],
        // The local user has SCRAM-SHA-512 credentials (what MSK offers).
        vec![
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                stack.kafka_scram_bootstrap.clone(),
            ),
            ("TIDEMARK_KAFKA_AUTH", "sasl-scram-sha-512".to_owned()),
            ("TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN", secret),
            ("TIDEMARK_KAFKA_TLS_CA_FILE", ca),
        ],
    ];
    for pairs in brokers {
        let connection = resolve(&stack, &pairs).await;
        let auth = connection.auth;
        let cluster = KafkaCluster::connect(connection, "tidemark-test").unwrap();
        let removal = cluster_contract(&cluster, &unique("contract"), false).await;
        // The local broker has no OffsetDelete (nisshi 0.8.1 does not route API 47): the
        // fallback commits -1, which the contract read back as "no offset".
        assert_eq!(removal, OffsetRemoval::CommittedAsNone, "{auth}");
    }
}

/// Brokers before Kafka 2.8 report no topic ids, before 3.0 take one group per OffsetFetch
/// and before 2.8 one key per FindCoordinator: the same contract holds on those paths.
#[tokio::test(flavor = "multi_thread")]
async fn the_paths_older_brokers_take_meet_the_same_contract() {
    let stack = Stack::from_env();
    let cluster = KafkaCluster::connect(
        KafkaConnection::plaintext(stack.kafka_bootstrap.clone()),
        "tidemark-test",
    )
    .unwrap()
    .with_version_ceiling(ApiKey::OffsetFetch, 7)
    .with_version_ceiling(ApiKey::FindCoordinator, 3)
    .with_version_ceiling(ApiKey::Metadata, 9)
    .with_version_ceiling(ApiKey::DeleteTopics, 5)
    .with_version_ceiling(ApiKey::OffsetCommit, 2);
    cluster_contract(&cluster, &unique("old-paths"), false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_scram_password_and_an_unknown_ca_fail_clearly_and_for_good() {
    let stack = Stack::from_env();
    let other_ca = stack
        .certs_dir
        .join("other-ca.pem")
        .to_str()
        .unwrap()
        .to_owned();
    let connection = resolve(
        &stack,
        &[
            (
                "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS",
                stack.kafka_tls_bootstrap.clone(),
            ),
            ("TIDEMARK_KAFKA_AUTH", "tls".to_owned()),
            ("TIDEMARK_KAFKA_TLS_CA_FILE", other_ca),
        ],
    )
    .await;
    let cluster = KafkaCluster::connect(connection, "tidemark-test").unwrap();
    let error = tidemark_core::kafka::ClusterReader::topics(&cluster)
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains(&format!(
            "TLS to {} failed (tls)",
            stack.kafka_tls_bootstrap
        )),
        "{error}"
    );
}

/// A whole msk-iam session: TLS, SASL/OAUTHBEARER with a token the listener checks against
/// botocore's signature, then every request of the contract — coordinators included, each
/// connection signing its own token.
#[tokio::test(flavor = "multi_thread")]
async fn msk_iam_sessions_meet_the_cluster_contract_and_a_bad_signature_is_refused() {
    let stack = Stack::from_env();
    let (_broker, listener) = stack.start_msk_iam_broker().await;
    let pairs = msk_iam(&stack, &listener.address);
    let aws = stack.sdk_config().await;
    let connection = resolve_with(&pairs, &aws).await;
    let cluster = KafkaCluster::connect(connection, "tidemark-test").unwrap();
    let removal = cluster_contract(&cluster, &unique("msk-iam"), false).await;
    assert_eq!(removal, OffsetRemoval::CommittedAsNone);
    assert!(
        listener.accepted() >= 1,
        "the session went through the listener"
    );
    assert_eq!(listener.refusals(), Vec::<String>::new());

    // Credentials the broker side does not know: refused at the handshake, for good.
    let wrong = aws
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "testing",
                    "not-the-secret",
                    None,
                    None,
                    "test",
                ),
            ),
        )
        .build();
    let connection = resolve_with(&pairs, &wrong).await;
    let message = refused(connection).await;
    assert!(
        message.contains(&format!(
            "authentication to {} failed (msk-iam)",
            listener.address
        )),
        "{message}"
    );
    assert!(message.contains("SASL_AUTHENTICATION_FAILED"), "{message}");
    assert!(
        listener
            .refusals()
            .iter()
            .any(|reason| reason.contains("X-Amz-Signature differs")),
        "{:?}",
        listener.refusals()
    );
}

/// A broker without OAUTHBEARER (the local SCRAM broker) refuses msk-iam at the handshake, and
/// the error says which mechanisms it offers, for good (no retry would change it).
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_without_oauthbearer_is_named_with_what_it_offers() {
    let stack = Stack::from_env();
    let pairs = msk_iam(&stack, &stack.kafka_scram_bootstrap);
    let connection = resolve(&stack, &pairs).await;
    let message = refused(connection).await;
    assert!(
        message.contains(&format!(
            "authentication to {} failed (msk-iam): the broker does not offer OAUTHBEARER",
            stack.kafka_scram_bootstrap
        )),
        "{message}"
    );
    assert!(message.contains("it offers SCRAM-SHA-512"), "{message}");
}

/// The data path's librdkafka clients (the restore's read-back consumer, the bridge's
/// consumer) authenticate through the same MSK IAM listener: the token they present passes the
/// same signature check.
#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_clients_present_a_valid_msk_iam_token_too() {
    let stack = Stack::from_env();
    let (_broker, listener) = stack.start_msk_iam_broker().await;
    let pairs = msk_iam(&stack, &listener.address);
    let connection = resolve(&stack, &pairs).await;
    let topic = unique("iam-data-path");
    let cluster = KafkaCluster::connect(connection.clone(), "tidemark-test").unwrap();
    tidemark_core::kafka::ClusterAdmin::create_topic(&cluster, &topic, 1, -1, &Default::default())
        .await
        .unwrap();
    let before = listener.accepted();
    let watermarks = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let consumer =
            tidemark_core::kafka::client::consumer(&connection, "tidemark-test", None).unwrap();
        consumer.fetch_watermarks(&topic, 0, std::time::Duration::from_secs(10))
    })
    .await
    .unwrap()
    .expect("librdkafka reads watermarks through the listener");
    assert_eq!(watermarks, (0, 0));
    assert!(
        listener.accepted() > before,
        "librdkafka's session was checked"
    );
    assert_eq!(listener.refusals(), Vec::<String>::new());
}

/// `TIDEMARK_KAFKA_*` settings for msk-iam to `bootstrap`, over TLS with the stack's CA.
fn msk_iam(stack: &Stack, bootstrap: &str) -> [(&'static str, String); 3] {
    [
        ("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("TIDEMARK_KAFKA_AUTH", "msk-iam".to_owned()),
        (
            "TIDEMARK_KAFKA_TLS_CA_FILE",
            stack.certs_dir.join("ca.pem").to_str().unwrap().to_owned(),
        ),
    ]
}

/// The message of the error a first request on `connection` meets; it must be final.
async fn refused(connection: KafkaConnection) -> String {
    let cluster = KafkaCluster::connect(connection, "tidemark-test").unwrap();
    let error = tidemark_core::kafka::ClusterReader::topics(&cluster)
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    error.to_string()
}

/// The stall check asks whether records a read-committed consumer would get wait past a
/// checkpoint, by fetching batch headers. Plain records wait; offsets past the log end do not.
/// (Transaction markers and aborted records, which nisshi cannot produce, are covered by the
/// scan's unit tests on encoded batches.)
#[tokio::test(flavor = "multi_thread")]
async fn records_waiting_reads_batch_headers_from_the_partition_leader() {
    use tidemark_core::kafka::{ClusterReader, TopicPartition};
    let stack = Stack::from_env();
    let topic = unique("waiting");
    stack.create_topic(&topic, 1, &["max.message.bytes=8388608"]);
    let records: Vec<serde_json::Value> = (0..5)
        .map(|n| serde_json::json!({"partition": 0, "key": null, "value": "dmFsdWU=", "n": n}))
        .collect();
    stack.produce(&topic, &serde_json::Value::Array(records));
    let cluster = KafkaCluster::connect(
        KafkaConnection::plaintext(stack.kafka_bootstrap.clone()),
        "tidemark-test",
    )
    .unwrap();
    let partition = TopicPartition::new(&topic, 0);
    for (from, to, waiting) in [(0, 5, true), (4, 5, true), (5, 5, false), (5, 9, false)] {
        assert_eq!(
            cluster.records_waiting(&partition, from, to).await.unwrap(),
            waiting,
            "{from}..{to}"
        );
    }
    // A record larger than one fetch asks for (the stalled partition's usual cause) is seen.
    use base64::Engine;
    let large = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 3 * 1024 * 1024]);
    stack.produce(
        &topic,
        &serde_json::json!([{"partition": 0, "key": null, "value": large}]),
    );
    for (from, to, waiting) in [(5, 6, true), (6, 6, false)] {
        assert_eq!(
            cluster.records_waiting(&partition, from, to).await.unwrap(),
            waiting,
            "{from}..{to}"
        );
    }
}
