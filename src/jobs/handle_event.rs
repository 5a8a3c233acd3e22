//! `handle_event`: the job every accepted webhook delivery becomes. It keeps the
//! installations and repositories tables current and fans out follow-up jobs (analysis,
//! commands, PR bookkeeping). It never calls a forge; it only decides and enqueues, so it
//! is fast and safe to re-run (every write is an upsert, every follow-up has a dedupe key).

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::follow_up::{
    AnalyzeReason, AnalyzeRepo, PullRequestClosed, ReconcileInstallation, RunCommand,
};
use super::JobsContext;
use crate::db::installations::{self, InstallationState, RepoState};
use crate::db::Db;
use crate::forge::event::{EventKind, ForgeEvent, GitRef};
use crate::forge::Forge;
use crate::queue::registry::JobRun;
use crate::queue::{store, Job, JobError, NewJob};

/// Branch names the bot's own pull requests use (`pipewright/ci` and siblings).
pub const BOT_BRANCH_PREFIX: &str = "pipewright/";

/// The events of one webhook delivery (Bitbucket can carry several ref changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleEvent {
    /// Forge that sent it.
    pub forge: Forge,
    /// Its delivery id.
    pub delivery_id: String,
    /// Event header value (for operators).
    pub event_name: String,
    /// Parsed events.
    pub events: Vec<ForgeEvent>,
}

impl Job for HandleEvent {
    const KIND: &'static str = "handle_event";
    const PRIORITY: i64 = 20; // cheap, and everything else waits on it

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("delivery:{}:{}", self.forge, self.delivery_id))
    }

    /// One tenant's events are applied one at a time (installed, then removed, …).
    fn concurrency_key(&self) -> Option<String> {
        let inst = self.events.iter().find_map(|e| e.installation.as_ref())?;
        Some(format!("installation:{}:{}", self.forge, inst.id))
    }
}

pub(super) async fn run(ctx: &JobsContext, run: &JobRun, job: HandleEvent) -> Result<(), JobError> {
    for event in &job.events {
        apply(ctx, &run.db, &job, event).await.with_context(|| {
            format!(
                "cannot apply {} event of delivery {}",
                event.kind_name(),
                job.delivery_id
            )
        })?;
    }
    Ok(())
}

