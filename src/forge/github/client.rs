//! The GitHub client: octocrab's HTTP stack (rustls, timeouts, GHES base URL) with our
//! own installation-token cache, call counting and rate-limit handling. Requests are
//! built by hand and sent with `Octocrab::execute`, because the bot needs every
//! response's status and `x-ratelimit-*` headers, which octocrab's typed handlers hide.
//!
//! Costs, per repository: metadata 1, head 1 (0 when the push named it), tree 1, every
//! manifest in 1 GraphQL query, PR lookup 1; opening a PR adds tree + commit + ref + PR.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt as _;
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{parse_utc, TokenCache};
use crate::clock::Clock;
use crate::forge::client::{
    classify, outcome_label, truncate_body, ApiError, BranchWrite, CallCounter, ForgeClient,
    NewPullRequest, Parent, Permission, PrState, PullRequest, PullRequestUpdate, Reaction,
    RemoteRepo, RemoteTree, RepoHandle, TreeFile,
};
use crate::forge::client::{CiSecret, SecretWrite};
use crate::forge::event::{Actor, CiJobRef, CiRun, CommentTarget};
use crate::forge::Forge;

/// Files per GraphQL query (GitHub limits a query's node count; 50 is far below it).
const GRAPHQL_FILES_PER_QUERY: usize = 50;
/// Largest page GitHub serves.
const PER_PAGE: usize = 100;

/// What every GitHub client of the process shares: the HTTP stack and the token cache.
pub struct GithubApi {
    octo: Octocrab,
    graphql_url: String,
    tokens: TokenCache,
    clock: Clock,
}

impl std::fmt::Debug for GithubApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApi")
            .field("graphql_url", &self.graphql_url)
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// GraphQL endpoint for a REST base: `https://api.github.com` → `…/graphql`;
/// GHES `https://host/api/v3` → `https://host/api/graphql`.
pub fn graphql_url(api_url: &str) -> String {
    let base = api_url.trim_end_matches('/');
    match base.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{base}/graphql"),
    }
}

impl GithubApi {
    /// Shared state for `api_url` (`https://api.github.com` or a GHES `/api/v3` URL).
    pub fn new(api_url: &str, tokens: TokenCache, clock: Clock) -> anyhow::Result<GithubApi> {
        let octo = Octocrab::builder()
            .base_uri(api_url.trim_end_matches('/'))?
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .build()?;
        Ok(GithubApi {
            octo,
            graphql_url: graphql_url(api_url),
            tokens,
            clock,
        })
    }

    /// The token cache (installation deleted → forget its token).
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }
}

/// A client for one installation, made per job.
pub struct GithubClient {
    api: Arc<GithubApi>,
    installation: u64,
    counter: CallCounter,
    /// Tree sha of commits listed by this client: saves a call when committing on them.
    trees: Mutex<HashMap<String, String>>,
}

