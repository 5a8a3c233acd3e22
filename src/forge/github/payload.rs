//! GitHub webhook payloads → [`ForgeEvent`]. Only the fields pipewright uses are modelled;
//! everything else in GitHub's (large) payloads is ignored.

use serde::Deserialize;

use crate::forge::event::{
    Actor, CiConclusion, CiRun, Comment, CommentAction, CommentTarget, EventKind, ForgeEvent,
    Installation, Push, Repo,
};
use crate::forge::payload::{
    changed_paths, decode, git_ref, non_zero_sha, CommitFiles, PayloadError,
};
use crate::forge::types::{CommitSha, Forge, InstallationId, RepoId};

/// `X-GitHub-Event` values pipewright parses.
pub(crate) const EVENTS: &[&str] = &[
    "installation",
    "installation_repositories",
    "repository",
    "push",
    "issue_comment",
    "pull_request_review_comment",
    "pull_request",
    "workflow_run",
];

/// GitHub lists at most this many commits in a push payload; a push with more is
/// described incompletely.
const MAX_PUSH_COMMITS: usize = 2048;

#[derive(Deserialize)]
struct GhInstallation {
    id: u64,
    account: Option<GhAccount>,
}

#[derive(Deserialize)]
struct GhAccount {
    login: Option<String>,
}

#[derive(Deserialize)]
struct GhUser {
    login: String,
    id: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct GhRepo {
    id: u64,
    full_name: String,
    default_branch: Option<String>,
    master_branch: Option<String>,
    private: Option<bool>,
    archived: Option<bool>,
    fork: Option<bool>,
}

impl GhRepo {
    fn into_repo(self) -> Repo {
        Repo {
            id: RepoId(self.id.to_string()),
            full_name: self.full_name,
            default_branch: self.default_branch.or(self.master_branch),
            private: self.private,
            archived: self.archived,
            fork: self.fork,
        }
    }
}

fn actor(user: GhUser) -> Actor {
    // GitHub Apps and bot accounts are `type: Bot` and log in as `name[bot]`.
    let is_bot = user.kind.as_deref() == Some("Bot") || user.login.ends_with("[bot]");
    Actor {
        login: user.login,
        id: user.id.map(|i| i.to_string()),
        is_bot,
    }
}

fn installation(inst: Option<GhInstallation>) -> Option<Installation> {
    inst.map(|i| Installation {
        id: InstallationId(i.id.to_string()),
        account: i.account.and_then(|a| a.login),
    })
}

fn event(
    installation: Option<Installation>,
    sender: Option<GhUser>,
    kind: EventKind,
) -> Vec<ForgeEvent> {
    vec![ForgeEvent {
        forge: Forge::Github,
        installation,
        sender: sender.map(actor),
        kind,
    }]
}

/// Parses one delivery.
pub(crate) fn parse(event_name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    match event_name {
        "installation" => parse_installation(event_name, body),
        "installation_repositories" => parse_installation_repositories(event_name, body),
        "repository" => parse_repository(event_name, body),
        "push" => parse_push(event_name, body),
        "issue_comment" => parse_issue_comment(event_name, body),
        "pull_request_review_comment" => parse_review_comment(event_name, body),
        "pull_request" => parse_pull_request(event_name, body),
        "workflow_run" => parse_workflow_run(event_name, body),
        _ => Ok(Vec::new()),
    }
}

#[derive(Deserialize)]
struct InstallationPayload {
    action: String,
    installation: GhInstallation,
    repositories: Option<Vec<GhRepo>>,
    sender: Option<GhUser>,
}

fn parse_installation(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: InstallationPayload = decode(name, body)?;
    let kind = match p.action.as_str() {
        // Accepting new permissions re-grants access: treat it like a fresh install so the
        // reconcile sees repositories it could not act on before.
        "created" | "new_permissions_accepted" => EventKind::InstallationCreated {
            repos: p
                .repositories
                .unwrap_or_default()
                .into_iter()
                .map(GhRepo::into_repo)
                .collect(),
        },
        "deleted" => EventKind::InstallationDeleted,
        "suspend" => EventKind::InstallationSuspended,
        "unsuspend" => EventKind::InstallationUnsuspended,
        _ => return Ok(Vec::new()),
    };
    Ok(event(installation(Some(p.installation)), p.sender, kind))
}

#[derive(Deserialize)]
struct InstallationReposPayload {
    action: String,
    installation: GhInstallation,
    #[serde(default)]
    repositories_added: Vec<GhRepo>,
    #[serde(default)]
    repositories_removed: Vec<GhRepo>,
    sender: Option<GhUser>,
}

fn parse_installation_repositories(
    name: &str,
    body: &[u8],
) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: InstallationReposPayload = decode(name, body)?;
    let kind = match p.action.as_str() {
        "added" => EventKind::ReposAdded {
            repos: p
                .repositories_added
                .into_iter()
                .map(GhRepo::into_repo)
                .collect(),
        },
        "removed" => EventKind::ReposRemoved {
            repos: p
                .repositories_removed
                .into_iter()
                .map(GhRepo::into_repo)
                .collect(),
        },
        _ => return Ok(Vec::new()),
    };
    Ok(event(installation(Some(p.installation)), p.sender, kind))
}

