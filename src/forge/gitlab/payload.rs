//! GitLab webhook payloads (project, group and system hooks) → [`ForgeEvent`]. The
//! tenant is the project's top-level group: operators allowlist groups, and every
//! project of a group shares one installation row.

use serde::Deserialize;

use crate::forge::event::{
    Actor, CiConclusion, CiJobRef, CiRun, Comment, CommentAction, CommentTarget, EventKind,
    ForgeEvent, GitRef, Installation, Push, Repo,
};
use crate::forge::payload::{
    changed_paths, decode, git_ref, non_zero_sha, CommitFiles, PayloadError,
};
use crate::forge::types::{CommitSha, Forge, InstallationId, RepoId};

/// `X-Gitlab-Event` values pipewright parses.
pub(crate) const EVENTS: &[&str] = &[
    "Push Hook",
    "Tag Push Hook",
    "Note Hook",
    "Merge Request Hook",
    "Pipeline Hook",
    "System Hook",
    "Project Hook",
];

/// GitLab lists at most this many commits in a push payload (`total_commits_count` has
/// the real number).
const MAX_PUSH_COMMITS: u64 = 20;

/// GitLab visibility level of public projects (0 private, 10 internal, 20 public).
const PUBLIC_VISIBILITY: i64 = 20;

#[derive(Deserialize)]
struct GlProject {
    id: Option<u64>,
    path_with_namespace: String,
    default_branch: Option<String>,
    visibility_level: Option<i64>,
}

fn repo(event: &str, project: GlProject, project_id: Option<u64>) -> Result<Repo, PayloadError> {
    let id = project
        .id
        .or(project_id)
        .ok_or_else(|| PayloadError::Malformed {
            event: event.to_owned(),
            path: "project.id".into(),
            message: "missing field `id` (and no `project_id`)".into(),
        })?;
    Ok(Repo {
        id: RepoId(id.to_string()),
        full_name: project.path_with_namespace,
        default_branch: project.default_branch,
        private: project.visibility_level.map(|v| v < PUBLIC_VISIBILITY),
        archived: None,
        fork: None,
    })
}

/// The top-level group (or user namespace) of `group/sub/project`.
fn installation_of(path_with_namespace: &str) -> Option<Installation> {
    let root = path_with_namespace
        .split('/')
        .next()
        .filter(|s| !s.is_empty())?;
    Some(Installation {
        id: InstallationId(root.to_owned()),
        account: Some(root.to_owned()),
    })
}

/// GitLab project and group access tokens act as bot users named
/// `project_<id>_bot…` / `group_<id>_bot…`.
fn is_bot_username(username: &str) -> bool {
    let rest = username
        .strip_prefix("project_")
        .or_else(|| username.strip_prefix("group_"));
    match rest {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && r[digits..].starts_with("_bot")
        }
        None => false,
    }
}

fn actor(username: Option<String>, name: Option<String>, id: Option<u64>) -> Option<Actor> {
    let login = username.or(name)?;
    Some(Actor {
        is_bot: is_bot_username(&login),
        login,
        id: id.map(|i| i.to_string()),
    })
}

fn one(
    installation: Option<Installation>,
    sender: Option<Actor>,
    kind: EventKind,
) -> Vec<ForgeEvent> {
    vec![ForgeEvent {
        forge: Forge::Gitlab,
        installation,
        sender,
        kind,
    }]
}

/// `object_kind` / `event_name`: how system and group hooks say what they carry.
#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
    event_name: Option<String>,
}

/// Parses one delivery.
pub(crate) fn parse(event_name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    match event_name {
        "Push Hook" | "Tag Push Hook" => parse_push(event_name, body),
        "Note Hook" => parse_note(event_name, body),
        "Merge Request Hook" => parse_merge_request(event_name, body),
        "Pipeline Hook" => parse_pipeline(event_name, body),
        // System and group hooks carry many event types under one header.
        "System Hook" | "Project Hook" => {
            let k: Kind = decode(event_name, body)?;
            match k.event_name.as_deref().or(k.object_kind.as_deref()) {
                Some("push") | Some("tag_push") => parse_push(event_name, body),
                Some("project_create") | Some("project_destroy") => parse_project(event_name, body),
                Some("merge_request") => parse_merge_request(event_name, body),
                _ => Ok(Vec::new()),
            }
        }
        _ => Ok(Vec::new()),
    }
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    user_username: Option<String>,
    user_name: Option<String>,
    user_id: Option<u64>,
    project_id: Option<u64>,
    project: GlProject,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    total_commits_count: Option<u64>,
}

