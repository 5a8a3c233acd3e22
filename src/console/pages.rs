//! The console's pages and their JSON twins. Each view is built once by a `*_view`
//! function (the data, scoped to the person) and then either rendered with its template
//! or returned as JSON, so the page and `/api/v1/…` always agree.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{self, Principal};
use super::{denied_api, denied_page, html, json_response, ConsoleError, ConsoleState};
use crate::db::console::{
    self as q, Direction, InstallationSummary, JobFilter, PrHistoryRow, QueueSummary, RepoCursor,
    RepoDetail, RepoFilter, RepoPage, Scope, Snapshot, TenantKey, OUTCOMES,
};
use crate::db::installations::InstallationRow;
use crate::forge::Forge;
use crate::queue::store::{self, JobRow, JobState, RetryError};

type Data = web::Data<ConsoleState>;

fn outcome_options() -> Value {
    let label = |o: &str| match o {
        "pr_open" => "PR open",
        "merged" => "merged",
        "closed" => "closed by a person",
        "ignored" => "ignored",
        "skipped" => "skipped",
        "failed" => "failed",
        _ => "not analysed",
    };
    Value::Array(
        OUTCOMES
            .iter()
            .map(|o| json!({ "id": o, "label": label(o) }))
            .collect(),
    )
}

/// The context every page gets.
fn base_ctx(state: &ConsoleState, me: &Principal) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("me".into(), json!(me));
    m.insert("csrf".into(), json!(me.csrf));
    m.insert("outcomes".into(), outcome_options());
    m.insert(
        "setup_enabled".into(),
        json!(state.github_app.current().is_none() || me.admin),
    );
    m
}

fn page(state: &ConsoleState, me: &Principal, name: &str, view: &impl Serialize) -> HttpResponse {
    let mut ctx = base_ctx(state, me);
    ctx.insert("view".into(), json!(view));
    html(state, StatusCode::OK, name, Value::Object(ctx))
}

async fn signed_in(state: &ConsoleState, req: &HttpRequest) -> Result<Principal, HttpResponse> {
    auth::authenticate(state, req)
        .await
        .map_err(|d| denied_page(req, d))
}

async fn api_caller(state: &ConsoleState, req: &HttpRequest) -> Result<Principal, HttpResponse> {
    auth::authenticate(state, req).await.map_err(denied_api)
}

fn human_age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 1 => "0s".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

// ---------------------------------------------------------------------------------------
// Sign-in

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /console/login`
pub async fn login_page(state: Data, query: web::Query<NextQuery>) -> HttpResponse {
    login_form(&state, query.next.as_deref(), None, StatusCode::OK)
}

fn login_form(
    state: &ConsoleState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let next = auth::safe_next(next);
    let providers: Vec<Value> = [Forge::Github, Forge::Gitlab, Forge::Bitbucket]
        .into_iter()
        .filter(|f| state.provider(*f).is_some())
        .map(|f| {
            json!({
                "forge": f.as_str(),
                "name": match f { Forge::Github => "GitHub", Forge::Gitlab => "GitLab", Forge::Bitbucket => "Bitbucket" },
            })
        })
        .collect();
    html(
        state,
        status,
        "login.html",
        json!({
            "next": next,
            "next_q": url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>(),
            "providers": providers,
            "admin_enabled": state.config.console.admin_token.is_some(),
            "error": error,
        }),
    )
}

/// The operator-token sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /console/login`
pub async fn login_submit(
    state: Data,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if !auth::admin_login(&state, form.token.trim()) {
        tracing::warn!("console sign-in with a wrong operator token");
        return login_form(
            &state,
            form.next.as_deref(),
            Some("That is not the operator token."),
            StatusCode::UNAUTHORIZED,
        );
    }
    match auth::start_session(&state, "admin", "admin", None, None).await {
        Ok(token) => {
            let secure = auth::secure_cookies(&state, &req);
            tracing::info!("operator signed in to the console");
            auth::redirect_with(
                &auth::safe_next(form.next.as_deref()),
                vec![auth::cookie(
                    auth::SESSION_COOKIE,
                    token,
                    auth::SESSION_TTL_MS / 1000,
                    secure,
                )],
            )
        }
        Err(e) => ConsoleError::from(e).page(&state, None),
    }
}