#[derive(Deserialize)]
struct RepositoryPayload {
    action: String,
    repository: GhRepo,
    installation: Option<GhInstallation>,
    sender: Option<GhUser>,
}

fn parse_repository(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: RepositoryPayload = decode(name, body)?;
    let repo = p.repository.into_repo();
    let kind = match p.action.as_str() {
        "created" => EventKind::RepoCreated { repo },
        "deleted" => EventKind::RepoDeleted { repo },
        _ => return Ok(Vec::new()),
    };
    Ok(event(installation(p.installation), p.sender, kind))
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    repository: GhRepo,
    installation: Option<GhInstallation>,
    sender: Option<GhUser>,
}

fn parse_push(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: PushPayload = decode(name, body)?;
    let git_ref = git_ref(name, &p.git_ref)?;
    let repo = p.repository.into_repo();
    let to_default_branch = matches!(&git_ref, crate::forge::event::GitRef::Branch(b)
        if repo.default_branch.as_deref() == Some(b.as_str()));
    let changed_paths = changed_paths(&p.commits);
    // The commit list is the full change only for an ordinary fast-forward: a created
    // ref lists only commits new to the repository, a forced push only the new commits,
    // and GitHub truncates long lists.
    let paths_complete = !p.created && !p.forced && p.commits.len() < MAX_PUSH_COMMITS;
    let push = Push {
        repo,
        git_ref,
        before: non_zero_sha(&p.before),
        after: non_zero_sha(&p.after),
        created: p.created,
        deleted: p.deleted,
        forced: p.forced,
        to_default_branch,
        changed_paths,
        paths_complete,
    };
    Ok(event(
        installation(p.installation),
        p.sender,
        EventKind::Push(push),
    ))
}

#[derive(Deserialize)]
struct GhComment {
    id: u64,
    body: Option<String>,
    user: GhUser,
}

#[derive(Deserialize)]
struct GhChanges {
    body: Option<GhFrom>,
}

#[derive(Deserialize)]
struct GhFrom {
    from: Option<String>,
}

