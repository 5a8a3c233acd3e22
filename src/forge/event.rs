//! `ForgeEvent`: what a webhook delivery means to pipewright, in our words. Every forge's
//! payload parser (`github/payload.rs`, `gitlab/payload.rs`, `bitbucket/payload.rs`)
//! produces these; nothing downstream sees a forge's JSON.

use serde::{Deserialize, Serialize};

use super::types::{CommitSha, Forge, InstallationId, RepoId};

/// One thing that happened on a forge that pipewright may react to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeEvent {
    /// Which forge sent it.
    pub forge: Forge,
    /// The tenant the event belongs to. GitHub: `installation.id`; GitLab: the project's
    /// top-level group; Bitbucket: the repository's workspace. `None` when the payload
    /// carries no tenant (a GitHub repository hook that is not an App delivery).
    pub installation: Option<Installation>,
    /// Who caused the event (GitHub `sender`, GitLab `user`, Bitbucket `actor`).
    pub sender: Option<Actor>,
    /// What happened.
    pub kind: EventKind,
}

/// A tenant: where pipewright is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    /// Stable id (see [`InstallationId`]).
    pub id: InstallationId,
    /// Display name of the account, group or workspace, when the payload has it.
    pub account: Option<String>,
}

/// A user or bot account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Login / username (display and permission checks).
    pub login: String,
    /// Stable id when the payload has one.
    pub id: Option<String>,
    /// True for GitHub `type: Bot` / `[bot]` logins, GitLab bot users
    /// (`project_…_bot…`, `group_…_bot…`), Bitbucket app users.
    pub is_bot: bool,
}

/// A repository as a payload describes it. Only `id` identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    /// Stable id.
    pub id: RepoId,
    /// `owner/name` (GitLab: the full path with subgroups). Display only.
    pub full_name: String,
    /// Default branch when the payload says it.
    pub default_branch: Option<String>,
    /// Private or internal.
    pub private: Option<bool>,
    /// Archived (read-only) repository.
    pub archived: Option<bool>,
    /// Fork of another repository.
    pub fork: Option<bool>,
}

/// What happened. One variant per thing pipewright reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// GitHub `installation.created` (and `new_permissions_accepted`, which re-grants).
    /// `repos` lists the repositories the payload names (GitHub lists them only for
    /// "selected repositories" installs; otherwise the reconcile job lists them).
    InstallationCreated {
        /// Repositories named in the payload.
        repos: Vec<Repo>,
    },
    /// GitHub `installation.deleted`.
    InstallationDeleted,
    /// GitHub `installation.suspend`.
    InstallationSuspended,
    /// GitHub `installation.unsuspend`.
    InstallationUnsuspended,
    /// GitHub `installation_repositories.added`.
    ReposAdded {
        /// Repositories added.
        repos: Vec<Repo>,
    },
    /// GitHub `installation_repositories.removed`.
    ReposRemoved {
        /// Repositories removed.
        repos: Vec<Repo>,
    },
    /// GitHub `repository.created`; GitLab system/group hook `project_create`.
    /// (Bitbucket has no such event: the first `repo:push` stands in for it.)
    RepoCreated {
        /// The new repository.
        repo: Repo,
    },
    /// GitHub `repository.deleted`; GitLab system hook `project_destroy`.
    RepoDeleted {
        /// The deleted repository.
        repo: Repo,
    },
    /// GitHub `push`; GitLab `Push Hook` / `Tag Push Hook` (also via system hooks);
    /// Bitbucket `repo:push` (one event per ref change).
    Push(Push),
    /// GitHub `issue_comment.created|edited`, `pull_request_review_comment.created|edited`;
    /// GitLab `Note Hook` on a merge request or issue; Bitbucket
    /// `pullrequest:comment_created|comment_updated`, `issue:comment_created`.
    Comment(Comment),
    /// GitHub `pull_request.closed`; GitLab `Merge Request Hook` with action
    /// `close` or `merge`; Bitbucket `pullrequest:fulfilled` / `pullrequest:rejected`.
    PullRequestClosed {
        /// Repository of the pull request.
        repo: Repo,
        /// PR / MR number (GitLab `iid`, Bitbucket id).
        number: u64,
        /// Merged (true) or closed without merging (false).
        merged: bool,
        /// Source branch of the pull request.
        head_branch: String,
    },
    /// A CI run finished: GitHub `workflow_run.completed`; GitLab `Pipeline Hook` with a
    /// final status; Bitbucket `repo:commit_status_updated` with a final state.
    CiRunCompleted(CiRun),
}

