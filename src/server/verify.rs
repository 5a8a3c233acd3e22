//! Webhook authenticity, checked on the raw body before anything parses it. Every
//! comparison is constant-time (the MAC's own `verify_slice`, or `subtle` for bearer
//! tokens) and any of several configured secrets is accepted, so secrets can be rotated.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery is not authentic (always answered 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header carrying the signature or token is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The header is not in the expected format.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// No configured secret produces this signature.
    #[error("signature does not match any configured secret")]
    Mismatch,
    /// The signed timestamp is outside the accepted window (replay protection).
    #[error("webhook-timestamp is outside the accepted window")]
    Stale,
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`: GitHub `X-Hub-Signature-256` and Bitbucket
/// Cloud `X-Hub-Signature`.
pub fn verify_hub_signature(
    secrets: &[Secret],
    header_name: &'static str,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::Missing(header_name))?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed(header_name))?;
    let sig = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed(header_name))?;
    for secret in secrets {
        let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

/// GitLab `X-Gitlab-Token`: the configured token itself (a bearer secret, not a MAC).
pub fn verify_gitlab_token(secrets: &[Secret], header: Option<&str>) -> Result<(), VerifyError> {
    let token = header.ok_or(VerifyError::Missing("X-Gitlab-Token"))?;
    // Check every secret (no early exit) so timing does not tell which one matched.
    let mut ok = subtle::Choice::from(0);
    for secret in secrets {
        ok |= token.as_bytes().ct_eq(secret.expose().as_bytes());
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Standard Webhooks (GitLab signing token): `webhook-signature` holds one or more
/// space-separated `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. `keys` are
/// the raw HMAC keys as hex (see `config`); `now_secs` is the current Unix time.
pub fn verify_standard_webhook(
    keys: &[Secret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::Missing("webhook-id"))?;
    let timestamp = timestamp.ok_or(VerifyError::Missing("webhook-timestamp"))?;
    let signature = signature.ok_or(VerifyError::Missing("webhook-signature"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed("webhook-timestamp"))?;
    if (now_secs - ts).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let candidates: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::Malformed("webhook-signature"));
    }
    for key in keys {
        let Ok(raw) = hex::decode(key.expose()) else {
            continue;
        };
        let mut mac = HmacSha256::new_from_slice(&raw).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        for sig in &candidates {
            if mac.clone().verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn hub_signature_accepts_any_configured_secret() {
        let secrets = [Secret::new("old"), Secret::new("new")];
        let body = br#"{"a":1}"#;
        for s in ["old", "new"] {
            assert_eq!(
                verify_hub_signature(&secrets, "X-Hub-Signature-256", Some(&sign(s, body)), body),
                Ok(())
            );
        }
        assert_eq!(
            verify_hub_signature(
                &secrets,
                "X-Hub-Signature-256",
                Some(&sign("other", body)),
                body
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn hub_signature_rejects_missing_and_malformed_headers() {
        let secrets = [Secret::new("s")];
        assert_eq!(
            verify_hub_signature(&secrets, "X-Hub-Signature-256", None, b""),
            Err(VerifyError::Missing("X-Hub-Signature-256"))
        );
        for bad in ["", "sha1=abcd", "sha256=zz", "sha256", "SHA256=00"] {
            assert_eq!(
                verify_hub_signature(&secrets, "X-Hub-Signature-256", Some(bad), b""),
                Err(VerifyError::Malformed("X-Hub-Signature-256")),
                "{bad}"
            );
        }
        // Valid hex of the wrong length is a mismatch, not a panic.
        assert_eq!(
            verify_hub_signature(&secrets, "X-Hub-Signature-256", Some("sha256=00"), b""),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn no_configured_secret_never_verifies() {
        let body = b"x";
        assert_eq!(
            verify_hub_signature(&[], "X-Hub-Signature", Some(&sign("", body)), body),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(&[], Some("")),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn gitlab_token_is_compared_exactly() {
        let secrets = [Secret::new("tok-1"), Secret::new("tok-2")];
        assert_eq!(verify_gitlab_token(&secrets, Some("tok-2")), Ok(()));
        assert_eq!(
            verify_gitlab_token(&secrets, Some("tok-")),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(&secrets, Some("tok-22")),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(&secrets, None),
            Err(VerifyError::Missing("X-Gitlab-Token"))
        );
    }

    #[test]
    fn standard_webhook_checks_window_and_every_signature() {
        let key = hex::encode(b"key-bytes");
        let keys = [Secret::new(key)];
        let body = b"{}";
        let mut mac = HmacSha256::new_from_slice(b"key-bytes").unwrap();
        mac.update(b"msg_1.1000.{}");
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let header = format!("v1,AAAA v1,{good}");
        let check = |now, sig: &str| {
            verify_standard_webhook(
                &keys,
                Some("msg_1"),
                Some("1000"),
                Some(sig),
                body,
                now,
                300,
            )
        };
        assert_eq!(check(1000, &header), Ok(()));
        assert_eq!(check(1300, &header), Ok(()));
        assert_eq!(check(1301, &header), Err(VerifyError::Stale));
        assert_eq!(check(699, &header), Err(VerifyError::Stale));
        assert_eq!(check(1000, "v1,AAAA"), Err(VerifyError::Mismatch));
        assert_eq!(
            check(1000, "v2,AAAA"),
            Err(VerifyError::Malformed("webhook-signature"))
        );
        assert_eq!(
            verify_standard_webhook(
                &keys,
                Some("msg_1"),
                Some("soon"),
                Some(&header),
                body,
                1000,
                300
            ),
            Err(VerifyError::Malformed("webhook-timestamp"))
        );
    }
}
