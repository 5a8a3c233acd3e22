//! The GitLab client: the `gitlab` crate's typed endpoints (paths, parameters, pagination)
//! over our own transport (reqwest + rustls), which adds the token, counts calls and
//! turns `RateLimit-*` / 429 / 5xx answers into [`ApiError`]s before the crate sees them.
//! Works with gitlab.com and self-managed instances (`PIPEWRIGHT_GITLAB_URL`).
//!
//! Costs, per repository: project 1, head 1 (0 when the push named it), tree 1 per 100
//! entries, 1 per manifest, MR lookup 1; opening an MR adds one commit (all files, branch
//! created by the same call) and the MR.

use std::borrow::Cow;

use async_trait::async_trait;
use bytes::Bytes;
use gitlab::api::common::SortOrder;
use gitlab::api::projects::merge_requests::{
    CreateMergeRequest, EditMergeRequest, MergeRequestOrderBy, MergeRequestStateEvent,
    MergeRequests,
};
use gitlab::api::projects::repository::commits::{CommitAction, CommitActionType, CreateCommit};
use gitlab::api::{self as gl, AsyncQuery as _};
use serde::Deserialize;

use super::super::github::auth::parse_utc;
use crate::clock::Clock;
use crate::config::Secret;
use crate::forge::client::{
    classify, outcome_label, ApiError, BranchWrite, CallCounter, ForgeClient, NewPullRequest,
    Parent, Permission, PrState, PullRequest, PullRequestUpdate, Reaction, RemoteRepo, RemoteTree,
    RepoHandle, TreeFile,
};
use crate::forge::client::{CiSecret, SecretWrite};
use crate::forge::event::{Actor, CiJobRef, CiRun, CommentTarget};
use crate::forge::Forge;

/// Our error, carried through the crate's `ApiError::Client`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(ApiError);

/// What every GitLab client of the process shares.
#[derive(Debug, Clone)]
pub struct GitlabApi {
    base: url::Url,
    http: reqwest::Client,
    token: Secret,
    clock: Clock,
}

impl GitlabApi {
    /// `instance` is the GitLab root (`https://gitlab.com`); requests go to `/api/v4/`.
    pub fn new(instance: &str, token: Secret, clock: Clock) -> anyhow::Result<GitlabApi> {
        let base = url::Url::parse(&format!("{}/api/v4/", instance.trim_end_matches('/')))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("pipewright/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(GitlabApi {
            base,
            http,
            token,
            clock,
        })
    }
}

/// One operation's view of the transport (the label names the call in metrics).
struct Op<'a> {
    api: &'a GitlabApi,
    counter: &'a CallCounter,
    name: &'static str,
    /// Keep only the last this many bytes of a successful answer (job traces).
    tail: Option<usize>,
}

impl gl::RestClient for Op<'_> {
    type Error = TransportError;

    fn rest_endpoint(&self, endpoint: &str) -> Result<url::Url, gl::ApiError<Self::Error>> {
        Ok(self.api.base.join(endpoint)?)
    }
}

#[async_trait]
impl gl::AsyncClient for Op<'_> {
    async fn rest_async(
        &self,
        request: http::request::Builder,
        body: Vec<u8>,
    ) -> Result<http::Response<Bytes>, gl::ApiError<Self::Error>> {
        let fail = |e: ApiError| gl::ApiError::client(TransportError(e));
        let req = request
            .header("PRIVATE-TOKEN", self.api.token.expose())
            .body(body)
            .map_err(|e| fail(ApiError::Config(e.to_string())))?;
        let req =
            reqwest::Request::try_from(req).map_err(|e| fail(ApiError::Config(e.to_string())))?;
        let resp = match self.api.http.execute(req).await {
            Ok(r) => r,
            Err(e) => {
                self.counter
                    .record(Forge::Gitlab, self.name, "transport_error");
                return Err(fail(ApiError::Transient {
                    forge: Forge::Gitlab,
                    operation: self.name,
                    detail: e.to_string(),
                }));
            }
        };
        let status = resp.status();
        self.counter
            .record(Forge::Gitlab, self.name, outcome_label(status.as_u16()));
        let headers = resp.headers().clone();
        self.counter.observe_headers(&headers);
        let read = match self.tail {
            Some(max) if status.is_success() => crate::forge::client::read_tail(resp, max)
                .await
                .map(Bytes::from),
            _ => resp.bytes().await,
        };
        let bytes = read.map_err(|e| {
            fail(ApiError::Transient {
                forge: Forge::Gitlab,
                operation: self.name,
                detail: format!("reading the response: {e}"),
            })
        })?;
        if !status.is_success() {
            return Err(fail(classify(
                Forge::Gitlab,
                self.name,
                status.as_u16(),
                &headers,
                &String::from_utf8_lossy(&bytes),
                self.api.clock.now(),
            )));
        }
        let mut out = http::Response::builder().status(status);
        for (k, v) in &headers {
            out = out.header(k, v);
        }
        out.body(bytes)
            .map_err(|e| fail(ApiError::Config(e.to_string())))
    }
}

