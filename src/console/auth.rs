//! Who is asking: the operator token (`Authorization: Bearer …`, or a sign-in form that
//! trades it for a session), and server-side sessions for people who signed in with a
//! forge. A session cookie holds 32 random bytes; the database holds only their SHA-256.
//! Every state-changing request from a session carries its CSRF token. Token and CSRF
//! comparisons are constant-time. Nothing here logs a token.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::ConsoleState;
use crate::clock::Millis;
use crate::config::Secret;
use crate::db::console::{self, Scope, SessionRow};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "pipewright_session";
/// Name of the cookie that carries an OAuth sign-in's `state` (login CSRF).
pub const OAUTH_STATE_COOKIE: &str = "pipewright_oauth";
/// How long a session lasts, in milliseconds (12 hours).
pub const SESSION_TTL_MS: Millis = 12 * 60 * 60 * 1000;
/// How long the forge's word on what a person administers is trusted, in milliseconds;
/// after that the next page goes through the forge's sign-in again (it answers at once
/// for an App the person already authorised), so lost ownership shows within minutes.
pub const ACCESS_TTL_MS: Millis = 10 * 60 * 1000;
/// How long an OAuth round trip may take, in seconds (the state cookie's lifetime).
pub const OAUTH_STATE_TTL_SECS: i64 = 10 * 60;

/// The signed-in person (or script) behind a request.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// `admin`, `github`, `gitlab` or `bitbucket`.
    pub kind: String,
    /// Login shown in the console and recorded in the audit trail.
    pub login: String,
    /// The operator token: sees everything.
    pub admin: bool,
    /// Which installations this person may see.
    #[serde(skip)]
    pub scope: Scope,
    /// The session's CSRF token; `None` for bearer requests (no ambient credential).
    #[serde(skip)]
    pub csrf: Option<String>,
}

/// Why a request is not let in.
#[derive(Debug)]
pub enum Denied {
    /// No (valid) credential: 401 for the API, the sign-in page for pages.
    Unauthenticated(&'static str),
    /// A forge session whose access must be confirmed again.
    Recheck(String),
    /// The database could not be read.
    Unavailable(String),
}

/// 32 random bytes, URL-safe base64 (a session id, a CSRF token, an OAuth state).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 of a token, hex: what the database keeps of a session id.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two secrets of any length (compares their SHA-256, so the
/// time does not depend on where they differ nor on the expected length).
pub fn same_secret(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// Is `token` the operator token?
pub fn is_admin_token(state: &ConsoleState, token: &str) -> bool {
    state
        .config
        .console
        .admin_token
        .as_ref()
        .is_some_and(|t| same_secret(token, t.expose()))
}

/// Authenticates a console or API request.
pub async fn authenticate(state: &ConsoleState, req: &HttpRequest) -> Result<Principal, Denied> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        // A request that names a credential is judged by it alone, never by a cookie too.
        let token = h
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(Denied::Unauthenticated("malformed Authorization header"))?;
        if is_admin_token(state, token) {
            return Ok(Principal {
                kind: "admin".into(),
                login: "admin".into(),
                admin: true,
                scope: Scope::All,
                csrf: None,
            });
        }
        return Err(Denied::Unauthenticated("invalid bearer token"));
    }
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Err(Denied::Unauthenticated("not signed in"));
    };
    let now = state.clock.now();
    let session = console::get_session(&state.db, &token_hash(cookie.value()), now)
        .await
        .map_err(|e| Denied::Unavailable(e.to_string()))?
        .ok_or(Denied::Unauthenticated("session expired or unknown"))?;
    if session.principal != "admin" && now - session.access_checked_at > ACCESS_TTL_MS {
        return Err(Denied::Recheck(session.principal));
    }
    Ok(Principal {
        admin: session.principal == "admin",
        scope: session.scope(),
        kind: session.principal,
        login: session.login,
        csrf: Some(session.csrf_token),
    })
}

/// Checks the CSRF token of a state-changing request (bearer requests need none).
pub fn check_csrf(principal: &Principal, req: &HttpRequest, form_token: Option<&str>) -> bool {
    let Some(expected) = &principal.csrf else {
        return true;
    };
    let given = form_token.or_else(|| {
        req.headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
    });
    given.is_some_and(|g| same_secret(g, expected))
}

/// Should cookies be `Secure`? Yes behind HTTPS: the public URL says so, or the request
/// arrived over TLS (as the proxy reports it).
pub fn secure_cookies(state: &ConsoleState, req: &HttpRequest) -> bool {
    state
        .config
        .bot
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || req.connection_info().scheme() == "https"
}

/// A cookie with the console's attributes: HttpOnly, SameSite=Lax, Path=/, Secure
/// behind HTTPS.
pub fn cookie(
    name: &'static str,
    value: String,
    max_age_secs: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// A cookie that deletes `name`.
pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), 0, secure);
    c.make_removal();
    c
}

/// Creates a session and returns the cookie token.
pub async fn start_session(
    state: &ConsoleState,
    principal: &str,
    login: &str,
    user_id: Option<&str>,
    installations: Option<&[i64]>,
) -> Result<String, sqlx::Error> {
    let now = state.clock.now();
    let token = random_token();
    let row = SessionRow {
        id_hash: token_hash(&token),
        principal: principal.to_owned(),
        login: login.to_owned(),
        user_id: user_id.map(str::to_owned),
        installations: installations.map(|ids| serde_json::to_string(ids).expect("ids serialize")),
        access_checked_at: now,
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + SESSION_TTL_MS,
    };
    console::create_session(&state.db, &row, now).await?;
    Ok(token)
}

/// A local path to return to after signing in: only console pages (and the App setup),
/// never another host.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n.starts_with("/console/") || n == "/setup/github")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.contains("://")
                && n.len() < 2_000 =>
        {
            n.to_owned()
        }
        _ => "/console/".to_owned(),
    }
}

/// 303 to `location` with the given cookies.
pub fn redirect_with(location: &str, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    b.insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    for c in cookies {
        b.cookie(c);
    }
    b.finish()
}

/// The operator token of a sign-in form, checked.
pub fn admin_login(state: &ConsoleState, token: &str) -> bool {
    !token.is_empty() && is_admin_token(state, token)
}

/// Keeps a secret out of `Debug` output (forge access tokens during a sign-in).
pub fn secret(s: String) -> Secret {
    Secret::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn next_is_a_local_console_path() {
        assert_eq!(
            safe_next(Some("/console/jobs?state=dead")),
            "/console/jobs?state=dead"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console/\\evil",
            "/api/v1/jobs",
            "/console/x?u=https://evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/");
        assert_eq!(safe_next(Some("/setup/github")), "/setup/github");
        assert_eq!(
            safe_next(Some("/setup/github/callback?code=x")),
            "/console/"
        );
    }
}
