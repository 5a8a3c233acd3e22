//! GitHub App authentication: a short-lived RS256 JWT signed with the App's private key
//! (iss = App id), exchanged for installation access tokens, which are cached until
//! shortly before they expire. Keys and tokens are [`Secret`]s: never printed.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Millis};
use crate::config::Secret;

/// JWT lifetime, in seconds (GitHub accepts at most 10 minutes).
pub const JWT_LIFETIME_SECS: i64 = 9 * 60;
/// Backdating of `iat`, in seconds, against clock drift (GitHub's recommendation).
pub const JWT_BACKDATE_SECS: i64 = 60;
/// A cached installation token is renewed when it has less than this left, in ms.
pub const TOKEN_RENEW_MARGIN_MS: Millis = 5 * 60 * 1000;

/// The App's identity.
pub struct AppCredentials {
    app_id: u64,
    key: EncodingKey,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

impl AppCredentials {
    /// From the App id and its PEM private key (PKCS#1 or PKCS#8).
    pub fn new(app_id: u64, pem: &Secret) -> anyhow::Result<AppCredentials> {
        let key = EncodingKey::from_rsa_pem(pem.expose().as_bytes())
            .context("PIPEWRIGHT_GITHUB_PRIVATE_KEY is not an RSA private key in PEM format")?;
        Ok(AppCredentials { app_id, key })
    }

    /// The App id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// A JWT authenticating as the App, valid for [`JWT_LIFETIME_SECS`].
    pub fn jwt(&self, now: Millis) -> anyhow::Result<Secret> {
        let now_s = now / 1000;
        let claims = Claims {
            iat: now_s - JWT_BACKDATE_SECS,
            exp: now_s + JWT_LIFETIME_SECS,
            iss: self.app_id.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .context("cannot sign the App JWT")?;
        Ok(Secret::new(token))
    }
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

/// `YYYY-MM-DDTHH:MM:SSZ` (GitHub's timestamps) → milliseconds since the epoch.
pub fn parse_utc(ts: &str) -> Option<Millis> {
    let b = ts.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + h * 3_600 + mi * 60 + s) * 1_000)
}

/// Installation tokens by installation id, renewed shortly before they expire.
pub struct TokenCache {
    api_url: String,
    app: AppCredentials,
    http: reqwest::Client,
    clock: Clock,
    tokens: Mutex<HashMap<u64, (Secret, Millis)>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("api_url", &self.api_url)
            .field("app", &self.app)
            .finish()
    }
}

impl TokenCache {
    /// A cache talking to `api_url` (`https://api.github.com` or a GHES `/api/v3`).
    pub fn new(api_url: &str, app: AppCredentials, clock: Clock) -> anyhow::Result<TokenCache> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("pipewright/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(TokenCache {
            api_url: api_url.trim_end_matches('/').to_owned(),
            app,
            http,
            clock,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// A token for `installation`: cached, or freshly created.
    pub async fn token(&self, installation: u64) -> anyhow::Result<Secret> {
        let now = self.clock.now();
        if let Some((tok, exp)) = self
            .tokens
            .lock()
            .expect("token cache lock is never poisoned")
            .get(&installation)
        {
            if *exp - now > TOKEN_RENEW_MARGIN_MS {
                return Ok(tok.clone());
            }
        }
        let jwt = self.app.jwt(now)?;
        let url = format!(
            "{}/app/installations/{installation}/access_tokens",
            self.api_url
        );
        let resp = self
            .http
            .post(&url)
            .header("Accept", "application/vnd.github+json")
            .bearer_auth(jwt.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!(
                "installation {installation}: GitHub answered {status} for an access token: {}",
                body.chars().take(500).collect::<String>()
            );
        }
        let t: AccessToken = resp
            .json()
            .await
            .context("access token response is not the expected JSON")?;
        let exp = parse_utc(&t.expires_at)
            .with_context(|| format!("unreadable expires_at `{}`", t.expires_at))?;
        let tok = Secret::new(t.token);
        self.tokens
            .lock()
            .expect("token cache lock is never poisoned")
            .insert(installation, (tok.clone(), exp));
        Ok(tok)
    }

    /// Forgets an installation's token (installation deleted or suspended).
    pub fn forget(&self, installation: u64) {
        self.tokens
            .lock()
            .expect("token cache lock is never poisoned")
            .remove(&installation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_timestamps() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2016-07-11T22:14:10Z"), Some(1_468_275_250_000));
        assert_eq!(parse_utc("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        for bad in [
            "",
            "2016-07-11 22:14:10Z",
            "2016-13-11T22:14:10Z",
            "2016-07-11T22:14:10",
            "x016-07-11T22:14:10Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_without_echoing_it() {
        let e = AppCredentials::new(1, &Secret::new("not a key at all")).unwrap_err();
        assert!(!format!("{e:#}").contains("not a key at all"));
    }
}