fn unwrap_err(op: &'static str, e: gl::ApiError<TransportError>) -> ApiError {
    match e {
        gl::ApiError::Client { source } => source.0,
        other => ApiError::Decode {
            forge: Forge::Gitlab,
            operation: op,
            detail: other.to_string(),
        },
    }
}

/// A client for one top-level group, made per job.
pub struct GitlabClient {
    api: GitlabApi,
    group: String,
    counter: CallCounter,
}

impl GitlabClient {
    /// A client acting inside `group` (a top-level group path).
    pub fn new(api: GitlabApi, group: String, counter: CallCounter) -> Self {
        GitlabClient {
            api,
            group,
            counter,
        }
    }

    fn op(&self, name: &'static str) -> Op<'_> {
        Op {
            api: &self.api,
            counter: &self.counter,
            name,
            tail: None,
        }
    }

    async fn query<'s, T, Q>(&'s self, name: &'static str, endpoint: Q) -> Result<T, ApiError>
    where
        T: Send + 's,
        Q: gl::AsyncQuery<T, Op<'s>> + Sync,
    {
        endpoint
            .query_async(&self.op(name))
            .await
            .map_err(|e| unwrap_err(name, e))
    }

    /// The project is inside the allowlisted group: a token that sees more must not act there.
    fn check_scope(&self, path: &str) -> Result<(), ApiError> {
        let top = path.split('/').next().unwrap_or_default();
        if top.eq_ignore_ascii_case(&self.group) {
            Ok(())
        } else {
            Err(ApiError::Config(format!(
                "project `{path}` is outside the group `{}` pipewright serves",
                self.group
            )))
        }
    }

    /// Registers pipewright's webhook on a project unless one with `url` exists; a hook
    /// of an earlier version that lacks one of its events (pipeline events came with
    /// first-run healing) is brought up to date. Returns whether a hook was created or
    /// changed. Keep the events in sync with `payload.rs` `EVENTS` and
    /// `app-manifests/README.md`.
    pub async fn ensure_hook(
        &self,
        project: u64,
        url: &str,
        secret: &Secret,
    ) -> Result<bool, ApiError> {
        #[derive(Deserialize)]
        struct Hook {
            id: u64,
            url: String,
            #[serde(default)]
            push_events: bool,
            #[serde(default)]
            merge_requests_events: bool,
            #[serde(default)]
            note_events: bool,
            #[serde(default)]
            pipeline_events: bool,
        }
        let hooks: Vec<Hook> = self
            .query(
                "list hooks",
                gl::paged(
                    gl::projects::hooks::Hooks::builder()
                        .project(project)
                        .build()
                        .map_err(|e| ApiError::Config(e.to_string()))?,
                    gl::Pagination::All,
                ),
            )
            .await?;
        if let Some(h) = hooks.iter().find(|h| h.url == url) {
            if h.push_events && h.merge_requests_events && h.note_events && h.pipeline_events {
                return Ok(false);
            }
            let edit = gl::projects::hooks::EditHook::builder()
                .project(project)
                .hook_id(h.id)
                .url(url)
                .push_events(true)
                .merge_requests_events(true)
                .note_events(true)
                .pipeline_events(true)
                .enable_ssl_verification(true)
                .token(secret.expose())
                .build()
                .map_err(|e| ApiError::Config(e.to_string()))?;
            gl::ignore(edit)
                .query_async(&self.op("update hook"))
                .await
                .map_err(|e| unwrap_err("update hook", e))?;
            return Ok(true);
        }
        let create = gl::projects::hooks::CreateHook::builder()
            .project(project)
            .url(url)
            .name("pipewright")
            .push_events(true)
            .merge_requests_events(true)
            .note_events(true)
            .pipeline_events(true)
            .enable_ssl_verification(true)
            .token(secret.expose())
            .build()
            .map_err(|e| ApiError::Config(e.to_string()))?;
        gl::ignore(create)
            .query_async(&self.op("create hook"))
            .await
            .map_err(|e| unwrap_err("create hook", e))?;
        Ok(true)
    }
}

/// `GET /projects/:id/repository/tree?ref=…&recursive=true`. The `gitlab` crate's `Tree`
/// endpoint sends `ref` and `recursive` as a form body on a GET; GitLab reads it, but a
/// proxy that drops GET bodies would silently turn the listing into the top level of the
/// default branch. GitLab documents both as query parameters, so they go there.
struct RepositoryTree<'a> {
    project: u64,
    commit: &'a str,
}

