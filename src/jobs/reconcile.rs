//! `reconcile_installation` and `pull_request_closed`: the bookkeeping that keeps the
//! bot's view of a tenant true when deliveries are lost, and remembers which pull
//! requests people closed.

use std::collections::BTreeSet;

use anyhow::Context as _;
use tracing::{debug, info};

use super::follow_up::{AnalyzeReason, AnalyzeRepo, PullRequestClosed, ReconcileInstallation};
use super::JobsContext;
use crate::db::installations::{self, RepoState};
use crate::db::pull_requests;
use crate::forge::event::Repo;
use crate::forge::{Forge, RepoId};
use crate::queue::registry::JobRun;
use crate::queue::{store, JobError, NewJob};

pub(super) async fn reconcile(
    ctx: &JobsContext,
    run: &JobRun,
    job: ReconcileInstallation,
) -> Result<(), JobError> {
    let db = &run.db;
    let now = ctx.clock.now();
    let Some(inst) = installations::get_installation(db, job.forge, job.installation.as_str())
        .await
        .context("cannot read the installation")?
        .filter(|i| i.state == "active")
    else {
        info!(installation = %job.installation, "installation is not active: nothing to reconcile");
        return Ok(());
    };
    let client = ctx
        .forge_client(
            job.forge,
            job.installation.as_str(),
            inst.account.as_deref(),
        )
        .map_err(JobError::from)?;
    let remote = client.list_repositories().await?;
    let known = installations::list_repos(db, inst.id)
        .await
        .context("cannot list known repositories")?;
    let seen: BTreeSet<&str> = remote.iter().map(|r| r.handle.id.as_str()).collect();
    let had: BTreeSet<&str> = known.iter().map(|k| k.external_id.as_str()).collect();
    // GitLab without system hooks: cover projects created since the last pass.
    if let (Forge::Gitlab, Some((url, secret))) = (job.forge, &ctx.gitlab_hook) {
        let gl = ctx
            .forges
            .gitlab_client(inst.account.as_deref().unwrap_or(job.installation.as_str()))?;
        for r in remote
            .iter()
            .filter(|r| !had.contains(r.handle.id.as_str()))
        {
            if let Ok(id) = r.handle.id.parse::<u64>() {
                if gl.ensure_hook(id, url, secret).await? {
                    info!(project = %r.handle.full_name, "webhook registered on a new project");
                }
            }
        }
    }
    // Bitbucket with a token that may not manage workspace webhooks (project and
    // repository access tokens): each repository has its own, so new ones need theirs.
    if let (Forge::Bitbucket, Some((url, secret))) = (job.forge, &ctx.bitbucket_hook) {
        let new: Vec<crate::forge::client::RepoHandle> = remote
            .iter()
            .filter(|r| !had.contains(r.handle.id.as_str()))
            .map(|r| r.handle.clone())
            .collect();
        if !new.is_empty() {
            let bb = ctx
                .forges
                .bitbucket_client(inst.account.as_deref().unwrap_or(job.installation.as_str()))?;
            if let Some(report) = bb.hook_new_repositories(&new, url, secret).await? {
                info!(
                    repositories = new.len(),
                    events = ?report.events,
                    "webhooks registered on new repositories"
                );
            }
        }
    }
    for gone in known
        .iter()
        .filter(|k| k.state == "active" && !seen.contains(k.external_id.as_str()))
    {
        installations::set_repo_state(db, job.forge, &gone.external_id, RepoState::Removed, now)
            .await
            .context("cannot mark a repository removed")?;
    }
    let mut queued = 0;
    for r in &remote {
        let repo = Repo {
            id: RepoId(r.handle.id.clone()),
            full_name: r.handle.full_name.clone(),
            default_branch: r.default_branch.clone(),
            private: Some(r.private),
            archived: Some(r.archived),
            fork: Some(r.fork),
        };
        let row_id =
            installations::upsert_repo(db, Some(inst.id), job.forge, &repo, RepoState::Active, now)
                .await
                .context("cannot record a repository")?;
        if r.skip_reason().is_some() {
            continue;
        }
        let state = pull_requests::repo_state(db, row_id)
            .await
            .context("cannot read a repository's bot state")?;
        // Unchanged since the last analysis: no API calls spent on it.
        let fresh = match (state.last_analyzed_at, r.pushed_at) {
            (Some(analysed), Some(pushed)) => pushed <= analysed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if state.ignored || fresh {
            continue;
        }
        let analyze = AnalyzeRepo {
            forge: job.forge,
            installation: Some(job.installation.clone()),
            repo,
            reason: AnalyzeReason::Reconcile,
            sha: None,
        };
        if store::enqueue(db, &NewJob::of(&analyze), now)
            .await
            .context("cannot queue an analysis")?
            .is_some()
        {
            queued += 1;
        }
    }
    ctx.forges
        .totals()
        .observe_job(job.forge, "reconcile_installation", client.calls());
    if let Err(e) = crate::db::console::record_api_usage(
        db,
        inst.id,
        client.calls(),
        client.rate_reading(),
        ctx.clock.now(),
    )
    .await
    {
        tracing::warn!(error = %e, "cannot record API usage");
    }
    info!(
        installation = %job.installation,
        repositories = remote.len(),
        queued,
        api_calls = client.calls(),
        "reconciled"
    );
    Ok(())
}

pub(super) async fn pull_request_closed(
    ctx: &JobsContext,
    run: &JobRun,
    job: PullRequestClosed,
) -> Result<(), JobError> {
    let db = &run.db;
    let Some(repo) = installations::get_repo(db, job.forge, job.repo.id.as_str())
        .await
        .context("cannot read the repository")?
    else {
        debug!("closed pull request of an unknown repository");
        return Ok(());
    };
    let state = if job.merged { "merged" } else { "closed" };
    let known = pull_requests::set_state(db, repo.id, job.number, state, ctx.clock.now())
        .await
        .context("cannot record the closed pull request")?;
    info!(
        repo = %repo.full_name,
        pr = job.number,
        state,
        known,
        "pipewright pull request closed; its proposal will not be reopened"
    );
    Ok(())
}

/// Queues a reconcile pass for every active installation of `forge` for the current
/// period (idempotent: one pass per installation and period).
pub async fn schedule_reconciles(
    db: &crate::db::Db,
    forges: &[Forge],
    period_ms: i64,
    now: i64,
) -> anyhow::Result<usize> {
    if period_ms <= 0 {
        return Ok(0);
    }
    let mut n = 0;
    for forge in forges {
        for inst in installations::list_installations(db, *forge).await? {
            if inst.state != "active" {
                continue;
            }
            // Spread installations over the period so they do not all start at once.
            let offset = (fnv(&inst.external_id) % period_ms as u64) as i64;
            let period = (now - offset).div_euclid(period_ms);
            let job = ReconcileInstallation {
                forge: *forge,
                installation: crate::forge::InstallationId(inst.external_id.clone()),
                period: period + 1,
            };
            let at = (period + 1) * period_ms + offset;
            if store::enqueue(db, &NewJob::of(&job).run_at(at), now)
                .await?
                .is_some()
            {
                n += 1;
            }
        }
    }
    Ok(n)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
