//! One-click GitHub App: `/setup/github` posts pipewright's manifest (with this
//! deployment's URLs) to GitHub; GitHub creates the App and sends the browser back to
//! `/setup/github/callback?code=…`, where the code is exchanged
//! (`POST /app-manifests/{code}/conversions`) for the App's id, slug, private key,
//! webhook secret and OAuth client. Those are sealed with `PIPEWRIGHT_CREDENTIALS_KEY`
//! (AES-256-GCM) into the `github_apps` table, and the running process starts acting as
//! the App without a restart. Environment variables still win: with
//! `PIPEWRIGHT_GITHUB_APP_ID` set, the stored App is ignored.
//!
//! Who may use the page: the operator (admin token), or anyone while no App is
//! configured at all and no operator token is set (a fresh zero-config deployment). The
//! state parameter is bound to the browser that started the flow.

use std::sync::{Arc, RwLock};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth;
use super::{html, ConsoleError, ConsoleState};
use crate::config::{BotConfig, Config, GithubAppConfig, OAuthClient, Secret};
use crate::crypto::{Keyring, Owner, Sealed};
use crate::db::github_apps::{self, StoredApp};
use crate::db::Db;

/// Cookie binding a manifest flow to the browser that started it.
pub const SETUP_STATE_COOKIE: &str = "pipewright_setup";
/// How long the manifest round trip may take, in seconds.
pub const SETUP_STATE_TTL_SECS: i64 = 30 * 60;
/// Name given to the App when none is chosen (GitHub requires it to be unique).
pub const DEFAULT_APP_NAME: &str = "pipewright";

/// The GitHub App the process acts as.
#[derive(Debug, Clone)]
pub struct ActiveApp {
    /// App id.
    pub app_id: u64,
    /// Slug (its bot is `<slug>[bot]`).
    pub slug: String,
    /// PEM private key.
    pub private_key: Secret,
    /// Webhook secret (stored Apps only; the environment's list wins).
    pub webhook_secret: Option<Secret>,
    /// OAuth client (stored Apps only; `PIPEWRIGHT_GITHUB_CLIENT_*` wins).
    pub oauth: Option<OAuthClient>,
    /// From environment variables (true) or the database (false).
    pub from_env: bool,
}

