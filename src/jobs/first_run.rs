//! `ci_run_completed`: a CI run of pipewright's branch finished. For a run of the commit
//! pipewright wrote (never one people added), record the outcome; on a failure read the
//! failed job's log (bounded), classify it (`crate::diagnose`) and heal, re-run or
//! explain (`plan::heal`): at most two fixes per proposal, never the same fix twice, one
//! comment per decision. A fix is an adjustment stored with the repository's settings and
//! pushed through the same path as every update (a fast-forward commit on the branch).

use anyhow::Context as _;
use tracing::{debug, info, warn};

use super::analyze_repo::{same_commit, sync_repository, Outcome};
use super::follow_up::CiRunCompleted;
use super::JobsContext;
use crate::bot::proposal::RepoSettings;
use crate::db::first_runs::{self, NewFirstRun};
use crate::db::{installations, pull_requests};
use crate::diagnose::{self, Diagnosis, LogFormat};
use crate::forge::client::{ApiError, ForgeClient, RepoHandle};
use crate::forge::event::{CiConclusion, CiJobRef, CiRun, CommentTarget};
use crate::forge::Forge;
use crate::plan::heal::{self, Decision, Failure, History};
use crate::queue::registry::JobRun;
use crate::queue::JobError;

/// Bytes of a failed job's log read (the tail): the error is nearly always at the end.
pub const MAX_LOG_BYTES: usize = 2 * 1024 * 1024;
/// Log lines quoted in the comment.
const QUOTED_LINES: usize = 12;

fn log_format(forge: Forge) -> LogFormat {
    match forge {
        Forge::Github => LogFormat::Github,
        Forge::Gitlab => LogFormat::Gitlab,
        Forge::Bitbucket => LogFormat::Bitbucket,
    }
}

