//! The Bitbucket Cloud client, over its REST API 2.0 with reqwest, authenticated by a
//! workspace, project or repository access token (Bearer) or by an Atlassian API token
//! with its account's e-mail (Basic). Bitbucket has no reactions and no batch reads, so a
//! manifest costs one call each; a commit of N files is one multipart `POST /src`.
//!
//! Webhooks need the `webhook` scope *and* the scope of every event they subscribe to;
//! [`BitbucketClient::connect_hooks`] subscribes to what pipewright uses and drops, with
//! one log line, the events the token has no scope for (access tokens cannot have the
//! issue scope), instead of failing.
//!
//! Costs, per repository: repository 1, head 1 (0 when the push named it), tree 1 per
//! 100 entries, 1 per manifest, PR lookup 1; opening a PR adds the commit and the PR.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::warn;

use super::super::github::auth::parse_utc;
use crate::clock::Clock;
use crate::config::Secret;
use crate::forge::client::{
    classify, outcome_label, truncate_body, ApiError, BranchWrite, CallCounter, ForgeClient,
    NewPullRequest, Parent, Permission, PrState, PullRequest, PullRequestUpdate, Reaction,
    RemoteRepo, RemoteTree, RepoHandle, TreeFile,
};
use crate::forge::client::{CiSecret, SecretWrite};
use crate::forge::event::{Actor, CiJobRef, CiRun, CommentTarget};
use crate::forge::github::client::seg;
use crate::forge::Forge;

/// Largest page Bitbucket serves for most listings.
const PAGELEN: usize = 100;
/// Pages followed at most (100 × 100 entries): a runaway `next` chain must end.
const MAX_PAGES: usize = 100;

/// What every Bitbucket client of the process shares.
#[derive(Debug, Clone)]
pub struct BitbucketApi {
    base: String,
    http: reqwest::Client,
    token: Secret,
    /// The Atlassian account e-mail of an API token (Basic auth); `None` for access
    /// tokens (Bearer).
    email: Option<String>,
    clock: Clock,
}

impl BitbucketApi {
    /// `base` is the API root (`https://api.bitbucket.org/2.0`); `email` is set for an
    /// Atlassian API token, which Bitbucket takes as Basic auth with that e-mail.
    pub fn new(
        base: &str,
        token: Secret,
        email: Option<String>,
        clock: Clock,
    ) -> anyhow::Result<BitbucketApi> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("pipewright/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(BitbucketApi {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token,
            email,
            clock,
        })
    }
}

