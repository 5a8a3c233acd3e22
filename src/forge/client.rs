//! One trait over the three forges' REST APIs: exactly the operations the bot needs, in
//! our words. Each implementation (`github/client.rs`, `gitlab/client.rs`,
//! `bitbucket/client.rs`) maps them to the fewest calls its API allows, counts every
//! call, and turns rate limits and faults into [`ApiError`]s the queue understands
//! (defer, retry or fail fast). A client value is made per job, so its call count is the
//! job's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::event::{Actor, CiJobRef, CiRun, CommentTarget};
use super::Forge;
use crate::clock::Millis;
use crate::queue::JobError;

/// A repository to act on: the forge's stable id and its current path (GitHub and
/// Bitbucket address repositories by path, GitLab by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoHandle {
    /// Stable id.
    pub id: String,
    /// `owner/name` (GitLab: full path; Bitbucket: `workspace/slug`).
    pub full_name: String,
}

/// A repository as the forge's API describes it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRepo {
    /// Stable id and path.
    pub handle: RepoHandle,
    /// Default branch; `None` for an empty repository.
    pub default_branch: Option<String>,
    /// Read-only.
    pub archived: bool,
    /// A fork of another repository.
    pub fork: bool,
    /// Disabled by the forge (GitHub), or its repository feature is off (GitLab).
    pub disabled: bool,
    /// Private or internal.
    pub private: bool,
    /// Has no commits.
    pub empty: bool,
    /// Last push, when the listing says (lets the reconcile job skip unchanged repositories).
    pub pushed_at: Option<Millis>,
}

impl RemoteRepo {
    /// Why the bot leaves this repository alone, if it does.
    pub fn skip_reason(&self) -> Option<&'static str> {
        if self.archived {
            Some("archived")
        } else if self.disabled {
            Some("disabled")
        } else if self.fork {
            Some("a fork (CI belongs upstream)")
        } else if self.empty || self.default_branch.is_none() {
            Some("empty (waiting for the first push)")
        } else {
            None
        }
    }
}

/// A file of a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Repository path, `/`-separated.
    pub path: String,
    /// Size in bytes, when the listing says.
    pub size: Option<u64>,
}

/// A recursive listing of a commit's files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteTree {
    /// Files (not directories).
    pub files: Vec<TreeFile>,
    /// The forge cut the listing short (GitHub past 100,000 entries).
    pub truncated: bool,
}

/// State of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    /// Open (GitLab: opened; Bitbucket: OPEN).
    Open,
    /// Closed without merging (Bitbucket: DECLINED).
    Closed,
    /// Merged.
    Merged,
}

impl PrState {
    /// Lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PrState::Open => "open",
            PrState::Closed => "closed",
            PrState::Merged => "merged",
        }
    }
}

/// A pull request (GitLab: merge request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Number (GitLab `iid`, Bitbucket id).
    pub number: u64,
    /// Open, closed or merged.
    pub state: PrState,
    /// Source branch.
    pub head_branch: String,
    /// Tip of the source branch as the forge last saw it.
    pub head_sha: Option<String>,
    /// Markdown body.
    pub body: String,
    /// Web address, for logs.
    pub url: String,
}

/// One file of a commit: new content, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Repository path.
    pub path: String,
    /// New content; `None` deletes the file.
    pub content: Option<String>,
    /// The file exists in the parent commit (GitLab wants create vs update).
    pub exists: bool,
}

/// Where the bot's new commit goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// A fresh branch from `base` (the default branch's head). The branch is created, or
    /// reset if a stale one of ours is left from a closed PR.
    Fresh {
        /// Commit to start from.
        base: String,
    },
    /// On top of the branch's current tip, which must still be `head` (a fast-forward,
    /// never a force-push: it fails if someone moved the branch meanwhile).
    OnTop {
        /// Expected current tip.
        head: String,
    },
}

/// A single commit of N files on the bot's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchWrite {
    /// Branch name.
    pub branch: String,
    /// Parent commit.
    pub parent: Parent,
    /// Files.
    pub files: Vec<FileWrite>,
    /// Commit message.
    pub message: String,
}