impl GithubClient {
    /// A client acting as `installation`.
    pub fn new(api: Arc<GithubApi>, installation: u64, counter: CallCounter) -> Self {
        GithubClient {
            api,
            installation,
            counter,
            trees: Mutex::new(HashMap::new()),
        }
    }

    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, HeaderMap, Bytes), ApiError> {
        self.send_bounded(op, method, url, body, None).await
    }

    /// [`Self::send`], keeping only the last `tail` bytes of a successful answer's body
    /// while it streams in (job logs can be far larger than what is read of them).
    async fn send_bounded(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        tail: Option<usize>,
    ) -> Result<(u16, HeaderMap, Bytes), ApiError> {
        let token = self
            .api
            .tokens
            .installation_token(self.installation, Some(&self.counter))
            .await?;
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            // GitHub's media type first; plain JSON is what the OpenAPI description declares.
            .header(
                http::header::ACCEPT,
                "application/vnd.github+json, application/json;q=0.9",
            )
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(
                http::header::USER_AGENT,
                concat!("pipewright/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.token.expose()),
            );
        let payload = match body {
            Some(v) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(v).expect("JSON values serialize")
            }
            None => Vec::new(),
        };
        let req = req
            .body(payload)
            .map_err(|e| ApiError::Config(e.to_string()))?;
        let transient = |detail: String| ApiError::Transient {
            forge: Forge::Github,
            operation: op,
            detail,
        };
        let resp = match self.api.octo.execute(req).await {
            Ok(r) => r,
            Err(e) => {
                self.counter.record(Forge::Github, op, "transport_error");
                return Err(transient(e.to_string()));
            }
        };
        let status = resp.status().as_u16();
        self.counter
            .record(Forge::Github, op, outcome_label(status));
        let headers = resp.headers().clone();
        self.counter.observe_headers(&headers);
        let mut body = resp.into_body();
        let bytes = match tail {
            Some(max) if (200..300).contains(&status) => {
                let mut kept = crate::forge::client::TailBuffer::new(max);
                while let Some(frame) = body.frame().await {
                    let frame =
                        frame.map_err(|e| transient(format!("reading the response: {e}")))?;
                    if let Ok(data) = frame.into_data() {
                        kept.push(&data);
                    }
                }
                Bytes::from(kept.finish())
            }
            _ => body
                .collect()
                .await
                .map_err(|e| transient(format!("reading the response: {e}")))?
                .to_bytes(),
        };
        Ok((status, headers, bytes))
    }

    /// Sends and insists on a 2xx; anything else becomes an [`ApiError`].
    async fn call(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Bytes, ApiError> {
        let (status, headers, bytes) = self.send(op, method, url, body).await?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(classify(
            Forge::Github,
            op,
            status,
            &headers,
            &String::from_utf8_lossy(&bytes),
            self.api.clock.now(),
        ))
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let bytes = self.call(op, method, url, body).await?;
        decode(op, &bytes)
    }

    /// The repository's Actions secrets public key (`GET …/actions/secrets/public-key`).
    pub async fn actions_public_key(
        &self,
        repo: &RepoHandle,
    ) -> Result<ActionsPublicKey, ApiError> {
        self.json(
            "secrets public key",
            Method::GET,
            &format!("/repos/{}/actions/secrets/public-key", repo_path(repo)),
            None,
        )
        .await
    }

    /// Creates or updates one Actions secret with a value already sealed to the key
    /// `key_id` (`PUT …/actions/secrets/{name}`: 201 created, 204 updated).
    pub async fn put_actions_secret(
        &self,
        repo: &RepoHandle,
        name: &str,
        encrypted_value: &str,
        key_id: &str,
    ) -> Result<(), ApiError> {
        self.call(
            "write secret",
            Method::PUT,
            &format!("/repos/{}/actions/secrets/{}", repo_path(repo), seg(name)),
            Some(&json!({ "encrypted_value": encrypted_value, "key_id": key_id })),
        )
        .await
        .map(|_| ())
    }
}

/// A repository's public key for Actions secrets.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionsPublicKey {
    /// Its id, sent back with each secret.
    pub key_id: String,
    /// Base64 of the X25519 public key.
    pub key: String,
}

fn decode<T: for<'de> Deserialize<'de>>(op: &'static str, bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Decode {
        forge: Forge::Github,
        operation: op,
        detail: format!(
            "{e} in {}",
            truncate_body(&String::from_utf8_lossy(bytes), 200)
        ),
    })
}

/// Percent-encodes one path segment (branch names and users go into URLs).
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `owner/name` with each half encoded, for URLs.
fn repo_path(repo: &RepoHandle) -> String {
    repo.full_name
        .split('/')
        .map(seg)
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Deserialize)]
struct GhRepo {
    id: u64,
    full_name: String,
    default_branch: Option<String>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    fork: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    size: u64,
    pushed_at: Option<String>,
}

impl GhRepo {
    fn into_remote(self) -> RemoteRepo {
        RemoteRepo {
            handle: RepoHandle {
                id: self.id.to_string(),
                full_name: self.full_name,
            },
            default_branch: self.default_branch,
            archived: self.archived,
            fork: self.fork,
            disabled: self.disabled,
            private: self.private,
            // GitHub reports size 0 and no push for a repository without commits.
            empty: self.size == 0 && self.pushed_at.is_none(),
            pushed_at: self.pushed_at.as_deref().and_then(parse_utc),
        }
    }
}

#[derive(Deserialize)]
struct GhPull {
    number: u64,
    state: String,
    merged_at: Option<String>,
    body: Option<String>,
    html_url: String,
    head: GhHead,
}

#[derive(Deserialize)]
struct GhHead {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: Option<String>,
}

impl GhPull {
    fn into_pr(self) -> PullRequest {
        let state = match (self.state.as_str(), self.merged_at.is_some()) {
            (_, true) => PrState::Merged,
            ("open", _) => PrState::Open,
            _ => PrState::Closed,
        };
        PullRequest {
            number: self.number,
            state,
            head_branch: self.head.git_ref,
            head_sha: self.head.sha,
            body: self.body.unwrap_or_default(),
            url: self.html_url,
        }
    }
}

