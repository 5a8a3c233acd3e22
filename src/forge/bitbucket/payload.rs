//! Bitbucket Cloud webhook payloads → [`ForgeEvent`]. The tenant is the workspace.
//! Bitbucket has no repository-created event and sends no file lists with pushes.

use serde::Deserialize;

use crate::forge::event::{
    Actor, CiConclusion, CiRun, Comment, CommentAction, CommentTarget, EventKind, ForgeEvent,
    GitRef, Installation, Push, Repo,
};
use crate::forge::payload::{decode, non_zero_sha, AnyId, PayloadError};
use crate::forge::types::{CommitSha, Forge, InstallationId, RepoId};

/// `X-Event-Key` values pipewright parses.
pub(crate) const EVENTS: &[&str] = &[
    "repo:push",
    "pullrequest:comment_created",
    "pullrequest:comment_updated",
    "issue:comment_created",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "repo:commit_status_updated",
];

#[derive(Deserialize)]
struct BbActor {
    #[serde(rename = "type")]
    kind: Option<String>,
    nickname: Option<String>,
    username: Option<String>,
    display_name: Option<String>,
    uuid: Option<String>,
    account_id: Option<String>,
}

fn actor(a: BbActor) -> Option<Actor> {
    // Workspace/repository access tokens and apps act as `app_user` accounts.
    let is_bot = a.kind.as_deref() == Some("app_user");
    Some(Actor {
        login: a.nickname.or(a.username).or(a.display_name)?,
        // The stable id permission checks key on (nicknames are not unique).
        id: a.uuid.or(a.account_id),
        is_bot,
    })
}

#[derive(Deserialize)]
struct BbName {
    name: String,
}

#[derive(Deserialize)]
struct BbAccount {
    uuid: Option<String>,
    slug: Option<String>,
}

#[derive(Deserialize)]
struct BbRepo {
    uuid: String,
    full_name: String,
    is_private: Option<bool>,
    mainbranch: Option<BbName>,
    workspace: Option<BbAccount>,
    owner: Option<BbAccount>,
    parent: Option<serde::de::IgnoredAny>,
}

impl BbRepo {
    /// The workspace: its UUID when the payload has it (current payloads), else the
    /// owner's UUID, else the first segment of `full_name` (older examples).
    fn installation(&self) -> Option<Installation> {
        let slug = self
            .workspace
            .as_ref()
            .and_then(|w| w.slug.clone())
            .or_else(|| self.full_name.split('/').next().map(str::to_owned));
        let id = self
            .workspace
            .as_ref()
            .and_then(|w| w.uuid.clone())
            .or_else(|| self.owner.as_ref().and_then(|o| o.uuid.clone()))
            .or_else(|| slug.clone())?;
        Some(Installation {
            id: InstallationId(id),
            account: slug,
        })
    }

    fn into_repo(self) -> Repo {
        Repo {
            id: RepoId(self.uuid),
            full_name: self.full_name,
            default_branch: self.mainbranch.map(|m| m.name),
            private: self.is_private,
            archived: None,
            fork: Some(self.parent.is_some()).filter(|f| *f),
        }
    }
}

fn one(inst: Option<Installation>, sender: Option<Actor>, kind: EventKind) -> ForgeEvent {
    ForgeEvent {
        forge: Forge::Bitbucket,
        installation: inst,
        sender,
        kind,
    }
}

/// Parses one delivery.
pub(crate) fn parse(event_name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    match event_name {
        "repo:push" => parse_push(event_name, body),
        "pullrequest:comment_created" | "pullrequest:comment_updated" | "issue:comment_created" => {
            parse_comment(event_name, body)
        }
        "pullrequest:fulfilled" | "pullrequest:rejected" => parse_pull_request(event_name, body),
        "repo:commit_status_updated" => parse_commit_status(event_name, body),
        _ => Ok(Vec::new()),
    }
}

#[derive(Deserialize)]
struct BbTarget {
    hash: String,
}

#[derive(Deserialize)]
struct BbRefState {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: Option<BbTarget>,
}

#[derive(Deserialize)]
struct BbChange {
    old: Option<BbRefState>,
    new: Option<BbRefState>,
    #[serde(default)]
    forced: bool,
}

#[derive(Deserialize)]
struct BbPush {
    changes: Vec<BbChange>,
}

#[derive(Deserialize)]
struct PushPayload {
    push: BbPush,
    repository: BbRepo,
    actor: Option<BbActor>,
}

fn parse_push(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: PushPayload = decode(name, body)?;
    let inst = p.repository.installation();
    let sender = p.actor.and_then(actor);
    let repo = p.repository.into_repo();
    let mut events = Vec::with_capacity(p.push.changes.len());
    for (i, change) in p.push.changes.into_iter().enumerate() {
        let Some(state) = change.new.as_ref().or(change.old.as_ref()) else {
            return Err(PayloadError::Malformed {
                event: name.to_owned(),
                path: format!("push.changes[{i}]"),
                message: "neither `old` nor `new` is set".into(),
            });
        };
        let git_ref = match state.kind.as_str() {
            "branch" | "named_branch" => GitRef::Branch(state.name.clone()),
            "tag" | "annotated_tag" => GitRef::Tag(state.name.clone()),
            other => {
                return Err(PayloadError::Invalid {
                    event: name.to_owned(),
                    message: format!(
                        "push.changes[{i}] has unknown ref type `{}`",
                        other.chars().take(40).collect::<String>()
                    ),
                })
            }
        };
        let sha = |s: &Option<BbRefState>| {
            s.as_ref()
                .and_then(|r| r.target.as_ref())
                .and_then(|t| non_zero_sha(&t.hash))
        };
        let to_default_branch = matches!(&git_ref, GitRef::Branch(b) if repo.default_branch.as_deref() == Some(b.as_str()));
        events.push(one(
            inst.clone(),
            sender.clone(),
            EventKind::Push(Push {
                repo: repo.clone(),
                git_ref,
                before: sha(&change.old),
                after: sha(&change.new),
                created: change.old.is_none(),
                deleted: change.new.is_none(),
                forced: change.forced,
                to_default_branch,
                // Bitbucket sends commit summaries without file lists.
                changed_paths: Vec::new(),
                paths_complete: false,
            }),
        ));
    }
    Ok(events)
}