/// A new pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    /// Source branch.
    pub head: String,
    /// Target branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
}

/// Changes to a pull request; `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullRequestUpdate {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// Close it (used by `ignore`).
    pub close: bool,
}

/// A reaction to a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Seen, working on it.
    Eyes,
    /// Done.
    ThumbsUp,
    /// Refused or failed.
    Confused,
}

/// What a person may do on a repository, normalised across forges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// No access (or not a member).
    None,
    /// Read (GitLab Guest/Reporter).
    Read,
    /// Write (GitLab Developer).
    Write,
    /// Maintain / admin (GitLab Maintainer/Owner).
    Admin,
}

/// A value the repository's CI reads: a secret (encrypted or masked, never shown) or an
/// identifier. Its `Debug` never prints the value.
#[derive(Debug, Clone)]
pub struct CiSecret {
    /// Name, as the CI reads it (`FLY_API_TOKEN`).
    pub name: String,
    /// The value, as the forge must hold it.
    pub value: crate::config::Secret,
    /// A secret (mask it where the forge can) rather than an identifier.
    pub secret: bool,
}

/// What writing CI secrets did, per name, for the audit trail and the PR body (no values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretWrite {
    /// Name.
    pub name: String,
    /// Where: `repository`, or the deployment environment's name.
    pub scope: String,
    /// Masked in job logs by the forge.
    pub masked: bool,
}

/// GitLab masks a variable only when its value is one line of at least 8 characters from
/// the Base64 alphabet and `@ : . ~ - _ / = +`.
pub fn gitlab_maskable(value: &str) -> bool {
    value.len() >= 8
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=@:.~-_".contains(c))
}

/// How an API call failed, in the terms the job queue acts on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A rate limit: try again at `until` (never sleep in a worker).
    #[error("{forge} rate limit: {detail}; retry at {until}")]
    RateLimited {
        /// Forge.
        forge: Forge,
        /// When the limit resets, milliseconds since the epoch.
        until: Millis,
        /// Which limit.
        detail: String,
    },
    /// A fault worth retrying with backoff: 5xx, timeouts, connection errors.
    #[error("{forge} {operation}: {detail}")]
    Transient {
        /// Forge.
        forge: Forge,
        /// What we were doing.
        operation: &'static str,
        /// Status or transport error.
        detail: String,
    },
    /// The forge refused the request (4xx other than rate limits): fail fast, keep the body.
    #[error("{forge} {operation}: HTTP {status}: {body}")]
    Rejected {
        /// Forge.
        forge: Forge,
        /// What we were doing.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// Response body, truncated.
        body: String,
    },
    /// The GitHub App may not write workflow files (`workflows: write` not granted).
    #[error("the GitHub App lacks the `workflows: write` permission, so it cannot write .github/workflows/ files: {detail}")]
    WorkflowsPermission {
        /// What GitHub said.
        detail: String,
    },
    /// The answer did not have the documented shape.
    #[error("{forge} {operation}: unexpected response: {detail}")]
    Decode {
        /// Forge.
        forge: Forge,
        /// What we were doing.
        operation: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A configuration problem on our side (no credentials, tenant not allowlisted).
    #[error("{0}")]
    Config(String),
}

impl ApiError {
    /// HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl From<ApiError> for JobError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::RateLimited { until, .. } => JobError::Defer {
                until,
                reason: e.to_string(),
            },
            ApiError::Transient { .. } => JobError::Retry(anyhow::Error::new(e)),
            ApiError::Rejected { .. }
            | ApiError::WorkflowsPermission { .. }
            | ApiError::Decode { .. }
            | ApiError::Config(_) => JobError::Permanent(anyhow::Error::new(e)),
        }
    }
}

/// The operations pipewright performs on a forge. Implementations count every HTTP call
/// ([`ForgeClient::calls`]) and never retry or sleep themselves: the queue does that.
#[async_trait]
pub trait ForgeClient: Send + Sync {
    /// Which forge.
    fn forge(&self) -> Forge;

