//! The operator console, served by `serve`: server-rendered pages under `/console/`, the
//! same data as JSON under `/api/v1/`, sign-in (operator token or a forge's OAuth), and
//! the one-click GitHub App setup under `/setup/github`.
//!
//! What it must not do: show one tenant's data to another (every query takes the
//! signed-in person's [`Scope`]), change anything without a CSRF token (or the bearer
//! operator token), answer anything without a session, or print a secret. It reads the
//! database; the only writes are sessions, retries and re-analyses (queued jobs, each
//! recorded in the audit trail), and the App the setup page stores.
//!
//! Routes: see [`configure`].

pub mod auth;
pub mod oauth;
pub mod pages;
pub mod setup;
pub mod templates;

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::forge::Forge;

use auth::Denied;
pub use auth::Principal;
pub use templates::Templates;

/// Repositories per installation page.
pub const REPOS_PER_PAGE: i64 = 50;
/// Jobs per jobs page.
pub const JOBS_PER_PAGE: i64 = 50;
/// Timeout of the console's own forge calls (OAuth, the manifest conversion), in seconds.
pub const FORGE_TIMEOUT_SECS: u64 = 20;

/// What the console's handlers share.
#[derive(Debug)]
pub struct ConsoleState {
    /// Configuration.
    pub config: Arc<Config>,
    /// Database.
    pub db: Db,
    /// Clock.
    pub clock: Clock,
    /// Parsed templates.
    pub templates: Templates,
    /// HTTP client for the forges (OAuth, manifest conversion).
    pub http: reqwest::Client,
    /// The GitHub App as the bot uses it now (environment or stored), shared with the
    /// webhook intake and the workers.
    pub github_app: Arc<setup::GithubAppSlot>,
}

impl ConsoleState {
    /// Builds the state (templates parsed once; a broken override stops start-up).
    pub fn new(
        config: Arc<Config>,
        db: Db,
        clock: Clock,
        github_app: Arc<setup::GithubAppSlot>,
    ) -> anyhow::Result<ConsoleState> {
        let templates = Templates::load(config.console.templates.as_deref())?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("pipewright/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(FORGE_TIMEOUT_SECS))
            // The OAuth endpoints answer directly; a redirect would be a misconfiguration.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ConsoleState {
            config,
            db,
            clock,
            templates,
            http,
            github_app,
        })
    }

    /// The OAuth sign-in of a forge, when configured.
    pub fn provider(&self, forge: Forge) -> Option<oauth::Provider> {
        let c = &self.config.console;
        let b = &self.config.bot;
        match forge {
            Forge::Github => {
                let client = c
                    .github
                    .clone()
                    .or_else(|| self.github_app.oauth_client())?;
                Some(oauth::Provider {
                    forge,
                    client,
                    web_url: c.github_web_url.clone(),
                    api_url: b.github_api_url.clone(),
                })
            }
            Forge::Gitlab => Some(oauth::Provider {
                forge,
                client: c.gitlab.clone()?,
                web_url: b.gitlab_url.clone(),
                api_url: format!("{}/api/v4", b.gitlab_url),
            }),
            Forge::Bitbucket => Some(oauth::Provider {
                forge,
                client: c.bitbucket.clone()?,
                web_url: c.bitbucket_web_url.clone(),
                api_url: b.bitbucket_api_url.clone(),
            }),
        }
    }

    /// This deployment's base URL as the browser sees it: `PIPEWRIGHT_PUBLIC_URL`, or
    /// the request's own scheme and host.
    pub fn base_url(&self, req: &HttpRequest) -> String {
        match &self.config.bot.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let ci = req.connection_info();
                format!("{}://{}", ci.scheme(), ci.host())
            }
        }
    }
}

