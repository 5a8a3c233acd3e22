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
use crate::forge::client::{classify, outcome_label, ApiError, CallCounter};
use crate::forge::Forge;

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
    #[serde(default)]
    permissions: HashMap<String, String>,
}

/// An installation token and what it may do.
#[derive(Debug, Clone)]
pub struct InstallationToken {
    /// The token.
    pub token: Secret,
    /// The installation granted `workflows: write` (needed for `.github/workflows/`).
    pub workflows_write: bool,
}

/// RFC 3339 timestamps as the forges write them (`2016-07-11T22:14:10Z`,
/// `2012-05-23T08:00:58.000Z`, `2013-11-08T01:11:03.263237+00:00`) → milliseconds since
/// the epoch. A zone (`Z` or an offset) is required.
pub fn parse_utc(ts: &str) -> Option<Millis> {
    let b = ts.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| {
        let s = ts.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<i64>().ok())?
    };
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut rest = ts.get(19..)?;
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let ms: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms.parse::<i64>().ok()?;
        rest = &f[digits..];
    }
    let offset_s = match rest {
        "Z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh = n2(&rest[1..3])?;
            if &rest[3..4] != ":" {
                return None;
            }
            let om = n2(&rest[4..6])?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
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
    Some(((days * 86_400) + h * 3_600 + mi * 60 + s - offset_s) * 1_000 + frac_ms)
}

fn n2(s: &str) -> Option<i64> {
    (s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
}

/// Installation tokens by installation id, renewed shortly before they expire.
pub struct TokenCache {
    api_url: String,
    app: AppCredentials,
    http: reqwest::Client,
    clock: Clock,
    tokens: Mutex<HashMap<u64, (InstallationToken, Millis)>>,
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
        Ok(self.installation_token(installation, None).await?.token)
    }

    /// A token for `installation` with its permissions; a fresh one counts as an API call.
    pub async fn installation_token(
        &self,
        installation: u64,
        counter: Option<&CallCounter>,
    ) -> Result<InstallationToken, ApiError> {
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
        const OP: &str = "create installation token";
        let jwt = self
            .app
            .jwt(now)
            .map_err(|e| ApiError::Config(format!("{e:#}")))?;
        let url = format!(
            "{}/app/installations/{installation}/access_tokens",
            self.api_url
        );
        let sent = self
            .http
            .post(&url)
            .header(
                "Accept",
                "application/vnd.github+json, application/json;q=0.9",
            )
            .bearer_auth(jwt.expose())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(c) = counter {
                    c.record(Forge::Github, OP, "transport_error");
                }
                return Err(ApiError::Transient {
                    forge: Forge::Github,
                    operation: OP,
                    detail: format!("cannot reach {url}: {e}"),
                });
            }
        };
        let status = resp.status().as_u16();
        if let Some(c) = counter {
            c.record(Forge::Github, OP, outcome_label(status));
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let mut e = classify(Forge::Github, OP, status, &headers, &body, now);
            if let ApiError::Rejected { body, .. } = &mut e {
                *body = format!("installation {installation}: {body}");
            }
            return Err(e);
        }
        let t: AccessToken = serde_json::from_str(&body).map_err(|e| ApiError::Decode {
            forge: Forge::Github,
            operation: OP,
            detail: e.to_string(),
        })?;
        let exp = parse_utc(&t.expires_at).ok_or_else(|| ApiError::Decode {
            forge: Forge::Github,
            operation: OP,
            detail: format!("unreadable expires_at `{}`", t.expires_at),
        })?;
        let tok = InstallationToken {
            token: Secret::new(t.token),
            workflows_write: t.permissions.get("workflows").is_some_and(|p| p == "write"),
        };
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
        assert_eq!(
            parse_utc("2016-07-11T22:14:10.250Z"),
            Some(1_468_275_250_250)
        );
        assert_eq!(
            parse_utc("2016-07-11T23:14:10.263237+01:00"),
            Some(1_468_275_250_263)
        );
        for bad in [
            "",
            "2016-07-11 22:14:10Z",
            "2016-13-11T22:14:10Z",
            "2016-07-11T22:14:10",
            "x016-07-11T22:14:10Z",
            "2016-07-11T22:14:10.Z",
            "2016-07-11T22:14:10+0100",
            "2016-07-11T22:14:10+01:00x",
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