impl gl::Endpoint for RepositoryTree<'_> {
    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/repository/tree", self.project).into()
    }

    fn parameters(&self) -> gl::QueryParams<'_> {
        let mut p = gl::QueryParams::default();
        p.push("ref", self.commit).push("recursive", true);
        p
    }
}

impl gl::Pageable for RepositoryTree<'_> {
    fn use_keyset_pagination(&self) -> bool {
        true
    }
}

fn project_id(repo: &RepoHandle) -> Result<u64, ApiError> {
    repo.id
        .parse()
        .map_err(|_| ApiError::Config(format!("GitLab project id `{}` is not a number", repo.id)))
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::Config(format!("cannot build the request: {e}")))
}

#[derive(Deserialize)]
struct GlProject {
    id: u64,
    path_with_namespace: String,
    default_branch: Option<String>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    empty_repo: bool,
    forked_from_project: Option<serde_json::Value>,
    visibility: Option<String>,
    repository_access_level: Option<String>,
    last_activity_at: Option<String>,
}

impl GlProject {
    fn into_remote(self) -> RemoteRepo {
        RemoteRepo {
            handle: RepoHandle {
                id: self.id.to_string(),
                full_name: self.path_with_namespace,
            },
            default_branch: self.default_branch,
            archived: self.archived,
            fork: self.forked_from_project.is_some_and(|v| !v.is_null()),
            disabled: self.repository_access_level.as_deref() == Some("disabled"),
            private: self.visibility.as_deref() != Some("public"),
            empty: self.empty_repo,
            pushed_at: self.last_activity_at.as_deref().and_then(parse_utc),
        }
    }
}

#[derive(Deserialize)]
struct GlMr {
    iid: u64,
    state: String,
    description: Option<String>,
    web_url: String,
    source_branch: String,
    sha: Option<String>,
}

impl GlMr {
    fn into_pr(self) -> PullRequest {
        PullRequest {
            number: self.iid,
            state: match self.state.as_str() {
                "opened" | "locked" => PrState::Open,
                "merged" => PrState::Merged,
                _ => PrState::Closed,
            },
            head_branch: self.source_branch,
            head_sha: self.sha,
            body: self.description.unwrap_or_default(),
            url: self.web_url,
        }
    }
}

#[async_trait]
impl ForgeClient for GitlabClient {
    fn forge(&self) -> Forge {
        Forge::Gitlab
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }

    fn rate_reading(&self) -> Option<crate::forge::client::RateReading> {
        self.counter.rate()
    }

    async fn list_repositories(&self) -> Result<Vec<RemoteRepo>, ApiError> {
        let ep = build(
            gl::groups::projects::GroupProjects::builder()
                .group(self.group.as_str())
                .include_subgroups(true)
                .with_shared(false)
                .build(),
        )?;
        let projects: Vec<GlProject> = self
            .query("list group projects", gl::paged(ep, gl::Pagination::All))
            .await?;
        Ok(projects
            .into_iter()
            .map(GlProject::into_remote)
            .filter(|r| self.check_scope(&r.handle.full_name).is_ok())
            .collect())
    }