/// A form with only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/logout`
pub async fn logout(state: Data, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !auth::check_csrf(&me, &req, form.csrf.as_deref()) {
        return ConsoleError::Csrf.page(&state, Some(&me));
    }
    if let Some(c) = req.cookie(auth::SESSION_COOKIE) {
        if let Err(e) = q::delete_session(&state.db, &auth::token_hash(c.value())).await {
            return ConsoleError::from(e).page(&state, Some(&me));
        }
    }
    let secure = auth::secure_cookies(&state, &req);
    auth::redirect_with(
        "/console/login",
        vec![auth::removal(auth::SESSION_COOKIE, secure)],
    )
}

fn forge_of(name: &str) -> Option<Forge> {
    name.parse::<Forge>().ok()
}

/// `GET /console/auth/{forge}/start`: off to the forge's consent page, with a state that
/// only this browser holds (login CSRF).
pub async fn oauth_start(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let Some(provider) = forge_of(&path).and_then(|f| state.provider(f)) else {
        return ConsoleError::NotFound.page(&state, None);
    };
    let nonce = auth::random_token();
    let next = auth::safe_next(query.next.as_deref());
    let redirect_uri = format!(
        "{}/console/auth/{}/callback",
        state.base_url(&req),
        provider.forge
    );
    let secure = auth::secure_cookies(&state, &req);
    auth::redirect_with(
        &provider.authorize_url(&nonce, &redirect_uri),
        vec![auth::cookie(
            auth::OAUTH_STATE_COOKIE,
            // `nonce.base64(next)`: cookie-safe whatever the path holds.
            format!(
                "{nonce}.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next.as_bytes())
            ),
            auth::OAUTH_STATE_TTL_SECS,
            secure,
        )],
    )
}

/// The forge's callback parameters.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /console/auth/{forge}/callback`: code → token → who and what they administer →
/// a session scoped to those installations, or a refusal.
pub async fn oauth_callback(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let Some(provider) = forge_of(&path).and_then(|f| state.provider(f)) else {
        return ConsoleError::NotFound.page(&state, None);
    };
    let secure = auth::secure_cookies(&state, &req);
    let refuse = |status: StatusCode, msg: &str| {
        let mut r = login_form(&state, None, Some(msg), status);
        let _ = r.add_cookie(&auth::removal(auth::OAUTH_STATE_COOKIE, secure));
        r
    };
    if let Some(e) = &query.error {
        let msg = query.error_description.as_deref().unwrap_or(e);
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!("{} said: {msg}", provider.forge),
        );
    }
    let cookie = req.cookie(auth::OAUTH_STATE_COOKIE);
    let parsed = cookie.as_ref().and_then(|c| {
        let (n, next) = c.value().split_once('.')?;
        let next = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(next)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        Some((n.to_owned(), next))
    });
    let (nonce, next) = match parsed {
        Some(p) => p,
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The sign-in took too long or began in another browser; try again.",
            )
        }
    };
    let (Some(code), Some(given)) = (query.code.as_deref(), query.state.as_deref()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The forge sent no code; try again.",
        );
    };
    if !auth::same_secret(given, &nonce) {
        tracing::warn!(forge = %provider.forge, "OAuth callback with a state that does not match");
        return refuse(
            StatusCode::BAD_REQUEST,
            "The sign-in state does not match; try again.",
        );
    }
    let redirect_uri = format!(
        "{}/console/auth/{}/callback",
        state.base_url(&req),
        provider.forge
    );
    let token = match provider.exchange(&state.http, code, &redirect_uri).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "OAuth code exchange failed");
            return refuse(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    let known = match crate::db::installations::list_installations(&state.db, provider.forge).await
    {
        Ok(rows) => rows
            .into_iter()
            .map(|i| (i.external_id, i.account))
            .collect::<Vec<_>>(),
        Err(e) => return ConsoleError::from(e).page(&state, None),
    };
    let who = match provider.identify(&state.http, &token, &known).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the person's access from the forge");
            return refuse(StatusCode::BAD_GATEWAY, &e.to_string());
        }
    };
    drop(token);
    let ids =
        match q::installations_matching(&state.db, provider.forge.as_str(), &who.admin_of).await {
            Ok(ids) => ids,
            Err(e) => return ConsoleError::from(e).page(&state, None),
        };
    if ids.is_empty() {
        tracing::warn!(forge = %provider.forge, login = %who.login, "console sign-in refused: administers no installation");
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "{} is not an owner or admin of any {} organisation, group or workspace where \
                 pipewright is installed.",
                who.login, provider.forge
            ),
        );
    }
    // Re-checking an existing session keeps it (and its CSRF token); otherwise a new one.
    if let Some(c) = req.cookie(auth::SESSION_COOKIE) {
        let hash = auth::token_hash(c.value());
        if let Ok(Some(s)) = q::get_session(&state.db, &hash, state.clock.now()).await {
            if s.principal == provider.forge.as_str() && s.user_id.as_deref() == Some(&who.user_id)
            {
                let json = serde_json::to_string(&ids).expect("ids serialize");
                if let Err(e) =
                    q::refresh_session_access(&state.db, &hash, &json, state.clock.now()).await
                {
                    return ConsoleError::from(e).page(&state, None);
                }
                return auth::redirect_with(
                    &auth::safe_next(Some(&next)),
                    vec![auth::removal(auth::OAUTH_STATE_COOKIE, secure)],
                );
            }
        }
    }
    match auth::start_session(
        &state,
        provider.forge.as_str(),
        &who.login,
        Some(&who.user_id),
        Some(&ids),
    )
    .await
    {
        Ok(t) => {
            tracing::info!(forge = %provider.forge, login = %who.login, installations = ids.len(), "signed in to the console");
            auth::redirect_with(
                &auth::safe_next(Some(&next)),
                vec![
                    auth::cookie(auth::SESSION_COOKIE, t, auth::SESSION_TTL_MS / 1000, secure),
                    auth::removal(auth::OAUTH_STATE_COOKIE, secure),
                ],
            )
        }
        Err(e) => ConsoleError::from(e).page(&state, None),
    }
}