/// A finished CI run of one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRun {
    /// Repository of the run.
    pub repo: Repo,
    /// Branch the run was for.
    pub branch: String,
    /// The commit it ran on.
    pub sha: CommitSha,
    /// The forge's id of the run: GitHub workflow run id, GitLab pipeline id, Bitbucket
    /// pipeline build number (from the status URL) or status key.
    pub run_id: String,
    /// Which completion of that run this is, when the forge re-runs in place: GitHub's
    /// `run_attempt`; on GitLab the newest job id of the pipeline (a retried job is a new
    /// job, the pipeline keeps its id). Empty on Bitbucket, where a re-run is a new
    /// pipeline. With `run_id` it tells a redelivery (same key) from a re-run's result.
    #[serde(default)]
    pub attempt: String,
    /// Name of the workflow or status, for messages.
    pub name: String,
    /// How it ended.
    pub conclusion: CiConclusion,
    /// Where people can see it.
    pub url: Option<String>,
    /// Failed jobs the payload already names (GitLab lists its builds); empty when the
    /// forge must be asked.
    pub failed_jobs: Vec<CiJobRef>,
}

impl CiRun {
    /// The run and its attempt (`1234`, `1234#2`): one completion of one run. Redelivered
    /// events share it; a re-run's result has its own.
    pub fn key(&self) -> String {
        if self.attempt.is_empty() {
            self.run_id.clone()
        } else {
            format!("{}#{}", self.run_id, self.attempt)
        }
    }
}

/// How a CI run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiConclusion {
    /// Every job passed.
    Success,
    /// A job failed (or timed out).
    Failure,
    /// Cancelled or stopped: nothing to learn.
    Cancelled,
}

/// A job of a CI run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiJobRef {
    /// The forge's id (GitHub job id, GitLab job id, Bitbucket step UUID).
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A ref update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// Repository pushed to.
    pub repo: Repo,
    /// The ref that moved.
    pub git_ref: GitRef,
    /// Old tip (`None` when the ref was created).
    pub before: Option<CommitSha>,
    /// New tip (`None` when the ref was deleted).
    pub after: Option<CommitSha>,
    /// The ref did not exist before.
    pub created: bool,
    /// The ref no longer exists.
    pub deleted: bool,
    /// History was rewritten (GitHub `forced`, Bitbucket `forced`; GitLab does not say).
    pub forced: bool,
    /// The ref is the repository's default branch.
    pub to_default_branch: bool,
    /// Paths added, modified or removed by the pushed commits, deduplicated and sorted.
    /// Forges cap the commit list, so this may be incomplete (`paths_complete = false`).
    pub changed_paths: Vec<String>,
    /// Whether `changed_paths` is known to cover the whole push.
    pub paths_complete: bool,
}

/// A branch or a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum GitRef {
    /// `refs/heads/<name>`.
    Branch(String),
    /// `refs/tags/<name>`.
    Tag(String),
}

/// A comment on a pull request or an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Repository of the thread.
    pub repo: Repo,
    /// Where the comment was written.
    pub target: CommentTarget,
    /// Forge id of the comment (for reactions and de-duplication).
    pub comment_id: String,
    /// Markdown body as written.
    pub body: String,
    /// The author.
    pub author: Actor,
    /// Created, or edited (with the previous body when the forge sends it).
    pub action: CommentAction,
}

/// The thread a comment belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "number", rename_all = "snake_case")]
pub enum CommentTarget {
    /// A pull request (GitLab: merge request `iid`).
    PullRequest(u64),
    /// A plain issue.
    Issue(u64),
}

/// Whether a comment is new or was edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommentAction {
    /// A new comment.
    Created,
    /// An edit; `previous_body` lets command handling run only the new commands.
    Edited {
        /// The body before the edit, when the forge sends it.
        previous_body: Option<String>,
    },
}

impl ForgeEvent {
    /// The repository the event concerns, if it concerns exactly one.
    pub fn repo(&self) -> Option<&Repo> {
        match &self.kind {
            EventKind::RepoCreated { repo }
            | EventKind::RepoDeleted { repo }
            | EventKind::PullRequestClosed { repo, .. } => Some(repo),
            EventKind::Push(p) => Some(&p.repo),
            EventKind::Comment(c) => Some(&c.repo),
            EventKind::CiRunCompleted(r) => Some(&r.repo),
            EventKind::InstallationCreated { .. }
            | EventKind::InstallationDeleted
            | EventKind::InstallationSuspended
            | EventKind::InstallationUnsuspended
            | EventKind::ReposAdded { .. }
            | EventKind::ReposRemoved { .. } => None,
        }
    }

    /// Short name of the event kind for logs and metrics (`push`, `comment`, …).
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            EventKind::InstallationCreated { .. } => "installation_created",
            EventKind::InstallationDeleted => "installation_deleted",
            EventKind::InstallationSuspended => "installation_suspended",
            EventKind::InstallationUnsuspended => "installation_unsuspended",
            EventKind::ReposAdded { .. } => "repos_added",
            EventKind::ReposRemoved { .. } => "repos_removed",
            EventKind::RepoCreated { .. } => "repo_created",
            EventKind::RepoDeleted { .. } => "repo_deleted",
            EventKind::Push(_) => "push",
            EventKind::Comment(_) => "comment",
            EventKind::PullRequestClosed { .. } => "pull_request_closed",
            EventKind::CiRunCompleted(_) => "ci_run_completed",
        }
    }
}