    /// API calls made through this client so far.
    fn calls(&self) -> u64;

    /// The lowest rate-limit headroom the forge reported to this client, if any.
    fn rate_reading(&self) -> Option<RateReading> {
        None
    }

    /// Every repository the tenant (installation, group, workspace) covers.
    async fn list_repositories(&self) -> Result<Vec<RemoteRepo>, ApiError>;

    /// One repository's current metadata.
    async fn repository(&self, repo: &RepoHandle) -> Result<RemoteRepo, ApiError>;

    /// Tip of a branch; `None` if it does not exist.
    async fn branch_head(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<String>, ApiError>;

    /// Recursive file listing of a commit.
    async fn tree(&self, repo: &RepoHandle, commit: &str) -> Result<RemoteTree, ApiError>;

    /// The commit a branch, tag or SHA of another repository the installation can read
    /// (`owner/name`) points at; `None` when it does not exist or cannot be read. Used to
    /// pin an org's reusable workflow to a commit. Forges without reusable workflows of
    /// that kind answer `None`.
    async fn resolve_commit(
        &self,
        _full_name: &str,
        _reference: &str,
    ) -> Result<Option<String>, ApiError> {
        Ok(None)
    }

    /// Contents of `paths` at `commit` (missing files are left out).
    async fn read_files(
        &self,
        repo: &RepoHandle,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ApiError>;

    /// The newest pull request (any state) whose source branch is `branch`.
    async fn find_pull_request(
        &self,
        repo: &RepoHandle,
        branch: &str,
    ) -> Result<Option<PullRequest>, ApiError>;

    /// Writes one commit with every file to the branch; returns the new tip.
    async fn write_branch(
        &self,
        repo: &RepoHandle,
        write: &BranchWrite,
    ) -> Result<String, ApiError>;

    /// Opens a pull request.
    async fn open_pull_request(
        &self,
        repo: &RepoHandle,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, ApiError>;

    /// Edits (or closes) a pull request.
    async fn update_pull_request(
        &self,
        repo: &RepoHandle,
        number: u64,
        update: &PullRequestUpdate,
    ) -> Result<(), ApiError>;

    /// Comments on a pull request or issue; returns the comment's id.
    async fn comment(
        &self,
        repo: &RepoHandle,
        target: &CommentTarget,
        body: &str,
    ) -> Result<String, ApiError>;

    /// Reacts to a comment (forges without reactions do nothing).
    async fn react(
        &self,
        repo: &RepoHandle,
        target: &CommentTarget,
        comment_id: &str,
        reaction: Reaction,
    ) -> Result<(), ApiError>;

    /// What `user` may do on the repository. Each forge keys the lookup on what
    /// identifies an account there: GitHub and GitLab the login (unique on the
    /// instance), Bitbucket the account's `uuid` or `account_id` (its nickname is not
    /// unique, so it never grants anything).
    async fn permission(&self, repo: &RepoHandle, user: &Actor) -> Result<Permission, ApiError>;

    /// The failed jobs of a finished CI run (the run's own list when the payload had
    /// one). GitHub: the run's jobs; GitLab: the pipeline's failed jobs; Bitbucket: the
    /// pipeline's failed steps.
    async fn failed_ci_jobs(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
    ) -> Result<Vec<CiJobRef>, ApiError>;

    /// The end of a CI job's log: at most `max_bytes`, the tail when it is longer.
    async fn ci_job_log(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
        job: &CiJobRef,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ApiError>;

    /// Runs the failed jobs of a run again (a transient failure).
    async fn rerun_ci(
        &self,
        repo: &RepoHandle,
        run: &CiRun,
        jobs: &[CiJobRef],
    ) -> Result<(), ApiError>;

    /// Creates or replaces values the repository's CI reads, as the forge keeps secrets:
    /// GitHub Actions secrets (sealed to the repository's public key), GitLab CI/CD
    /// variables (protected; masked when the value allows), Bitbucket secured variables
    /// of each deployment environment in `environments`. Never logs a value.
    async fn write_ci_secrets(
        &self,
        repo: &RepoHandle,
        environments: &[&str],
        secrets: &[CiSecret],
    ) -> Result<Vec<SecretWrite>, ApiError>;
}

/// The last `max` bytes of a log (cut at a line start when one is near).
pub fn log_tail(bytes: &[u8], max: usize) -> Vec<u8> {
    if bytes.len() <= max {
        return bytes.to_vec();
    }
    cut_at_line(&bytes[bytes.len() - max..])
}

/// A tail that starts mid-line without its first, partial line (when a line start is
/// within the first 4 KiB).
fn cut_at_line(tail: &[u8]) -> Vec<u8> {
    let start = tail
        .iter()
        .take(4096)
        .position(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    tail[start..].to_vec()
}

/// The end of a body that streams in, in bounded memory: at most twice `max` bytes are
/// held at any time, and [`TailBuffer::finish`] gives what [`log_tail`] would give for
/// the whole body.
#[derive(Debug)]
pub struct TailBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes seen in all: whether the body was longer than `max` decides the cut.
    total: usize,
}

impl TailBuffer {
    /// Keeps the last `max` bytes.
    pub fn new(max: usize) -> TailBuffer {
        TailBuffer {
            buf: Vec::new(),
            max,
            total: 0,
        }
    }

    /// Adds a chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len());
        if chunk.len() >= self.max {
            self.buf.clear();
            self.buf.extend_from_slice(&chunk[chunk.len() - self.max..]);
            return;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > 2 * self.max {
            let cut = self.buf.len() - self.max;
            self.buf.drain(..cut);
        }
    }

    /// The tail, cut at a line start as [`log_tail`] does.
    pub fn finish(self) -> Vec<u8> {
        if self.total <= self.max {
            return self.buf;
        }
        // The buffer holds at least the last `max` bytes of the body.
        cut_at_line(&self.buf[self.buf.len() - self.max..])
    }
}

/// The last `max` bytes of a response body (cut at a line start), read chunk by chunk
/// in bounded memory.
pub async fn read_tail(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut kept = TailBuffer::new(max);
    while let Some(chunk) = resp.chunk().await? {
        kept.push(&chunk);
    }
    Ok(kept.finish())
}

/// Counts a client's calls, and feeds the process-wide per-operation counters.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    job: Arc<AtomicU64>,
    totals: Option<Arc<ApiCallTotals>>,
    rate: Arc<std::sync::Mutex<Option<RateReading>>>,
}

/// The rate-limit headroom a forge reported (`x-ratelimit-*` on GitHub, `RateLimit-*` on
/// GitLab; Bitbucket sends none on most answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateReading {
    /// Requests left in the window.
    pub remaining: i64,
    /// Window size, if the forge says.
    pub limit: Option<i64>,
    /// When the window resets (ms since epoch), if the forge says.
    pub reset_at: Option<Millis>,
}

impl RateReading {
    /// The reading in a response's headers, if it carries one.
    pub fn from_headers(headers: &HeaderMap) -> Option<RateReading> {
        let remaining = header_i64(headers, "x-ratelimit-remaining")
            .or_else(|| header_i64(headers, "ratelimit-remaining"))?;
        Some(RateReading {
            remaining,
            limit: header_i64(headers, "x-ratelimit-limit")
                .or_else(|| header_i64(headers, "ratelimit-limit")),
            reset_at: header_i64(headers, "x-ratelimit-reset")
                .or_else(|| header_i64(headers, "ratelimit-reset"))
                .map(|s| s.saturating_mul(1000)),
        })
    }
}

/// Process-wide API call counts by (forge, operation, outcome), and calls per job by
/// (forge, job kind), exported as metrics.
#[derive(Debug, Default)]
pub struct ApiCallTotals {
    counts: std::sync::Mutex<HashMap<(Forge, &'static str, &'static str), u64>>,
    per_job: std::sync::Mutex<HashMap<JobKey, JobCalls>>,
}

/// (forge, job kind).
pub type JobKey = (Forge, &'static str);
/// (jobs, API calls).
pub type JobCalls = (u64, u64);

impl ApiCallTotals {
    /// Records that one job of `kind` made `calls` API calls.
    pub fn observe_job(&self, forge: Forge, kind: &'static str, calls: u64) {
        let mut m = self.per_job.lock().expect("counter lock is never poisoned");
        let e = m.entry((forge, kind)).or_default();
        e.0 += 1;
        e.1 += calls;
    }

    /// (jobs, calls) by (forge, kind).
    pub fn per_job(&self) -> Vec<(JobKey, JobCalls)> {
        let mut v: Vec<_> = self
            .per_job
            .lock()
            .expect("counter lock is never poisoned")
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort();
        v
    }

    /// Snapshot of every counter.
    pub fn snapshot(&self) -> Vec<((Forge, &'static str, &'static str), u64)> {
        let mut v: Vec<_> = self
            .counts
            .lock()
            .expect("counter lock is never poisoned")
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort();
        v
    }
}

impl CallCounter {
    /// A counter for one job, adding to `totals` too.
    pub fn new(totals: Option<Arc<ApiCallTotals>>) -> Self {
        CallCounter {
            job: Arc::new(AtomicU64::new(0)),
            totals,
            rate: Arc::default(),
        }
    }

    /// Records one call.
    pub fn record(&self, forge: Forge, operation: &'static str, outcome: &'static str) {
        self.job.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &self.totals {
            *t.counts
                .lock()
                .expect("counter lock is never poisoned")
                .entry((forge, operation, outcome))
                .or_default() += 1;
        }
    }

    /// Calls so far.
    pub fn get(&self) -> u64 {
        self.job.load(Ordering::Relaxed)
    }

    /// Notes a response's rate-limit headers, keeping the lowest headroom seen.
    pub fn observe_headers(&self, headers: &HeaderMap) {
        if let Some(r) = RateReading::from_headers(headers) {
            let mut slot = self
                .rate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.is_none_or(|old| r.remaining <= old.remaining) {
                *slot = Some(r);
            }
        }
    }

    /// The lowest rate-limit headroom seen by this client.
    pub fn rate(&self) -> Option<RateReading> {
        *self
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Outcome label of a status code, for metrics.
pub fn outcome_label(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A rate limit in a response, if it is one: GitHub's primary (`x-ratelimit-remaining: 0`
/// with `x-ratelimit-reset`) and secondary (`retry-after`, or a 403 that says so) limits,
/// GitLab's `RateLimit-Reset` / `Retry-After`, Bitbucket's 429. Returns when to retry.
pub fn rate_limit_until(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    now: Millis,
) -> Option<Millis> {
    if status != 429 && status != 403 {
        return None;
    }
    let retry_after = header_i64(headers, "retry-after").map(|s| now + s.max(1) * 1000);
    let remaining = header_i64(headers, "x-ratelimit-remaining")
        .or_else(|| header_i64(headers, "ratelimit-remaining"));
    let reset = header_i64(headers, "x-ratelimit-reset")
        .or_else(|| header_i64(headers, "ratelimit-reset"))
        .map(|s| (s * 1000).max(now + 1000));
    if let Some(at) = retry_after {
        return Some(at);
    }
    if remaining == Some(0) {
        return Some(reset.unwrap_or(now + 60_000));
    }
    let lower = body.to_ascii_lowercase();
    if status == 429
        || lower.contains("secondary rate limit")
        || lower.contains("rate limit exceeded")
    {
        // No header to go by: GitHub documents waiting at least a minute.
        return Some(reset.unwrap_or(now + 60_000));
    }
    None
}

/// Truncates a response body for error messages (whole characters, at most `max` bytes).
pub fn truncate_body(body: &str, max: usize) -> String {
    if body.len() <= max {
        return body.trim().to_owned();
    }
    let mut end = max;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", body[..end].trim())
}

/// Maps a non-success response to an [`ApiError`] (rate limit, transient or rejected).
pub fn classify(
    forge: Forge,
    operation: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    now: Millis,
) -> ApiError {
    if let Some(until) = rate_limit_until(status, headers, body, now) {
        return ApiError::RateLimited {
            forge,
            until,
            detail: format!("{operation} answered HTTP {status}"),
        };
    }
    if status >= 500 || status == 408 {
        return ApiError::Transient {
            forge,
            operation,
            detail: format!("HTTP {status}: {}", truncate_body(body, 300)),
        };
    }
    ApiError::Rejected {
        forge,
        operation,
        status,
        body: truncate_body(body, 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_tail_is_the_tail_of_the_whole() {
        let whole: Vec<u8> = (0..3000)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 37)).into_bytes())
            .collect();
        for max in [1, 10, 100, 4096, 10_000, whole.len(), whole.len() + 5] {
            for chunk in [1, 7, 64, 1000, 100_000] {
                let mut t = TailBuffer::new(max);
                for c in whole.chunks(chunk) {
                    t.push(c);
                    assert!(t.buf.len() <= 2 * max.max(1));
                }
                assert_eq!(
                    t.finish(),
                    log_tail(&whole, max),
                    "max {max}, chunk {chunk}"
                );
            }
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rate_limits_are_recognised_on_every_forge() {
        let now = 1_000_000;
        // GitHub primary.
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2000"),
        ]);
        assert_eq!(rate_limit_until(403, &h, "", now), Some(2_000_000));
        // GitHub secondary with retry-after.
        let h = headers(&[("retry-after", "30")]);
        assert_eq!(rate_limit_until(403, &h, "", now), Some(now + 30_000));
        // GitHub secondary without headers.
        assert_eq!(
            rate_limit_until(
                403,
                &HeaderMap::new(),
                "You have exceeded a secondary rate limit",
                now
            ),
            Some(now + 60_000)
        );
        // A plain 403 is not a rate limit.
        assert_eq!(
            rate_limit_until(
                403,
                &HeaderMap::new(),
                "Resource not accessible by integration",
                now
            ),
            None
        );
        // GitLab.
        let h = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "1500")]);
        assert_eq!(rate_limit_until(429, &h, "", now), Some(1_500_000));
        // Bitbucket: a bare 429.
        assert_eq!(
            rate_limit_until(429, &HeaderMap::new(), "", now),
            Some(now + 60_000)
        );
        // A reset in the past still waits a second.
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]);
        assert_eq!(rate_limit_until(403, &h, "", now), Some(now + 1000));
    }