// ---------------------------------------------------------------------------------------
// Overview

/// Installations and repositories per forge.
#[derive(Debug, Serialize)]
pub struct ForgeCount {
    /// Forge.
    pub forge: String,
    /// Installations.
    pub installations: usize,
    /// Active repositories.
    pub repositories: i64,
}

/// The queue, for the overview.
#[derive(Debug, Serialize)]
pub struct QueueView {
    /// Raw numbers.
    #[serde(flatten)]
    pub summary: QueueSummary,
    /// Age of the oldest due job, human-readable.
    pub oldest_due_age: String,
}

/// The overview page's data.
#[derive(Debug, Serialize)]
pub struct OverviewView {
    /// Installations visible to the person, with their counts.
    pub installations: Vec<InstallationSummary>,
    /// Per forge.
    pub forges: Vec<ForgeCount>,
    /// The queue (operators only: it counts every tenant's jobs).
    pub queue: Option<QueueView>,
    /// The hourly PR budget per installation.
    pub prs_per_hour: u32,
    /// First-run outcomes by class (each pull request's first CI run).
    pub first_runs: Vec<(String, i64)>,
}

async fn overview_view(state: &ConsoleState, me: &Principal) -> Result<OverviewView, ConsoleError> {
    let now = state.clock.now();
    let installations = q::installation_summaries(&state.db, &me.scope, now).await?;
    let mut forges: BTreeMap<String, ForgeCount> = BTreeMap::new();
    for i in &installations {
        let f = forges.entry(i.forge.clone()).or_insert(ForgeCount {
            forge: i.forge.clone(),
            installations: 0,
            repositories: 0,
        });
        f.installations += 1;
        f.repositories += i.repositories;
    }
    let queue = if me.admin {
        let s = q::queue_summary(&state.db, now).await?;
        Some(QueueView {
            oldest_due_age: human_age(s.oldest_due_age_ms),
            summary: s,
        })
    } else {
        None
    };
    Ok(OverviewView {
        installations,
        forges: forges.into_values().collect(),
        queue,
        prs_per_hour: state.config.bot.prs_per_hour,
        first_runs: q::first_run_classes(&state.db, &me.scope).await?,
    })
}

/// `GET /console/`
pub async fn overview_page(state: Data, req: HttpRequest) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match overview_view(&state, &me).await {
        Ok(v) => page(&state, &me, "overview.html", &v),
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `GET /api/v1/overview`
pub async fn overview_api(state: Data, req: HttpRequest) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match overview_view(&state, &me).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.api(),
    }
}

// ---------------------------------------------------------------------------------------
// Installation

/// Filters and position of the installation page.
#[derive(Debug, Default, Deserialize)]
pub struct RepoQuery {
    outcome: Option<String>,
    name: Option<String>,
    stack: Option<String>,
    after: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
}