    async fn repository(&self, repo: &RepoHandle) -> Result<RemoteRepo, ApiError> {
        let ep = build(
            gl::projects::Project::builder()
                .project(project_id(repo)?)
                .build(),
        )?;
        let p: GlProject = self.query("get project", ep).await?;
        self.check_scope(&p.path_with_namespace)?;
        Ok(p.into_remote())
    }

    async fn branch_head(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<String>, ApiError> {
        #[derive(Deserialize)]
        struct Branch {
            commit: Commit,
        }
        #[derive(Deserialize)]
        struct Commit {
            id: String,
        }
        let ep = build(
            gl::projects::repository::branches::Branch::builder()
                .project(project_id(repo)?)
                .branch(branch)
                .build(),
        )?;
        match self.query::<Branch, _>("get branch", ep).await {
            Ok(b) => Ok(Some(b.commit.id)),
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
        }
        let ep = RepositoryTree {
            project: project_id(repo)?,
            commit,
        };
        let entries: Vec<Entry> = match self
            .query("get tree", gl::paged(ep, gl::Pagination::All))
            .await
        {
            Ok(e) => e,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(RemoteTree {
            files: entries
                .into_iter()
                .filter(|e| e.kind == "blob")
                .map(|e| TreeFile {
                    path: e.path,
                    size: None,
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
        let id = project_id(repo)?;
        let mut out = Vec::new();
        for p in paths {
            let ep = build(
                gl::projects::repository::files::FileRaw::builder()
                    .project(id)
                    .file_path(p.as_str())
                    .ref_(commit)
                    .build(),
            )?;
            match gl::raw(ep).query_async(&self.op("read file")).await {
                Ok(bytes) => out.push((p.clone(), bytes)),
                Err(e) => match unwrap_err("read file", e) {
                    e if e.is_not_found() => {}
                    e => return Err(e),
                },
            }
        }
        Ok(out)
    }

    async fn find_pull_request(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<PullRequest>, ApiError> {
        let ep = build(
            MergeRequests::builder()
                .project(project_id(repo)?)
                .source_branch(branch)
                .order_by(MergeRequestOrderBy::CreatedAt)
                .sort(SortOrder::Descending)
                .build(),
        )?;
        let mrs: Vec<GlMr> = self
            .query(
                "find merge request",
                gl::paged(ep, gl::Pagination::Limit(20)),
            )
            .await?;
        Ok(mrs
            .into_iter()
            .find(|m| m.source_branch == branch)
            .map(GlMr::into_pr))
    }

    async fn write_branch(
        &self,
        repo: &RepoHandle,
        write: &BranchWrite,
    ) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let mut actions = Vec::new();
        for f in &write.files {
            let kind = match (&f.content, f.exists) {
                (None, _) => CommitActionType::Delete,
                (Some(_), true) => CommitActionType::Update,
                (Some(_), false) => CommitActionType::Create,
            };
            let mut a = CommitAction::builder();
            a.action(kind).file_path(f.path.as_str());
            if let Some(c) = &f.content {
                a.content(Cow::Borrowed(c.as_bytes()));
            }
            actions.push(build(a.build())?);
        }
        let mut ep = CreateCommit::builder();
        ep.project(project_id(repo)?)
            .branch(write.branch.as_str())
            .commit_message(write.message.as_str())
            .actions(actions);
        if let Parent::Fresh { base } = &write.parent {
            // Creates the branch at `base`, or resets a stale one of ours.
            ep.start_sha(base.as_str()).force(true);
        }
        let c: Created = self.query("create commit", build(ep.build())?).await?;
        Ok(c.id)
    }

    async fn open_pull_request(
        &self,
        repo: &RepoHandle,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, ApiError> {
        let ep = build(
            CreateMergeRequest::builder()
                .project(project_id(repo)?)
                .source_branch(pr.head.as_str())
                .target_branch(pr.base.as_str())
                .title(pr.title.as_str())
                .description(pr.body.as_str())
                .remove_source_branch(true)
                .build(),
        )?;
        match self.query::<GlMr, _>("open merge request", ep).await {
            Ok(m) => Ok(m.into_pr()),
            // "Another open merge request already exists for this source branch".
            Err(ApiError::Rejected {
                status: 409, body, ..
            }) => match self.find_pull_request(repo, &pr.head).await? {
                Some(p) if p.state == PrState::Open => Ok(p),
                _ => Err(ApiError::Rejected {
                    forge: Forge::Gitlab,
                    operation: "open merge request",
                    status: 409,
                    body,
                }),
            },
            Err(e) => Err(e),
        }
    }

    async fn update_pull_request(
        &self,
        repo: &RepoHandle,
        number: u64,
        update: &PullRequestUpdate,
    ) -> Result<(), ApiError> {
        let mut ep = EditMergeRequest::builder();
        ep.project(project_id(repo)?).merge_request(number);
        if let Some(t) = &update.title {
            ep.title(t.as_str());
        }
        if let Some(b) = &update.body {
            ep.description(b.as_str());
        }
        if update.close {
            ep.state_event(MergeRequestStateEvent::Close);
        }
        gl::ignore(build(ep.build())?)
            .query_async(&self.op("update merge request"))
            .await
            .map_err(|e| unwrap_err("update merge request", e))
    }

    async fn comment(
        &self,
        repo: &RepoHandle,
        target: &CommentTarget,
        body: &str,
    ) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Note {
            id: u64,
        }
        let id = project_id(repo)?;
        let note: Note = match target {
            CommentTarget::PullRequest(n) => {
                let ep = build(
                    gl::projects::merge_requests::notes::CreateMergeRequestNote::builder()
                        .project(id)
                        .merge_request(*n)
                        .body(body)
                        .build(),
                )?;
                self.query("comment", ep).await?
            }
            CommentTarget::Issue(n) => {
                let ep = build(
                    gl::projects::issues::notes::CreateIssueNote::builder()
                        .project(id)
                        .issue(*n)
                        .body(body)
                        .build(),
                )?;
                self.query("comment", ep).await?
            }
        };
        Ok(note.id.to_string())
    }

    async fn react(
        &self,
        repo: &RepoHandle,
        target: &CommentTarget,
        comment_id: &str,
        reaction: Reaction,
    ) -> Result<(), ApiError> {
        let name = match reaction {
            Reaction::Eyes => "eyes",
            Reaction::ThumbsUp => "thumbsup",
            Reaction::Confused => "confused",
        };
        let id = project_id(repo)?;
        let note: u64 = comment_id
            .parse()
            .map_err(|_| ApiError::Config(format!("note id `{comment_id}` is not a number")))?;
        let result = match target {
            CommentTarget::PullRequest(n) => {
                let ep = build(
                    gl::projects::merge_requests::notes::awards::CreateMergeRequestNoteAward::builder()
                        .project(id)
                        .merge_request(*n)
                        .note(note)
                        .name(name)
                        .build(),
                )?;
                gl::ignore(ep).query_async(&self.op("react")).await
            }
            CommentTarget::Issue(n) => {
                let ep = build(
                    gl::projects::issues::notes::awards::CreateIssueNoteAward::builder()
                        .project(id)
                        .issue(*n)
                        .note(note)
                        .name(name)
                        .build(),
                )?;
                gl::ignore(ep).query_async(&self.op("react")).await
            }
        };
        result.map_err(|e| unwrap_err("react", e))
    }

    async fn write_ci_secrets(
        &self,
        repo: &RepoHandle,
        _environments: &[&str],
        secrets: &[CiSecret],
    ) -> Result<Vec<SecretWrite>, ApiError> {
        use gl::projects::variables::{
            CreateProjectVariable, ProjectVariableFilter, UpdateProjectVariable,
        };
        self.check_scope(&repo.full_name)?;
        let id = project_id(repo)?;
        let mut out = Vec::with_capacity(secrets.len());
        for s in secrets {
            // Protected: only pipelines of protected branches and tags (the default
            // branch, release tags) see it. Masked when GitLab can mask the value.
            let masked = s.secret && crate::forge::client::gitlab_maskable(s.value.expose());
            // Replace the variable of scope `*` if it exists, else create it.
            let update = build(
                UpdateProjectVariable::builder()
                    .project(id)
                    .key(s.name.as_str())
                    .value(s.value.expose())
                    .protected(true)
                    .masked(masked)
                    .raw(true)
                    .filter(
                        ProjectVariableFilter::builder()
                            .environment_scope("*")
                            .build()
                            .map_err(|e| ApiError::Config(e.to_string()))?,
                    )
                    .build(),
            )?;
            match gl::ignore(update)
                .query_async(&self.op("update variable"))
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    let e = unwrap_err("update variable", e);
                    if !e.is_not_found() {
                        return Err(e);
                    }
                    let create = build(
                        CreateProjectVariable::builder()
                            .project(id)
                            .key(s.name.as_str())
                            .value(s.value.expose())
                            .protected(true)
                            .masked(masked)
                            .raw(true)
                            .environment_scope("*")
                            .build(),
                    )?;
                    gl::ignore(create)
                        .query_async(&self.op("create variable"))
                        .await
                        .map_err(|e| unwrap_err("create variable", e))?;
                }
            }
            out.push(SecretWrite {
                name: s.name.clone(),
                scope: "project".into(),
                masked,
            });
        }
        Ok(out)
    }

    async fn permission(&self, repo: &RepoHandle, user: &Actor) -> Result<Permission, ApiError> {
        let user = user.login.as_str();
        #[derive(Deserialize)]
        struct Member {
            username: String,
            access_level: u64,
        }
        let ep = build(
            gl::projects::members::AllProjectMembers::builder()
                .project(project_id(repo)?)
                .query(user)
                .build(),
        )?;
        let members: Vec<Member> = self
            .query("get permission", gl::paged(ep, gl::Pagination::Limit(100)))
            .await?;
        let level = members
            .iter()
            .filter(|m| m.username.eq_ignore_ascii_case(user))
            .map(|m| m.access_level)
            .max()
            .unwrap_or(0);
        Ok(match level {
            40.. => Permission::Admin,
            30..=39 => Permission::Write,
            10..=29 => Permission::Read,
            _ => Permission::None,
        })
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
            #[serde(default)]
            allow_failure: bool,
        }
        if !run.failed_jobs.is_empty() {
            return Ok(run.failed_jobs.clone());
        }
        let pipeline: u64 = run.run_id.parse().map_err(|_| {
            ApiError::Config(format!(
                "GitLab pipeline id `{}` is not a number",
                run.run_id
            ))
        })?;
        let ep = build(
            gl::projects::pipelines::PipelineJobs::builder()
                .project(project_id(repo)?)
                .pipeline(pipeline)
                .scope(gl::projects::jobs::JobScope::Failed)
                .build(),
        )?;
        let jobs: Vec<Job> = self
            .query(
                "list pipeline jobs",
                gl::paged(ep, gl::Pagination::Limit(100)),
            )
            .await?;
        Ok(jobs
            .into_iter()
            .filter(|j| !j.allow_failure)
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
        let id: u64 = job
            .id
            .parse()
            .map_err(|_| ApiError::Config(format!("GitLab job id `{}` is not a number", job.id)))?;
        let ep = build(
            gl::projects::jobs::JobTrace::builder()
                .project(project_id(repo)?)
                .job(id)
                .build(),
        )?;
        // Traces can be far larger than what is read of them: only the tail is kept
        // while the answer streams in.
        let op = Op {
            tail: Some(max_bytes),
            ..self.op("read job trace")
        };
        let bytes: Vec<u8> = gl::raw(ep)
            .query_async(&op)
            .await
            .map_err(|e| unwrap_err("read job trace", e))?;
        Ok(crate::forge::client::log_tail(&bytes, max_bytes))
    }

    async fn rerun_ci(
        &self,
        repo: &RepoHandle,
        _run: &CiRun,
        jobs: &[CiJobRef],
    ) -> Result<(), ApiError> {
        for j in jobs {
            let id: u64 = j.id.parse().map_err(|_| {
                ApiError::Config(format!("GitLab job id `{}` is not a number", j.id))
            })?;
            let ep = build(
                gl::projects::jobs::RetryJob::builder()
                    .project(project_id(repo)?)
                    .job(id)
                    .build(),
            )?;
            gl::ignore(ep)
                .query_async(&self.op("retry job"))
                .await
                .map_err(|e| unwrap_err("retry job", e))?;
        }
        Ok(())
    }
}