#[derive(Deserialize)]
struct BbContent {
    raw: Option<String>,
}

#[derive(Deserialize)]
struct BbComment {
    id: AnyId,
    content: BbContent,
    user: Option<BbActor>,
}

#[derive(Deserialize)]
struct BbId {
    id: u64,
}

#[derive(Deserialize)]
struct CommentPayload {
    comment: BbComment,
    pullrequest: Option<BbId>,
    issue: Option<BbId>,
    repository: BbRepo,
    actor: Option<BbActor>,
}

fn parse_comment(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: CommentPayload = decode(name, body)?;
    let target = if name.starts_with("pullrequest:") {
        let pr = p.pullrequest.ok_or_else(|| PayloadError::Malformed {
            event: name.to_owned(),
            path: "pullrequest".into(),
            message: "missing field `pullrequest`".into(),
        })?;
        CommentTarget::PullRequest(pr.id)
    } else {
        let issue = p.issue.ok_or_else(|| PayloadError::Malformed {
            event: name.to_owned(),
            path: "issue".into(),
            message: "missing field `issue`".into(),
        })?;
        CommentTarget::Issue(issue.id)
    };
    let inst = p.repository.installation();
    let sender = p.actor.and_then(actor);
    let author = p
        .comment
        .user
        .and_then(actor)
        .or_else(|| sender.clone())
        .ok_or_else(|| PayloadError::Malformed {
            event: name.to_owned(),
            path: "actor".into(),
            message: "no comment author".into(),
        })?;
    let action = if name.ends_with("_updated") {
        CommentAction::Edited {
            previous_body: None,
        }
    } else {
        CommentAction::Created
    };
    let comment = Comment {
        repo: p.repository.into_repo(),
        target,
        comment_id: p.comment.id.into_string(),
        body: p.comment.content.raw.unwrap_or_default(),
        author,
        action,
    };
    Ok(vec![one(inst, sender, EventKind::Comment(comment))])
}

#[derive(Deserialize)]
struct BbBranchRef {
    branch: BbName,
}

#[derive(Deserialize)]
struct BbPull {
    id: u64,
    source: BbBranchRef,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    pullrequest: BbPull,
    repository: BbRepo,
    actor: Option<BbActor>,
}

fn parse_pull_request(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: PullRequestPayload = decode(name, body)?;
    let inst = p.repository.installation();
    let kind = EventKind::PullRequestClosed {
        repo: p.repository.into_repo(),
        number: p.pullrequest.id,
        merged: name == "pullrequest:fulfilled",
        head_branch: p.pullrequest.source.branch.name,
    };
    Ok(vec![one(inst, p.actor.and_then(actor), kind)])
}

#[derive(Deserialize)]
struct BbStatusCommit {
    hash: String,
}

#[derive(Deserialize)]
struct BbCommitStatus {
    state: String,
    key: String,
    name: Option<String>,
    url: Option<String>,
    refname: Option<String>,
    commit: BbStatusCommit,
}

#[derive(Deserialize)]
struct CommitStatusPayload {
    commit_status: BbCommitStatus,
    repository: BbRepo,
    actor: Option<BbActor>,
}

/// The Pipelines build number in a status URL (`…/addon/pipelines/home#!/results/42`).
fn build_number(url: &str) -> Option<String> {
    let tail = url.rsplit_once("/results/")?.1;
    let n: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!n.is_empty()).then_some(n)
}

/// `repo:commit_status_updated` with a final state. For Bitbucket Pipelines the run id
/// is the build number from the status URL; other CI services keep their status key.
fn parse_commit_status(name: &str, body: &[u8]) -> Result<Vec<ForgeEvent>, PayloadError> {
    let p: CommitStatusPayload = decode(name, body)?;
    let st = p.commit_status;
    let conclusion = match st.state.as_str() {
        "SUCCESSFUL" => CiConclusion::Success,
        "FAILED" => CiConclusion::Failure,
        "STOPPED" => CiConclusion::Cancelled,
        // INPROGRESS: not finished.
        _ => return Ok(Vec::new()),
    };
    let Some(branch) = st.refname.filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let inst = p.repository.installation();
    let run = CiRun {
        repo: p.repository.into_repo(),
        branch,
        sha: CommitSha(st.commit.hash),
        run_id: st.url.as_deref().and_then(build_number).unwrap_or(st.key),
        // A re-run is a new pipeline with its own build number.
        attempt: String::new(),
        name: st.name.unwrap_or_default(),
        conclusion,
        url: st.url,
        failed_jobs: Vec::new(),
    };
    Ok(vec![one(
        inst,
        p.actor.and_then(actor),
        EventKind::CiRunCompleted(run),
    )])
}