#[derive(Deserialize)]
struct Sha {
    sha: String,
}

fn is_workflow_refusal(e: &ApiError) -> Option<String> {
    match e {
        ApiError::Rejected { status, body, .. }
            if matches!(status, 403 | 404 | 422)
                && body.to_ascii_lowercase().contains("workflow") =>
        {
            Some(body.clone())
        }
        _ => None,
    }
}

#[async_trait]
impl ForgeClient for GithubClient {
    fn forge(&self) -> Forge {
        Forge::Github
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }

    fn rate_reading(&self) -> Option<crate::forge::client::RateReading> {
        self.counter.rate()
    }

    async fn list_repositories(&self) -> Result<Vec<RemoteRepo>, ApiError> {
        #[derive(Deserialize)]
        struct Page {
            total_count: usize,
            repositories: Vec<GhRepo>,
        }
        let mut out = Vec::new();
        for page in 1.. {
            let p: Page = self
                .json(
                    "list installation repositories",
                    Method::GET,
                    &format!("/installation/repositories?per_page={PER_PAGE}&page={page}"),
                    None,
                )
                .await?;
            let n = p.repositories.len();
            out.extend(p.repositories.into_iter().map(GhRepo::into_remote));
            if n < PER_PAGE || out.len() >= p.total_count {
                break;
            }
        }
        Ok(out)
    }