async fn apply(
    ctx: &JobsContext,
    db: &Db,
    job: &HandleEvent,
    event: &ForgeEvent,
) -> anyhow::Result<()> {
    let now = ctx.clock.now();
    let forge = event.forge;
    let inst_ext = event.installation.as_ref().map(|i| i.id.clone());
    let account = event
        .installation
        .as_ref()
        .and_then(|i| i.account.as_deref());

    // GitLab / Bitbucket: only allowlisted groups and workspaces (GitHub: any installation).
    if let Some(i) = &event.installation {
        // Only a process with credentials for this forge knows its allowlist; others
        // record the event and leave the forge work to a process that has them.
        if ctx.forges.configured().contains(&forge)
            && !ctx
                .forges
                .allows(forge, i.id.as_str(), i.account.as_deref())
        {
            debug!(tenant = %i.id, "tenant not in the allowlist: event ignored");
            return Ok(());
        }
    }
    // Installation lifecycle first: these set the state every other event checks.
    let lifecycle = match &event.kind {
        EventKind::InstallationCreated { .. } | EventKind::InstallationUnsuspended => {
            Some(InstallationState::Active)
        }
        EventKind::InstallationSuspended => Some(InstallationState::Suspended),
        EventKind::InstallationDeleted => Some(InstallationState::Deleted),
        _ => None,
    };
    let inst_row = match (&inst_ext, lifecycle) {
        (Some(ext), Some(state)) => {
            info!(forge = %forge, installation = %ext, state = ?state, "installation changed");
            Some(
                installations::upsert_installation(db, forge, ext.as_str(), account, state, now)
                    .await?,
            )
        }
        (Some(ext), None) => {
            Some(installations::ensure_installation(db, forge, ext.as_str(), account, now).await?)
        }
        (None, _) => None,
    };
    let active = match &inst_ext {
        Some(ext) => installations::get_installation(db, forge, ext.as_str())
            .await?
            .is_some_and(|i| i.state == "active"),
        // A plain repository hook (no App): nothing to check against.
        None => true,
    };

    // Events the bot caused itself (its own comments, PR updates) are not reactions to people.
    if let Some(sender) = &event.sender {
        if ctx.forges.is_own_account(forge, &sender.login) {
            debug!(sender = %sender.login, "event caused by pipewright itself: ignored");
            return Ok(());
        }
    }

    match &event.kind {
        EventKind::InstallationCreated { repos } | EventKind::ReposAdded { repos } => {
            if let (Some(ext), EventKind::InstallationCreated { .. }, true) =
                (&inst_ext, &event.kind, active)
            {
                // The payload may not list every repository: the reconcile pass does.
                enqueue(
                    db,
                    &ReconcileInstallation {
                        forge,
                        installation: ext.clone(),
                        period: 0,
                    },
                    now,
                )
                .await?;
            }
            for repo in repos {
                installations::upsert_repo(db, inst_row, forge, repo, RepoState::Active, now)
                    .await?;
                if active {
                    enqueue(
                        db,
                        &AnalyzeRepo {
                            forge,
                            installation: inst_ext.clone(),
                            repo: repo.clone(),
                            reason: AnalyzeReason::Installed,
                            sha: None,
                        },
                        now,
                    )
                    .await?;
                }
            }
        }
        EventKind::ReposRemoved { repos } => {
            for repo in repos {
                installations::set_repo_state(db, forge, repo.id.as_str(), RepoState::Removed, now)
                    .await?;
            }
        }
        EventKind::InstallationDeleted | EventKind::InstallationSuspended => {
            if let Some(ext) = &inst_ext {
                ctx.forges.forget(forge, ext.as_str());
                let dropped =
                    store::drop_installation_jobs(db, forge.as_str(), ext.as_str()).await?;
                info!(installation = %ext, dropped, "installation stopped: tokens and queued work dropped");
            }
            // Uninstalled: what was learned from its repositories goes too (in the
            // database for every replica; this process's index and files at once).
            if let (EventKind::InstallationDeleted, Some(id)) = (&event.kind, inst_row) {
                let forgotten = match &ctx.learner {
                    Some(l) => l.siblings().forget(db, id).await?,
                    None => crate::db::learn::forget_installation(db, id).await?,
                };
                info!(
                    installation = id,
                    forgotten, "learned conventions of the installation forgotten"
                );
            }
        }
        EventKind::InstallationUnsuspended => {
            // Whatever changed while suspended is caught up by a reconcile pass now.
            if let Some(ext) = &inst_ext {
                enqueue(
                    db,
                    &ReconcileInstallation {
                        forge,
                        installation: ext.clone(),
                        period: 0,
                    },
                    now,
                )
                .await?;
            }
        }
        EventKind::RepoCreated { repo } => {
            // A new repository is usually empty: wait for its first push.
            installations::upsert_repo(db, inst_row, forge, repo, RepoState::Active, now).await?;
        }
        EventKind::RepoDeleted { repo } => {
            installations::set_repo_state(db, forge, repo.id.as_str(), RepoState::Deleted, now)
                .await?;
        }
        EventKind::Push(push) => {
            installations::upsert_repo(db, inst_row, forge, &push.repo, RepoState::Active, now)
                .await?;
            let to_default = matches!(push.git_ref, GitRef::Branch(_)) && push.to_default_branch;
            // Only pushes that may change the proposal: the first push of a repository, a
            // push whose file list is incomplete, or one touching manifests / CI / config.
            let relevant = push.created
                || push.before.is_none()
                || !push.paths_complete
                || push
                    .changed_paths
                    .iter()
                    .any(|p| crate::analyze::affects_detection(p));
            if to_default && !relevant {
                debug!("push touches no file detection reads: nothing to re-analyse");
            }
            match (&push.after, to_default && !push.deleted && relevant) {
                (Some(sha), true) if active => {
                    installations::record_push(db, forge, push.repo.id.as_str(), sha.as_str(), now)
                        .await?;
                    enqueue(
                        db,
                        &AnalyzeRepo {
                            forge,
                            installation: inst_ext.clone(),
                            repo: push.repo.clone(),
                            reason: AnalyzeReason::Push,
                            sha: Some(sha.clone()),
                        },
                        now,
                    )
                    .await?;
                }
                _ => {
                    debug!(git_ref = ?push.git_ref, "push not to the default branch: nothing to do")
                }
            }
        }
        EventKind::Comment(comment) => {
            if comment.author.is_bot
                || ctx.forges.is_own_account(forge, &comment.author.login)
                || comment.body.contains(crate::bot::replies::REPLY_MARKER)
            {
                debug!(author = %comment.author.login, "comment by a bot: ignored");
            } else if !mentions_command(&comment.body, &ctx.command_word) {
                debug!("comment without a command: ignored");
            } else if active {
                enqueue(
                    db,
                    &RunCommand {
                        forge,
                        installation: inst_ext.clone(),
                        delivery_id: job.delivery_id.clone(),
                        comment: comment.clone(),
                    },
                    now,
                )
                .await?;
            }
        }
        EventKind::CiRunCompleted(run) => {
            // Only runs of pipewright's own branch: the first runs of its proposals.
            if run.branch == ctx.pr_branch && active {
                enqueue(
                    db,
                    &crate::jobs::follow_up::CiRunCompleted {
                        forge,
                        installation: inst_ext.clone(),
                        run: run.clone(),
                    },
                    now,
                )
                .await?;
            } else {
                debug!(branch = %run.branch, "CI run of another branch: ignored");
            }
        }
        EventKind::PullRequestClosed {
            repo,
            number,
            merged,
            head_branch,
        } => {
            if head_branch.starts_with(BOT_BRANCH_PREFIX) {
                enqueue(
                    db,
                    &PullRequestClosed {
                        forge,
                        installation: inst_ext.clone(),
                        repo: repo.clone(),
                        number: *number,
                        merged: *merged,
                        head_branch: head_branch.clone(),
                    },
                    now,
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn enqueue<J: Job>(db: &Db, job: &J, now: i64) -> anyhow::Result<()> {
    match store::enqueue(db, &NewJob::of(job), now).await? {
        Some(id) => debug!(job.id = id, kind = J::KIND, "queued follow-up"),
        None => debug!(kind = J::KIND, "follow-up already queued"),
    }
    Ok(())
}

/// Does the comment address the bot (`/word` or `@word` at the start of a line)? A cheap
/// pre-filter so ordinary conversation queues nothing; the command parser decides.
pub fn mentions_command(body: &str, word: &str) -> bool {
    body.lines().any(|line| {
        let line = line.trim_start();
        let rest = line.strip_prefix('/').or_else(|| line.strip_prefix('@'));
        rest.and_then(|r| r.get(..word.len()))
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_prefilter_needs_the_word_at_a_line_start() {
        assert!(mentions_command("/pipewright help", "pipewright"));
        assert!(mentions_command(
            "thanks!\n  @Pipewright regenerate",
            "pipewright"
        ));
        assert!(!mentions_command("I like pipewright", "pipewright"));
        assert!(!mentions_command("/pipe", "pipewright"));
        assert!(!mentions_command("", "pipewright"));
        assert!(mentions_command("/pipewrightx", "pipewright")); // parser rejects later
        assert!(!mentions_command("/ü", "pipewright"));
    }
}
