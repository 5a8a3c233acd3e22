//! Signature verification against the published vectors in
//! `../shared/fixtures/webhooks/signature-vectors.json` (GitHub, Bitbucket Cloud, GitLab
//! secret token and signing token), through the same functions the server uses.

#[path = "support/shared.rs"]
mod shared;

use pipewright::config::{Secret, SIGNATURE_TIMESTAMP_TOLERANCE_SECS};
use pipewright::server::verify;

#[test]
fn published_signature_vectors_verify_exactly_as_expected() {
    let Some(dir) = shared::shared_dir() else {
        return;
    };
    let webhooks = dir.join("fixtures/webhooks");
    let text = std::fs::read_to_string(webhooks.join("signature-vectors.json")).unwrap();
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 8, "expected the full vector set");
    let mut checked = 0;
    for v in &vectors {
        let forge = v["forge"].as_str().unwrap();
        let secret = v["secret"].as_str().unwrap();
        let expected = v["expected"].as_str().unwrap();
        let must_verify = v["must_verify"].as_bool().unwrap();
        let body: Vec<u8> = match (
            v.get("body").and_then(|b| b.as_str()),
            v.get("body_file").and_then(|b| b.as_str()),
        ) {
            (Some(b), _) => b.as_bytes().to_vec(),
            (None, Some(file)) => std::fs::read(webhooks.join(file)).unwrap(),
            _ => panic!("vector without body: {v}"),
        };
        let result = match forge {
            "github" => verify::verify_hub_signature(
                &[Secret::new(secret)],
                "X-Hub-Signature-256",
                Some(expected),
                &body,
            ),
            "bitbucket-cloud" => verify::verify_hub_signature(
                &[Secret::new(secret)],
                "X-Hub-Signature",
                Some(expected),
                &body,
            ),
            "gitlab-secret-token" => {
                verify::verify_gitlab_token(&[Secret::new(secret)], Some(expected))
            }
            "gitlab-signing-token" => {
                use base64::Engine as _;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(secret.strip_prefix("whsec_").unwrap())
                    .unwrap();
                let ts = v["webhook_timestamp"].as_str().unwrap();
                verify::verify_standard_webhook(
                    &[Secret::new(hex::encode(raw))],
                    v["webhook_id"].as_str(),
                    Some(ts),
                    Some(expected),
                    &body,
                    ts.parse().unwrap(),
                    SIGNATURE_TIMESTAMP_TOLERANCE_SECS,
                )
            }
            other => {
                panic!("vector for an unknown scheme {other}: add support or skip it on purpose")
            }
        };
        assert_eq!(
            result.is_ok(),
            must_verify,
            "{forge} vector: {}",
            v["scheme"]
        );
        // The same vector with another secret never verifies.
        if forge != "gitlab-signing-token" && must_verify {
            let wrong = [Secret::new(format!("{secret}x"))];
            let r = match forge {
                "gitlab-secret-token" => verify::verify_gitlab_token(&wrong, Some(expected)),
                _ => verify::verify_hub_signature(
                    &wrong,
                    "X-Hub-Signature-256",
                    Some(expected),
                    &body,
                ),
            };
            assert!(r.is_err(), "{forge}: wrong secret verified");
        }
        checked += 1;
    }
    assert_eq!(checked, vectors.len());
}