    async fn repository(&self, repo: &RepoHandle) -> Result<RemoteRepo, ApiError> {
        // By name (the documented endpoint); GitHub redirects a renamed repository, and
        // the answer carries the current name, which later calls use.
        let r: GhRepo = self
            .json(
                "get repository",
                Method::GET,
                &format!("/repos/{}", repo_path(repo)),
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
        struct Ref {
            object: Sha,
        }
        let url = format!(
            "/repos/{}/git/ref/{}",
            repo_path(repo),
            seg(&format!("heads/{branch}"))
        );
        match self
            .json::<Ref>("get branch", Method::GET, &url, None)
            .await
        {
            Ok(r) => Ok(Some(r.object.sha)),
            // 409: "Git Repository is empty".
            Err(e) if e.is_not_found() || e.status() == Some(409) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn resolve_commit(
        &self,
        full_name: &str,
        reference: &str,
    ) -> Result<Option<String>, ApiError> {
        #[derive(Deserialize)]
        struct Commit {
            sha: String,
        }
        let Some((owner, name)) = full_name.split_once('/') else {
            return Ok(None);
        };
        let url = format!(
            "/repos/{}/{}/commits/{}",
            seg(owner),
            seg(name),
            seg(reference)
        );
        match self
            .json::<Commit>("resolve a reference", Method::GET, &url, None)
            .await
        {
            Ok(c) if c.sha.len() == 40 && c.sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Some(c.sha))
            }
            Ok(_) => Ok(None),
            // 404: no such repository or reference (or not readable by the installation);
            // 422: not a commit-ish.
            Err(e) if e.is_not_found() || e.status() == Some(422) || e.status() == Some(403) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn tree(&self, repo: &RepoHandle, commit: &str) -> Result<RemoteTree, ApiError> {
        #[derive(Deserialize)]
        struct Tree {
            sha: String,
            tree: Vec<Entry>,
            #[serde(default)]
            truncated: bool,
        }
        #[derive(Deserialize)]
        struct Entry {
            path: String,
            #[serde(rename = "type")]
            kind: String,
            size: Option<u64>,
        }
        let t: Tree = self
            .json(
                "get tree",
                Method::GET,
                &format!(
                    "/repos/{}/git/trees/{}?recursive=1",
                    repo_path(repo),
                    seg(commit)
                ),
                None,
            )
            .await?;
        self.trees
            .lock()
            .expect("tree map lock is never poisoned")
            .insert(commit.to_owned(), t.sha);
        Ok(RemoteTree {
            files: t
                .tree
                .into_iter()
                .filter(|e| e.kind == "blob")
                .map(|e| TreeFile {
                    path: e.path,
                    size: e.size,
                })
                .collect(),
            truncated: t.truncated,
        })
    }

    async fn read_files(
        &self,
        repo: &RepoHandle,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
        const OP: &str = "read files (GraphQL)";
        let (owner, name) = repo
            .full_name
            .split_once('/')
            .ok_or_else(|| ApiError::Config(format!("`{}` is not owner/name", repo.full_name)))?;
        let mut out = Vec::new();
        for chunk in paths.chunks(GRAPHQL_FILES_PER_QUERY) {
            let mut decl = String::from("$owner: String!, $name: String!");
            let mut fields = String::new();
            let mut vars = serde_json::Map::new();
            vars.insert("owner".into(), json!(owner));
            vars.insert("name".into(), json!(name));
            for (i, p) in chunk.iter().enumerate() {
                decl.push_str(&format!(", $e{i}: String!"));
                fields.push_str(&format!(
                    " f{i}: object(expression: $e{i}) {{ ... on Blob {{ text isBinary }} }}"
                ));
                vars.insert(format!("e{i}"), json!(format!("{commit}:{p}")));
            }
            let query =
                format!("query({decl}) {{ repository(owner: $owner, name: $name) {{{fields} }} }}");
            let body = json!({ "query": query, "variables": vars });
            let url = self.api.graphql_url.clone();
            let (status, headers, bytes) = self.send(OP, Method::POST, &url, Some(&body)).await?;
            let text = String::from_utf8_lossy(&bytes);
            if !(200..300).contains(&status) {
                return Err(classify(
                    Forge::Github,
                    OP,
                    status,
                    &headers,
                    &text,
                    self.api.clock.now(),
                ));
            }
            let v: Value = decode(OP, &bytes)?;
            if let Some(errors) = v.get("errors").and_then(Value::as_array) {
                if errors
                    .iter()
                    .any(|e| e.get("type").and_then(Value::as_str) == Some("RATE_LIMITED"))
                {
                    let now = self.api.clock.now();
                    let until = crate::forge::client::rate_limit_until(
                        403,
                        &headers,
                        "rate limit exceeded",
                        now,
                    )
                    .unwrap_or(now + 60_000);
                    return Err(ApiError::RateLimited {
                        forge: Forge::Github,
                        until,
                        detail: "GraphQL rate limit".into(),
                    });
                }
            }
            let Some(repo_obj) = v.pointer("/data/repository").filter(|r| !r.is_null()) else {
                return Err(ApiError::Decode {
                    forge: Forge::Github,
                    operation: OP,
                    detail: truncate_body(&text, 300),
                });
            };
            for (i, p) in chunk.iter().enumerate() {
                let blob = &repo_obj[format!("f{i}")];
                if blob.get("isBinary").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                if let Some(t) = blob.get("text").and_then(Value::as_str) {
                    out.push((p.clone(), t.as_bytes().to_vec()));
                }
            }
        }
        Ok(out)
    }

    async fn find_pull_request(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<PullRequest>, ApiError> {
        let owner = repo.full_name.split('/').next().unwrap_or_default();
        let head = format!("{owner}:{branch}");
        let url = format!(
            "/repos/{}/pulls?state=all&sort=created&direction=desc&per_page=10&head={}",
            repo_path(repo),
            seg(&head)
        );
        let pulls: Vec<GhPull> = self
            .json("find pull request", Method::GET, &url, None)
            .await?;
        Ok(pulls
            .into_iter()
            .find(|p| p.head.git_ref == branch)
            .map(GhPull::into_pr))
    }

    async fn write_branch(
        &self,
        repo: &RepoHandle,
        write: &BranchWrite,
    ) -> Result<String, ApiError> {
        let rp = repo_path(repo);
        let parent = match &write.parent {
            Parent::Fresh { base } => base,
            Parent::OnTop { head } => head,
        };
        let known = self
            .trees
            .lock()
            .expect("tree map lock is never poisoned")
            .get(parent)
            .cloned();
        let base_tree = match known {
            Some(t) => t,
            None => {
                #[derive(Deserialize)]
                struct Commit {
                    tree: Sha,
                }
                let c: Commit = self
                    .json(
                        "get commit",
                        Method::GET,
                        &format!("/repos/{rp}/git/commits/{}", seg(parent)),
                        None,
                    )
                    .await?;
                c.tree.sha
            }
        };
        let entries: Vec<Value> = write
            .files
            .iter()
            .map(|f| match &f.content {
                Some(c) => json!({"path": f.path, "mode": "100644", "type": "blob", "content": c}),
                None => json!({"path": f.path, "mode": "100644", "type": "blob", "sha": null}),
            })
            .collect();
        let tree: Sha = self
            .json(
                "create tree",
                Method::POST,
                &format!("/repos/{rp}/git/trees"),
                Some(&json!({"base_tree": base_tree, "tree": entries})),
            )
            .await?;
        let commit: Sha = self
            .json(
                "create commit",
                Method::POST,
                &format!("/repos/{rp}/git/commits"),
                Some(&json!({"message": write.message, "tree": tree.sha, "parents": [parent]})),
            )
            .await?;
        // One path parameter, slashes encoded, as GitHub's OpenAPI description has it.
        let ref_url = format!(
            "/repos/{rp}/git/refs/{}",
            seg(&format!("heads/{}", write.branch))
        );
        let result = match &write.parent {
            Parent::Fresh { .. } => {
                let created = self
                    .call(
                        "create branch",
                        Method::POST,
                        &format!("/repos/{rp}/git/refs"),
                        Some(&json!({"ref": format!("refs/heads/{}", write.branch), "sha": commit.sha})),
                    )
                    .await;
                match created {
                    // A branch of ours left from a closed PR or a crashed attempt.
                    Err(ApiError::Rejected {
                        status: 422, body, ..
                    }) if body.contains("already exists") => {
                        self.call(
                            "reset branch",
                            Method::PATCH,
                            &ref_url,
                            Some(&json!({"sha": commit.sha, "force": true})),
                        )
                        .await
                    }
                    other => other,
                }
            }
            Parent::OnTop { .. } => {
                self.call(
                    "update branch",
                    Method::PATCH,
                    &ref_url,
                    Some(&json!({"sha": commit.sha, "force": false})),
                )
                .await
            }
        };
        match result {
            Ok(_) => Ok(commit.sha),
            Err(e) => Err(match is_workflow_refusal(&e) {
                Some(detail) => ApiError::WorkflowsPermission { detail },
                None => e,
            }),
        }
    }

    async fn open_pull_request(
        &self,
        repo: &RepoHandle,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, ApiError> {
        let created = self
            .json::<GhPull>(
                "open pull request",
                Method::POST,
                &format!("/repos/{}/pulls", repo_path(repo)),
                Some(
                    &json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body}),
                ),
            )
            .await;
        match created {
            Ok(p) => Ok(p.into_pr()),
            // Created by an attempt whose answer was lost: adopt it.
            Err(ApiError::Rejected {
                status: 422, body, ..
            }) if body.contains("already exists") => {
                match self.find_pull_request(repo, &pr.head).await? {
                    Some(p) if p.state == PrState::Open => Ok(p),
                    _ => Err(ApiError::Rejected {
                        forge: Forge::Github,
                        operation: "open pull request",
                        status: 422,
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
        let mut body = serde_json::Map::new();
        if let Some(t) = &update.title {
            body.insert("title".into(), json!(t));
        }
        if let Some(b) = &update.body {
            body.insert("body".into(), json!(b));
        }
        if update.close {
            body.insert("state".into(), json!("closed"));
        }
        self.call(
            "update pull request",
            Method::PATCH,
            &format!("/repos/{}/pulls/{number}", repo_path(repo)),
            Some(&Value::Object(body)),
        )
        .await
        .map(|_| ())
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
        let n = match target {
            CommentTarget::PullRequest(n) | CommentTarget::Issue(n) => n,
        };
        let c: Created = self
            .json(
                "comment",
                Method::POST,
                &format!("/repos/{}/issues/{n}/comments", repo_path(repo)),
                Some(&json!({ "body": body })),
            )
            .await?;
        Ok(c.id.to_string())
    }

    async fn write_ci_secrets(
        &self,
        repo: &RepoHandle,
        _environments: &[&str],
        secrets: &[CiSecret],
    ) -> Result<Vec<SecretWrite>, ApiError> {
        if secrets.is_empty() {
            return Ok(Vec::new());
        }
        // One public key per repository; each value is sealed to it (libsodium sealed
        // box), so only GitHub's Actions runtime can read it.
        let pk = self.actions_public_key(repo).await?;
        let mut out = Vec::with_capacity(secrets.len());
        for s in secrets {
            let encrypted =
                crate::crypto::seal_for_public_key(&pk.key, s.value.expose().as_bytes()).map_err(
                    |e| ApiError::Decode {
                        forge: Forge::Github,
                        operation: "secrets public key",
                        detail: e.to_string(),
                    },
                )?;
            self.put_actions_secret(repo, &s.name, &encrypted, &pk.key_id)
                .await?;
            out.push(SecretWrite {
                name: s.name.clone(),
                scope: "repository".into(),
                masked: true,
            });
        }
        Ok(out)
    }

    async fn react(
        &self,
        repo: &RepoHandle,
        _target: &CommentTarget,
        comment_id: &str,
        reaction: Reaction,
    ) -> Result<(), ApiError> {
        let content = match reaction {
            Reaction::Eyes => "eyes",
            Reaction::ThumbsUp => "+1",
            Reaction::Confused => "confused",
        };
        let body = json!({ "content": content });
        let on = |kind: &str| {
            format!(
                "/repos/{}/{kind}/comments/{}/reactions",
                repo_path(repo),
                seg(comment_id)
            )
        };
        match self
            .call("react", Method::POST, &on("issues"), Some(&body))
            .await
        {
            Ok(_) => Ok(()),
            // A pull request review comment (on a diff line) lives under `pulls`; its id
            // is not an issue comment's, so the first address answers 404.
            Err(e) if e.is_not_found() => self
                .call("react", Method::POST, &on("pulls"), Some(&body))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    async fn permission(&self, repo: &RepoHandle, user: &Actor) -> Result<Permission, ApiError> {
        #[derive(Deserialize)]
        struct Perm {
            permission: String,
            /// `permission` says only admin/write/read/none; the role tells maintainers.
            role_name: Option<String>,
        }
        let url = format!(
            "/repos/{}/collaborators/{}/permission",
            repo_path(repo),
            seg(&user.login)
        );
        match self
            .json::<Perm>("get permission", Method::GET, &url, None)
            .await
        {
            Ok(p) => Ok(match (p.role_name.as_deref(), p.permission.as_str()) {
                (Some("maintain"), _) | (_, "admin") => Permission::Admin,
                (_, "write") => Permission::Write,
                (_, "read" | "triage") => Permission::Read,
                _ => Permission::None,
            }),
            Err(e) if e.is_not_found() => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    async fn failed_ci_jobs(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
    ) -> Result<Vec<CiJobRef>, ApiError> {
        #[derive(Deserialize)]
        struct Job {
            id: u64,
            name: String,
            conclusion: Option<String>,
        }
        #[derive(Deserialize)]
        struct Jobs {
            jobs: Vec<Job>,
        }
        if !run.failed_jobs.is_empty() {
            return Ok(run.failed_jobs.clone());
        }
        // The jobs of the attempt the event reported (a later re-run has its own); an
        // event without an attempt number gets the latest attempt's jobs.
        let url = match run.attempt.parse::<u64>() {
            Ok(n) if n > 0 => format!(
                "/repos/{}/actions/runs/{}/attempts/{n}/jobs?per_page=100",
                repo_path(repo),
                seg(&run.run_id)
            ),
            _ => format!(
                "/repos/{}/actions/runs/{}/jobs?filter=latest&per_page=100",
                repo_path(repo),
                seg(&run.run_id)
            ),
        };
        let jobs: Jobs = self.json("list run jobs", Method::GET, &url, None).await?;
        Ok(jobs
            .jobs
            .into_iter()
            .filter(|j| matches!(j.conclusion.as_deref(), Some("failure" | "timed_out")))
            .map(|j| CiJobRef {
                id: j.id.to_string(),
                name: j.name,
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
        // Answers with a redirect to the log file, which the transport follows.
        let url = format!(
            "/repos/{}/actions/jobs/{}/logs",
            repo_path(repo),
            seg(&job.id)
        );
        let op = "read job log";
        let (status, headers, bytes) = self
            .send_bounded(op, Method::GET, &url, None, Some(max_bytes))
            .await?;
        if !(200..300).contains(&status) {
            return Err(classify(
                Forge::Github,
                op,
                status,
                &headers,
                &String::from_utf8_lossy(&bytes),
                self.api.clock.now(),
            ));
        }
        Ok(bytes.to_vec())
    }

    async fn rerun_ci(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
        _jobs: &[CiJobRef],
    ) -> Result<(), ApiError> {
        let url = format!(
            "/repos/{}/actions/runs/{}/rerun-failed-jobs",
            repo_path(repo),
            seg(&run.run_id)
        );
        self.call("rerun failed jobs", Method::POST, &url, Some(&json!({})))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_endpoint_for_dotcom_and_enterprise() {
        assert_eq!(
            graphql_url("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
    }

    #[test]
    fn url_segments_are_encoded() {
        assert_eq!(seg("pipewright/ci"), "pipewright%2Fci");
        assert_eq!(seg("a b?c#d"), "a%20b%3Fc%23d");
    }
}