/// The installation page's data.
#[derive(Debug, Serialize)]
pub struct InstallationView {
    /// The installation.
    pub installation: InstallationRow,
    /// Filters in force.
    pub filter: FilterView,
    /// The page.
    pub page: RepoPage,
    /// Link to the next page.
    pub next_url: Option<String>,
    /// Link to the previous page.
    pub prev_url: Option<String>,
    /// Cursor of the next page (for scripts).
    pub next_cursor: Option<String>,
}

/// Filters in force.
#[derive(Debug, Serialize)]
pub struct FilterView {
    /// Outcome class.
    pub outcome: Option<String>,
    /// Name substring.
    pub name: Option<String>,
    /// Stack substring.
    pub stack: Option<String>,
}

fn encode_cursor(c: &RepoCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", c.id, c.name))
}

fn decode_cursor(s: &str) -> Result<RepoCursor, ConsoleError> {
    let bad = || ConsoleError::BadRequest("invalid page cursor".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (id, name) = text.split_once(':').ok_or_else(bad)?;
    Ok(RepoCursor {
        id: id.parse().map_err(|_| bad())?,
        name: name.to_owned(),
    })
}

async fn visible_installation(
    state: &ConsoleState,
    me: &Principal,
    id: i64,
) -> Result<InstallationRow, ConsoleError> {
    if !me.scope.allows(id) {
        return Err(ConsoleError::NotFound);
    }
    q::installation(&state.db, id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

fn clean(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

async fn installation_view(
    state: &ConsoleState,
    me: &Principal,
    id: i64,
    query: &RepoQuery,
    base_path: &str,
) -> Result<InstallationView, ConsoleError> {
    let installation = visible_installation(state, me, id).await?;
    let outcome = clean(&query.outcome);
    if let Some(o) = &outcome {
        if !OUTCOMES.contains(&o.as_str()) {
            return Err(ConsoleError::BadRequest(format!(
                "unknown outcome `{o}` (one of {})",
                OUTCOMES.join(", ")
            )));
        }
    }
    let filter = RepoFilter {
        outcome: outcome.clone(),
        name: clean(&query.name),
        stack: clean(&query.stack),
    };
    let cursor = match (&query.after, &query.before) {
        (Some(a), _) if !a.is_empty() => Some((decode_cursor(a)?, Direction::After)),
        (_, Some(b)) if !b.is_empty() => Some((decode_cursor(b)?, Direction::Before)),
        _ => None,
    };
    let limit = query.limit.unwrap_or(super::REPOS_PER_PAGE).clamp(1, 500);
    let page = q::list_repositories(
        &state.db,
        id,
        &filter,
        cursor.as_ref().map(|(c, d)| (c, *d)),
        limit,
    )
    .await?;
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("outcome", &filter.outcome),
        ("name", &filter.name),
        ("stack", &filter.stack),
    ] {
        if let Some(v) = v {
            params.append_pair(k, v);
        }
    }
    if query.limit.is_some() {
        params.append_pair("limit", &limit.to_string());
    }
    let base = params.finish();
    let link = |key: &str, c: &RepoCursor| {
        let sep = if base.is_empty() { "" } else { "&" };
        format!("{base_path}?{base}{sep}{key}={}", encode_cursor(c))
    };
    let last = page.rows.last().map(|r| RepoCursor {
        name: r.full_name.clone(),
        id: r.id,
    });
    let first = page.rows.first().map(|r| RepoCursor {
        name: r.full_name.clone(),
        id: r.id,
    });
    let next_cursor = last.as_ref().filter(|_| page.has_next).map(encode_cursor);
    Ok(InstallationView {
        next_url: last
            .as_ref()
            .filter(|_| page.has_next)
            .map(|c| link("after", c)),
        prev_url: first
            .as_ref()
            .filter(|_| page.has_prev)
            .map(|c| link("before", c)),
        next_cursor,
        installation,
        filter: FilterView {
            outcome: filter.outcome,
            name: filter.name,
            stack: filter.stack,
        },
        page,
    })
}

/// `GET /console/installations/{id}`
pub async fn installation_page(
    state: Data,
    req: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<RepoQuery>,
) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let id = path.into_inner();
    match installation_view(
        &state,
        &me,
        id,
        &query,
        &format!("/console/installations/{id}"),
    )
    .await
    {
        Ok(v) => page(&state, &me, "installation.html", &v),
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `GET /api/v1/installations/{id}/repositories`
pub async fn installation_api(
    state: Data,
    req: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<RepoQuery>,
) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let id = path.into_inner();
    match installation_view(
        &state,
        &me,
        id,
        &query,
        &format!("/api/v1/installations/{id}/repositories"),
    )
    .await
    {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.api(),
    }
}

// ---------------------------------------------------------------------------------------
// Repository

/// A proposed or pushed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    /// Repository path.
    pub path: String,
    /// Content.
    pub content: String,
}

/// The repository page's data.
#[derive(Debug, Serialize)]
pub struct RepositoryView {
    /// The repository.
    pub repository: RepoDetail,
    /// Its installation's name.
    pub installation_name: String,
    /// What the last analysis saw and proposed.
    pub snapshot: Option<Snapshot>,
    /// The analysis as JSON (with evidence).
    pub analysis: Option<Value>,
    /// The files proposed at the last analysis.
    pub proposal: Option<Vec<FileView>>,
    /// A unified diff from what the pull request holds to the proposal: (class, line).
    pub diff: Vec<(String, String)>,
    /// Pull request history.
    pub pull_requests: Vec<PrHistoryRow>,
    /// Slash-command settings: (feature, on).
    pub settings: Vec<(String, bool)>,
    /// `.pipewright.yml` as read.
    pub repo_config: Option<Value>,
    /// Jobs that touched it, newest first.
    pub jobs: Vec<JobRow>,
}

fn parse_files(json: Option<&str>) -> Option<Vec<FileView>> {
    json.and_then(|j| serde_json::from_str(j).ok())
}

/// Unified diff lines from `old` (what the PR holds) to `new` (the proposal), per file.
pub fn diff_files(old: &[FileView], new: &[FileView]) -> Vec<(String, String)> {
    let mut paths: Vec<&str> = old.iter().chain(new).map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let mut out = Vec::new();
    for path in paths {
        let a = old
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.as_str());
        let b = new
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.as_str());
        if a == b {
            continue;
        }
        let (a_name, b_name) = (
            if a.is_some() {
                format!("a/{path}")
            } else {
                "/dev/null".into()
            },
            if b.is_some() {
                format!("b/{path}")
            } else {
                "/dev/null".into()
            },
        );
        let diff = similar::TextDiff::from_lines(a.unwrap_or(""), b.unwrap_or(""));
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&a_name, &b_name)
            .to_string();
        for line in text.lines() {
            let class = if line.starts_with("+++") || line.starts_with("---") {
                "file"
            } else if line.starts_with("@@") {
                "hunk"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else {
                "ctx"
            };
            out.push((class.to_owned(), line.to_owned()));
        }
    }
    out
}