fn parse_push(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: PushPayload = decode(name, body)?;
    let inst = installation_of(&p.project.path_with_namespace);
    let repo = repo(name, p.project, p.project_id)?;
    let git_ref = git_ref(name, &p.git_ref)?;
    let (before, after) = (non_zero_sha(&p.before), non_zero_sha(&p.after));
    let created = before.is_none() && after.is_some();
    let deleted = after.is_none();
    let to_default_branch =
        matches!(&git_ref, GitRef::Branch(b) if repo.default_branch.as_deref() == Some(b.as_str()));
    let changed_paths = changed_paths(&p.commits);
    let total = p.total_commits_count.unwrap_or(p.commits.len() as u64);
    // GitLab does not flag forced pushes; a created ref lists only some commits.
    let paths_complete = !created && total <= MAX_PUSH_COMMITS && total == p.commits.len() as u64;
    let push = Push {
        repo,
        git_ref,
        before,
        after,
        created,
        deleted,
        forced: false,
        to_default_branch,
        changed_paths,
        paths_complete,
    };
    Ok(one(
        inst,
        actor(p.user_username, p.user_name, p.user_id),
        EventKind::Push(push),
    ))
}

#[derive(Deserialize)]
struct GlUser {
    username: Option<String>,
    name: Option<String>,
    id: Option<u64>,
}

#[derive(Deserialize)]
struct NoteAttributes {
    id: u64,
    note: String,
    noteable_type: String,
    action: Option<String>,
}

#[derive(Deserialize)]
struct Iid {
    iid: u64,
}

#[derive(Deserialize)]
struct NotePayload {
    user: GlUser,
    project_id: Option<u64>,
    project: GlProject,
    object_attributes: NoteAttributes,
    merge_request: Option<Iid>,
    issue: Option<Iid>,
}

fn parse_note(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: NotePayload = decode(name, body)?;
    let missing = |path: &str| PayloadError::Malformed {
        event: name.to_owned(),
        path: path.to_owned(),
        message: "missing for this noteable_type".into(),
    };
    let target = match p.object_attributes.noteable_type.as_str() {
        "MergeRequest" => {
            CommentTarget::PullRequest(p.merge_request.ok_or_else(|| missing("merge_request"))?.iid)
        }
        "Issue" => CommentTarget::Issue(p.issue.ok_or_else(|| missing("issue"))?.iid),
        // Commit and snippet notes are not conversations pipewright takes part in.
        _ => return Ok(Vec::new()),
    };
    let action = match p.object_attributes.action.as_deref() {
        // Older GitLab versions send no action: notes were only sent on creation.
        None | Some("create") => CommentAction::Created,
        Some("update") => CommentAction::Edited {
            previous_body: None,
        },
        _ => return Ok(Vec::new()),
    };
    let inst = installation_of(&p.project.path_with_namespace);
    let repo = repo(name, p.project, p.project_id)?;
    let author =
        actor(p.user.username, p.user.name, p.user.id).ok_or_else(|| missing("user.username"))?;
    let comment = Comment {
        repo,
        target,
        comment_id: p.object_attributes.id.to_string(),
        body: p.object_attributes.note,
        author: author.clone(),
        action,
    };
    Ok(one(inst, Some(author), EventKind::Comment(comment)))
}

#[derive(Deserialize)]
struct MrAttributes {
    iid: u64,
    action: Option<String>,
    source_branch: String,
}

#[derive(Deserialize)]
struct MergeRequestPayload {
    user: Option<GlUser>,
    project: GlProject,
    object_attributes: MrAttributes,
}

fn parse_merge_request(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: MergeRequestPayload = decode(name, body)?;
    let merged = match p.object_attributes.action.as_deref() {
        Some("merge") => true,
        Some("close") => false,
        _ => return Ok(Vec::new()),
    };
    let inst = installation_of(&p.project.path_with_namespace);
    let repo = repo(name, p.project, None)?;
    let sender = p.user.and_then(|u| actor(u.username, u.name, u.id));
    let kind = EventKind::PullRequestClosed {
        repo,
        number: p.object_attributes.iid,
        merged,
        head_branch: p.object_attributes.source_branch,
    };
    Ok(one(inst, sender, kind))
}

