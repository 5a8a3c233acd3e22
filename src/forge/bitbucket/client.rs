//! The Bitbucket Cloud client, over its REST API 2.0 with reqwest, authenticated by a
//! workspace access token (Bearer). Bitbucket has no reactions and no batch reads, so a
//! manifest costs one call each; a commit of N files is one multipart `POST /src`.
//!
//! Costs, per repository: repository 1, head 1 (0 when the push named it), tree 1 per
//! 100 entries, 1 per manifest, PR lookup 1; opening a PR adds the commit and the PR.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::github::auth::parse_utc;
use crate::clock::Clock;
use crate::config::Secret;
use crate::forge::client::{
    classify, outcome_label, truncate_body, ApiError, BranchWrite, CallCounter, ForgeClient,
    NewPullRequest, Parent, Permission, PrState, PullRequest, PullRequestUpdate, Reaction,
    RemoteRepo, RemoteTree, RepoHandle, TreeFile,
};
use crate::forge::event::CommentTarget;
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
    clock: Clock,
}

impl BitbucketApi {
    /// `base` is the API root (`https://api.bitbucket.org/2.0`).
    pub fn new(base: &str, token: Secret, clock: Clock) -> anyhow::Result<BitbucketApi> {
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
        let resp = match req.bearer_auth(self.api.token.expose()).send().await {
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
        let body = resp.bytes().await.map_err(|e| ApiError::Transient {
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

    /// Registers a workspace webhook for pipewright unless one with `url` exists.
    pub async fn ensure_workspace_hook(
        &self,
        url: &str,
        secret: &Secret,
    ) -> Result<bool, ApiError> {
        #[derive(Deserialize)]
        struct Hook {
            url: String,
        }
        let ws = seg(&self.workspace);
        let hooks: Vec<Hook> = self
            .pages(
                "list hooks",
                &format!("/workspaces/{ws}/hooks?pagelen={PAGELEN}"),
            )
            .await?;
        if hooks.iter().any(|h| h.url == url) {
            return Ok(false);
        }
        let body = json!({
            "description": "pipewright",
            "url": url,
            "active": true,
            "secret": secret.expose(),
            "events": [
                "repo:push",
                "pullrequest:fulfilled",
                "pullrequest:rejected",
                "pullrequest:comment_created",
                "issue:comment_created"
            ]
        });
        let _: Value = self
            .json(
                "create hook",
                Method::POST,
                &format!("/workspaces/{ws}/hooks"),
                Some(&body),
            )
            .await?;
        Ok(true)
    }
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
            let mut f = reqwest::multipart::Form::new()
                .percent_encode_noop()
                .text("message", write.message.clone())
                .text("branch", write.branch.clone())
                .text("parents", parent.clone());
            for file in &write.files {
                f = match &file.content {
                    Some(c) => f.text(file.path.clone(), c.clone()),
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

    async fn permission(&self, repo: &RepoHandle, user: &str) -> Result<Permission, ApiError> {
        #[derive(Deserialize)]
        struct Page {
            values: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            permission: String,
        }
        self.check_scope(&repo.full_name)?;
        let slug = repo.full_name.split('/').nth(1).unwrap_or_default();
        let field = if user.starts_with('{') {
            "user.uuid"
        } else {
            "user.nickname"
        };
        let q = format!("{field} = {}", bbql_string(user));
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
            .map(|e| match e.permission.as_str() {
                "admin" => Permission::Admin,
                "write" => Permission::Write,
                "read" => Permission::Read,
                _ => Permission::None,
            })
            .max()
            .unwrap_or(Permission::None))
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