    #[test]
    fn errors_map_to_queue_outcomes() {
        let h = HeaderMap::new();
        let e = classify(Forge::Github, "get repository", 502, &h, "bad gateway", 0);
        assert!(matches!(JobError::from(e), JobError::Retry(_)));
        let e = classify(
            Forge::Gitlab,
            "create commit",
            400,
            &h,
            "{\"message\":\"bad\"}",
            0,
        );
        let msg = e.to_string();
        assert!(msg.contains("HTTP 400") && msg.contains("bad"), "{msg}");
        assert!(matches!(JobError::from(e), JobError::Permanent(_)));
        let e = classify(Forge::Bitbucket, "list", 429, &h, "", 5);
        assert!(matches!(
            JobError::from(e),
            JobError::Defer { until: 60_005, .. }
        ));
    }

    #[test]
    fn bodies_are_truncated_on_char_boundaries() {
        let s = "é".repeat(1000);
        let t = truncate_body(&s, 11);
        assert!(t.ends_with('…') && t.len() <= 14);
    }

    #[test]
    fn skip_reasons() {
        let mut r = RemoteRepo {
            handle: RepoHandle {
                id: "1".into(),
                full_name: "a/b".into(),
            },
            default_branch: Some("main".into()),
            archived: false,
            fork: false,
            disabled: false,
            private: false,
            empty: false,
            pushed_at: None,
        };
        assert_eq!(r.skip_reason(), None);
        r.fork = true;
        assert!(r.skip_reason().unwrap().contains("fork"));
        r.archived = true;
        assert_eq!(r.skip_reason(), Some("archived"));
    }
}