pub(super) async fn run(
    ctx: &JobsContext,
    run: &JobRun,
    job: CiRunCompleted,
) -> Result<(), JobError> {
    let db = &run.db;
    let ci = &job.run;
    let Some(inst_ext) = &job.installation else {
        return Ok(());
    };
    let Some(inst) = installations::get_installation(db, job.forge, inst_ext.as_str())
        .await
        .context("cannot read the installation")?
        .filter(|i| i.state == "active")
    else {
        return Ok(());
    };
    let Some(repo_row) = installations::get_repo(db, job.forge, ci.repo.id.as_str())
        .await
        .context("cannot read the repository")?
    else {
        return Ok(());
    };
    let Some(pr) = pull_requests::latest(db, repo_row.id)
        .await
        .context("cannot read the pull request")?
        .filter(|p| p.state == "open")
    else {
        debug!("no open pipewright pull request: nothing to watch");
        return Ok(());
    };
    // Only the commit pipewright wrote: a run of people's commits is theirs.
    let ours = pr
        .head_sha
        .as_deref()
        .is_some_and(|h| same_commit(h, ci.sha.as_str()));
    if !ours {
        debug!(sha = %ci.sha, "run of a commit pipewright did not write: ignored");
        return Ok(());
    }
    // One completion of one run (a re-run's result has its own key; a redelivery not).
    let key = ci.key();
    let run_key = key.as_str();
    if first_runs::seen(db, repo_row.id, run_key, ci.sha.as_str())
        .await
        .context("cannot read first-run outcomes")?
    {
        return Ok(());
    }
    let now = ctx.clock.now();
    let record = |class: String,
                  subject: Option<String>,
                  action: &'static str,
                  fix_key: Option<String>,
                  detail: Option<String>| {
        async move {
            let inserted = first_runs::record(
                db,
                &NewFirstRun {
                    repository_id: repo_row.id,
                    pr_number: pr.number as u64,
                    head_sha: ci.sha.as_str(),
                    run_id: run_key,
                    class: &class,
                    subject: subject.as_deref(),
                    action,
                    fix_key: fix_key.as_deref(),
                    detail: detail.as_deref(),
                },
                now,
            )
            .await
            .context("cannot record the first-run outcome")?;
            Ok::<bool, JobError>(inserted)
        }
    };
    match ci.conclusion {
        CiConclusion::Cancelled => return Ok(()),
        CiConclusion::Success => {
            record("passed".to_owned(), None, "none", None, None).await?;
            info!(repo = %repo_row.full_name, pr = pr.number, "first run passed");
            return Ok(());
        }
        CiConclusion::Failure => {}
    }
    let client = ctx
        .forge_client(job.forge, inst_ext.as_str(), inst.account.as_deref())
        .map_err(JobError::from)?;
    let handle = RepoHandle {
        id: ci.repo.id.as_str().to_owned(),
        full_name: ci.repo.full_name.clone(),
    };
    // A refusal (a GitHub App installed before it asked for `actions`, a token without
    // the pipelines scope, a run the forge no longer has) still gets an explanation: the
    // failure stays unclassified, and the comment says why. Faults and rate limits retry.
    let read = read_failure(client.as_ref(), &handle, ci, job.forge).await;
    let mut unreadable = None;
    let (failed, diagnosis, job_name) = match read {
        Ok(r) => r,
        Err(e @ ApiError::Rejected { .. }) => {
            warn!(repo = %repo_row.full_name, error = %e, "cannot read the failed run");
            unreadable = Some(e.to_string());
            (Vec::new(), diagnose::classify(""), None)
        }
        Err(e) => return Err(e.into()),
    };
    let class = diagnosis.class.id().to_owned();
    // What was tried already on this pull request.
    let earlier = first_runs::for_pr(db, repo_row.id, pr.number as u64)
        .await
        .context("cannot read first-run outcomes")?;
    let mut settings = RepoSettings::from_json(
        pull_requests::repo_state(db, repo_row.id)
            .await
            .context("cannot read the repository's settings")?
            .settings
            .as_deref(),
    );
    let history = History {
        fixes: earlier.iter().filter(|r| r.action == "commit").count(),
        fix_keys: earlier
            .iter()
            .filter(|r| r.action == "commit")
            .filter_map(|r| r.fix_key.clone())
            .collect(),
        adjustments: settings.adjustments.clone(),
        reran: earlier.iter().any(|r| r.action == "rerun"),
    };
    let plan = current_plan(client.as_ref(), &handle, &ci.sha.0, job.forge, &settings).await?;
    // The subject comes from the log (hostile input): it names a tool, a version or a
    // service, and goes into comments, so only the characters those names use pass.
    let subject = diagnosis.subject.as_deref().map(clean_subject);
    let failure = Failure {
        class: class.clone(),
        subject: subject.clone(),
    };
    let decision = match unreadable {
        Some(e) => Decision::Explain {
            why: format!(
                "pipewright could not read the failed job or its log ({e}); it needs to read CI results (GitHub App permission `actions`, Bitbucket scope `pipeline`)"
            ),
        },
        None => heal::decide(&failure, &plan, &pr.proposal_hash, &history),
    };
    let key = heal::fix_key(&pr.proposal_hash, &class);
    // Claim the run before acting: a redelivery or a retried job acts once.
    let (action, detail) = match &decision {
        Decision::Commit { adjustment, .. } => (
            "commit",
            Some(serde_json::to_string(adjustment).expect("adjustments serialize")),
        ),
        Decision::Rerun { why } | Decision::Explain { why } => {
            (decision.action(), Some(why.clone()))
        }
    };
    if !record(
        class.clone(),
        subject,
        action,
        (action == "commit").then(|| key.clone()),
        detail,
    )
    .await?
    {
        return Ok(());
    }
    let target = CommentTarget::PullRequest(pr.number as u64);
    match &decision {
        Decision::Commit { adjustment, why } => {
            // People's commits on the branch (pushed after the run started): the fix is
            // not pushed over them, nor stored, and this is the one comment about it
            // (the update path would say instead that the default branch changed).
            let tip = client.branch_head(&handle, &ctx.pr_branch).await?;
            if !tip
                .as_deref()
                .is_some_and(|t| same_commit(t, ci.sha.as_str()))
            {
                first_runs::set_action(db, repo_row.id, run_key, ci.sha.as_str(), "blocked")
                    .await
                    .context("cannot record the first-run outcome")?;
                let why_not = format!(
                    "the `{}` branch has commits pipewright did not write, and it does not push over them",
                    ctx.pr_branch
                );
                let body = crate::bot::first_run::could_not_push(
                    job.forge,
                    &diagnosis,
                    job_name.as_deref(),
                    &adjustment.describe(),
                    &why_not,
                    QUOTED_LINES,
                );
                client
                    .comment(&handle, &target, &crate::bot::replies::signed(&body))
                    .await?;
                info!(repo = %repo_row.full_name, pr = pr.number, %class, "first-run fix blocked by people's commits");
                return Ok(());
            }
            settings.adjustments.push(adjustment.clone());
            pull_requests::set_settings(db, repo_row.id, &settings.to_json())
                .await
                .context("cannot store the adjustment")?;
            let outcome =
                sync_repository(ctx, db, client.as_ref(), &inst, &repo_row, &handle, None).await?;
            let body = match outcome {
                Outcome::Updated(_) => crate::bot::first_run::healed(
                    job.forge,
                    &diagnosis,
                    job_name.as_deref(),
                    why,
                    &adjustment.describe(),
                    QUOTED_LINES,
                ),
                other => {
                    // Nothing was pushed (people's commits on the branch, a closed pull
                    // request, …): not a fix, so it does not count towards the two.
                    first_runs::set_action(db, repo_row.id, run_key, ci.sha.as_str(), "blocked")
                        .await
                        .context("cannot record the first-run outcome")?;
                    crate::bot::first_run::could_not_push(
                        job.forge,
                        &diagnosis,
                        job_name.as_deref(),
                        &adjustment.describe(),
                        &other.describe(job.forge),
                        QUOTED_LINES,
                    )
                }
            };
            client
                .comment(&handle, &target, &crate::bot::replies::signed(&body))
                .await?;
            info!(repo = %repo_row.full_name, pr = pr.number, %class, "first run healed");
        }
        Decision::Rerun { why } => {
            client.rerun_ci(&handle, ci, &failed).await?;
            let body = crate::bot::first_run::reran(
                job.forge,
                &diagnosis,
                job_name.as_deref(),
                why,
                QUOTED_LINES,
            );
            client
                .comment(&handle, &target, &crate::bot::replies::signed(&body))
                .await?;
        }
        Decision::Explain { why } => {
            let body = crate::bot::first_run::explained(
                job.forge,
                &diagnosis,
                job_name.as_deref(),
                why,
                QUOTED_LINES,
            );
            client
                .comment(&handle, &target, &crate::bot::replies::signed(&body))
                .await?;
            info!(repo = %repo_row.full_name, pr = pr.number, %class, "first run failed: explained");
        }
    }
    Ok(())
}