#[derive(Deserialize)]
struct ProjectPayload {
    event_name: String,
    project_id: u64,
    path_with_namespace: String,
    project_visibility: Option<String>,
}

fn parse_project(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: ProjectPayload = decode(name, body)?;
    let repo = Repo {
        id: RepoId(p.project_id.to_string()),
        full_name: p.path_with_namespace.clone(),
        default_branch: None,
        private: p.project_visibility.as_deref().map(|v| v != "public"),
        archived: None,
        fork: None,
    };
    let kind = if p.event_name == "project_create" {
        EventKind::RepoCreated { repo }
    } else {
        EventKind::RepoDeleted { repo }
    };
    Ok(one(installation_of(&p.path_with_namespace), None, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_users_are_recognised_by_name() {
        assert!(is_bot_username("project_278964_bot_7f3a"));
        assert!(is_bot_username("group_9_bot"));
        assert!(!is_bot_username("project_bot"));
        assert!(!is_bot_username("projectx_1_bot"));
        assert!(!is_bot_username("alice"));
        assert!(!is_bot_username("group_12"));
    }

    #[test]
    fn tenant_is_the_top_level_group() {
        assert_eq!(
            installation_of("platform/tools/runner")
                .unwrap()
                .id
                .as_str(),
            "platform"
        );
        assert!(installation_of("").is_none());
        assert!(installation_of("/x").is_none());
    }
}

#[derive(Deserialize)]
struct PipelineAttributes {
    id: u64,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    sha: String,
    status: String,
    name: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct PipelineMr {
    source_branch: Option<String>,
}

#[derive(Deserialize)]
struct PipelineBuild {
    id: u64,
    name: String,
    status: String,
    #[serde(default)]
    allow_failure: bool,
}

#[derive(Deserialize)]
struct PipelinePayload {
    object_attributes: PipelineAttributes,
    merge_request: Option<PipelineMr>,
    user: Option<GlUser>,
    project: GlProject,
    #[serde(default)]
    builds: Vec<PipelineBuild>,
}

/// `Pipeline Hook` with a final status. A merge request pipeline's ref is
/// `refs/merge-requests/N/head`: its branch is the merge request's source branch.
fn parse_pipeline(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: PipelinePayload = decode(name, body)?;
    let conclusion = match p.object_attributes.status.as_str() {
        "success" => CiConclusion::Success,
        "failed" => CiConclusion::Failure,
        "canceled" | "canceling" | "skipped" => CiConclusion::Cancelled,
        // Still running (created, pending, running, manual, …): not finished.
        _ => return Ok(Vec::new()),
    };
    let branch = p
        .merge_request
        .and_then(|m| m.source_branch)
        .or(p.object_attributes.git_ref)
        .unwrap_or_default();
    if branch.is_empty() {
        return Ok(Vec::new());
    }
    let inst = installation_of(&p.project.path_with_namespace);
    let repo = repo(name, p.project, None)?;
    // A retried job is a new job (a higher id) in the same pipeline: the newest id tells
    // a retry's result from a redelivery of the first one.
    let attempt = p
        .builds
        .iter()
        .map(|b| b.id)
        .max()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let failed_jobs = p
        .builds
        .into_iter()
        .filter(|b| b.status == "failed" && !b.allow_failure)
        .map(|b| CiJobRef {
            id: b.id.to_string(),
            name: b.name,
        })
        .collect();
    let run = CiRun {
        repo,
        branch,
        sha: CommitSha(p.object_attributes.sha),
        run_id: p.object_attributes.id.to_string(),
        attempt,
        name: p
            .object_attributes
            .name
            .unwrap_or_else(|| "pipeline".to_owned()),
        conclusion,
        url: p.object_attributes.url,
        failed_jobs,
    };
    let sender = p.user.and_then(|u| actor(u.username, u.name, u.id));
    Ok(one(inst, sender, EventKind::CiRunCompleted(run)))
}