/// A client for one workspace, made per job.
pub struct BitbucketClient {
    api: BitbucketApi,
    workspace: String,
    counter: CallCounter,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl BitbucketClient {
    /// A client acting inside `workspace` (slug).
    pub fn new(api: BitbucketApi, workspace: String, counter: CallCounter) -> Self {
        BitbucketClient {
            api,
            workspace,
            counter,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") || path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.api.base)
        }
    }

    async fn send(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer, ApiError> {
        self.send_bounded(op, req, None).await
    }

    /// [`Self::send`], keeping only the last `tail` bytes of a successful answer while it
    /// streams in (step logs can be far larger than what is read of them).
    async fn send_bounded(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
        tail: Option<usize>,
    ) -> Result<Answer, ApiError> {
        let req = match &self.api.email {
            Some(email) => req.basic_auth(email, Some(self.api.token.expose())),
            None => req.bearer_auth(self.api.token.expose()),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.counter.record(Forge::Bitbucket, op, "transport_error");
                return Err(ApiError::Transient {
                    forge: Forge::Bitbucket,
                    operation: op,
                    detail: e.to_string(),
                });
            }
        };
        let status = resp.status().as_u16();
        self.counter
            .record(Forge::Bitbucket, op, outcome_label(status));
        let headers = resp.headers().clone();
        self.counter.observe_headers(&headers);
        let read = match tail {
            Some(max) if (200..300).contains(&status) => crate::forge::client::read_tail(resp, max)
                .await
                .map(bytes::Bytes::from),
            _ => resp.bytes().await,
        };
        let body = read.map_err(|e| ApiError::Transient {
            forge: Forge::Bitbucket,
            operation: op,
            detail: format!("reading the response: {e}"),
        })?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn call(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer, ApiError> {
        let a = self.send(op, req).await?;
        if (200..300).contains(&a.status) {
            return Ok(a);
        }
        Err(classify(
            Forge::Bitbucket,
            op,
            a.status,
            &a.headers,
            &String::from_utf8_lossy(&a.body),
            self.api.clock.now(),
        ))
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let mut req = self.api.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let a = self.call(op, req).await?;
        serde_json::from_slice(&a.body).map_err(|e| ApiError::Decode {
            forge: Forge::Bitbucket,
            operation: op,
            detail: format!(
                "{e} in {}",
                truncate_body(&String::from_utf8_lossy(&a.body), 200)
            ),
        })
    }

    /// Every page of a listing (`values` + `next`).
    async fn pages<T: for<'de> Deserialize<'de>>(
        &self,
        op: &'static str,
        first: &str,
    ) -> Result<Vec<T>, ApiError> {
        #[derive(Deserialize)]
        struct Page<T> {
            values: Vec<T>,
            next: Option<String>,
        }
        let mut out = Vec::new();
        let mut next = Some(first.to_owned());
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            // Only follow links back to the API we were configured with.
            if url.starts_with("http") && !url.starts_with(&self.api.base) {
                return Err(ApiError::Decode {
                    forge: Forge::Bitbucket,
                    operation: op,
                    detail: format!("`next` points outside the API: {url}"),
                });
            }
            let p: Page<T> = self.json(op, Method::GET, &url, None).await?;
            out.extend(p.values);
            next = p.next;
        }
        Ok(out)
    }

    /// The repository belongs to the allowlisted workspace.
    fn check_scope(&self, full_name: &str) -> Result<(), ApiError> {
        let ws = full_name.split('/').next().unwrap_or_default();
        if ws.eq_ignore_ascii_case(&self.workspace) {
            Ok(())
        } else {
            Err(ApiError::Config(format!(
                "repository `{full_name}` is outside the workspace `{}` pipewright serves",
                self.workspace
            )))
        }
    }

    fn repo_path(&self, repo: &RepoHandle) -> Result<String, ApiError> {
        self.check_scope(&repo.full_name)?;
        Ok(repo
            .full_name
            .split('/')
            .map(seg)
            .collect::<Vec<_>>()
            .join("/"))
    }

    /// Registers pipewright's webhook (with `secret`) for the workspace: one workspace
    /// webhook, or, when the token may not manage workspace webhooks (project and
    /// repository access tokens: only workspace owners may), one on each repository the
    /// token reaches. A hook already at `url` is updated to the events pipewright uses.
    /// Events the token has no scope for are left out and reported, never fatal, unless
    /// nothing is left.
    pub async fn connect_hooks(&self, url: &str, secret: &Secret) -> Result<HookReport, ApiError> {
        let ws = seg(&self.workspace);
        let mut events: Vec<&'static HookEvent> = HOOK_EVENTS.iter().collect();
        let mut dropped = Vec::new();
        match self
            .ensure_hook(
                &format!("/workspaces/{ws}/hooks"),
                url,
                secret,
                &mut events,
                &mut dropped,
            )
            .await
        {
            Ok(change) => {
                let report = HookReport {
                    scope: HookScope::Workspace(change),
                    events: events.iter().map(|e| e.event).collect(),
                    dropped,
                };
                report.log_dropped();
                return Ok(report);
            }
            // Not a scope problem: this token may not manage the workspace's webhooks.
            Err(ApiError::Rejected {
                status: 403, body, ..
            }) if !is_scope_error(&body) => {
                warn!(
                    workspace = %self.workspace,
                    "Bitbucket refused a workspace webhook (only workspace owners may manage \
                     them, so project and repository access tokens cannot): registering a \
                     webhook on each repository instead"
                );
            }
            Err(e) => return Err(e),
        }
        let mut per_repo = Vec::new();
        for r in self.list_repositories().await? {
            let path = self.repo_path(&r.handle)?;
            let change = self
                .ensure_hook(
                    &format!("/repositories/{path}/hooks"),
                    url,
                    secret,
                    &mut events,
                    &mut dropped,
                )
                .await?;
            per_repo.push((r.handle.full_name, change));
        }
        let report = HookReport {
            scope: HookScope::Repositories(per_repo),
            events: events.iter().map(|e| e.event).collect(),
            dropped,
        };
        report.log_dropped();
        Ok(report)
    }

    /// What `connect` does for repositories created since it ran: when the token may not
    /// manage the workspace's webhooks (so `connect` hooked each repository), registers
    /// pipewright's webhook on each of `repos`. `None` when the workspace's webhooks are
    /// readable: a workspace webhook covers new repositories (one call either way).
    pub async fn hook_new_repositories(
        &self,
        repos: &[RepoHandle],
        url: &str,
        secret: &Secret,
    ) -> Result<Option<HookReport>, ApiError> {
        let ws = seg(&self.workspace);
        match self
            .json::<Value>(
                "list hooks",
                Method::GET,
                &format!("/workspaces/{ws}/hooks?pagelen=1"),
                None,
            )
            .await
        {
            Ok(_) => return Ok(None),
            Err(ApiError::Rejected {
                status: 403, body, ..
            }) if !is_scope_error(&body) => {}
            Err(e) => return Err(e),
        }
        let mut events: Vec<&'static HookEvent> = HOOK_EVENTS.iter().collect();
        let mut dropped = Vec::new();
        let mut per_repo = Vec::new();
        for r in repos {
            let path = self.repo_path(r)?;
            let change = self
                .ensure_hook(
                    &format!("/repositories/{path}/hooks"),
                    url,
                    secret,
                    &mut events,
                    &mut dropped,
                )
                .await?;
            per_repo.push((r.full_name.clone(), change));
        }
        let report = HookReport {
            scope: HookScope::Repositories(per_repo),
            events: events.iter().map(|e| e.event).collect(),
            dropped,
        };
        report.log_dropped();
        Ok(Some(report))
    }

    /// Creates or updates the hook at `url` in the hook collection `list`, subscribed to
    /// `events`. Events refused for a missing scope are moved to `dropped` (and stay out
    /// for later calls).
    async fn ensure_hook(
        &self,
        list: &str,
        url: &str,
        secret: &Secret,
        events: &mut Vec<&'static HookEvent>,
        dropped: &mut Vec<DroppedEvent>,
    ) -> Result<HookChange, ApiError> {
        #[derive(Deserialize)]
        struct Hook {
            uuid: String,
            url: String,
            #[serde(default)]
            events: Vec<String>,
        }
        let hooks: Vec<Hook> = self
            .pages("list hooks", &format!("{list}?pagelen={PAGELEN}"))
            .await?;
        let existing = hooks.into_iter().find(|h| h.url == url);
        loop {
            let wanted: Vec<&str> = events.iter().map(|e| e.event).collect();
            let (op, method, path, change) = match &existing {
                Some(h) => {
                    let mut have: Vec<&str> = h.events.iter().map(String::as_str).collect();
                    let mut want = wanted.clone();
                    have.sort_unstable();
                    want.sort_unstable();
                    if have == want {
                        return Ok(HookChange::Unchanged);
                    }
                    (
                        "update hook",
                        Method::PUT,
                        format!("{list}/{}", seg(&h.uuid)),
                        HookChange::Updated,
                    )
                }
                None => (
                    "create hook",
                    Method::POST,
                    list.to_owned(),
                    HookChange::Created,
                ),
            };
            let body = json!({
                "description": "pipewright",
                "url": url,
                "active": true,
                "secret": secret.expose(),
                "events": wanted,
            });
            match self.json::<Value>(op, method, &path, Some(&body)).await {
                Ok(_) => return Ok(change),
                Err(ApiError::Rejected {
                    status: 403,
                    body: answer,
                    ..
                }) if is_scope_error(&answer) => {
                    let refused = refused_events(events, &answer);
                    if refused.is_empty() || refused.len() == events.len() {
                        return Err(ApiError::Rejected {
                            forge: Forge::Bitbucket,
                            operation: op,
                            status: 403,
                            body: format!(
                                "{answer} (the webhook needs the `webhook` scope and the scope \
                                 of each event; see app-manifests/README.md)"
                            ),
                        });
                    }
                    let missing = missing_scopes(&answer);
                    for e in refused {
                        events.retain(|x| x.event != e.event);
                        dropped.push(DroppedEvent {
                            event: e.event,
                            scope: if missing.is_empty() {
                                e.scope.to_owned()
                            } else {
                                missing.join(", ")
                            },
                            loses: e.purpose,
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A webhook event pipewright subscribes to on Bitbucket.
#[derive(Debug)]
pub struct HookEvent {
    /// Bitbucket's event key.
    pub event: &'static str,
    /// The access-token scope the event needs.
    pub scope: &'static str,
    /// The API-token scope the event needs.
    pub api_token_scope: &'static str,
    /// What pipewright does with it (said when it cannot be had).
    pub purpose: &'static str,
    /// Dropped first when Bitbucket refuses without naming the scope.
    pub optional: bool,
}

/// The events of pipewright's Bitbucket webhook. Keep in sync with
/// `payload.rs` `EVENTS` and `app-manifests/README.md`.
pub const HOOK_EVENTS: &[HookEvent] = &[
    HookEvent {
        event: "repo:push",
        scope: "repository",
        api_token_scope: "read:repository:bitbucket",
        purpose: "pushes to the default branch re-analyse the repository",
        optional: false,
    },
    HookEvent {
        event: "repo:commit_status_updated",
        scope: "repository",
        api_token_scope: "read:repository:bitbucket",
        purpose: "the first CI run of pipewright's pull request is watched, healed or explained",
        optional: false,
    },
    HookEvent {
        event: "pullrequest:fulfilled",
        scope: "pullrequest",
        api_token_scope: "read:pullrequest:bitbucket",
        purpose: "merged pull requests are remembered",
        optional: false,
    },
    HookEvent {
        event: "pullrequest:rejected",
        scope: "pullrequest",
        api_token_scope: "read:pullrequest:bitbucket",
        purpose: "declined pull requests are not proposed again",
        optional: false,
    },
    HookEvent {
        event: "pullrequest:comment_created",
        scope: "pullrequest",
        api_token_scope: "read:pullrequest:bitbucket",
        purpose: "slash commands in pull requests",
        optional: false,
    },
    HookEvent {
        event: "pullrequest:comment_updated",
        scope: "pullrequest",
        api_token_scope: "read:pullrequest:bitbucket",
        purpose: "commands added by editing a pull request comment",
        optional: false,
    },
    HookEvent {
        event: "issue:comment_created",
        scope: "issue",
        api_token_scope: "read:issue:bitbucket",
        purpose: "slash commands in issues",
        optional: true,
    },
];

/// An event left out of the webhook, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEvent {
    /// The event key.
    pub event: &'static str,
    /// The scope Bitbucket said is missing.
    pub scope: String,
    /// What pipewright cannot do without it.
    pub loses: &'static str,
}

/// What happened to one hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookChange {
    /// Registered now.
    Created,
    /// Present, with other events: updated.
    Updated,
    /// Present as wanted.
    Unchanged,
}

/// Where pipewright's webhook lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookScope {
    /// One workspace webhook.
    Workspace(HookChange),
    /// One per repository (`full_name`, change), when the token may not manage the
    /// workspace's webhooks.
    Repositories(Vec<(String, HookChange)>),
}

/// The outcome of [`BitbucketClient::connect_hooks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    /// Workspace or repository hooks.
    pub scope: HookScope,
    /// The events subscribed.
    pub events: Vec<&'static str>,
    /// The events left out for want of a scope.
    pub dropped: Vec<DroppedEvent>,
}

impl HookReport {
    /// One line saying what was left out and what that costs (nothing when all is well).
    pub fn dropped_line(&self) -> Option<String> {
        if self.dropped.is_empty() {
            return None;
        }
        let what: Vec<String> = self
            .dropped
            .iter()
            .map(|d| format!("{} (needs `{}`: {})", d.event, d.scope, d.loses))
            .collect();
        Some(format!(
            "the token lacks the scope for some webhook events, so they were left out: {}",
            what.join("; ")
        ))
    }

    fn log_dropped(&self) {
        if let Some(line) = self.dropped_line() {
            warn!("Bitbucket webhook registered without some events: {line}");
        }
    }
}

/// Bitbucket's answer for a token without a scope the request needs.
fn is_scope_error(body: &str) -> bool {
    body.contains("required privilege scopes")
}

/// The scopes Bitbucket says are required and not granted (`error.detail`), when said.
fn missing_scopes(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let list = |k: &str| -> Vec<String> {
        v.pointer(&format!("/error/detail/{k}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let granted = list("granted");
    list("required")
        .into_iter()
        .filter(|s| !granted.contains(s))
        .collect()
}

/// The events a scope refusal is about: those whose scope Bitbucket names as missing;
/// when it names none of them, the optional ones (the issue tracker).
fn refused_events(events: &[&'static HookEvent], body: &str) -> Vec<&'static HookEvent> {
    let missing = missing_scopes(body);
    let named: Vec<&'static HookEvent> = events
        .iter()
        .copied()
        .filter(|e| {
            missing
                .iter()
                .any(|m| m == e.scope || m == e.api_token_scope)
        })
        .collect();
    if !named.is_empty() || missing.iter().any(|m| m.contains("webhook")) {
        return named;
    }
    events.iter().copied().filter(|e| e.optional).collect()
}

impl BitbucketClient {
    /// The workspace's uuid (the tenant id webhook payloads carry).
    pub async fn workspace_uuid(&self) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Ws {
            uuid: String,
        }
        let w: Ws = self
            .json(
                "get workspace",
                Method::GET,
                &format!("/workspaces/{}", seg(&self.workspace)),
                None,
            )
            .await?;
        Ok(w.uuid)
    }
}

#[derive(Deserialize)]
struct BbRepo {
    uuid: String,
    full_name: String,
    mainbranch: Option<BbBranchName>,
    #[serde(default)]
    is_private: bool,
    parent: Option<Value>,
    updated_on: Option<String>,
}

#[derive(Deserialize)]
struct BbBranchName {
    name: String,
}

impl BbRepo {
    fn into_remote(self) -> RemoteRepo {
        let empty = self.mainbranch.is_none();
        RemoteRepo {
            handle: RepoHandle {
                id: self.uuid,
                full_name: self.full_name,
            },
            default_branch: self.mainbranch.map(|b| b.name),
            archived: false,
            fork: self.parent.is_some_and(|p| !p.is_null()),
            disabled: false,
            private: self.is_private,
            empty,
            pushed_at: self.updated_on.as_deref().and_then(parse_utc),
        }
    }
}

#[derive(Deserialize)]
struct BbPr {
    id: u64,
    state: String,
    description: Option<String>,
    source: BbEnd,
    links: Value,
}

#[derive(Deserialize)]
struct BbEnd {
    branch: BbBranchName,
    commit: Option<BbCommit>,
}

#[derive(Deserialize)]
struct BbCommit {
    hash: String,
}

impl BbPr {
    fn into_pr(self) -> PullRequest {
        PullRequest {
            number: self.id,
            state: match self.state.as_str() {
                "OPEN" => PrState::Open,
                "MERGED" => PrState::Merged,
                _ => PrState::Closed,
            },
            head_branch: self.source.branch.name,
            head_sha: self.source.commit.map(|c| c.hash),
            body: self.description.unwrap_or_default(),
            url: self
                .links
                .pointer("/html/href")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// Bitbucket's query language needs quotes and backslashes escaped inside strings.
fn bbql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[async_trait]
impl ForgeClient for BitbucketClient {
    fn forge(&self) -> Forge {
        Forge::Bitbucket
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }

    fn rate_reading(&self) -> Option<crate::forge::client::RateReading> {
        self.counter.rate()
    }

    async fn list_repositories(&self) -> Result<Vec<RemoteRepo>, ApiError> {
        let repos: Vec<BbRepo> = self
            .pages(
                "list repositories",
                &format!("/repositories/{}?pagelen={PAGELEN}", seg(&self.workspace)),
            )
            .await?;
        Ok(repos
            .into_iter()
            .filter(|r| self.check_scope(&r.full_name).is_ok())
            .map(BbRepo::into_remote)
            .collect())
    }

    async fn repository(&self, repo: &RepoHandle) -> Result<RemoteRepo, ApiError> {
        let path = self.repo_path(repo)?;
        let r: BbRepo = self
            .json(
                "get repository",
                Method::GET,
                &format!("/repositories/{path}"),
                None,
            )
            .await?;
        Ok(r.into_remote())
    }

    async fn branch_head(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<String>, ApiError> {
        #[derive(Deserialize)]
        struct Branch {
            target: BbCommit,
        }
        let path = self.repo_path(repo)?;
        let url = format!("/repositories/{path}/refs/branches/{}", seg(branch));
        match self
            .json::<Branch>("get branch", Method::GET, &url, None)
            .await
        {
            Ok(b) => Ok(Some(b.target.hash)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn tree(&self, repo: &RepoHandle, commit: &str) -> Result<RemoteTree, ApiError> {
        #[derive(Deserialize)]
        struct Entry {
            path: String,
            #[serde(rename = "type")]
            kind: String,
            size: Option<u64>,
        }
        let path = self.repo_path(repo)?;
        let entries: Vec<Entry> = self
            .pages(
                "get tree",
                &format!(
                    "/repositories/{path}/src/{}/?max_depth=30&pagelen={PAGELEN}",
                    seg(commit)
                ),
            )
            .await?;
        Ok(RemoteTree {
            files: entries
                .into_iter()
                .filter(|e| e.kind == "commit_file")
                .map(|e| TreeFile {
                    path: e.path,
                    size: e.size,
                })
                .collect(),
            truncated: false,
        })
    }

    async fn read_files(
        &self,
        repo: &RepoHandle,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
        let base = self.repo_path(repo)?;
        let mut out = Vec::new();
        for p in paths {
            let file = p.split('/').map(seg).collect::<Vec<_>>().join("/");
            let url = self.url(&format!("/repositories/{base}/src/{}/{file}", seg(commit)));
            match self.call("read file", self.api.http.get(url)).await {
                Ok(a) => out.push((p.clone(), a.body.to_vec())),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn find_pull_request(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<PullRequest>, ApiError> {
        #[derive(Deserialize)]
        struct Page {
            values: Vec<BbPr>,
        }
        let path = self.repo_path(repo)?;
        let q = format!("source.branch.name = {}", bbql_string(branch));
        let url = format!(
            "/repositories/{path}/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&sort=-created_on&pagelen=10&q={}",
            seg(&q)
        );
        let page: Page = self
            .json("find pull request", Method::GET, &url, None)
            .await?;
        Ok(page
            .values
            .into_iter()
            .find(|p| p.source.branch.name == branch)
            .map(BbPr::into_pr))
    }

    async fn write_branch(
        &self,
        repo: &RepoHandle,
        write: &BranchWrite,
    ) -> Result<String, ApiError> {
        let path = self.repo_path(repo)?;
        let parent = match &write.parent {
            Parent::Fresh { base } => base,
            Parent::OnTop { head } => head,
        };
        let form = || {
            // Field names are file paths: sent as-is, not RFC 5987-encoded (`a%2Fb`).
            // Metadata and files share one namespace; Bitbucket tells a file from a
            // metadata field by the `filename` of its part, so every file part carries
            // one (a file at `message` or `branch` must not become the commit message
            // or the branch).
            let mut f = reqwest::multipart::Form::new()
                .percent_encode_noop()
                .text("message", write.message.clone())
                .text("branch", write.branch.clone())
                .text("parents", parent.clone());
            for file in &write.files {
                f = match &file.content {
                    Some(c) => {
                        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
                        f.part(
                            file.path.clone(),
                            reqwest::multipart::Part::text(c.clone()).file_name(name.to_owned()),
                        )
                    }
                    None => f.text("files", file.path.clone()),
                };
            }
            f
        };
        let url = self.url(&format!("/repositories/{path}/src"));
        let mut answer = self
            .send("create commit", self.api.http.post(&url).multipart(form()))
            .await?;
        if answer.status == 409 {
            if let Parent::Fresh { .. } = write.parent {
                // A stale branch of ours (closed PR, crashed attempt): recreate it at `base`.
                let del = self.url(&format!(
                    "/repositories/{path}/refs/branches/{}",
                    seg(&write.branch)
                ));
                self.call("delete branch", self.api.http.delete(del))
                    .await?;
                answer = self
                    .send("create commit", self.api.http.post(&url).multipart(form()))
                    .await?;
            }
        }
        if !(200..300).contains(&answer.status) {
            return Err(classify(
                Forge::Bitbucket,
                "create commit",
                answer.status,
                &answer.headers,
                &String::from_utf8_lossy(&answer.body),
                self.api.clock.now(),
            ));
        }
        answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|sha| !sha.is_empty() && sha.bytes().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Decode {
                forge: Forge::Bitbucket,
                operation: "create commit",
                detail: "no commit in the Location header".into(),
            })
    }

    async fn open_pull_request(
        &self,
        repo: &RepoHandle,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, ApiError> {
        let path = self.repo_path(repo)?;
        let body = json!({
            "title": pr.title,
            "description": pr.body,
            "source": {"branch": {"name": pr.head}},
            "destination": {"branch": {"name": pr.base}},
            "close_source_branch": true
        });
        match self
            .json::<BbPr>(
                "open pull request",
                Method::POST,
                &format!("/repositories/{path}/pullrequests"),
                Some(&body),
            )
            .await
        {
            Ok(p) => Ok(p.into_pr()),
            Err(ApiError::Rejected {
                status: status @ (400 | 409),
                body,
                ..
            }) if body.to_ascii_lowercase().contains("already") => {
                match self.find_pull_request(repo, &pr.head).await? {
                    Some(p) if p.state == PrState::Open => Ok(p),
                    _ => Err(ApiError::Rejected {
                        forge: Forge::Bitbucket,
                        operation: "open pull request",
                        status,
                        body,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn update_pull_request(
        &self,
        repo: &RepoHandle,
        number: u64,
        update: &PullRequestUpdate,
    ) -> Result<(), ApiError> {
        let path = self.repo_path(repo)?;
        let mut body = serde_json::Map::new();
        if let Some(t) = &update.title {
            body.insert("title".into(), json!(t));
        }
        if let Some(b) = &update.body {
            body.insert("description".into(), json!(b));
        }
        if !body.is_empty() {
            let _: Value = self
                .json(
                    "update pull request",
                    Method::PUT,
                    &format!("/repositories/{path}/pullrequests/{number}"),
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        if update.close {
            let _: Value = self
                .json(
                    "decline pull request",
                    Method::POST,
                    &format!("/repositories/{path}/pullrequests/{number}/decline"),
                    None,
                )
                .await?;
        }
        Ok(())
    }

    async fn comment(
        &self,
        repo: &RepoHandle,
        target: &CommentTarget,
        body: &str,
    ) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Created {
            id: u64,
        }
        let path = self.repo_path(repo)?;
        let url = match target {
            CommentTarget::PullRequest(n) => {
                format!("/repositories/{path}/pullrequests/{n}/comments")
            }
            CommentTarget::Issue(n) => format!("/repositories/{path}/issues/{n}/comments"),
        };
        let c: Created = self
            .json(
                "comment",
                Method::POST,
                &url,
                Some(&json!({"content": {"raw": body}})),
            )
            .await?;
        Ok(c.id.to_string())
    }

    async fn write_ci_secrets(
        &self,
        repo: &RepoHandle,
        environments: &[&str],
        secrets: &[CiSecret],
    ) -> Result<Vec<SecretWrite>, ApiError> {
        #[derive(Deserialize)]
        struct Env {
            uuid: String,
            name: String,
        }
        #[derive(Deserialize)]
        struct Var {
            uuid: String,
            key: String,
        }
        let path = self.repo_path(repo)?;
        let envs: Vec<Env> = self
            .pages(
                "list environments",
                &format!("/repositories/{path}/environments"),
            )
            .await?;
        let mut out = Vec::new();
        for wanted in environments {
            // Bitbucket names its default environments Test, Staging and Production.
            let env = match envs.iter().find(|e| e.name.eq_ignore_ascii_case(wanted)) {
                Some(e) => e.uuid.clone(),
                None => {
                    let kind = match wanted.to_ascii_lowercase().as_str() {
                        "production" => "Production",
                        "staging" => "Staging",
                        _ => "Test",
                    };
                    let created: Env = self
                        .json(
                            "create environment",
                            Method::POST,
                            &format!("/repositories/{path}/environments"),
                            Some(&json!({
                                "type": "deployment_environment",
                                "name": capitalise(wanted),
                                "environment_type": {"type": "deployment_environment_type", "name": kind},
                            })),
                        )
                        .await?;
                    created.uuid
                }
            };
            let env_seg = seg(&env);
            let vars: Vec<Var> = self
                .pages(
                    "list deployment variables",
                    &format!(
                        "/repositories/{path}/deployments_config/environments/{env_seg}/variables"
                    ),
                )
                .await?;
            for s in secrets {
                // Secured: write-only through the API and masked in logs.
                let body = json!({
                    "type": "pipeline_variable",
                    "key": s.name,
                    "value": s.value.expose(),
                    "secured": s.secret,
                });
                let req = match vars.iter().find(|v| v.key == s.name) {
                    Some(v) => self.api.http.put(self.url(&format!(
                        "/repositories/{path}/deployments_config/environments/{env_seg}/variables/{}",
                        seg(&v.uuid)
                    ))),
                    None => self.api.http.post(self.url(&format!(
                        "/repositories/{path}/deployments_config/environments/{env_seg}/variables"
                    ))),
                };
                self.call("write deployment variable", req.json(&body))
                    .await?;
                out.push(SecretWrite {
                    name: s.name.clone(),
                    scope: (*wanted).to_owned(),
                    masked: s.secret,
                });
            }
        }
        Ok(out)
    }

    async fn react(
        &self,
        _repo: &RepoHandle,
        _target: &CommentTarget,
        _comment_id: &str,
        _reaction: Reaction,
    ) -> Result<(), ApiError> {
        // Bitbucket Cloud has no reactions; acknowledgements are replies there.
        Ok(())
    }

    async fn permission(&self, repo: &RepoHandle, user: &Actor) -> Result<Permission, ApiError> {
        #[derive(Deserialize)]
        struct Page {
            values: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            permission: String,
            user: Option<EntryUser>,
        }
        #[derive(Deserialize)]
        struct EntryUser {
            uuid: Option<String>,
            account_id: Option<String>,
        }
        self.check_scope(&repo.full_name)?;
        // Nicknames are not unique on Bitbucket (and people can change them): only the
        // account's uuid (`{…}`) or Atlassian account id names one person.
        let Some(id) = user.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) else {
            warn!(user = %user.login, "Bitbucket commenter without a uuid: no permission granted");
            return Ok(Permission::None);
        };
        let field = if id.starts_with('{') {
            "user.uuid"
        } else {
            "user.account_id"
        };
        let slug = repo.full_name.split('/').nth(1).unwrap_or_default();
        let q = format!("{field} = {}", bbql_string(id));
        let url = format!(
            "/workspaces/{}/permissions/repositories/{}?q={}",
            seg(&self.workspace),
            seg(slug),
            seg(&q)
        );
        let page: Page = self.json("get permission", Method::GET, &url, None).await?;
        Ok(page
            .values
            .iter()
            // The filter is Bitbucket's; the answer is checked against the id anyway.
            .filter(|e| {
                e.user.as_ref().is_some_and(|u| {
                    u.uuid.as_deref() == Some(id) || u.account_id.as_deref() == Some(id)
                })
            })
            .map(|e| match e.permission.as_str() {
                "admin" => Permission::Admin,
                "write" => Permission::Write,
                "read" => Permission::Read,
                _ => Permission::None,
            })
            .max()
            .unwrap_or(Permission::None))
    }

    async fn failed_ci_jobs(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
    ) -> Result<Vec<CiJobRef>, ApiError> {
        #[derive(Deserialize)]
        struct Name {
            name: String,
        }
        #[derive(Deserialize)]
        struct State {
            result: Option<Name>,
        }
        #[derive(Deserialize)]
        struct Step {
            uuid: String,
            name: Option<String>,
            state: Option<State>,
        }
        #[derive(Deserialize)]
        struct Steps {
            values: Vec<Step>,
        }
        if !run.failed_jobs.is_empty() {
            return Ok(run.failed_jobs.clone());
        }
        let path = self.repo_path(repo)?;
        let pipeline = self.pipeline_uuid(&path, run).await?;
        let steps: Steps = self
            .json(
                "list pipeline steps",
                Method::GET,
                &format!(
                    "/repositories/{path}/pipelines/{}/steps/?pagelen=100",
                    seg(&pipeline)
                ),
                None,
            )
            .await?;
        Ok(steps
            .values
            .into_iter()
            .filter(|s| {
                s.state
                    .as_ref()
                    .and_then(|st| st.result.as_ref())
                    .is_some_and(|r| r.name == "FAILED" || r.name == "ERROR")
            })
            .map(|s| CiJobRef {
                // The pipeline travels with the step: its log lives under both.
                id: format!("{pipeline}/{}", s.uuid),
                name: s.name.unwrap_or_default(),
            })
            .collect())
    }

    async fn ci_job_log(
        &self,
        repo: &RepoHandle,
        _run: &CiRun,
        job: &CiJobRef,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ApiError> {
        let path = self.repo_path(repo)?;
        let (pipeline, step) = job.id.split_once('/').ok_or_else(|| {
            ApiError::Config(format!("Bitbucket step id `{}` names no pipeline", job.id))
        })?;
        let req = self.api.http.get(self.url(&format!(
            "/repositories/{path}/pipelines/{}/steps/{}/log",
            seg(pipeline),
            seg(step)
        )));
        let op = "read step log";
        let a = self.send_bounded(op, req, Some(max_bytes)).await?;
        if !(200..300).contains(&a.status) {
            return Err(classify(
                Forge::Bitbucket,
                op,
                a.status,
                &a.headers,
                &String::from_utf8_lossy(&a.body),
                self.api.clock.now(),
            ));
        }
        Ok(a.body.to_vec())
    }

    async fn rerun_ci(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
        _jobs: &[CiJobRef],
    ) -> Result<(), ApiError> {
        // Bitbucket re-runs by starting a new pipeline for the same commit and branch.
        let path = self.repo_path(repo)?;
        let body = serde_json::json!({
            "target": {
                "type": "pipeline_ref_target",
                "ref_type": "branch",
                "ref_name": run.branch,
                "commit": {"type": "commit", "hash": run.sha.as_str()},
            }
        });
        let _: Value = self
            .json(
                "run pipeline",
                Method::POST,
                &format!("/repositories/{path}/pipelines/"),
                Some(&body),
            )
            .await?;
        Ok(())
    }
}

impl BitbucketClient {
    /// The UUID of the pipeline a status points at: its build number (from the status
    /// URL) looked up among the repository's recent pipelines for that commit.
    async fn pipeline_uuid(&self, path: &str, run: &CiRun) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Commit {
            hash: String,
        }
        #[derive(Deserialize)]
        struct Target {
            commit: Option<Commit>,
        }
        #[derive(Deserialize)]
        struct Pipeline {
            uuid: String,
            build_number: u64,
            target: Option<Target>,
        }
        #[derive(Deserialize)]
        struct Pipelines {
            values: Vec<Pipeline>,
        }
        if run.run_id.starts_with('{') {
            return Ok(run.run_id.clone());
        }
        let list: Pipelines = self
            .json(
                "list pipelines",
                Method::GET,
                &format!("/repositories/{path}/pipelines/?sort=-created_on&pagelen=50"),
                None,
            )
            .await?;
        list.values
            .into_iter()
            .find(|p| {
                p.build_number.to_string() == run.run_id
                    || p.target
                        .as_ref()
                        .and_then(|t| t.commit.as_ref())
                        .is_some_and(|c| {
                            crate::jobs::analyze_repo::same_commit(&c.hash, run.sha.as_str())
                        })
                        && run.run_id.parse::<u64>().is_err()
            })
            .map(|p| p.uuid)
            .ok_or_else(|| ApiError::Config(format!("no pipeline {} for this commit", run.run_id)))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_escaped() {
        assert_eq!(bbql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
