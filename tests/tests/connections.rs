//! MSK IAM tokens against an independent SigV4 signer (botocore).

use std::time::Duration;

use tidemark_tests::Stack;

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