/// The failed jobs of a run, and the diagnosis of the first one's log (its tail).
async fn read_failure(
    client: &dyn ForgeClient,
    handle: &RepoHandle,
    ci: &CiRun,
    forge: Forge,
) -> Result<(Vec<CiJobRef>, Diagnosis, Option<String>), ApiError> {
    let failed = client.failed_ci_jobs(handle, ci).await?;
    let Some(first) = failed.first() else {
        return Ok((Vec::new(), diagnose::classify(""), None));
    };
    let raw = client.ci_job_log(handle, ci, first, MAX_LOG_BYTES).await?;
    let text = diagnose::normalise(&raw, log_format(forge));
    let name = first.name.clone();
    Ok((failed, diagnose::classify(&text), Some(name)))
}

/// The plan the failed commit carries, rebuilt from the repository at that commit with
/// the stored settings (healing reads the plan's jobs, tools and matrix).
async fn current_plan(
    client: &dyn ForgeClient,
    handle: &RepoHandle,
    sha: &str,
    forge: Forge,
    settings: &RepoSettings,
) -> Result<crate::plan::Plan, JobError> {
    let snapshot = super::analyze_repo::read_snapshot(client, handle, sha).await?;
    let Some(snapshot) = snapshot else {
        return Ok(crate::plan::Plan {
            summary: String::new(),
            workflows: Vec::new(),
            notes: Vec::new(),
        });
    };
    let config = crate::repo_config::load(&snapshot.tree)
        .ok()
        .flatten()
        .map(|(_, c)| c);
    let target = crate::bot::proposal::effective_target(
        super::analyze_repo::forge_provider(forge),
        "main",
        config.as_ref(),
        settings,
    );
    Ok(crate::plan::build(
        &crate::analyze::analyze(&snapshot.tree),
        &target,
    ))
}

/// A subject as healing and comments may use it: the characters of tool names,
/// versions, hosts and file names, at most 100 of them.
fn clean_subject(s: &str) -> String {
    s.chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '+' | ' ')
        })
        .take(100)
        .collect()
}

/// The diagnosis' quoted lines (for messages and tests).
pub fn quoted(d: &Diagnosis, n: usize) -> Vec<String> {
    d.excerpt.iter().take(n).cloned().collect()
}