async fn visible_repository(
    state: &ConsoleState,
    me: &Principal,
    id: i64,
) -> Result<(RepoDetail, InstallationRow), ConsoleError> {
    let repo = q::repository(&state.db, id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let inst_id = repo.installation_id.ok_or(ConsoleError::NotFound)?;
    let inst = visible_installation(state, me, inst_id).await?;
    Ok((repo, inst))
}

async fn repository_view(
    state: &ConsoleState,
    me: &Principal,
    id: i64,
) -> Result<RepositoryView, ConsoleError> {
    let (repository, inst) = visible_repository(state, me, id).await?;
    let snapshot = q::snapshot(&state.db, id).await?;
    let proposal = snapshot
        .as_ref()
        .and_then(|s| parse_files(s.proposal.as_deref()));
    let pushed = snapshot
        .as_ref()
        .and_then(|s| parse_files(s.pushed.as_deref()));
    let diff = match (&pushed, &proposal) {
        (Some(old), Some(new)) => diff_files(old, new),
        _ => Vec::new(),
    };
    let settings = crate::bot::proposal::RepoSettings::from_json(repository.settings.as_deref())
        .features
        .into_iter()
        .map(|(f, on)| {
            let name = serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (name, on)
        })
        .collect();
    let (jobs, _) = q::list_jobs(
        &state.db,
        &JobFilter {
            concurrency_key: Some(format!(
                "repo:{}:{}",
                repository.forge, repository.external_id
            )),
            ..JobFilter::default()
        },
        None,
        25,
    )
    .await?;
    Ok(RepositoryView {
        installation_name: inst.account.clone().unwrap_or(inst.external_id.clone()),
        analysis: snapshot
            .as_ref()
            .and_then(|s| s.analysis.as_deref())
            .and_then(|a| serde_json::from_str(a).ok()),
        repo_config: snapshot
            .as_ref()
            .and_then(|s| s.repo_config.as_deref())
            .and_then(|a| serde_json::from_str(a).ok()),
        pull_requests: q::pr_history(&state.db, id).await?,
        snapshot,
        proposal,
        diff,
        settings,
        jobs,
        repository,
    })
}

/// `GET /console/repositories/{id}`
pub async fn repository_page(state: Data, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match repository_view(&state, &me, path.into_inner()).await {
        Ok(v) => page(&state, &me, "repository.html", &v),
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `GET /api/v1/repositories/{id}`
pub async fn repository_api(state: Data, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match repository_view(&state, &me, path.into_inner()).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.api(),
    }
}

async fn reanalyse(
    state: &ConsoleState,
    me: &Principal,
    id: i64,
) -> Result<Option<i64>, ConsoleError> {
    let (repo, inst) = visible_repository(state, me, id).await?;
    if inst.state != "active" || repo.state != "active" {
        return Err(ConsoleError::Conflict(format!(
            "{} is {} in a {} installation: nothing to analyse",
            repo.full_name, repo.state, inst.state
        )));
    }
    let forge: Forge = repo
        .forge
        .parse()
        .map_err(|_| ConsoleError::Db(format!("unknown forge `{}` stored", repo.forge)))?;
    let job = crate::jobs::AnalyzeRepo {
        forge,
        installation: Some(crate::forge::InstallationId(inst.external_id.clone())),
        repo: crate::forge::event::Repo {
            id: crate::forge::RepoId(repo.external_id.clone()),
            full_name: repo.full_name.clone(),
            default_branch: repo.default_branch.clone(),
            private: None,
            archived: None,
            fork: None,
        },
        reason: crate::jobs::AnalyzeReason::Command,
        sha: None,
    };
    let now = state.clock.now();
    let queued = store::enqueue(&state.db, &crate::queue::NewJob::of(&job), now).await?;
    audit(
        state,
        me,
        "repo.reanalyse",
        Some((&inst, Some(&repo))),
        json!({ "job": queued }),
    )
    .await?;
    tracing::info!(repo = %repo.full_name, by = %me.login, job = ?queued, "re-analysis requested in the console");
    Ok(queued)
}

/// Records a console action in the audit trail.
async fn audit(
    state: &ConsoleState,
    me: &Principal,
    action: &str,
    on: Option<(&InstallationRow, Option<&RepoDetail>)>,
    details: Value,
) -> Result<(), ConsoleError> {
    use crate::db::audit::{record, Actor, AuditEntry};
    let mut entry = AuditEntry::new(Actor::console(format!("{}:{}", me.kind, me.login)), action);
    if let Some((inst, repo)) = on {
        entry.forge = Some(inst.forge.clone());
        entry.installation = Some(inst.external_id.clone());
        if let Some(r) = repo {
            entry.repository = Some(r.external_id.clone());
            entry.repository_name = Some(r.full_name.clone());
        }
    }
    entry.details = details;
    record(&state.db, &entry, state.clock.now()).await?;
    Ok(())
}

/// `POST /console/repositories/{id}/reanalyse`
pub async fn reanalyse_form(
    state: Data,
    req: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !auth::check_csrf(&me, &req, form.csrf.as_deref()) {
        return ConsoleError::Csrf.page(&state, Some(&me));
    }
    let id = path.into_inner();
    match reanalyse(&state, &me, id).await {
        Ok(Some(job)) => {
            auth::redirect_with(&format!("/console/jobs/{job}?flash=queued"), Vec::new())
        }
        Ok(None) => auth::redirect_with(&format!("/console/repositories/{id}"), Vec::new()),
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `POST /api/v1/repositories/{id}/reanalyse`
pub async fn reanalyse_api(state: Data, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !auth::check_csrf(&me, &req, None) {
        return ConsoleError::Csrf.api();
    }
    match reanalyse(&state, &me, path.into_inner()).await {
        Ok(job) => json_response(
            StatusCode::ACCEPTED,
            &json!({ "status": if job.is_some() { "queued" } else { "already_queued" }, "job_id": job }),
        ),
        Err(e) => e.api(),
    }
}

// ---------------------------------------------------------------------------------------
// Jobs

/// Filters of the jobs page.
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

/// The jobs page's data.
#[derive(Debug, Serialize)]
pub struct JobsView {
    /// Filters in force.
    pub filter: Value,
    /// Jobs, newest first.
    pub jobs: Vec<JobRow>,
    /// Link to older jobs.
    pub next_url: Option<String>,
}

/// The tenants of a person's scope, as the jobs table names them.
async fn tenant_keys(
    state: &ConsoleState,
    me: &Principal,
) -> Result<Option<Vec<TenantKey>>, ConsoleError> {
    match &me.scope {
        Scope::All => Ok(None),
        Scope::Installations(ids) => {
            let mut keys = Vec::new();
            for id in ids {
                if let Some(i) = q::installation(&state.db, *id).await? {
                    keys.push(TenantKey {
                        forge: i.forge,
                        external_id: i.external_id,
                    });
                }
            }
            Ok(Some(keys))
        }
    }
}

async fn jobs_view(
    state: &ConsoleState,
    me: &Principal,
    query: &JobsQuery,
    base_path: &str,
) -> Result<JobsView, ConsoleError> {
    let job_state = match clean(&query.state) {
        Some(s) => Some(s.parse::<JobState>().map_err(ConsoleError::BadRequest)?),
        None => None,
    };
    let kind = clean(&query.kind);
    let limit = query.limit.unwrap_or(super::JOBS_PER_PAGE).clamp(1, 500);
    let tenants = tenant_keys(state, me).await?;
    let (jobs, more) = q::list_jobs(
        &state.db,
        &JobFilter {
            state: job_state,
            kind: kind.clone(),
            concurrency_key: None,
            before_id: query.before,
        },
        tenants.as_deref(),
        limit,
    )
    .await?;
    let next_url = match (more, jobs.last()) {
        (true, Some(last)) => {
            let mut p = url::form_urlencoded::Serializer::new(String::new());
            if let Some(s) = job_state {
                p.append_pair("state", s.as_str());
            }
            if let Some(k) = &kind {
                p.append_pair("kind", k);
            }
            if query.limit.is_some() {
                p.append_pair("limit", &limit.to_string());
            }
            p.append_pair("before", &last.id.to_string());
            Some(format!("{base_path}?{}", p.finish()))
        }
        _ => None,
    };
    Ok(JobsView {
        filter: json!({ "state": job_state.map(|s| s.as_str()), "kind": kind }),
        jobs,
        next_url,
    })
}

fn job_states() -> Vec<&'static str> {
    JobState::ALL.iter().map(|s| s.as_str()).collect()
}

/// `GET /console/jobs`
pub async fn jobs_page(
    state: Data,
    req: HttpRequest,
    query: web::Query<JobsQuery>,
) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match jobs_view(&state, &me, &query, "/console/jobs").await {
        Ok(v) => {
            let mut ctx = base_ctx(&state, &me);
            ctx.insert("view".into(), json!(v));
            ctx.insert("states".into(), json!(job_states()));
            ctx.insert("kinds".into(), json!(crate::jobs::ALL_KINDS));
            html(&state, StatusCode::OK, "jobs.html", Value::Object(ctx))
        }
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `GET /api/v1/jobs`
pub async fn jobs_api(state: Data, req: HttpRequest, query: web::Query<JobsQuery>) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match jobs_view(&state, &me, &query, "/api/v1/jobs").await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.api(),
    }
}

/// One job's data.
#[derive(Debug, Serialize)]
pub struct JobView {
    /// The job.
    pub job: JobRow,
    /// Its payload, pretty-printed.
    pub payload: String,
}

async fn visible_job(
    state: &ConsoleState,
    me: &Principal,
    id: i64,
) -> Result<JobRow, ConsoleError> {
    let job = store::get(&state.db, id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    if let Some(tenants) = tenant_keys(state, me).await? {
        if !q::job_belongs_to(&job, &tenants) {
            return Err(ConsoleError::NotFound);
        }
    }
    Ok(job)
}

async fn job_view(state: &ConsoleState, me: &Principal, id: i64) -> Result<JobView, ConsoleError> {
    let job = visible_job(state, me, id).await?;
    let payload = serde_json::from_str::<Value>(&job.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| job.payload.clone());
    Ok(JobView { job, payload })
}

/// `?flash=` of the job page.
#[derive(Debug, Deserialize)]
pub struct FlashQuery {
    flash: Option<String>,
}

/// `GET /console/jobs/{id}`
pub async fn job_page(
    state: Data,
    req: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<FlashQuery>,
) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match job_view(&state, &me, path.into_inner()).await {
        Ok(v) => {
            let mut ctx = base_ctx(&state, &me);
            ctx.insert("view".into(), json!(v));
            // Only known words: the flash text is ours, never the query's.
            let flash = match query.flash.as_deref() {
                Some("queued") => Some("Queued: a worker picks it up shortly."),
                Some("retried") => Some("Queued again with its attempts reset."),
                _ => None,
            };
            ctx.insert("flash".into(), json!(flash));
            html(&state, StatusCode::OK, "job.html", Value::Object(ctx))
        }
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `GET /api/v1/jobs/{id}`
pub async fn job_api(state: Data, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match job_view(&state, &me, path.into_inner()).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.api(),
    }
}

async fn retry(state: &ConsoleState, me: &Principal, id: i64) -> Result<(), ConsoleError> {
    let job = visible_job(state, me, id).await?;
    match store::retry(&state.db, id, state.clock.now()).await {
        Ok(()) => {}
        Err(RetryError::NotFound(_)) => return Err(ConsoleError::NotFound),
        Err(RetryError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(ConsoleError::Conflict(e.to_string())),
    }
    let payload: Value = serde_json::from_str(&job.payload).unwrap_or_default();
    let inst = match (
        payload.get("forge").and_then(Value::as_str),
        payload.get("installation").and_then(Value::as_str),
    ) {
        (Some(f), Some(i)) => f.parse::<Forge>().ok().map(|f| (f, i.to_owned())),
        _ => None,
    };
    let row = match &inst {
        Some((f, i)) => crate::db::installations::get_installation(&state.db, *f, i).await?,
        None => None,
    };
    audit(
        state,
        me,
        "job.retry",
        row.as_ref().map(|r| (r, None)),
        json!({ "job": id, "kind": job.kind }),
    )
    .await?;
    tracing::info!(job = id, kind = %job.kind, by = %me.login, "dead job retried from the console");
    Ok(())
}

/// `POST /console/jobs/{id}/retry`
pub async fn retry_form(
    state: Data,
    req: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let me = match signed_in(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !auth::check_csrf(&me, &req, form.csrf.as_deref()) {
        return ConsoleError::Csrf.page(&state, Some(&me));
    }
    let id = path.into_inner();
    match retry(&state, &me, id).await {
        Ok(()) => auth::redirect_with(&format!("/console/jobs/{id}?flash=retried"), Vec::new()),
        Err(e) => e.page(&state, Some(&me)),
    }
}

/// `POST /api/v1/jobs/{id}/retry`
pub async fn retry_api(state: Data, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let me = match api_caller(&state, &req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !auth::check_csrf(&me, &req, None) {
        return ConsoleError::Csrf.api();
    }
    match retry(&state, &me, path.into_inner()).await {
        Ok(()) => json_response(StatusCode::OK, &json!({ "status": "queued" })),
        Err(e) => e.api(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = RepoCursor {
            name: "acme/a:b ü".into(),
            id: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for bad in ["", "!!!", "bm9jb2xvbg"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn diffs_show_changed_added_and_removed_files() {
        let f = |p: &str, c: &str| FileView {
            path: p.into(),
            content: c.into(),
        };
        let old = vec![
            f("ci.yml", "a\nb\n"),
            f("gone.yml", "x\n"),
            f("same", "s\n"),
        ];
        let new = vec![f("ci.yml", "a\nc\n"), f("new.yml", "y\n"), f("same", "s\n")];
        let d = diff_files(&old, &new);
        let text: Vec<String> = d.iter().map(|(c, l)| format!("{c} {l}")).collect();
        assert!(text.contains(&"del -b".to_owned()), "{text:?}");
        assert!(text.contains(&"add +c".to_owned()), "{text:?}");
        assert!(text.contains(&"file +++ /dev/null".to_owned()), "{text:?}");
        assert!(text.contains(&"file --- /dev/null".to_owned()), "{text:?}");
        assert!(!text.iter().any(|l| l.contains("same")), "{text:?}");
        assert!(diff_files(&old, &old).is_empty());
    }
}
