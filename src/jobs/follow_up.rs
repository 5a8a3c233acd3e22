//! Jobs the event handler fans out whose handlers arrive with later capabilities
//! (analysis + PR, slash commands, PR bookkeeping). They are defined here so they can be
//! queued, de-duplicated and serialized-per-repository now.

use serde::{Deserialize, Serialize};

use crate::forge::event::{CiRun, Comment, Repo};
use crate::forge::{CommitSha, Forge, InstallationId};
use crate::queue::Job;

/// Why a repository is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyzeReason {
    /// The app was installed or the repository added to it.
    Installed,
    /// A push to the default branch (first push of a new repository included).
    Push,
    /// The periodic reconcile pass found it new or changed.
    Reconcile,
    /// A person asked (`regenerate`).
    Command,
}

/// Analyse a repository's default branch and open or update its fix-up PR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzeRepo {
    /// Forge.
    pub forge: Forge,
    /// Tenant.
    pub installation: Option<InstallationId>,
    /// The repository.
    pub repo: Repo,
    /// Why.
    pub reason: AnalyzeReason,
    /// Commit to analyse; `None` = the default branch's head when the job runs.
    pub sha: Option<CommitSha>,
}

impl Job for AnalyzeRepo {
    const KIND: &'static str = "analyze_repo";

    fn dedupe_key(&self) -> Option<String> {
        let at = self.sha.as_ref().map_or("head", |s| s.as_str());
        Some(format!("analyze:{}:{}:{at}", self.forge, self.repo.id))
    }

    fn concurrency_key(&self) -> Option<String> {
        Some(format!("repo:{}:{}", self.forge, self.repo.id))
    }
}

/// Run the slash commands of a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCommand {
    /// Forge.
    pub forge: Forge,
    /// Tenant.
    pub installation: Option<InstallationId>,
    /// The delivery that carried the comment (one run per delivery).
    pub delivery_id: String,
    /// The comment.
    pub comment: Comment,
}

impl Job for RunCommand {
    const KIND: &'static str = "run_command";
    const PRIORITY: i64 = 10; // a person is waiting for the answer

    fn dedupe_key(&self) -> Option<String> {
        Some(format!(
            "command:{}:{}:{}",
            self.forge, self.comment.comment_id, self.delivery_id
        ))
    }

    fn concurrency_key(&self) -> Option<String> {
        Some(format!("repo:{}:{}", self.forge, self.comment.repo.id))
    }
}

/// One of pipewright's pull requests was closed or merged: remember it, so a PR a human
/// closed is never reopened for the same proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestClosed {
    /// Forge.
    pub forge: Forge,
    /// Tenant.
    pub installation: Option<InstallationId>,
    /// The repository.
    pub repo: Repo,
    /// PR number.
    pub number: u64,
    /// Merged or just closed.
    pub merged: bool,
    /// Its branch.
    pub head_branch: String,
}

impl Job for PullRequestClosed {
    const KIND: &'static str = "pull_request_closed";

    fn dedupe_key(&self) -> Option<String> {
        Some(format!(
            "pr-closed:{}:{}:{}",
            self.forge, self.repo.id, self.number
        ))
    }

    fn concurrency_key(&self) -> Option<String> {
        Some(format!("repo:{}:{}", self.forge, self.repo.id))
    }
}

/// List an installation's repositories and queue analysis for new or changed ones: the
/// safety net for deliveries that never arrived (GitHub does not retry, GitLab disables
/// failing hooks, Bitbucket has no repository-created event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileInstallation {
    /// Forge.
    pub forge: Forge,
    /// Tenant.
    pub installation: InstallationId,
    /// Which period this pass belongs to (one pass per period; 0 = on demand).
    pub period: i64,
}

impl Job for ReconcileInstallation {
    const KIND: &'static str = "reconcile_installation";
    const PRIORITY: i64 = -10; // background work yields to people and events

    fn dedupe_key(&self) -> Option<String> {
        Some(format!(
            "reconcile:{}:{}:{}",
            self.forge, self.installation, self.period
        ))
    }

    fn concurrency_key(&self) -> Option<String> {
        Some(format!("reconcile:{}:{}", self.forge, self.installation))
    }
}

/// A CI run of pipewright's branch finished: learn the proposal's first-run outcome,
/// and heal or explain a failure (see `jobs::first_run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRunCompleted {
    /// Forge.
    pub forge: Forge,
    /// Tenant.
    pub installation: Option<InstallationId>,
    /// The run.
    pub run: CiRun,
}

impl Job for CiRunCompleted {
    const KIND: &'static str = "ci_run_completed";

    fn dedupe_key(&self) -> Option<String> {
        Some(format!(
            "ci-run:{}:{}:{}:{}",
            self.forge,
            self.run.repo.id,
            self.run.key(),
            self.run.sha
        ))
    }

    fn concurrency_key(&self) -> Option<String> {
        Some(format!("repo:{}:{}", self.forge, self.run.repo.id))
    }
}