/// Adds the console's routes.
pub fn configure(state: web::Data<ConsoleState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .route("/", web::get().to(root))
            .route("/console", web::get().to(root))
            .route("/console/static/console.css", web::get().to(css))
            .route("/console/static/console.js", web::get().to(js))
            .route("/console/login", web::get().to(pages::login_page))
            .route("/console/login", web::post().to(pages::login_submit))
            .route("/console/logout", web::post().to(pages::logout))
            .route(
                "/console/auth/{forge}/start",
                web::get().to(pages::oauth_start),
            )
            .route(
                "/console/auth/{forge}/callback",
                web::get().to(pages::oauth_callback),
            )
            .route("/console/", web::get().to(pages::overview_page))
            .route(
                "/console/installations/{id}",
                web::get().to(pages::installation_page),
            )
            .route(
                "/console/repositories/{id}",
                web::get().to(pages::repository_page),
            )
            .route(
                "/console/repositories/{id}/reanalyse",
                web::post().to(pages::reanalyse_form),
            )
            .route("/console/jobs", web::get().to(pages::jobs_page))
            .route("/console/jobs/{id}", web::get().to(pages::job_page))
            .route(
                "/console/jobs/{id}/retry",
                web::post().to(pages::retry_form),
            )
            .route("/api/v1/overview", web::get().to(pages::overview_api))
            .route(
                "/api/v1/installations/{id}/repositories",
                web::get().to(pages::installation_api),
            )
            .route(
                "/api/v1/repositories/{id}",
                web::get().to(pages::repository_api),
            )
            .route(
                "/api/v1/repositories/{id}/reanalyse",
                web::post().to(pages::reanalyse_api),
            )
            .route("/api/v1/jobs", web::get().to(pages::jobs_api))
            .route("/api/v1/jobs/{id}", web::get().to(pages::job_api))
            .route("/api/v1/jobs/{id}/retry", web::post().to(pages::retry_api))
            .route("/setup/github", web::get().to(setup::setup_page))
            .route("/setup/github/callback", web::get().to(setup::callback));
    }
}

async fn root() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(templates::CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(templates::JS)
}

/// Headers every console page carries: no caching of tenant data, no framing, scripts
/// only from this origin, forms only to this origin and GitHub (the manifest flow).
fn secure_headers(b: &mut actix_web::HttpResponseBuilder, form_action: &str) {
    b.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header((
            "Content-Security-Policy",
            format!(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'self' {form_action}"
            ),
        ));
}

/// An HTML page.
pub fn html(
    state: &ConsoleState,
    status: StatusCode,
    name: &str,
    ctx: serde_json::Value,
) -> HttpResponse {
    match state.templates.render(name, &ctx) {
        Ok(body) => {
            let mut b = HttpResponse::build(status);
            secure_headers(&mut b, &state.config.console.github_web_url);
            b.content_type("text/html; charset=utf-8").body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the console could not render this page; see the server log\n")
        }
    }
}

/// A JSON answer.
pub fn json_response(status: StatusCode, v: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(v)
}

/// What went wrong in a console handler.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Nothing there (or not visible to this person: the same answer, on purpose).
    #[error("not found")]
    NotFound,
    /// A bad parameter.
    #[error("{0}")]
    BadRequest(String),
    /// The request lacks a valid CSRF token.
    #[error("missing or invalid CSRF token; reload the page and try again")]
    Csrf,
    /// Refused for a reason the person should read.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database unavailable: {0}")]
    Db(String),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Db(e.to_string())
    }
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// As a page.
    pub fn page(&self, state: &ConsoleState, me: Option<&Principal>) -> HttpResponse {
        if let ConsoleError::Db(e) = self {
            tracing::warn!(error = %e, "console database error");
        }
        html(
            state,
            self.status(),
            "error.html",
            json!({
                "status": self.status().as_u16(),
                "message": self.to_string(),
                "me": me,
                "csrf": me.and_then(|m| m.csrf.clone()),
            }),
        )
    }

    /// As JSON.
    pub fn api(&self) -> HttpResponse {
        if let ConsoleError::Db(e) = self {
            tracing::warn!(error = %e, "console database error");
        }
        json_response(self.status(), &json!({ "error": self.to_string() }))
    }
}

/// The answer to a request that did not get in: pages go to the sign-in (or through the
/// forge again), the API answers 401.
pub fn denied_page(req: &HttpRequest, d: Denied) -> HttpResponse {
    let next = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/console/".into());
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    match d {
        Denied::Unauthenticated(_) => {
            auth::redirect_with(&format!("/console/login?next={}", q(&next)), Vec::new())
        }
        Denied::Recheck(forge) => auth::redirect_with(
            &format!("/console/auth/{forge}/start?next={}", q(&next)),
            Vec::new(),
        ),
        Denied::Unavailable(e) => {
            tracing::warn!(error = %e, "cannot read console sessions");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("database unavailable\n")
        }
    }
}

/// The API's answer to a request that did not get in.
pub fn denied_api(d: Denied) -> HttpResponse {
    match d {
        Denied::Unauthenticated(why) => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"pipewright\""))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "error": why })),
        Denied::Recheck(forge) => HttpResponse::Unauthorized()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
                "error": format!("your {forge} access must be confirmed again: sign in to the console")
            })),
        Denied::Unavailable(e) => {
            tracing::warn!(error = %e, "cannot read console sessions");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "error": "database unavailable" }),
            )
        }
    }
}