#[derive(Deserialize)]
struct GhIssue {
    number: u64,
    pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct IssueCommentPayload {
    action: String,
    issue: GhIssue,
    comment: GhComment,
    changes: Option<GhChanges>,
    repository: GhRepo,
    installation: Option<GhInstallation>,
    sender: Option<GhUser>,
}

fn parse_issue_comment(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: IssueCommentPayload = decode(name, body)?;
    // Pull requests are issues too; only the `pull_request` key tells them apart.
    let target = if p.issue.pull_request.is_some() {
        CommentTarget::PullRequest(p.issue.number)
    } else {
        CommentTarget::Issue(p.issue.number)
    };
    Ok(comment_event(
        &p.action,
        p.changes,
        target,
        p.comment,
        p.repository,
        p.installation,
        p.sender,
    ))
}

/// Shared by issue comments and review comments.
fn comment_event(
    action: &str,
    changes: Option<GhChanges>,
    target: CommentTarget,
    comment: GhComment,
    repository: GhRepo,
    inst: Option<GhInstallation>,
    sender: Option<GhUser>,
) -> Vec<ForgeEvent> {
    let action = match action {
        "created" => CommentAction::Created,
        "edited" => CommentAction::Edited {
            previous_body: changes.and_then(|c| c.body).and_then(|b| b.from),
        },
        // Deleted comments do nothing.
        _ => return Vec::new(),
    };
    let comment = Comment {
        repo: repository.into_repo(),
        target,
        comment_id: comment.id.to_string(),
        body: comment.body.unwrap_or_default(),
        author: actor(comment.user),
        action,
    };
    event(installation(inst), sender, EventKind::Comment(comment))
}

#[derive(Deserialize)]
struct GhPrRef {
    number: u64,
}

#[derive(Deserialize)]
struct ReviewCommentPayload {
    action: String,
    pull_request: GhPrRef,
    comment: GhComment,
    changes: Option<GhChanges>,
    repository: GhRepo,
    installation: Option<GhInstallation>,
    sender: Option<GhUser>,
}

fn parse_review_comment(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: ReviewCommentPayload = decode(name, body)?;
    let target = CommentTarget::PullRequest(p.pull_request.number);
    Ok(comment_event(
        &p.action,
        p.changes,
        target,
        p.comment,
        p.repository,
        p.installation,
        p.sender,
    ))
}

#[derive(Deserialize)]
struct GhHead {
    #[serde(rename = "ref")]
    branch: String,
}

#[derive(Deserialize)]
struct GhPull {
    number: u64,
    merged: Option<bool>,
    head: GhHead,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    pull_request: GhPull,
    repository: GhRepo,
    installation: Option<GhInstallation>,
    sender: Option<GhUser>,
}

fn parse_pull_request(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: PullRequestPayload = decode(name, body)?;
    if p.action != "closed" {
        return Ok(Vec::new());
    }
    let kind = EventKind::PullRequestClosed {
        repo: p.repository.into_repo(),
        number: p.pull_request.number,
        merged: p.pull_request.merged.unwrap_or(false),
        head_branch: p.pull_request.head.branch,
    };
    Ok(event(installation(p.installation), p.sender, kind))
}

#[derive(Deserialize)]
struct GhWorkflowRun {
    id: u64,
    name: Option<String>,
    head_branch: Option<String>,
    head_sha: String,
    conclusion: Option<String>,
    html_url: Option<String>,
    /// 1 for the first run, then one more per re-run (absent in old payloads).
    run_attempt: Option<u64>,
}

#[derive(Deserialize)]
struct WorkflowRunPayload {
    action: String,
    workflow_run: GhWorkflowRun,
    repository: GhRepo,
    installation: Option<GhInstallation>,
    sender: Option<GhUser>,
}

/// `workflow_run.completed`: a GitHub Actions run of a branch finished.
fn parse_workflow_run(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: WorkflowRunPayload = decode(name, body)?;
    if p.action != "completed" {
        return Ok(Vec::new());
    }
    let Some(branch) = p.workflow_run.head_branch else {
        return Ok(Vec::new());
    };
    let conclusion = match p.workflow_run.conclusion.as_deref() {
        Some("success") | Some("neutral") | Some("skipped") => CiConclusion::Success,
        Some("failure") | Some("timed_out") | Some("startup_failure") => CiConclusion::Failure,
        _ => CiConclusion::Cancelled,
    };
    let run = CiRun {
        repo: p.repository.into_repo(),
        branch,
        sha: CommitSha(p.workflow_run.head_sha),
        run_id: p.workflow_run.id.to_string(),
        attempt: p.workflow_run.run_attempt.unwrap_or(1).to_string(),
        name: p.workflow_run.name.unwrap_or_default(),
        conclusion,
        url: p.workflow_run.html_url,
        failed_jobs: Vec::new(),
    };
    Ok(event(
        installation(p.installation),
        p.sender,
        EventKind::CiRunCompleted(run),
    ))
}