/// The App in force, shared by the console, the webhook intake and the worker restart.
#[derive(Debug)]
pub struct GithubAppSlot {
    app: RwLock<Option<ActiveApp>>,
    env_webhook_secrets: Vec<Secret>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// The secret document sealed in `github_apps`.
#[derive(Serialize, Deserialize)]
struct SealedDoc {
    pem: String,
    webhook_secret: Option<String>,
    client_secret: Option<String>,
}

fn owner(app_id: u64) -> Owner {
    let id = app_id.to_string();
    Owner::new(["github_app", id.as_str()])
}

impl GithubAppSlot {
    /// The slot as the configuration sets it (the environment's App, if any).
    pub fn from_config(config: &Config) -> GithubAppSlot {
        let app = config.bot.github_app.as_ref().map(|a| ActiveApp {
            app_id: a.app_id,
            slug: config.bot.github_app_slug.clone(),
            private_key: a.private_key.clone(),
            webhook_secret: None,
            oauth: None,
            from_env: true,
        });
        GithubAppSlot {
            app: RwLock::new(app),
            env_webhook_secrets: config.github_webhook_secrets.clone(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// The App in force.
    pub fn current(&self) -> Option<ActiveApp> {
        self.app
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Subscribes to changes (a new App stored here or by another replica).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn set(&self, app: ActiveApp) {
        *self
            .app
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(app);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Webhook secrets for GitHub deliveries: the environment's, else the stored App's.
    pub fn webhook_secrets(&self) -> Vec<Secret> {
        if !self.env_webhook_secrets.is_empty() {
            return self.env_webhook_secrets.clone();
        }
        self.current()
            .and_then(|a| a.webhook_secret)
            .into_iter()
            .collect()
    }

    /// The stored App's OAuth client (sign-in with GitHub without extra settings).
    pub fn oauth_client(&self) -> Option<OAuthClient> {
        self.current().and_then(|a| a.oauth)
    }

    /// The bot's configuration with the App in force (the environment's is kept as is).
    pub fn bot_config(&self, base: &BotConfig) -> BotConfig {
        let mut bot = base.clone();
        if bot.github_app.is_none() {
            if let Some(a) = self.current() {
                bot.github_app = Some(GithubAppConfig {
                    app_id: a.app_id,
                    private_key: a.private_key,
                });
                bot.github_app_slug = a.slug;
            }
        }
        bot
    }

    /// Loads the newest stored App unless the environment configures one. Returns true
    /// when the App in force changed.
    pub async fn load_stored(&self, db: &Db, keyring: Option<&Keyring>) -> anyhow::Result<bool> {
        if self.current().is_some_and(|a| a.from_env) {
            return Ok(false);
        }
        let Some(row) = github_apps::latest(db).await? else {
            return Ok(false);
        };
        if self
            .current()
            .is_some_and(|a| a.app_id == row.app_id as u64)
        {
            return Ok(false);
        }
        let keyring = keyring.ok_or_else(|| {
            anyhow::anyhow!(
                "a GitHub App is stored encrypted in the database, but \
                 PIPEWRIGHT_CREDENTIALS_KEY is not set: it cannot be used"
            )
        })?;
        let app = open(keyring, &row)?;
        tracing::info!(app_id = app.app_id, slug = %app.slug, "acting as the GitHub App stored by /setup/github");
        self.set(app);
        Ok(true)
    }
}

fn open(keyring: &Keyring, row: &StoredApp) -> anyhow::Result<ActiveApp> {
    let app_id = row.app_id as u64;
    let sealed = Sealed {
        key_id: row.key_id.clone(),
        nonce: row.nonce.clone(),
        ciphertext: row.ciphertext.clone(),
    };
    let text = keyring.open_text(&owner(app_id), &sealed)?;
    let doc: SealedDoc = serde_json::from_str(text.expose())
        .map_err(|_| anyhow::anyhow!("the stored GitHub App document is not readable"))?;
    Ok(ActiveApp {
        app_id,
        slug: row.slug.clone(),
        private_key: Secret::new(doc.pem),
        webhook_secret: doc.webhook_secret.map(Secret::new),
        oauth: match (&row.client_id, doc.client_secret) {
            (Some(id), Some(secret)) => Some(OAuthClient {
                client_id: id.clone(),
                client_secret: Secret::new(secret),
            }),
            _ => None,
        },
        from_env: false,
    })
}

/// May this request use the setup page?
async fn may_set_up(
    state: &ConsoleState,
    req: &HttpRequest,
) -> Result<Option<auth::Principal>, HttpResponse> {
    match auth::authenticate(state, req).await {
        Ok(me) if me.admin => Ok(Some(me)),
        Ok(me) => Err(ConsoleError::NotFound.page(state, Some(&me))),
        Err(d) => {
            let open =
                state.github_app.current().is_none() && state.config.console.admin_token.is_none();
            if open {
                Ok(None)
            } else {
                Err(super::denied_page(req, d))
            }
        }
    }
}

/// `GET /setup/github`
pub async fn setup_page(state: web::Data<ConsoleState>, req: HttpRequest) -> HttpResponse {
    let me = match may_set_up(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let csrf = me.as_ref().and_then(|m| m.csrf.clone());
    if state.config.credentials_key.is_none() {
        return ConsoleError::Conflict(
            "set PIPEWRIGHT_CREDENTIALS_KEY first: the App's private key is stored encrypted \
             with it"
                .into(),
        )
        .page(&state, me.as_ref());
    }
    let base = state.base_url(&req);
    let manifest = match crate::bot::manifest::github(&base, DEFAULT_APP_NAME) {
        Ok(m) => m,
        Err(e) => return ConsoleError::BadRequest(e.to_string()).page(&state, me.as_ref()),
    };
    let nonce = auth::random_token();
    let web = &state.config.console.github_web_url;
    let secure = auth::secure_cookies(&state, &req);
    let mut resp = html(
        &state,
        StatusCode::OK,
        "setup_github.html",
        json!({
            "me": me,
            "csrf": csrf,
            "manifest": manifest,
            "public_url": base,
            "base": web,
            "state": nonce,
            "action": format!("{web}/settings/apps/new?state={nonce}"),
        }),
    );
    let _ = resp.add_cookie(&auth::cookie(
        SETUP_STATE_COOKIE,
        nonce,
        SETUP_STATE_TTL_SECS,
        secure,
    ));
    resp
}

/// The callback's parameters.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct Conversion {
    id: u64,
    slug: String,
    html_url: Option<String>,
    owner: Option<serde_json::Value>,
    client_id: Option<String>,
    client_secret: Option<String>,
    webhook_secret: Option<String>,
    pem: String,
}

/// `GET /setup/github/callback`
pub async fn callback(
    state: web::Data<ConsoleState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let me = match may_set_up(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(keyring) = state.config.credentials_key.clone() else {
        return ConsoleError::Conflict("set PIPEWRIGHT_CREDENTIALS_KEY first".into())
            .page(&state, me.as_ref());
    };
    let expected = req.cookie(SETUP_STATE_COOKIE).map(|c| c.value().to_owned());
    let (Some(code), Some(given), Some(expected)) = (&query.code, &query.state, expected) else {
        return ConsoleError::BadRequest(
            "this callback carries no code, or the setup began in another browser; start again at /setup/github".into(),
        )
        .page(&state, me.as_ref());
    };
    if !auth::same_secret(given, &expected) {
        tracing::warn!("GitHub App setup callback with a state that does not match");
        return ConsoleError::BadRequest(
            "the setup state does not match; start again at /setup/github".into(),
        )
        .page(&state, me.as_ref());
    }
    if code.is_empty()
        || code.len() > 200
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return ConsoleError::BadRequest("malformed code".into()).page(&state, me.as_ref());
    }
    match convert_and_store(&state, &keyring, code, me.as_ref()).await {
        Ok(app) => {
            let secure = auth::secure_cookies(&state, &req);
            let mut resp = html(
                &state,
                StatusCode::OK,
                "setup_github.html",
                json!({
                    "me": me,
                    "csrf": me.as_ref().and_then(|m| m.csrf.clone()),
                    "done": {
                        "app_id": app.app_id,
                        "slug": app.slug,
                        "html_url": app.html_url,
                    },
                }),
            );
            let _ = resp.add_cookie(&auth::removal(SETUP_STATE_COOKIE, secure));
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "GitHub App setup failed");
            ConsoleError::Conflict(e.to_string()).page(&state, me.as_ref())
        }
    }
}

/// What the setup stored.
#[derive(Debug)]
pub struct CreatedApp {
    /// App id.
    pub app_id: u64,
    /// Slug.
    pub slug: String,
    /// Its page on GitHub.
    pub html_url: String,
}

async fn convert_and_store(
    state: &ConsoleState,
    keyring: &Keyring,
    code: &str,
    me: Option<&auth::Principal>,
) -> anyhow::Result<CreatedApp> {
    let url = format!(
        "{}/app-manifests/{code}/conversions",
        state.config.bot.github_api_url
    );
    let resp = state
        .http
        .post(&url)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach GitHub: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default();
        anyhow::bail!("GitHub refused the code (HTTP {status}) {msg}: codes are valid for one hour and one use");
    }
    let c: Conversion = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("GitHub's answer is not an App: {e}"))?;
    // Refuse a key that cannot sign before storing it.
    crate::forge::github::auth::AppCredentials::new(c.id, &Secret::new(c.pem.clone()))?;
    let doc = SealedDoc {
        pem: c.pem,
        webhook_secret: c.webhook_secret,
        client_secret: c.client_secret,
    };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&doc)?);
    drop(doc);
    let sealed = keyring.seal(&owner(c.id), &plain)?;
    let now = state.clock.now();
    let owner_login = c
        .owner
        .as_ref()
        .and_then(|o| o.get("login"))
        .and_then(|l| l.as_str())
        .map(str::to_owned);
    let html_url = c
        .html_url
        .clone()
        .unwrap_or_else(|| format!("{}/apps/{}", state.config.console.github_web_url, c.slug));
    let row = StoredApp {
        app_id: c.id as i64,
        slug: c.slug.clone(),
        owner: owner_login.clone(),
        html_url: Some(html_url.clone()),
        client_id: c.client_id.clone(),
        key_id: sealed.key_id,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        created_at: now,
    };
    github_apps::store(&state.db, &row).await?;
    let mut entry = crate::db::audit::AuditEntry::new(
        crate::db::audit::Actor::console(
            me.map_or("setup (no operator token set)".to_owned(), |m| {
                m.login.clone()
            }),
        ),
        "github_app.create",
    );
    entry.forge = Some("github".into());
    entry.details = json!({ "app_id": c.id, "slug": c.slug, "owner": owner_login });
    crate::db::audit::record(&state.db, &entry, now).await?;
    let loaded = state
        .github_app
        .load_stored(&state.db, Some(keyring))
        .await?;
    if !loaded && !state.github_app.current().is_some_and(|a| a.from_env) {
        anyhow::bail!("the App was stored but could not be loaded back");
    }
    tracing::info!(app_id = c.id, slug = %c.slug, "GitHub App created from the manifest and stored encrypted");
    Ok(CreatedApp {
        app_id: c.id,
        slug: c.slug,
        html_url,
    })
}

/// Re-reads the stored App every `every` (other replicas' setups); logs failures.
pub async fn watch_stored(
    slot: Arc<GithubAppSlot>,
    db: Db,
    keyring: Option<Keyring>,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = slot.load_stored(&db, keyring.as_ref()).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot load the stored GitHub App");
        }
    }
}
